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
    },
    /// A Debian suite's stack with a component rebuilt by the harness (`stack::variant`).
    Rebuilt {
        suite: &'static str,
        /// What is rebuilt, for people reading a reproducer.
        rebuilt: &'static str,
    },
}

pub const STACKS: &[Stack] = &[
    Stack { name: "host", source: StackSource::Host },
    // bookworm has no libcriu2 package (its crun 1.8.1 is built without CRIU anyway).
    Stack { name: "bookworm", source: StackSource::Debian { suite: "bookworm", extra_packages: &[] } },
    // trixie's and sid's crun dlopen libcriu.so.2 without depending on it.
    // From trixie on, Debian ships docker's CLI in its own package.
    Stack {
        name: "trixie",
        source: StackSource::Debian { suite: "trixie", extra_packages: &["libcriu2", "docker-cli"] },
    },
    Stack { name: "sid", source: StackSource::Debian { suite: "sid", extra_packages: &["libcriu2", "docker-cli"] } },
    Stack {
        name: "bookworm-crun-criu",
        source: StackSource::Rebuilt {
            suite: "bookworm",
            rebuilt: "crun rebuilt from bookworm's source package with trixie's libcriu (libcriu2, libcriu-dev)",
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
            StackSource::Debian { suite, .. } | StackSource::Rebuilt { suite, .. } => Some(suite),
        }
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
    fn every_rebuilt_stack_is_made_of_a_suite_another_stack_has() {
        for stack in STACKS {
            if let StackSource::Rebuilt { suite, .. } = stack.source {
                assert!(STACKS
                    .iter()
                    .any(|s| matches!(s.source, StackSource::Debian { suite: s2, .. } if s2 == suite)));
            }
        }
    }
}
