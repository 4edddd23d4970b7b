//! Named matrices (`matrices/<name>.yaml`): which axis values a run covers.

use serde::Deserialize;
use std::path::Path;

/// A matrix as written. `scenarios` absent means every scenario in `scenarios/`. `more` adds
/// further products of its own axes (e.g. a second engine for a few scenarios only).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, from = "RawMatrix")]
pub struct MatrixFile {
    pub description: String,
    pub scenarios: ScenarioSelection,
    pub engines: Vec<String>,
    pub runtimes: Vec<String>,
    pub stacks: Vec<String>,
    pub kernels: Vec<String>,
    /// cgroup layouts a VM kernel boots with (`v1`, `v2`); the host kernel has its own.
    pub cgroups: Vec<String>,
    /// PID 1 of a VM (`plain`, `systemd`); the host kernel has its own.
    pub inits: Vec<String>,
    /// Further products, expanded after this one (a cell in several is run once).
    pub more: Vec<MatrixFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScenarioSelection {
    All,
    Only(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    #[serde(default)]
    description: String,
    scenarios: Option<Vec<String>>,
    engines: Vec<String>,
    runtimes: Vec<String>,
    stacks: Vec<String>,
    #[serde(default = "host_kernel")]
    kernels: Vec<String>,
    #[serde(default = "v2")]
    cgroups: Vec<String>,
    #[serde(default = "plain")]
    inits: Vec<String>,
    #[serde(default)]
    more: Vec<RawPart>,
}

/// One entry of `more:`: the same axes, without a description or further parts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPart {
    scenarios: Option<Vec<String>>,
    engines: Vec<String>,
    runtimes: Vec<String>,
    stacks: Vec<String>,
    #[serde(default = "host_kernel")]
    kernels: Vec<String>,
    #[serde(default = "v2")]
    cgroups: Vec<String>,
    #[serde(default = "plain")]
    inits: Vec<String>,
}

fn host_kernel() -> Vec<String> {
    vec!["host".to_string()]
}
fn v2() -> Vec<String> {
    vec!["v2".to_string()]
}
fn plain() -> Vec<String> {
    vec!["plain".to_string()]
}

impl From<RawPart> for MatrixFile {
    fn from(part: RawPart) -> MatrixFile {
        MatrixFile {
            description: String::new(),
            scenarios: part.scenarios.map_or(ScenarioSelection::All, ScenarioSelection::Only),
            engines: part.engines,
            runtimes: part.runtimes,
            stacks: part.stacks,
            kernels: part.kernels,
            cgroups: part.cgroups,
            inits: part.inits,
            more: Vec::new(),
        }
    }
}

impl From<RawMatrix> for MatrixFile {
    fn from(raw: RawMatrix) -> MatrixFile {
        // The top level is a part with a description and further parts (spelled out in
        // `RawMatrix` because `flatten` would defeat `deny_unknown_fields`).
        let top = RawPart {
            scenarios: raw.scenarios,
            engines: raw.engines,
            runtimes: raw.runtimes,
            stacks: raw.stacks,
            kernels: raw.kernels,
            cgroups: raw.cgroups,
            inits: raw.inits,
        };
        MatrixFile {
            description: raw.description,
            more: raw.more.into_iter().map(MatrixFile::from).collect(),
            ..MatrixFile::from(top)
        }
    }
}

/// Loads `matrices/<name>.yaml` from the project directory.
pub fn load_matrix(project: &Path, name: &str) -> anyhow::Result<MatrixFile> {
    let path = project.join("matrices").join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        let known = known_matrices(project).join(", ");
        anyhow::anyhow!("failed to read matrix `{name}` ({}): {e}; known matrices: {known}", path.display())
    })?;
    serde_saphyr::from_str(&text).map_err(|e| {
        let (line, col) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        let message = e.to_string().lines().next().unwrap_or_default().to_string();
        anyhow::anyhow!("{}:{line}:{col}: {message}", path.display())
    })
}

fn known_matrices(project: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(project.join("matrices"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(String::from))
        .collect();
    names.sort();
    names
}
