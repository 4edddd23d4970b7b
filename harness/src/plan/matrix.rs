//! Named matrices (`matrices/<name>.yaml`): which axis values a run covers.
//!
//! A matrix is one or more *parts*, each a product of axis values: the top level, then each
//! entry of `more:`. A part's keys are the axes of the axes table by their plural names
//! (`engines`, `runtimes`, `stacks`, `kernels`, `cgroups`, `inits`) plus `scenarios`; every key
//! and every value is checked against that table while the file is read, so an unknown key or
//! value is an error at its line, never a part that silently covers nothing.

use crate::axes::Axis;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::Path;

/// A matrix as written.
#[derive(Debug, Clone)]
pub struct MatrixFile {
    pub description: String,
    /// The top level first, then each `more:` entry, expanded in this order (a cell in several
    /// is run once).
    pub parts: Vec<Part>,
}

/// One product of axis values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub scenarios: ScenarioSelection,
    /// Every axis a matrix file lists ([`Axis::in_matrix_files`]), with its values (the axis's
    /// default where the part does not list it).
    pub axes: BTreeMap<Axis, Vec<String>>,
    /// Components replaced in every stack of the part (`with: [criu=deb:sid]`, `patches:`): its
    /// stacks become derived stacks (`plan::with`).
    pub with: Vec<super::with::Override>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScenarioSelection {
    All,
    Only(Vec<String>),
}

impl Part {
    /// The values of `axis` this part covers.
    pub fn values(&self, axis: Axis) -> &[String] {
        self.axes.get(&axis).map(Vec::as_slice).unwrap_or_default()
    }
}

/// The keys a part may have, for "unknown field" messages.
fn part_keys(top: bool) -> &'static [&'static str] {
    static TOP: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    static MORE: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let make = |top: bool| {
        let mut keys = vec!["scenarios", "with", "patches"];
        keys.extend(Axis::ALL.iter().filter(|a| a.in_matrix_files()).map(|a| a.plural()));
        if top {
            keys.extend(["description", "more"]);
        }
        keys
    };
    if top {
        TOP.get_or_init(|| make(true))
    } else {
        MORE.get_or_init(|| make(false))
    }
}

/// Reads a part's keys; `top` allows `description:` and `more:`.
struct PartVisitor {
    top: bool,
}

/// What the top level of a file is read into.
struct Read {
    description: String,
    part: RawPart,
    more: Vec<RawPart>,
}

/// A part as read: its values keep where they were written, to be checked against the axes
/// table with their line and column (an error raised while reading would have neither).
struct RawPart {
    scenarios: ScenarioSelection,
    axes: BTreeMap<Axis, Vec<Spanned<String>>>,
    with: Vec<Spanned<String>>,
    patches: Vec<Spanned<String>>,
}

impl RawPart {
    /// The part, every value checked against the axes table, defaults filled in.
    fn check(self, path: &Path) -> anyhow::Result<Part> {
        let mut axes = BTreeMap::new();
        for axis in Axis::ALL.into_iter().filter(|a| a.in_matrix_files()) {
            let values = match self.axes.get(&axis) {
                Some(values) => {
                    for value in values {
                        if let Err(message) = axis.check_choosable(&value.value) {
                            let (line, col) = (value.referenced.line(), value.referenced.column());
                            anyhow::bail!("{}:{line}:{col}: {message}", path.display());
                        }
                    }
                    values.iter().map(|v| v.value.clone()).collect()
                }
                None => axis.matrix_default().expect("required axes are read").iter().map(|v| v.to_string()).collect(),
            };
            axes.insert(axis, values);
        }
        // Paths in `with:` and `patches:` are relative to the project (the matrices' parent).
        let project = path.parent().and_then(Path::parent).unwrap_or(Path::new("."));
        let at = |value: &Spanned<String>, message: String| {
            let (line, col) = (value.referenced.line(), value.referenced.column());
            anyhow::anyhow!("{}:{line}:{col}: {message}", path.display())
        };
        for value in &self.with {
            super::with::Override::parse(&value.value, project).map_err(|m| at(value, m))?;
        }
        let texts = |values: &[Spanned<String>]| values.iter().map(|v| v.value.clone()).collect::<Vec<_>>();
        let with = super::with::overrides(&texts(&self.with), &texts(&self.patches), project).map_err(|m| {
            let first = self.patches.first().or(self.with.first()).expect("an error needs a value");
            at(first, m)
        })?;
        Ok(Part { scenarios: self.scenarios, axes, with })
    }
}

impl<'de> Visitor<'de> for PartVisitor {
    type Value = Read;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a matrix: axis values such as `engines: [podman]`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        let mut read = Read {
            description: String::new(),
            part: RawPart { scenarios: ScenarioSelection::All, axes: BTreeMap::new(), with: Vec::new(), patches: Vec::new() },
            more: Vec::new(),
        };
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format!("duplicate field `{key}`")));
            }
            seen.push(key.clone());
            match key.as_str() {
                "description" if self.top => read.description = map.next_value()?,
                "more" if self.top => read.more = map.next_value::<Vec<MorePart>>()?.into_iter().map(|p| p.0).collect(),
                "scenarios" => read.part.scenarios = ScenarioSelection::Only(map.next_value()?),
                "with" => read.part.with = map.next_value()?,
                "patches" => read.part.patches = map.next_value()?,
                other => {
                    let axis = Axis::from_plural(other)
                        .filter(|a| a.in_matrix_files())
                        .ok_or_else(|| de::Error::unknown_field(other, part_keys(self.top)))?;
                    read.part.axes.insert(axis, map.next_value()?);
                }
            }
        }
        let required = Axis::ALL.into_iter().filter(|a| a.in_matrix_files() && a.matrix_default().is_none());
        if let Some(missing) = required.into_iter().find(|a| !read.part.axes.contains_key(a)) {
            return Err(de::Error::missing_field(missing.plural()));
        }
        Ok(read)
    }
}

/// One entry of `more:`: the same axes, without a description or further parts.
struct MorePart(RawPart);

impl<'de> Deserialize<'de> for MorePart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MorePart, D::Error> {
        deserializer.deserialize_map(PartVisitor { top: false }).map(|read| MorePart(read.part))
    }
}

impl<'de> Deserialize<'de> for Read {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Read, D::Error> {
        deserializer.deserialize_map(PartVisitor { top: true })
    }
}

/// Loads `matrices/<name>.yaml`; errors are `file:line:col: message`.
pub fn load_matrix(matrices: &Path, name: &str) -> anyhow::Result<MatrixFile> {
    let path = matrices.join(format!("{name}.yaml"));
    // A name is a file name in `matrices/`, never a path out of it.
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let text = (if plain { super::bounds::read_matrix(&path) } else { Err("not a plain name".to_string()) })
        .map_err(|e| {
            let known = known_matrices(matrices).join(", ");
            anyhow::anyhow!("failed to read matrix `{name}` ({}): {e}; known matrices: {known}", path.display())
        })?;
    parse_matrix(&path, &text)
}

/// Parses a matrix file's text; `path` names it in errors.
pub fn parse_matrix(path: &Path, text: &str) -> anyhow::Result<MatrixFile> {
    super::bounds::check_matrix_size(text.len() as u64).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let read: Read = serde_saphyr::from_str(text).map_err(|e| {
        let (line, col) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        let message = e.to_string().lines().next().unwrap_or_default().to_string();
        let position = regex::Regex::new(r"^(error: )?line \d+ column \d+: ").expect("static regex");
        anyhow::anyhow!("{}:{line}:{col}: {}", path.display(), position.replace(&message, ""))
    })?;
    if read.more.len() >= super::bounds::MAX_PARTS {
        let most = super::bounds::MAX_PARTS - 1;
        anyhow::bail!("{}: `more:` has {} entries, over the limit of {most}", path.display(), read.more.len());
    }
    let mut parts = vec![read.part.check(path)?];
    for more in read.more {
        parts.push(more.check(path)?);
    }
    Ok(MatrixFile { description: read.description, parts })
}

/// The names of the matrices in `matrices/`, sorted.
pub fn known_matrices(matrices: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(matrices)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(String::from))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const GOOD: &str = "\
description: two parts
engines: [podman]
runtimes: [runc, crun]
stacks: [trixie]
kernels: [host, bookworm]
more:
  - scenarios: [a]
    engines: [docker]
    runtimes: [runc]
    stacks: [sid]
";

    #[test]
    fn parts_take_the_axes_and_their_defaults() {
        let m = parse_matrix(Path::new("m.yaml"), GOOD).unwrap();
        assert_eq!(m.parts.len(), 2);
        assert_eq!(m.parts[0].values(Axis::Kernel), ["host", "bookworm"]);
        assert_eq!(m.parts[0].values(Axis::Cgroup), ["v2"]);
        assert_eq!(m.parts[1].scenarios, ScenarioSelection::Only(vec!["a".into()]));
        assert_eq!(m.parts[1].values(Axis::Kernel), ["host"]);
        assert_eq!(m.parts[0].scenarios, ScenarioSelection::All);
    }

    #[test]
    fn a_part_may_replace_components_of_its_stacks() {
        let text = GOOD.replace("stacks: [trixie]", "stacks: [trixie]\nwith: [criu=deb:sid, crun=src:crun@1.21]");
        let m = parse_matrix(Path::new("/project/matrices/m.yaml"), &text).unwrap();
        let with: Vec<String> = m.parts[0].with.iter().map(|o| format!("{}={}", o.component.name, o.source.spec())).collect();
        assert_eq!(with, ["criu=deb:sid", "crun=src:/project/crun@1.21"]);
        assert!(m.parts[1].with.is_empty());
    }

    /// Every mistake is an error at its line, naming what was expected.
    #[rstest]
    #[case::unknown_key(GOOD.replace("runtimes: [runc, crun]", "runtimez: [runc]"), 3, "runtimez")]
    #[case::unknown_value(GOOD.replace("[runc, crun]", "[runc, cruun]"), 3, "unknown runtime `cruun`")]
    #[case::unknown_stack(GOOD.replace("stacks: [trixie]", "stacks: [trixy]"), 4, "unknown stack `trixy`")]
    #[case::host_init(GOOD.replace("kernels: [host, bookworm]", "inits: [host]"), 5, "unknown init `host`")]
    #[case::missing_engines(GOOD.replace("engines: [podman]\n", ""), 0, "engines")]
    #[case::description_in_more(GOOD.replace("  - scenarios: [a]", "  - description: x"), 7, "description")]
    #[case::duplicate(GOOD.replace("stacks: [trixie]", "stacks: [trixie]\nstacks: [sid]"), 5, "duplicate")]
    #[case::unknown_component(GOOD.replace("stacks: [trixie]", "stacks: [trixie]\nwith: [crui=deb:sid]"), 5, "unknown component `crui`")]
    #[case::bad_source(GOOD.replace("stacks: [trixie]", "stacks: [trixie]\nwith: [criu=sid]"), 5, "not a source")]
    #[case::stray_patch(GOOD.replace("stacks: [trixie]", "stacks: [trixie]\npatches: [x.patch]"), 5, "no source to apply")]
    #[case::derived_stack(GOOD.replace("stacks: [trixie]", "stacks: [trixie+crui=sid]"), 4, "unknown component `crui`")]
    fn malformed_matrices_are_located(#[case] text: String, #[case] line: u64, #[case] needle: &str) {
        let err = parse_matrix(Path::new("matrices/m.yaml"), &text).expect_err("must be rejected").to_string();
        assert!(err.contains(needle), "{err}");
        if line > 0 {
            assert!(err.starts_with(&format!("matrices/m.yaml:{line}:")), "{err}");
        }
    }
}
