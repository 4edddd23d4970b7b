//! A matrix expanded over the scenarios into cells, filtered, in a stable order.

use super::filter::Filter;
use super::key::CellKey;
use super::matrix::{MatrixFile, Part, ScenarioSelection};
use super::target;
use super::with::{Derivation, NotDerived, Override};
use crate::axes::Axis;
use crate::host::HostFacts;
use crate::scenario::Scenario;
use std::sync::Arc;

/// One point of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    pub scenario: Arc<Scenario>,
    pub key: CellKey,
    /// Whether this process boots the cell's kernel in a VM (inside that VM it is the running
    /// kernel, and the cell runs here).
    pub in_vm: bool,
    /// What its stack is made of when it is a derived stack (components replaced).
    pub derivation: Option<Arc<Derivation>>,
}

impl Cell {
    pub fn name(&self) -> String {
        self.key.name()
    }
}

/// Expands a matrix (all its parts) over the loaded scenarios. Cells come grouped by stack, in a
/// stable order, so shards and reruns see the same list; a cell is listed once.
pub fn expand(
    matrix: &MatrixFile,
    scenarios: &[Scenario],
    filter: &Filter,
    host: &HostFacts,
) -> anyhow::Result<Vec<Cell>> {
    expand_with(matrix, scenarios, filter, &[], host)
}

/// As [`expand`], with components replaced in every stack (`--with`, on top of a part's own
/// `with:`). The host stack takes no overrides: with `with` given, its cells are left out.
pub fn expand_with(
    matrix: &MatrixFile,
    scenarios: &[Scenario],
    filter: &Filter,
    with: &[Override],
    host: &HostFacts,
) -> anyhow::Result<Vec<Cell>> {
    let mut cells: Vec<Cell> = Vec::new();
    for part in &matrix.parts {
        for cell in expand_part(part, scenarios, filter, with, host)? {
            // Two derivations that come to one name would share a stack directory.
            if let Some(other) = cells.iter().find(|c| {
                c.key[Axis::Stack] == cell.key[Axis::Stack] && c.derivation.as_deref() != cell.derivation.as_deref()
            }) {
                let describe = |c: &Cell| c.derivation.as_ref().map(|d| d.describe()).unwrap_or_default();
                anyhow::bail!(
                    "two different stacks are both named `{}` ({} and {}): change a source so that their labels differ",
                    cell.key[Axis::Stack],
                    describe(other),
                    describe(&cell)
                );
            }
            if !cells.iter().any(|c| c.key == cell.key) {
                cells.push(cell);
            }
        }
    }
    // Grouped by stack, in the order stacks first appear (stable: each part keeps its order).
    let mut stacks: Vec<String> = Vec::new();
    for cell in &cells {
        if !stacks.contains(&cell.key[Axis::Stack].to_string()) {
            stacks.push(cell.key[Axis::Stack].to_string());
        }
    }
    cells.sort_by_key(|c| stacks.iter().position(|s| s == &c.key[Axis::Stack]));
    Ok(cells)
}

fn expand_part(
    part: &Part,
    scenarios: &[Scenario],
    filter: &Filter,
    with: &[Override],
    host: &HostFacts,
) -> anyhow::Result<Vec<Cell>> {
    let chosen: Vec<Arc<Scenario>> = match &part.scenarios {
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
    let targets = target::targets(part, host);
    let mut cells = Vec::new();
    let mut overrides = part.with.clone();
    for o in with {
        overrides.retain(|e| e.component.name != o.component.name);
        overrides.push(o.clone());
    }
    for listed in part.values(Axis::Stack) {
        // Inside a VM the derived stack is the guest's own root, already made.
        let in_guest = host.guest.as_ref().is_some_and(|g| &g.stack == listed) && overrides.is_empty();
        let derivation = match Derivation::of(listed, &overrides) {
            _ if in_guest => None,
            Ok(d) => d.map(Arc::new),
            // `--with` on a plan that has host cells: they stay out (the host is never changed).
            Err(NotDerived::Host) if part.with.is_empty() => continue,
            Err(e) => anyhow::bail!("{e}"),
        };
        let stack = derivation.as_ref().map(|d| d.name.clone()).unwrap_or_else(|| listed.clone());
        for target in &targets {
            for scenario in &chosen {
                for engine in part.values(Axis::Engine) {
                    for runtime in part.values(Axis::Runtime) {
                        let key = CellKey::from_fn(|axis| match axis {
                            Axis::Scenario => scenario.id.clone(),
                            Axis::Engine => engine.clone(),
                            Axis::Runtime => runtime.clone(),
                            Axis::Stack => stack.clone(),
                            Axis::Kernel => target.kernel.clone(),
                            Axis::Cgroup => target.cgroup.clone(),
                            Axis::Init => target.init.clone(),
                            Axis::Accel => target.accel.clone(),
                        });
                        let in_vm = target.in_vm;
                        if filter.accepts(&key, in_vm) {
                            let derivation = derivation.clone();
                            cells.push(Cell { scenario: scenario.clone(), key, in_vm, derivation });
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
    use crate::host::{Accel, HostFacts};
    use rstest::rstest;
    use std::collections::BTreeMap;

    /// A machine with a v1 host and software emulation, not a VM guest.
    fn machine() -> HostFacts {
        HostFacts { cgroup: "v1".into(), accel: Accel { name: "tcg".into(), why: "test".into() }, guest: None }
    }

    fn scenario(id: &str) -> Scenario {
        let images = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(images.path().join("img")).unwrap();
        std::fs::write(images.path().join("img/Containerfile"), "FROM x\n").unwrap();
        let text =
            format!("id: {id}\nsummary: s\nimage: img\nrun: {{}}\nready: {{ file: /f }}\nverify: [counter: /f]\n");
        crate::scenario::parse_scenario(std::path::Path::new("t.yaml"), &text, images.path()).unwrap()
    }

    fn part(pairs: &[(Axis, &[&str])]) -> Part {
        let mut axes: BTreeMap<Axis, Vec<String>> = BTreeMap::new();
        for (axis, default) in [(Axis::Kernel, "host"), (Axis::Cgroup, "v2"), (Axis::Init, "plain")] {
            axes.insert(axis, vec![default.into()]);
        }
        for (axis, values) in pairs {
            axes.insert(*axis, values.iter().map(|v| v.to_string()).collect());
        }
        Part { scenarios: ScenarioSelection::All, axes, with: Vec::new() }
    }

    fn matrix() -> MatrixFile {
        let top =
            part(&[(Axis::Engine, &["podman"]), (Axis::Runtime, &["runc", "crun"]), (Axis::Stack, &["trixie", "sid"])]);
        MatrixFile { description: String::new(), parts: vec![top] }
    }

    fn filter(pairs: &[(Axis, &str)]) -> Filter {
        let mut f = Filter::default();
        for (axis, value) in pairs {
            f.axes.entry(*axis).or_default().push(value.to_string());
        }
        f
    }

    #[test]
    fn more_parts_add_their_cells_once_grouped_with_their_stack() {
        let mut m = matrix();
        let mut docker = part(&[
            (Axis::Engine, &["docker", "podman"]),
            (Axis::Runtime, &["runc", "crun"]),
            (Axis::Stack, &["sid", "trixie"]),
        ]);
        docker.scenarios = ScenarioSelection::Only(vec!["a".into()]);
        m.parts.push(docker);
        let cells = expand(&m, &[scenario("a"), scenario("b")], &Filter::default(), &machine()).unwrap();
        // 8 podman cells, plus docker x 2 runtimes x 2 stacks for `a`; its podman cells exist already.
        assert_eq!(cells.len(), 12);
        let stacks: Vec<&str> = cells.iter().map(|c| c.key[Axis::Stack].as_str()).collect();
        assert!(stacks[..6].iter().all(|s| *s == "trixie") && stacks[6..].iter().all(|s| *s == "sid"), "{stacks:?}");
        assert_eq!(cells.iter().filter(|c| &c.key[Axis::Engine] == "docker").count(), 4);
    }

    #[test]
    fn expands_the_product_grouped_by_stack() {
        let cells = expand(&matrix(), &[scenario("a"), scenario("b")], &Filter::default(), &machine()).unwrap();
        let names: Vec<String> = cells.iter().map(Cell::name).collect();
        assert_eq!(names.len(), 8);
        assert_eq!(names[0], "a::podman::runc::trixie::host::v1::host::native");
        assert_eq!(names[3], "b::podman::crun::trixie::host::v1::host::native");
        assert!(names[4..].iter().all(|n| n.contains("::sid::")));
    }

    #[rstest]
    #[case(filter(&[(Axis::Runtime, "crun")]), 4)]
    #[case(filter(&[(Axis::Stack, "sid"), (Axis::Scenario, "a")]), 2)]
    #[case(Filter { name: Some("::crun::trixie".into()), ..Filter::default() }, 2)]
    #[case(filter(&[(Axis::Engine, "docker")]), 0)]
    fn filters_on_any_axis(#[case] filter: Filter, #[case] expected: usize) {
        let cells = expand(&matrix(), &[scenario("a"), scenario("b")], &filter, &machine()).unwrap();
        assert_eq!(cells.len(), expected);
    }

    fn with_vm_kernel(m: &mut MatrixFile) {
        let top = &mut m.parts[0];
        top.axes.insert(Axis::Kernel, vec!["host".into(), "bookworm".into()]);
        top.axes.insert(Axis::Cgroup, vec!["v1".into(), "v2".into()]);
        top.axes.insert(Axis::Init, vec!["plain".into(), "systemd".into()]);
    }

    #[test]
    fn a_vm_kernel_multiplies_by_cgroup_and_init_but_the_host_kernel_does_not() {
        let mut m = matrix();
        with_vm_kernel(&mut m);
        let cells = expand(&m, &[scenario("a")], &Filter::default(), &machine()).unwrap();
        // per stack and runtime: 1 host cell + 2 cgroups x 2 inits under bookworm's kernel
        assert_eq!(cells.len(), 2 * 2 * 5);
        let vm: Vec<&Cell> = cells.iter().filter(|c| c.in_vm).collect();
        assert_eq!(vm.len(), 16);
        assert!(vm.iter().all(|c| &c.key[Axis::Accel] == "tcg"));
        assert!(cells.iter().any(|c| c.name() == "a::podman::crun::sid::bookworm::v1::systemd::tcg"));
        assert!(cells
            .iter()
            .filter(|c| !c.in_vm)
            .all(|c| &c.key[Axis::Init] == "host" && &c.key[Axis::Accel] == "native"));
    }

    #[test]
    fn inside_a_vm_the_guests_cell_runs_here_under_its_host_name() {
        let mut m = matrix();
        with_vm_kernel(&mut m);
        let guest = crate::host::Identity {
            stack: "sid".into(),
            kernel: "bookworm".into(),
            cgroup: "v2".into(),
            init: "systemd".into(),
            accel: "tcg".into(),
        };
        m.parts[0].axes.insert(Axis::Kernel, vec!["host".into()]);
        let host = HostFacts { guest: Some(guest), ..machine() };
        let cells =
            expand(&m, &[scenario("a")], &filter(&[(Axis::Stack, "sid"), (Axis::Runtime, "crun")]), &host).unwrap();
        assert_eq!(cells.len(), 1);
        assert_eq!(cells[0].name(), "a::podman::crun::sid::bookworm::v2::systemd::tcg");
        assert!(!cells[0].in_vm, "inside the guest the cell runs on the running kernel");
    }

    #[test]
    fn cgroup_and_init_filters_narrow_vm_cells_and_keep_host_cells() {
        let mut m = matrix();
        with_vm_kernel(&mut m);
        let f = filter(&[(Axis::Cgroup, "v2"), (Axis::Init, "plain")]);
        let cells = expand(&m, &[scenario("a")], &f, &machine()).unwrap();
        // per stack and runtime: the host cell and bookworm's v2/plain cell
        assert_eq!(cells.len(), 2 * 2 * 2);
        assert!(cells
            .iter()
            .filter(|c| c.in_vm)
            .all(|c| &c.key[Axis::Cgroup] == "v2" && &c.key[Axis::Init] == "plain"));
        assert_eq!(cells.iter().filter(|c| !c.in_vm).count(), 4);
    }

    #[test]
    fn overrides_make_each_debian_stack_a_derived_one_and_leave_the_host_out() {
        let mut m = matrix();
        m.parts[0].axes.insert(Axis::Stack, vec!["host".into(), "trixie".into(), "bookworm-crun-criu".into()]);
        let with = super::super::with::overrides(&["criu=deb:sid".into()], &[], std::path::Path::new("/")).unwrap();
        let cells = expand_with(&m, &[scenario("a")], &Filter::default(), &with, &machine()).unwrap();
        let stacks: Vec<&str> = cells.iter().map(|c| c.key[Axis::Stack].as_str()).collect();
        assert_eq!(stacks, ["trixie+criu=sid", "trixie+criu=sid", "bookworm-crun-criu+criu=sid", "bookworm-crun-criu+criu=sid"]);
        let d = cells[2].derivation.as_ref().unwrap();
        assert_eq!(d.describe(), "criu=deb:sid, crun=deb:bookworm");
        // A filter on the base selects its derived stacks; one on the derived name, only those.
        let base = expand_with(&m, &[scenario("a")], &filter(&[(Axis::Stack, "trixie")]), &with, &machine()).unwrap();
        assert_eq!(base.len(), 2);
        let exact =
            expand_with(&m, &[scenario("a")], &filter(&[(Axis::Stack, "trixie+criu=sid")]), &with, &machine()).unwrap();
        assert_eq!(exact.len(), 2);
        // Without overrides, the table's derived stack still carries what it is made of.
        let plain = expand(&m, &[scenario("a")], &Filter::default(), &machine()).unwrap();
        assert_eq!(plain.len(), 6);
        assert!(plain.iter().filter(|c| c.key[Axis::Stack] == "bookworm-crun-criu").all(|c| c.derivation.is_some()));
        assert!(plain.iter().filter(|c| c.key[Axis::Stack] == "trixie").all(|c| c.derivation.is_none()));
    }

    #[test]
    fn inside_a_vm_a_derived_stack_is_the_guests_own() {
        let mut m = matrix();
        m.parts[0].axes.insert(Axis::Stack, vec!["bookworm+crun=trixie".into()]);
        let guest = crate::host::Identity {
            stack: "bookworm+crun=trixie".into(),
            kernel: "bookworm".into(),
            cgroup: "v2".into(),
            init: "systemd".into(),
            accel: "tcg".into(),
        };
        let host = HostFacts { guest: Some(guest), ..machine() };
        let cells = expand(&m, &[scenario("a")], &Filter::default(), &host).unwrap();
        assert_eq!(cells[0].name(), "a::podman::runc::bookworm+crun=trixie::bookworm::v2::systemd::tcg");
        assert!(cells[0].derivation.is_none());
        // On the host, a derived name without its overrides says where they go.
        let err = expand(&m, &[scenario("a")], &Filter::default(), &machine()).unwrap_err().to_string();
        assert!(err.contains("give its overrides"), "{err}");
    }

    #[test]
    fn a_part_with_overrides_on_the_host_is_an_error() {
        let mut m = matrix();
        m.parts[0].axes.insert(Axis::Stack, vec!["host".into()]);
        m.parts[0].with = super::super::with::overrides(&["criu=deb:sid".into()], &[], std::path::Path::new("/")).unwrap();
        let err = expand(&m, &[scenario("a")], &Filter::default(), &machine()).unwrap_err().to_string();
        assert!(err.contains("host stack takes no overrides"), "{err}");
    }

    #[test]
    fn two_stacks_of_one_name_are_refused() {
        let mut m = matrix();
        let o = |text: &str| super::super::with::overrides(&[text.into()], &[], std::path::Path::new("/")).unwrap();
        m.parts[0].with = o("criu=src:/a/criu");
        let mut other = m.parts[0].clone();
        other.with = o("criu=src:/b/criu");
        m.parts.push(other);
        let err = expand(&m, &[scenario("a")], &Filter::default(), &machine()).unwrap_err().to_string();
        assert!(err.contains("both named `trixie+criu=criu`"), "{err}");
    }

    #[test]
    fn a_matrix_naming_an_unknown_scenario_is_an_error() {
        let mut m = matrix();
        m.parts[0].scenarios = ScenarioSelection::Only(vec!["nope".into()]);
        let err = expand(&m, &[scenario("a")], &Filter::default(), &machine()).unwrap_err();
        assert!(err.to_string().contains("`nope`"), "{err}");
    }
}
