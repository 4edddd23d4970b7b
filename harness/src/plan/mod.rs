//! The plan: scenarios x engine x runtime x stack x kernel, expanded into cells and filtered.

mod matrix;
mod require;

pub use matrix::{load_matrix, MatrixFile, ScenarioSelection};
pub use require::Required;

use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The axes every cell has a value on, in the order they appear in a cell's name.
pub const AXES: [&str; 5] = ["scenario", "engine", "runtime", "stack", "kernel"];

/// One point of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    pub scenario: Arc<Scenario>,
    pub key: CellKey,
}

/// The coordinates of a cell, which is all a record needs to be compared across runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CellKey {
    pub scenario: String,
    pub engine: String,
    pub runtime: String,
    pub stack: String,
    pub kernel: String,
}

impl CellKey {
    /// `scenario::engine::runtime::stack::kernel`: the test name under `cargo test`.
    pub fn name(&self) -> String {
        format!("{}::{}::{}::{}::{}", self.scenario, self.engine, self.runtime, self.stack, self.kernel)
    }

    pub fn axis(&self, axis: &str) -> Option<&str> {
        Some(match axis {
            "scenario" => &self.scenario,
            "engine" => &self.engine,
            "runtime" => &self.runtime,
            "stack" => &self.stack,
            "kernel" => &self.kernel,
            _ => return None,
        })
    }
}

impl Cell {
    pub fn name(&self) -> String {
        self.key.name()
    }
}

/// Restricts a plan. Empty lists mean "any value"; the name filter is a substring of the cell name.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub scenarios: Vec<String>,
    pub engines: Vec<String>,
    pub runtimes: Vec<String>,
    pub stacks: Vec<String>,
    pub kernels: Vec<String>,
    pub name: Option<String>,
}

impl Filter {
    pub fn accepts(&self, key: &CellKey) -> bool {
        let on = |wanted: &Vec<String>, value: &str| wanted.is_empty() || wanted.iter().any(|w| w == value);
        on(&self.scenarios, &key.scenario)
            && on(&self.engines, &key.engine)
            && on(&self.runtimes, &key.runtime)
            && on(&self.stacks, &key.stack)
            && on(&self.kernels, &key.kernel)
            && self.name.as_ref().is_none_or(|n| key.name().contains(n.as_str()))
    }
}

/// Expands a matrix over the loaded scenarios. Cells come grouped by stack, so each stack is
/// entered once, and in a stable order, so shards and reruns see the same list.
pub fn expand(matrix: &MatrixFile, scenarios: &[Scenario], filter: &Filter) -> anyhow::Result<Vec<Cell>> {
    let chosen: Vec<Arc<Scenario>> = match &matrix.scenarios {
        ScenarioSelection::All => scenarios.iter().cloned().map(Arc::new).collect(),
        ScenarioSelection::Only(ids) => ids
            .iter()
            .map(|id| {
                scenarios.iter().find(|s| &s.id == id).cloned().map(Arc::new).ok_or_else(|| {
                    anyhow::anyhow!("the matrix names scenario `{id}`, which no file in scenarios/ defines")
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let mut cells = Vec::new();
    for stack in &matrix.stacks {
        for kernel in &matrix.kernels {
            for scenario in &chosen {
                for engine in &matrix.engines {
                    for runtime in &matrix.runtimes {
                        let key = CellKey {
                            scenario: scenario.id.clone(),
                            engine: engine.clone(),
                            runtime: runtime.clone(),
                            stack: stack.clone(),
                            kernel: kernel.clone(),
                        };
                        if filter.accepts(&key) {
                            cells.push(Cell { scenario: scenario.clone(), key });
                        }
                    }
                }
            }
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn scenario(id: &str) -> Scenario {
        let images = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(images.path().join("img")).unwrap();
        std::fs::write(images.path().join("img/Containerfile"), "FROM x\n").unwrap();
        let text = format!("id: {id}\nsummary: s\nimage: img\nrun: {{}}\nready: {{ file: /f }}\n");
        crate::scenario::parse_scenario(std::path::Path::new("t.yaml"), &text, images.path()).unwrap()
    }

    fn matrix() -> MatrixFile {
        MatrixFile {
            description: String::new(),
            scenarios: ScenarioSelection::All,
            engines: vec!["podman".into()],
            runtimes: vec!["runc".into(), "crun".into()],
            stacks: vec!["trixie".into(), "sid".into()],
            kernels: vec!["host".into()],
        }
    }

    #[test]
    fn expands_the_product_grouped_by_stack() {
        let cells = expand(&matrix(), &[scenario("a"), scenario("b")], &Filter::default()).unwrap();
        let names: Vec<String> = cells.iter().map(Cell::name).collect();
        assert_eq!(names.len(), 8);
        assert_eq!(names[0], "a::podman::runc::trixie::host");
        assert_eq!(names[3], "b::podman::crun::trixie::host");
        assert!(names[4..].iter().all(|n| n.contains("::sid::")));
    }

    #[rstest]
    #[case(Filter { runtimes: vec!["crun".into()], ..Filter::default() }, 4)]
    #[case(Filter { stacks: vec!["sid".into()], scenarios: vec!["a".into()], ..Filter::default() }, 2)]
    #[case(Filter { name: Some("::crun::trixie".into()), ..Filter::default() }, 2)]
    #[case(Filter { engines: vec!["docker".into()], ..Filter::default() }, 0)]
    fn filters_on_any_axis(#[case] filter: Filter, #[case] expected: usize) {
        let cells = expand(&matrix(), &[scenario("a"), scenario("b")], &filter).unwrap();
        assert_eq!(cells.len(), expected);
    }

    #[test]
    fn a_matrix_naming_an_unknown_scenario_is_an_error() {
        let mut m = matrix();
        m.scenarios = ScenarioSelection::Only(vec!["nope".into()]);
        let err = expand(&m, &[scenario("a")], &Filter::default()).unwrap_err();
        assert!(err.to_string().contains("`nope`"), "{err}");
    }
}
