//! A plan cut into jobs, the units `--jobs N` runs side by side: the host-kernel cells of one
//! stack (one after another: they share the stack's engine and CRIU, and their timings mean
//! something only alone), and each group of VM cells that share a boot (one stack, kernel,
//! cgroup layout and init). Jobs come in the order of their first cell in the plan; each keeps
//! its cells in plan order.

use crate::axes::Axis;
use crate::host::HostFacts;
use crate::plan::Cell;

#[derive(Debug, Clone)]
pub enum Job {
    /// Host-kernel cells of one stack.
    Host { stack: String, cells: Vec<Cell> },
    /// VM cells of one (stack, kernel, cgroup, init).
    Vm { label: String, cells: Vec<Cell> },
}

impl Job {
    pub fn cells(&self) -> &[Cell] {
        match self {
            Job::Host { cells, .. } | Job::Vm { cells, .. } => cells,
        }
    }

    pub fn stack(&self) -> &str {
        &self.cells()[0].key[Axis::Stack]
    }

    /// How the job is shown: `host trixie` or `vm trixie/trixie/v2/plain`.
    pub fn label(&self) -> String {
        match self {
            Job::Host { stack, .. } => format!("host {stack}"),
            Job::Vm { label, .. } => format!("vm {label}"),
        }
    }
}

/// The jobs of `cells`, in the order of their first cell.
pub fn jobs(cells: &[Cell]) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    for cell in cells {
        let key = &cell.key;
        let found = jobs.iter_mut().find(|job| match job {
            Job::Host { stack, .. } => !cell.in_vm && stack == &key[Axis::Stack],
            Job::Vm { label, .. } => cell.in_vm && label == &crate::vm::group_label(key),
        });
        match found {
            Some(Job::Host { cells, .. } | Job::Vm { cells, .. }) => cells.push(cell.clone()),
            None if cell.in_vm => jobs.push(Job::Vm { label: crate::vm::group_label(key), cells: vec![cell.clone()] }),
            None => jobs.push(Job::Host { stack: key[Axis::Stack].clone(), cells: vec![cell.clone()] }),
        }
    }
    jobs
}

/// The jobs run at once when `--jobs` is not given, and why: a VM takes 2 vCPUs and 4 GiB
/// (`vm::machine`); under KVM its vCPUs are the host's cores, so a VM per 2 cores; under TCG
/// each VM also keeps qemu's main loop busy emulating its devices, so a VM per 3 cores. Memory
/// allows a VM per 4.5 GiB available beyond 2 GiB for the host's own cells.
pub fn default_jobs(host: &HostFacts) -> (usize, String) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let available = <procfs::Meminfo as procfs::Current>::current().ok().and_then(|m| m.mem_available).unwrap_or(0);
    choose_jobs(cores, available, &host.accel.name)
}

fn choose_jobs(cores: usize, available_bytes: u64, accel: &str) -> (usize, String) {
    const GIB: f64 = (1u64 << 30) as f64;
    let cores_per_vm = if accel == "kvm" { 2 } else { 3 };
    let by_cores = cores / cores_per_vm;
    let gib = available_bytes as f64 / GIB;
    let by_memory = ((gib - 2.0) / 4.5).floor().max(0.0) as usize;
    let jobs = by_cores.min(by_memory).max(1);
    let why = format!(
        "{cores} cores and {gib:.0} GiB available; a VM takes {cores_per_vm} cores under {accel} and 4.5 GiB: \
         {by_cores} by cores, {by_memory} by memory"
    );
    (jobs, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::CellKey;
    use rstest::rstest;
    use std::sync::Arc;

    fn cell(scenario: &str, stack: &str, kernel: &str, cgroup: &str) -> Cell {
        let in_vm = kernel != "host";
        let (init, accel) = if in_vm { ("plain", "tcg") } else { ("host", "native") };
        let values = [scenario, "podman", "crun", stack, kernel, cgroup, init, accel];
        let images = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(images.path().join("img")).unwrap();
        std::fs::write(images.path().join("img/Containerfile"), "FROM x\n").unwrap();
        let text = format!("id: {scenario}\nsummary: s\nimage: img\nrun: {{}}\nready: {{ file: /f }}\nno_witness: a plan test runs nothing\n");
        let scenario = crate::scenario::parse_scenario(std::path::Path::new("t.yaml"), &text, images.path()).unwrap();
        Cell { scenario: Arc::new(scenario), key: CellKey::from_fn(|a| values[a as usize].to_string()), in_vm, derivation: None }
    }

    #[test]
    fn host_cells_go_by_stack_and_vm_cells_by_boot_group_in_plan_order() {
        let plan = [
            cell("a", "trixie", "host", "v1"),
            cell("a", "trixie", "trixie", "v2"),
            cell("b", "trixie", "host", "v1"),
            cell("b", "trixie", "trixie", "v2"),
            cell("a", "trixie", "trixie", "v1"),
            cell("a", "sid", "trixie", "v2"),
            cell("a", "sid", "host", "v1"),
        ];
        let jobs = jobs(&plan);
        let shown: Vec<(String, Vec<String>)> = jobs
            .iter()
            .map(|j| (j.label(), j.cells().iter().map(|c| c.key[Axis::Scenario].clone()).collect()))
            .collect();
        let expect = |label: &str, cells: &[&str]| (label.to_string(), cells.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            shown,
            vec![
                expect("host trixie", &["a", "b"]),
                expect("vm trixie/trixie/v2/plain", &["a", "b"]),
                expect("vm trixie/trixie/v1/plain", &["a"]),
                expect("vm sid/trixie/v2/plain", &["a"]),
                expect("host sid", &["a"]),
            ]
        );
        assert_eq!(jobs.iter().map(|j| j.cells().len()).sum::<usize>(), plan.len());
    }

    const GIB: u64 = 1 << 30;

    #[rstest]
    #[case::this_machine_tcg(2, 22 * GIB, "tcg", 1)]
    #[case::hosted_runner_kvm(4, 15 * GIB, "kvm", 2)]
    #[case::hosted_runner_without_kvm(4, 15 * GIB, "tcg", 1)]
    #[case::big_kvm_host_short_of_memory(32, 20 * GIB, "kvm", 4)]
    #[case::never_none(1, GIB, "tcg", 1)]
    fn the_default_jobs_follow_cores_memory_and_acceleration(
        #[case] cores: usize,
        #[case] memory: u64,
        #[case] accel: &str,
        #[case] expected: usize,
    ) {
        let (jobs, why) = choose_jobs(cores, memory, accel);
        assert_eq!(jobs, expected, "{why}");
        assert!(why.contains(&format!("{cores} cores")) && why.contains(accel), "{why}");
    }
}
