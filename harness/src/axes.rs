//! The axes of the matrix and the values each can take: the one table that matrix files,
//! filters, `when:` clauses, `CRIU_MATRIX_REQUIRE`, cell names and reports all read.
//!
//! Adding a value (a runtime, a Debian suite as a stack, a kernel) is one edit here; every
//! reader checks what it is given against this table, so a typo such as `cruun` is an error
//! where it was written instead of a clause or filter that silently never matches.

use std::fmt;

/// An axis of the matrix, in the order the axes appear in a cell's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Axis {
    /// The workload and what it checks: values are the ids of the files in `scenarios/`.
    Scenario,
    Engine,
    Runtime,
    /// Where the engine, runtimes and CRIU come from.
    Stack,
    /// `host` (the running kernel) or a Debian kernel booted in a VM.
    Kernel,
    /// The cgroup layout a VM boots with; a host-kernel cell has the host's.
    Cgroup,
    /// PID 1 of a VM; `host` for a host-kernel cell.
    Init,
    /// How the kernel runs: `native` (the host's), `kvm` or `tcg`. Decided by the machine.
    Accel,
}

impl Axis {
    pub const ALL: [Axis; 8] =
        [Axis::Scenario, Axis::Engine, Axis::Runtime, Axis::Stack, Axis::Kernel, Axis::Cgroup, Axis::Init, Axis::Accel];

    /// The name in cell names, `when:` clauses, `CRIU_MATRIX_REQUIRE` and CLI flags.
    pub fn name(self) -> &'static str {
        match self {
            Axis::Scenario => "scenario",
            Axis::Engine => "engine",
            Axis::Runtime => "runtime",
            Axis::Stack => "stack",
            Axis::Kernel => "kernel",
            Axis::Cgroup => "cgroup",
            Axis::Init => "init",
            Axis::Accel => "accel",
        }
    }

    /// The key of a matrix file that lists this axis's values (`engines: [podman]`).
    pub fn plural(self) -> &'static str {
        match self {
            Axis::Scenario => "scenarios",
            Axis::Engine => "engines",
            Axis::Runtime => "runtimes",
            Axis::Stack => "stacks",
            Axis::Kernel => "kernels",
            Axis::Cgroup => "cgroups",
            Axis::Init => "inits",
            Axis::Accel => "accels",
        }
    }

    pub fn from_name(name: &str) -> Option<Axis> {
        Axis::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn from_plural(name: &str) -> Option<Axis> {
        Axis::ALL.into_iter().find(|a| a.plural() == name)
    }

    /// The values this axis can take, or `None` for the scenario axis (its values are the files
    /// of `scenarios/`).
    pub fn values(self) -> Option<Vec<&'static str>> {
        let names = match self {
            Axis::Scenario => return None,
            Axis::Engine => ENGINES.iter().map(|e| e.name).collect(),
            Axis::Runtime => RUNTIMES.to_vec(),
            Axis::Stack => STACKS.iter().map(|s| s.name).collect(),
            Axis::Kernel => KERNELS.iter().map(|k| k.name).collect(),
            Axis::Cgroup => CGROUPS.to_vec(),
            Axis::Init => INITS.iter().map(|i| i.name).collect(),
            Axis::Accel => ACCELS.to_vec(),
        };
        Some(names)
    }

    /// The values a matrix file may choose: every value, except that a VM boots with `plain` or
    /// `systemd` as PID 1 (`host` is what a host-kernel cell has, not a choice).
    pub fn choosable(self) -> Option<Vec<&'static str>> {
        match self {
            Axis::Init => Some(INITS.iter().filter(|i| i.chosen).map(|i| i.name).collect()),
            other => other.values(),
        }
    }

    /// Whether a matrix file lists values of this axis. The scenarios have a key of their own
    /// (absent: every scenario); the acceleration is the machine's, never a choice.
    pub fn in_matrix_files(self) -> bool {
        !matches!(self, Axis::Scenario | Axis::Accel)
    }

    /// What a matrix part that does not list this axis covers; `None`: the axis must be listed.
    pub fn matrix_default(self) -> Option<&'static [&'static str]> {
        match self {
            Axis::Kernel => Some(&["host"]),
            Axis::Cgroup => Some(&["v2"]),
            Axis::Init => Some(&["plain"]),
            _ => None,
        }
    }

    /// Whether only VM cells have a chosen value here: a host-kernel cell has the host's own
    /// cgroup layout and init, so a filter on these axes narrows the VM cells only.
    pub fn chosen_for_vms_only(self) -> bool {
        matches!(self, Axis::Cgroup | Axis::Init)
    }

    /// `Ok` when `value` is a value of this axis (any value for the scenario axis, whose ids are
    /// checked against the loaded scenarios); else what the values are.
    pub fn check(self, value: &str) -> Result<(), String> {
        self.check_among(value, self.values())
    }

    /// As [`Axis::check`], against the values a matrix file may choose.
    pub fn check_choosable(self, value: &str) -> Result<(), String> {
        self.check_among(value, self.choosable())
    }

    fn check_among(self, value: &str, values: Option<Vec<&'static str>>) -> Result<(), String> {
        match values {
            None => Ok(()),
            Some(values) if values.contains(&value) => Ok(()),
            // A derived stack: a known base and known components (`trixie+criu=sid`).
            Some(values) if self == Axis::Stack && value.contains('+') => match DerivedName::parse(value) {
                Ok(_) => Ok(()),
                Err(why) => Err(format!(
                    "unknown stack `{value}`: not a derived stack BASE+COMPONENT=LABEL ({why}; known stacks: {})",
                    values.join(", ")
                )),
            },
            Some(values) => Err(format!("unknown {} `{value}` (known: {})", self.name(), values.join(", "))),
        }
    }
}

impl fmt::Display for Axis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A container engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engine {
    pub name: &'static str,
    /// The program that must be in a stack for the engine to run there at all.
    pub program: &'static str,
}

pub const ENGINES: &[Engine] =
    &[Engine { name: "podman", program: "podman" }, Engine { name: "docker", program: "dockerd" }];

/// OCI runtimes; each is the program of that name in the stack.
pub const RUNTIMES: &[&str] = &["runc", "crun"];

/// A stack: where the engines, runtimes and CRIU of a cell come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stack {
    pub name: &'static str,
    pub source: StackSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackSource {
    /// What this machine has installed.
    Host,
    /// A Debian suite, debootstrapped into the cache: its own podman, docker, runtimes and CRIU.
    Debian {
        suite: &'static str,
        /// Packages this suite needs besides what every stack has (`stack::debian::COMMON`).
        extra_packages: &'static [&'static str],
        /// Packages every stack has that this suite does not ship (an older suite).
        without: &'static [&'static str],
    },
    /// Another stack of this table with components replaced, as `--with COMPONENT=SOURCE` does
    /// (`build`): a derived stack under a name of its own, kept for names that records and
    /// baselines already use.
    Derived {
        base: &'static str,
        /// `(component, source)`, each as `--with` takes it, e.g. `("crun", "deb:bookworm")`.
        with: &'static [(&'static str, &'static str)],
        /// Why it exists, for people reading a reproducer.
        why: &'static str,
    },
}

pub const STACKS: &[Stack] = &[
    Stack { name: "host", source: StackSource::Host },
    // bookworm has no libcriu2 package (its crun 1.8.1 is built without CRIU anyway).
    Stack { name: "bookworm", source: StackSource::Debian { suite: "bookworm", extra_packages: &[], without: &[] } },
    // trixie's and sid's crun dlopen libcriu.so.2 without depending on it.
    // From trixie on, Debian ships docker's CLI in its own package.
    Stack {
        name: "trixie",
        source: StackSource::Debian { suite: "trixie", extra_packages: &["libcriu2", "docker-cli"], without: &[] },
    },
    Stack {
        name: "sid",
        source: StackSource::Debian { suite: "sid", extra_packages: &["libcriu2", "docker-cli"], without: &[] },
    },
    // Debian 11 (podman 3.0.1, crun 0.17, runc 1.0.0~rc93, docker 20.10.5; kernel 5.10, the one
    // nearest the 4.18 kernels of failure case 2). It ships no criu at all, so its cells skip
    // until a CRIU is given: `--with criu=deb:bookworm` or `--with criu=src:DIR@v3.15`. podman 3
    // networks through CNI (no netavark) and dbus 1.12 is one package.
    Stack {
        name: "bullseye",
        source: StackSource::Debian {
            suite: "bullseye",
            extra_packages: &[],
            without: &["criu", "netavark", "aardvark-dns", "dbus-daemon", "dbus-system-bus-common"],
        },
    },
    Stack {
        name: "bookworm-crun-criu",
        source: StackSource::Derived {
            base: "bookworm",
            with: &[("crun", "deb:bookworm")],
            why: "bookworm's crun 1.8.1 rebuilt from its own source package with CRIU support (Debian builds it \
                  without): the crun before 1.21 that containers/crun#1651 needs, beside the podman 4.3.1 it fits",
        },
    },
];

impl Stack {
    pub fn find(name: &str) -> Option<Stack> {
        STACKS.iter().copied().find(|s| s.name == name)
    }

    /// The Debian suite of the stack's userland (and of its containers' base image); `None` for
    /// the host, whose suite is whatever it runs.
    pub fn suite(&self) -> Option<&'static str> {
        match self.source {
            StackSource::Host => None,
            StackSource::Debian { suite, .. } => Some(suite),
            StackSource::Derived { base, .. } => Stack::find(base).and_then(|b| b.suite()),
        }
    }

    /// The suite of any stack name: one of this table, or a derived name of one.
    pub fn suite_of(name: &str) -> Option<&'static str> {
        match Stack::find(name) {
            Some(stack) => stack.suite(),
            None => DerivedName::parse(name).ok().and_then(|d| d.base.suite()),
        }
    }

    /// The stack a derived stack is made from, as written in its name (or the table); `None` for a
    /// stack that is not derived.
    pub fn base_of(name: &str) -> Option<&'static str> {
        match Stack::find(name).map(|s| s.source) {
            Some(StackSource::Derived { base, .. }) => Some(base),
            Some(_) => None,
            None => DerivedName::parse(name).ok().map(|d| d.base.name),
        }
    }
}

/// A component of a stack that `--with COMPONENT=SOURCE` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    pub name: &'static str,
    /// Debian's source package of it: what `deb:SUITE` builds.
    pub source_package: &'static str,
    /// The binary packages of that source whose files a `deb:` build installs (those it built).
    pub binary_packages: &'static [&'static str],
    /// Where the stack's engines find it: the file `path:FILE` replaces.
    pub program: &'static str,
    /// Whether `src:DIR` can build it (the harness knows its upstream build: `build/src-build.sh`).
    pub from_source: bool,
}

/// The components, in the order a derived stack's name lists them.
pub const COMPONENTS: &[Component] = &[
    Component {
        name: "criu",
        source_package: "criu",
        binary_packages: &["criu", "libcriu2"],
        program: "/usr/sbin/criu",
        from_source: true,
    },
    Component {
        name: "crun",
        source_package: "crun",
        binary_packages: &["crun"],
        program: "/usr/bin/crun",
        from_source: true,
    },
    Component {
        name: "runc",
        source_package: "runc",
        binary_packages: &["runc"],
        program: "/usr/sbin/runc",
        from_source: true,
    },
    Component {
        name: "conmon",
        source_package: "conmon",
        binary_packages: &["conmon"],
        program: "/usr/bin/conmon",
        from_source: true,
    },
    // podman builds from Debian's source (`libpod`, Go: long) or is given as a binary.
    Component {
        name: "podman",
        source_package: "libpod",
        binary_packages: &["podman"],
        program: "/usr/bin/podman",
        from_source: false,
    },
];

impl Component {
    pub fn find(name: &str) -> Option<&'static Component> {
        COMPONENTS.iter().find(|c| c.name == name)
    }

    /// `Ok` when `name` is a component, else what the components are.
    pub fn check(name: &str) -> Result<&'static Component, String> {
        Component::find(name).ok_or_else(|| {
            let known: Vec<&str> = COMPONENTS.iter().map(|c| c.name).collect();
            format!("unknown component `{name}` (known: {})", known.join(", "))
        })
    }

    /// Its place in [`COMPONENTS`], the order of a derived name.
    pub fn order(&self) -> usize {
        COMPONENTS.iter().position(|c| c.name == self.name).expect("a component of the table")
    }
}

/// A derived stack's name: a base stack of the table (a Debian suite's, or a derived one of the
/// table) and its overrides, `BASE+COMPONENT=LABEL...`, e.g. `trixie+criu=sid`. The label says
/// where the component came from (`build` makes it from the source); what it was built from is in
/// every record's `components`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedName {
    pub base: Stack,
    pub overrides: Vec<(&'static Component, String)>,
}

impl DerivedName {
    pub fn parse(name: &str) -> Result<DerivedName, String> {
        let mut parts = name.split('+');
        let base_name = parts.next().unwrap_or_default();
        let base = Stack::find(base_name).ok_or_else(|| format!("`{base_name}` is not a stack"))?;
        if base.source == StackSource::Host {
            return Err("the host stack takes no overrides (it is this machine's own installation)".to_string());
        }
        let mut overrides: Vec<(&'static Component, String)> = Vec::new();
        for part in parts {
            let (component, label) =
                part.split_once('=').ok_or_else(|| format!("`{part}` is not COMPONENT=LABEL"))?;
            let component = Component::check(component)?;
            if !is_label(label) {
                return Err(format!("`{label}` is not a label (letters, digits, `.`, `_`, `~`, `-`)"));
            }
            if overrides.iter().any(|(c, _)| c.name == component.name) {
                return Err(format!("{} is overridden twice", component.name));
            }
            overrides.push((component, label.to_string()));
        }
        if overrides.is_empty() {
            return Err(format!("`{name}` names no override"));
        }
        Ok(DerivedName { base, overrides })
    }

    /// `BASE+COMPONENT=LABEL...`, the components in the table's order.
    pub fn name(&self) -> String {
        let mut overrides = self.overrides.clone();
        overrides.sort_by_key(|(c, _)| c.order());
        let mut name = self.base.name.to_string();
        for (component, label) in overrides {
            name.push_str(&format!("+{}={label}", component.name));
        }
        name
    }
}

/// Whether `text` may label an override in a stack name (and so in a cell name and a directory).
pub fn is_label(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
}

/// `text` made into a label: every other character becomes `-`.
pub fn to_label(text: &str) -> String {
    let mapped: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-') { c } else { '-' }).collect();
    let trimmed = mapped.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "x".to_string()
    } else {
        trimmed.to_string()
    }
}

/// A kernel of the kernel axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    pub name: &'static str,
    /// The Debian suite whose `linux-image-cloud-amd64` a VM boots; `None` for the running kernel.
    pub suite: Option<&'static str>,
}

pub const KERNELS: &[Kernel] = &[
    Kernel { name: "host", suite: None },
    Kernel { name: "bookworm", suite: Some("bookworm") },
    Kernel { name: "bookworm-backports", suite: Some("bookworm-backports") },
    Kernel { name: "trixie", suite: Some("trixie") },
    Kernel { name: "trixie-backports", suite: Some("trixie-backports") },
    Kernel { name: "sid", suite: Some("sid") },
    // Debian 11's 5.10: the Debian kernel nearest the 4.18 kernels of failure case 2.
    Kernel { name: "bullseye", suite: Some("bullseye") },
    // Debian experimental's kernel (release candidates): a kernel change that breaks CRIU shows
    // here before it ships (criu#3002 came that way with Linux 7.1).
    Kernel { name: "next", suite: Some("experimental") },
];

impl Kernel {
    pub fn find(name: &str) -> Option<Kernel> {
        KERNELS.iter().copied().find(|k| k.name == name)
    }

    /// The kernels a VM can boot (every one but the running kernel).
    pub fn bootable() -> impl Iterator<Item = Kernel> {
        KERNELS.iter().copied().filter(|k| k.suite.is_some())
    }
}

pub const CGROUPS: &[&str] = &["v1", "v2"];

/// PID 1 of a cell's kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Init {
    pub name: &'static str,
    /// Whether a matrix can choose it for a VM.
    pub chosen: bool,
}

pub const INITS: &[Init] = &[
    Init { name: "host", chosen: false },
    Init { name: "plain", chosen: true },
    Init { name: "systemd", chosen: true },
];

pub const ACCELS: &[&str] = &["native", "kvm", "tcg"];

/// The value of a cell on an axis it has no value on (a record written before the axis existed).
pub const UNKNOWN: &str = "-";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_axis_is_found_by_its_names_and_names_are_unique() {
        for axis in Axis::ALL {
            assert_eq!(Axis::from_name(axis.name()), Some(axis));
            assert_eq!(Axis::from_plural(axis.plural()), Some(axis));
        }
        let mut names: Vec<&str> = Axis::ALL.iter().map(|a| a.name()).collect();
        names.dedup();
        assert_eq!(names.len(), Axis::ALL.len());
    }

    #[test]
    fn values_are_unique_on_every_axis() {
        for axis in Axis::ALL {
            let Some(values) = axis.values() else { continue };
            let mut sorted = values.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), values.len(), "{axis}: {values:?}");
        }
    }

    #[test]
    fn a_value_outside_the_table_is_named_with_the_known_ones() {
        assert_eq!(Axis::Runtime.check("crun"), Ok(()));
        assert_eq!(Axis::Runtime.check("cruun"), Err("unknown runtime `cruun` (known: runc, crun)".to_string()));
        assert_eq!(Axis::Scenario.check("anything"), Ok(()));
        assert!(Axis::Init.check("host").is_ok());
        assert!(Axis::Init.check_choosable("host").is_err(), "a VM cannot boot with the host's init");
    }

    #[test]
    fn defaults_are_values_of_their_axis() {
        for axis in Axis::ALL {
            for value in axis.matrix_default().unwrap_or_default() {
                assert_eq!(axis.check_choosable(value), Ok(()), "{axis}");
            }
        }
    }

    #[test]
    fn every_derived_stack_of_the_table_is_made_of_a_stack_and_known_components() {
        for stack in STACKS {
            if let StackSource::Derived { base, with, .. } = stack.source {
                let base = Stack::find(base).expect("the base is a stack of the table");
                assert!(base.suite().is_some(), "{} is derived from the host", stack.name);
                assert!(!with.is_empty());
                for (component, source) in with {
                    assert!(Component::find(component).is_some(), "{component}");
                    assert!(["path:", "src:", "deb:"].iter().any(|k| source.starts_with(k)), "{source}");
                }
                assert!(!stack.name.contains('+'), "{} reads as a derived name", stack.name);
            }
        }
    }

    #[test]
    fn derived_names_are_checked_like_any_stack() {
        assert_eq!(Axis::Stack.check("trixie+criu=sid"), Ok(()));
        assert_eq!(Axis::Stack.check_choosable("bookworm+crun=trixie+criu=v4.2"), Ok(()));
        assert_eq!(Axis::Stack.check("bookworm-crun-criu+criu=sid"), Ok(()), "a derived stack of the table as base");
        let unknown_base = Axis::Stack.check("trixy+criu=sid").unwrap_err();
        assert!(unknown_base.contains("`trixy` is not a stack"), "{unknown_base}");
        let unknown_component = Axis::Stack.check("trixie+crui=sid").unwrap_err();
        assert!(unknown_component.contains("unknown component `crui`"), "{unknown_component}");
        assert!(Axis::Stack.check("host+criu=sid").unwrap_err().contains("host stack takes no overrides"));
        assert!(Axis::Stack.check("trixie+criu=sid+criu=v4.2").unwrap_err().contains("twice"));
        assert!(Axis::Stack.check("trixie+criu=a/b").unwrap_err().contains("not a label"));
        assert!(Axis::Stack.check("trixie+").is_err());
    }

    #[test]
    fn a_derived_name_lists_components_in_the_table_order_and_keeps_its_suite() {
        let d = DerivedName::parse("bookworm+crun=trixie+criu=v4.2").unwrap();
        assert_eq!(d.name(), "bookworm+criu=v4.2+crun=trixie");
        assert_eq!(Stack::suite_of("bookworm+criu=v4.2+crun=trixie"), Some("bookworm"));
        assert_eq!(Stack::suite_of("bookworm-crun-criu"), Some("bookworm"));
        assert_eq!(Stack::base_of("bookworm-crun-criu"), Some("bookworm"));
        assert_eq!(Stack::base_of("trixie+criu=sid"), Some("trixie"));
        assert_eq!(Stack::base_of("trixie"), None);
        assert_eq!(to_label("v4.2+fix/1"), "v4.2-fix-1");
        assert_eq!(to_label("../x"), "x");
        assert!(is_label(&to_label("~~")));
    }
}
