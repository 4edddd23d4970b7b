//! The plan: scenarios x engine x runtime x stack x kernel (x cgroup x init under a VM kernel),
//! expanded into cells and filtered.

mod matrix;
mod require;
pub mod shard;
pub mod target;

pub use matrix::{load_matrix, MatrixFile, ScenarioSelection};
pub use require::Required;
pub use shard::Shard;

use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The axes every cell has a value on, in the order they appear in a cell's name.
pub const AXES: [&str; 8] = ["scenario", "engine", "runtime", "stack", "kernel", "cgroup", "init", "accel"];

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
    /// `host` (the running kernel) or the Debian suite whose kernel a VM boots (`bookworm`, ...).
    pub kernel: String,
    /// `v1` or `v2`: chosen for a VM, the host's own layout (as the stack sees it) otherwise.
    #[serde(default = "unknown")]
    pub cgroup: String,
    /// PID 1: `plain` (the harness's init script) or `systemd` in a VM; `host` on the host kernel.
    #[serde(default = "unknown")]
    pub init: String,
    /// How the kernel runs: `native` (the host kernel), `kvm` or `tcg` (qemu software emulation).
    #[serde(default = "unknown")]
    pub accel: String,
}

fn unknown() -> String {
    "-".to_string()
}

impl CellKey {
    /// `scenario::engine::runtime::stack::kernel::cgroup::init::accel`: the test name under `cargo test`.
    pub fn name(&self) -> String {
        AXES.iter().map(|a| self.axis(a).unwrap_or("-")).collect::<Vec<_>>().join("::")
    }

    /// Whether the cell boots a kernel of its own in a VM (from the host; inside that VM the
    /// kernel is the running one).
    pub fn in_vm(&self) -> bool {
        self.kernel != "host" && crate::vm::guest::identity().is_none()
    }

    pub fn axis(&self, axis: &str) -> Option<&str> {
        Some(match axis {
            "scenario" => &self.scenario,
            "engine" => &self.engine,
            "runtime" => &self.runtime,
            "stack" => &self.stack,
            "kernel" => &self.kernel,
            "cgroup" => &self.cgroup,
            "init" => &self.init,
            "accel" => &self.accel,
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
    pub cgroups: Vec<String>,
    pub inits: Vec<String>,
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
            // How a VM boots is chosen per cell; a host-kernel cell has the host's cgroups and
            // init, so these two narrow the VM cells only (`--kernel` drops the host ones).
            && (!key.in_vm() || on(&self.cgroups, &key.cgroup) && on(&self.inits, &key.init))
            && self.name.as_ref().is_none_or(|n| key.name().contains(n.as_str()))
    }
}

/// Expands a matrix (and its `more:` parts) over the loaded scenarios. Cells come grouped by
/// stack, in a stable order, so shards and reruns see the same list; a cell is listed once.
pub fn expand(matrix: &MatrixFile, scenarios: &[Scenario], filter: &Filter) -> anyhow::Result<Vec<Cell>> {
    let mut cells = expand_one(matrix, scenarios, filter)?;
    for part in &matrix.more {
        for cell in expand_one(part, scenarios, filter)? {
            if !cells.iter().any(|c| c.key == cell.key) {
                cells.push(cell);
            }
        }
    }
    // Grouped by stack, in the order stacks first appear (stable: each part keeps its order).
    let mut stacks: Vec<String> = Vec::new();
    for cell in &cells {
        if !stacks.contains(&cell.key.stack) {
            stacks.push(cell.key.stack.clone());
        }
    }
    cells.sort_by_key(|c| stacks.iter().position(|s| *s == c.key.stack));
    Ok(cells)
}

fn expand_one(matrix: &MatrixFile, scenarios: &[Scenario], filter: &Filter) -> anyhow::Result<Vec<Cell>> {
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
    let targets = target::targets(matrix);
    let mut cells = Vec::new();
    for stack in &matrix.stacks {
        for target in &targets {
            for scenario in &chosen {
                for engine in &matrix.engines {
                    for runtime in &matrix.runtimes {
                        let key = CellKey {
                            scenario: scenario.id.clone(),
                            engine: engine.clone(),
                            runtime: runtime.clone(),
                            stack: stack.clone(),
                            kernel: target.kernel.clone(),
                            cgroup: target.cgroup.clone(),
                            init: target.init.clone(),
                            accel: target.accel.clone(),
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
            cgroups: vec!["v2".into()],
            inits: vec!["plain".into()],
            more: Vec::new(),
        }
    }

    #[test]
    fn more_parts_add_their_cells_once_grouped_with_their_stack() {
        let mut m = matrix();
        let mut docker = matrix();
        docker.engines = vec!["docker".into(), "podman".into()];
        docker.scenarios = ScenarioSelection::Only(vec!["a".into()]);
        docker.stacks = vec!["sid".into(), "trixie".into()];
        m.more = vec![docker];
        let cells = expand(&m, &[scenario("a"), scenario("b")], &Filter::default()).unwrap();
        // 8 podman cells, plus docker x 2 runtimes x 2 stacks for `a`; its podman cells exist already.
        assert_eq!(cells.len(), 12);
        let stacks: Vec<&str> = cells.iter().map(|c| c.key.stack.as_str()).collect();
        assert!(stacks[..6].iter().all(|s| *s == "trixie") && stacks[6..].iter().all(|s| *s == "sid"), "{stacks:?}");
        assert_eq!(cells.iter().filter(|c| c.key.engine == "docker").count(), 4);
    }

    #[test]
    fn expands_the_product_grouped_by_stack() {
        let cells = expand(&matrix(), &[scenario("a"), scenario("b")], &Filter::default()).unwrap();
        let names: Vec<String> = cells.iter().map(Cell::name).collect();
        assert_eq!(names.len(), 8);
        let host = format!("host::{}::host::native", target::host_cgroup());
        assert_eq!(names[0], format!("a::podman::runc::trixie::{host}"));
        assert_eq!(names[3], format!("b::podman::crun::trixie::{host}"));
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
    fn a_vm_kernel_multiplies_by_cgroup_and_init_but_the_host_kernel_does_not() {
        let mut m = matrix();
        m.kernels = vec!["host".into(), "bookworm".into()];
        m.cgroups = vec!["v1".into(), "v2".into()];
        m.inits = vec!["plain".into(), "systemd".into()];
        let cells = expand(&m, &[scenario("a")], &Filter::default()).unwrap();
        // per stack and runtime: 1 host cell + 2 cgroups x 2 inits under bookworm's kernel
        assert_eq!(cells.len(), 2 * 2 * 5);
        let vm: Vec<&Cell> = cells.iter().filter(|c| c.key.in_vm()).collect();
        assert_eq!(vm.len(), 16);
        let accel = crate::vm::accel::decide().name;
        assert!(vm.iter().all(|c| c.key.accel == accel));
        assert!(cells.iter().any(|c| c.name() == format!("a::podman::crun::sid::bookworm::v1::systemd::{accel}")));
        assert!(cells.iter().filter(|c| !c.key.in_vm()).all(|c| c.key.init == "host" && c.key.accel == "native"));
    }

    #[test]
    fn cgroup_and_init_filters_narrow_vm_cells_and_keep_host_cells() {
        let mut m = matrix();
        m.kernels = vec!["host".into(), "bookworm".into()];
        m.cgroups = vec!["v1".into(), "v2".into()];
        m.inits = vec!["plain".into(), "systemd".into()];
        let filter = Filter { cgroups: vec!["v2".into()], inits: vec!["plain".into()], ..Filter::default() };
        let cells = expand(&m, &[scenario("a")], &filter).unwrap();
        // per stack and runtime: the host cell and bookworm's v2/plain cell
        assert_eq!(cells.len(), 2 * 2 * 2);
        assert!(cells.iter().filter(|c| c.key.in_vm()).all(|c| c.key.cgroup == "v2" && c.key.init == "plain"));
        assert_eq!(cells.iter().filter(|c| !c.key.in_vm()).count(), 4);
    }

    #[test]
    fn a_matrix_naming_an_unknown_scenario_is_an_error() {
        let mut m = matrix();
        m.scenarios = ScenarioSelection::Only(vec!["nope".into()]);
        let err = expand(&m, &[scenario("a")], &Filter::default()).unwrap_err();
        assert!(err.to_string().contains("`nope`"), "{err}");
    }
}
