//! Component overrides: `--with COMPONENT=SOURCE` and `--patch FILE` (or a matrix part's
//! `with:` and `patches:`), and the derived stack they make of a cell's stack.
//!
//! A derived stack is named from its base and its overrides (`trixie+criu=sid`); the name is a
//! value of the stack axis like any other (`axes::DerivedName`). What a name stands for is its
//! [`Derivation`]: the sources, absolute paths and patches, carried by each cell to the stage that
//! builds it (`build`).

use crate::axes::{self, Component, Stack, StackSource};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where a component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A built binary (put where the component's program is) or an installed tree (copied over
    /// the stack's root as it is).
    Path(PathBuf),
    /// A source tree built in a throwaway build rootfs of the stack's suite; with `rev`, the git
    /// revision of a checkout (`git archive`), else the tree as it is.
    Src { dir: PathBuf, rev: Option<String> },
    /// Debian's source package of the component in `suite`, built for the stack's suite.
    Deb { suite: String },
}

impl Source {
    /// `path:FILE|DIR`, `src:DIR[@REV]` or `deb:SUITE`; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Source, String> {
        let absolute = |p: &str| -> Result<PathBuf, String> {
            if p.is_empty() {
                return Err(format!("`{text}` names no path"));
            }
            Ok(if Path::new(p).is_absolute() { PathBuf::from(p) } else { base.join(p) })
        };
        if let Some(path) = text.strip_prefix("path:") {
            return Ok(Source::Path(absolute(path)?));
        }
        if let Some(rest) = text.strip_prefix("src:") {
            // A revision follows the last `@` after the last `/` (a directory may contain `@`).
            let (dir, rev) = match rest.rfind('@').filter(|at| !rest[*at..].contains('/')) {
                Some(at) => (&rest[..at], Some(rest[at + 1..].to_string())),
                None => (rest, None),
            };
            if rev.as_deref() == Some("") {
                return Err(format!("`{text}`: nothing after `@` (a git revision)"));
            }
            return Ok(Source::Src { dir: absolute(dir)?, rev });
        }
        if let Some(suite) = text.strip_prefix("deb:") {
            if suite.is_empty() || !suite.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("`{text}`: `deb:` takes a Debian suite, e.g. `deb:sid`"));
            }
            return Ok(Source::Deb { suite: suite.to_string() });
        }
        Err(format!("`{text}` is not a source: `path:FILE|DIR`, `src:DIR[@REV]` or `deb:SUITE`"))
    }

    /// As it would be written, with absolute paths: `deb:sid`, `src:/x/criu@v4.2`, `path:/x/criu`.
    pub fn spec(&self) -> String {
        match self {
            Source::Path(p) => format!("path:{}", p.display()),
            Source::Src { dir, rev: Some(rev) } => format!("src:{}@{rev}", dir.display()),
            Source::Src { dir, rev: None } => format!("src:{}", dir.display()),
            Source::Deb { suite } => format!("deb:{suite}"),
        }
    }

    /// The part of a derived stack's name that says where the component came from: the suite,
    /// the revision (or the source directory's name), `path-` and the file's name.
    pub fn label(&self) -> String {
        let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match self {
            Source::Deb { suite } => axes::to_label(suite),
            Source::Src { rev: Some(rev), .. } => axes::to_label(rev),
            Source::Src { dir, rev: None } => axes::to_label(&name_of(dir)),
            Source::Path(p) => format!("path-{}", axes::to_label(&name_of(p))),
        }
    }

    /// Whether the harness builds it (so patches can apply).
    pub fn is_built(&self) -> bool {
        !matches!(self, Source::Path(_))
    }
}

/// One component replaced: `criu=deb:sid`, with the patches applied on top of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub component: &'static Component,
    pub source: Source,
    pub patches: Vec<PathBuf>,
}

impl Override {
    /// `COMPONENT=SOURCE`, relative paths taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Override, String> {
        let (component, source) = text.split_once('=').ok_or_else(|| {
            format!("`{text}` is not COMPONENT=SOURCE (e.g. `criu=deb:sid`, `criu=src:DIR@REV`, `crun=path:FILE`)")
        })?;
        let component = Component::check(component)?;
        let source = Source::parse(source, base)?;
        if matches!(source, Source::Src { .. }) && !component.from_source {
            return Err(format!(
                "{} cannot be built from a source tree here; give it as `deb:SUITE` or `path:FILE`",
                component.name
            ));
        }
        Ok(Override { component, source, patches: Vec::new() })
    }

    /// The label in the derived stack's name: the source's, and `~p` with the patches' hash.
    pub fn label(&self) -> Result<String, String> {
        let mut label = self.source.label();
        if !self.patches.is_empty() {
            label.push_str(&format!("~p{}", &patches_hash(&self.patches)?[..8]));
        }
        Ok(label)
    }
}

/// The SHA-256 of the patches' contents, in order.
pub fn patches_hash(patches: &[PathBuf]) -> Result<String, String> {
    let mut hash = Sha256::new();
    for patch in patches {
        let text = std::fs::read(patch).map_err(|e| format!("failed to read the patch {}: {e}", patch.display()))?;
        hash.update(format!("{}\n", text.len()));
        hash.update(text);
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// Overrides as given (`--with` and `--patch`, or a part's `with:` and `patches:`): each patch
/// goes to the one override the harness builds, or to the component it names (`criu=FILE`).
pub fn overrides(with: &[String], patches: &[String], base: &Path) -> Result<Vec<Override>, String> {
    let mut out: Vec<Override> = Vec::new();
    for text in with {
        let o = Override::parse(text, base)?;
        // A later override of a component replaces an earlier one.
        out.retain(|e| e.component.name != o.component.name);
        out.push(o);
    }
    for text in patches {
        let (named, file) = match text.split_once('=') {
            Some((c, f)) if Component::find(c).is_some() => (Some(c), f),
            _ => (None, text.as_str()),
        };
        let file = if Path::new(file).is_absolute() { PathBuf::from(file) } else { base.join(file) };
        let built: Vec<usize> = (0..out.len()).filter(|i| out[*i].source.is_built()).collect();
        let target = match named {
            Some(c) => out.iter().position(|o| o.component.name == c).ok_or_else(|| {
                format!("the patch {} is for {c}, which no --with overrides", file.display())
            })?,
            None => match built[..] {
                [one] => one,
                [] => return Err(format!("the patch {} has no source to apply to (give --with COMPONENT=src:DIR or deb:SUITE)", file.display())),
                _ => return Err(format!("the patch {} could go to several overrides: write COMPONENT=FILE", file.display())),
            },
        };
        if !out[target].source.is_built() {
            return Err(format!("the patch {} cannot apply to a `path:` binary", file.display()));
        }
        out[target].patches.push(file);
    }
    Ok(out)
}

/// A derived stack: the Debian stack it is made from and every override, in the table's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivation {
    /// The stack's name: a derived stack of the table's, or `BASE+COMPONENT=LABEL...`.
    pub name: String,
    /// The stack whose packages the derived one starts from (a Debian suite's stack).
    pub base: &'static str,
    pub overrides: Vec<Override>,
}

/// Why a stack cannot take overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotDerived {
    /// The host's own installation is never changed.
    Host,
    Other(String),
}

impl std::fmt::Display for NotDerived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotDerived::Host => f.write_str("the host stack takes no overrides (it is this machine's own installation)"),
            NotDerived::Other(why) => f.write_str(why),
        }
    }
}

impl Derivation {
    /// The stack `stack` with `overrides` on top; `None` when it is a stack of its suite as it is.
    /// A derived stack of the table brings its own overrides first.
    pub fn of(stack: &str, overrides: &[Override]) -> Result<Option<Derivation>, NotDerived> {
        let table = Stack::find(stack).ok_or_else(|| {
            if stack.contains('+') {
                NotDerived::Other(format!(
                    "the stack `{stack}` is a derived name: give its overrides (`--with`, or `with:` in a matrix) on its base instead"
                ))
            } else {
                NotDerived::Other(format!("unknown stack `{stack}`"))
            }
        })?;
        let (base, mut all) = match table.source {
            StackSource::Host if overrides.is_empty() => return Ok(None),
            StackSource::Host => return Err(NotDerived::Host),
            StackSource::Debian { .. } if overrides.is_empty() => return Ok(None),
            StackSource::Debian { .. } => (table.name, Vec::new()),
            StackSource::Derived { base, with, .. } => {
                let own = with
                    .iter()
                    .map(|(c, s)| Override::parse(&format!("{c}={s}"), Path::new("/")))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| NotDerived::Other(format!("the table's stack {stack}: {e}")))?;
                (base, own)
            }
        };
        let mut labels = Vec::new();
        for o in overrides {
            all.retain(|e| e.component.name != o.component.name);
            all.push(o.clone());
            labels.push((o.component, o.label().map_err(NotDerived::Other)?));
        }
        all.sort_by_key(|o| o.component.order());
        let name = if overrides.is_empty() {
            table.name.to_string()
        } else {
            axes::DerivedName { base: table, overrides: labels }.name()
        };
        Ok(Some(Derivation { name, base, overrides: all }))
    }

    /// The derivation a stack name stands for without overrides of its own: a derived stack of
    /// the table, or `None`.
    pub fn of_table(stack: &str) -> Option<Derivation> {
        Derivation::of(stack, &[]).ok().flatten()
    }

    /// The Debian suite of the stack's userland.
    pub fn suite(&self) -> &'static str {
        Stack::suite_of(self.base).expect("the base is a Debian stack")
    }

    /// Every override as written, e.g. `criu=deb:sid (patches: /x/fix.patch)`.
    pub fn describe(&self) -> String {
        self.overrides
            .iter()
            .map(|o| {
                let mut s = format!("{}={}", o.component.name, o.source.spec());
                if !o.patches.is_empty() {
                    let files: Vec<String> = o.patches.iter().map(|p| p.display().to_string()).collect();
                    s.push_str(&format!(" (patches: {})", files.join(", ")));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("deb:sid", Source::Deb { suite: "sid".into() }, "sid")]
    #[case("src:/x/criu@v4.2", Source::Src { dir: "/x/criu".into(), rev: Some("v4.2".into()) }, "v4.2")]
    #[case("src:criu", Source::Src { dir: "/base/criu".into(), rev: None }, "criu")]
    #[case("src:/x/a@b/criu", Source::Src { dir: "/x/a@b/criu".into(), rev: None }, "criu")]
    #[case("path:/opt/criu/criu", Source::Path("/opt/criu/criu".into()), "path-criu")]
    fn sources_parse_with_their_labels(#[case] text: &str, #[case] source: Source, #[case] label: &str) {
        let parsed = Source::parse(text, Path::new("/base")).unwrap();
        assert_eq!(parsed, source);
        assert_eq!(parsed.label(), label);
        assert!(axes::is_label(label));
    }

    #[rstest]
    #[case("criu", "not COMPONENT=SOURCE")]
    #[case("crui=deb:sid", "unknown component `crui`")]
    #[case("criu=git:/x", "not a source")]
    #[case("criu=deb:", "takes a Debian suite")]
    #[case("criu=src:/x@", "nothing after `@`")]
    #[case("podman=src:/x", "cannot be built from a source tree")]
    fn bad_overrides_say_why(#[case] text: &str, #[case] needle: &str) {
        let err = Override::parse(text, Path::new("/")).unwrap_err();
        assert!(err.contains(needle), "{err}");
    }

    #[test]
    fn a_derived_stack_is_named_from_its_base_and_overrides() {
        let with = overrides(&["criu=deb:sid".into()], &[], Path::new("/")).unwrap();
        let d = Derivation::of("trixie", &with).unwrap().unwrap();
        assert_eq!(d.name, "trixie+criu=sid");
        assert_eq!((d.base, d.suite()), ("trixie", "trixie"));
        assert_eq!(Derivation::of("trixie", &[]).unwrap(), None);
        assert_eq!(Derivation::of("host", &with).unwrap_err(), NotDerived::Host);
        assert_eq!(Derivation::of("host", &[]).unwrap(), None);
        assert!(matches!(Derivation::of("trixie+criu=sid", &with), Err(NotDerived::Other(_))));
    }

    #[test]
    fn a_derived_stack_of_the_table_is_one_instance_of_the_mechanism() {
        let d = Derivation::of_table("bookworm-crun-criu").expect("a derived stack of the table");
        assert_eq!((d.name.as_str(), d.base), ("bookworm-crun-criu", "bookworm"));
        assert_eq!(d.describe(), "crun=deb:bookworm");
        // Overrides on top of it keep its own and take its name as their base.
        let with = overrides(&["criu=deb:trixie".into()], &[], Path::new("/")).unwrap();
        let more = Derivation::of("bookworm-crun-criu", &with).unwrap().unwrap();
        assert_eq!(more.name, "bookworm-crun-criu+criu=trixie");
        assert_eq!(more.describe(), "criu=deb:trixie, crun=deb:bookworm");
        assert_eq!(more.suite(), "bookworm");
        assert!(crate::axes::Axis::Stack.check(&more.name).is_ok());
    }

    #[test]
    fn patches_go_to_the_built_override_and_into_the_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fix.patch"), "--- a/x\n+++ b/x\n").unwrap();
        let with = ["criu=src:/x/criu@v4.1".to_string(), "crun=path:/x/crun".to_string()];
        let o = overrides(&with, &["fix.patch".into()], dir.path()).unwrap();
        assert_eq!(o[0].patches, [dir.path().join("fix.patch")]);
        assert!(o[1].patches.is_empty());
        let d = Derivation::of("trixie", &o).unwrap().unwrap();
        let hash = &patches_hash(&o[0].patches).unwrap()[..8];
        assert_eq!(d.name, format!("trixie+criu=v4.1~p{hash}+crun=path-crun"));
        assert!(crate::axes::Axis::Stack.check(&d.name).is_ok(), "{}", d.name);
        // Named for a component, or ambiguous, or for nothing that builds.
        assert!(overrides(&with, &["crun=fix.patch".into()], dir.path()).unwrap_err().contains("`path:` binary"));
        let two = ["criu=deb:sid".to_string(), "crun=deb:trixie".to_string()];
        assert!(overrides(&two, &["fix.patch".into()], dir.path()).unwrap_err().contains("several"));
        assert!(overrides(&two, &["crun=fix.patch".into()], dir.path()).is_ok());
        assert!(overrides(&[], &["fix.patch".into()], dir.path()).unwrap_err().contains("no source"));
        assert!(overrides(&with, &["missing.patch".into()], dir.path()).is_ok(), "read when named");
        let missing = overrides(&with[..1], &["missing.patch".into()], dir.path()).unwrap();
        assert!(Derivation::of("trixie", &missing).unwrap_err().to_string().contains("failed to read the patch"));
    }

    #[test]
    fn a_later_override_of_a_component_replaces_an_earlier_one() {
        let o = overrides(&["criu=deb:sid".into(), "criu=deb:trixie".into()], &[], Path::new("/")).unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].source, Source::Deb { suite: "trixie".into() });
    }
}
