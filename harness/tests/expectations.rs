//! The committed scenarios' `expect:` clauses, checked against the facts of cells that cannot
//! run on this machine yet (a VM with systemd on cgroup v2, a crun before 1.21): which clause
//! applies where. No containers.

use criu_matrix::scenario::{load_all, CellFacts, ExpectedOutcome, FailStep, Scenario};
use rstest::rstest;
use std::path::Path;

/// A cell as a clause sees it, written out by hand.
struct Cell {
    runtime: &'static str,
    version: &'static str,
    cgroup: &'static str,
    manager: &'static str,
}

impl CellFacts for Cell {
    fn axis(&self, name: &str) -> Option<String> {
        Some(
            match name {
                "engine" => "podman",
                "runtime" => self.runtime,
                "cgroup" => self.cgroup,
                "cgroup_manager" => self.manager,
                _ => return None,
            }
            .to_string(),
        )
    }
    fn tool_version(&self, tool: &str) -> Option<semver::Version> {
        (tool == self.runtime).then(|| criu_matrix::version::parse_lenient(self.version)).flatten()
    }
}

fn scenario(id: &str) -> Scenario {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let all = load_all(&root.join("scenarios"), &root.join("images")).expect("the committed scenarios are valid");
    all.into_iter().find(|s| s.id == id).expect("the scenario exists")
}

#[rstest]
#[case::crun_1_8_systemd_v2(
    "crun",
    "1.8.1",
    "v2",
    "systemd",
    Some("Unseizable non-zombie 4242 found, state S, err -1/10")
)]
#[case::crun_1_20_systemd_v2(
    "crun",
    "1.20",
    "v2",
    "systemd",
    Some("Unseizable non-zombie 7 found, state S, err -1/10")
)]
#[case::crun_1_21_systemd_v2("crun", "1.21", "v2", "systemd", None)]
#[case::crun_1_8_cgroupfs_v2("crun", "1.8.1", "v2", "cgroupfs", None)]
#[case::crun_1_8_systemd_v1("crun", "1.8.1", "v1", "systemd", None)]
#[case::runc_1_1_15_systemd_v2(
    "runc",
    "1.1.15",
    "v2",
    "systemd",
    Some(
        "Error (criu/seize.c:1043): Neither a cgroupv1 (freezer.state) or cgroupv2 (cgroup.freeze) control file found."
    )
)]
#[case::runc_1_1_15_cgroupfs_v1("runc", "1.1.15", "v1", "cgroupfs", None)]
#[case::runc_1_3_6_systemd_v2("runc", "1.3.6", "v2", "systemd", None)]
fn the_export_flow_fails_at_the_second_checkpoint_only_where_the_facts_say(
    #[case] runtime: &'static str,
    #[case] version: &'static str,
    #[case] cgroup: &'static str,
    #[case] manager: &'static str,
    #[case] log_line: Option<&str>,
) {
    let e = scenario("java-daemon-double-checkpoint").expectation_for(&Cell { runtime, version, cgroup, manager });
    match log_line {
        None => assert_eq!(e.outcome, ExpectedOutcome::Passes),
        Some(line) => {
            assert_eq!((e.outcome, e.round, e.step), (ExpectedOutcome::Fails, Some(2), Some(FailStep::Checkpoint)));
            assert!(e.signature.as_ref().is_some_and(|s| s.is_match(line)), "{:?} !~ {line}", e.signature);
        }
    }
}

/// Measured: restored in place, the processes go back into the same container's scope, so even
/// crun 1.8.1 and runc 1.1.5 under systemd on cgroup v2 checkpoint again. No clause fails.
#[rstest]
#[case::crun_1_8_systemd_v2("crun", "1.8.1", "v2", "systemd")]
#[case::crun_1_28_systemd_v2("crun", "1.28", "v2", "systemd")]
#[case::runc_1_1_15_systemd_v2("runc", "1.1.15", "v2", "systemd")]
#[case::runc_1_1_5_cgroupfs_v1("runc", "1.1.5", "v1", "cgroupfs")]
fn the_in_place_flow_passes_where_the_export_flow_fails(
    #[case] runtime: &'static str,
    #[case] version: &'static str,
    #[case] cgroup: &'static str,
    #[case] manager: &'static str,
) {
    let e =
        scenario("java-daemon-double-checkpoint-in-place").expectation_for(&Cell { runtime, version, cgroup, manager });
    assert_eq!(e.outcome, ExpectedOutcome::Passes);
}

/// A docker (or podman) cell on this machine's kernel, as a clause sees it.
struct EngineCell {
    engine: &'static str,
    runtime: &'static str,
    runtime_version: &'static str,
    docker: &'static str,
}

impl CellFacts for EngineCell {
    fn axis(&self, name: &str) -> Option<String> {
        match name {
            "engine" => Some(self.engine.to_string()),
            "runtime" => Some(self.runtime.to_string()),
            "cgroup" => Some("v1".to_string()),
            "cgroup_manager" => Some("cgroupfs".to_string()),
            _ => None,
        }
    }
    fn tool_version(&self, tool: &str) -> Option<semver::Version> {
        let text = match tool {
            t if t == self.runtime => self.runtime_version,
            "docker" => self.docker,
            "criu" => "4.2.1",
            "linux" => "6.18.44",
            _ => return None,
        };
        criu_matrix::version::parse_lenient(text)
    }
}

const WORK_DIR: &str = "Error response from daemon: Cannot checkpoint container c: /usr/bin/crun did not terminate successfully: exit status 1: error opening CRIU work directory `/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/e9a3/work/criu-work`: No such file or directory path= /run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/e9a3/criu-dump.log: unknown";
const ALREADY_EXISTS: &str = "Error response from daemon: failed to upload checkpoint to containerd: commit failed: content sha256:888f9f9afd21d67af658c78d66df5a96e26ee9e0632ad55ac6c6e1def25621c0: already exists";
const STALE_TASK: &str = "Error response from daemon: could not delete stale containerd task object: failed to delete task: failed to delete task: cannot open directory `/run/docker/runtime-runc/moby/a7b3`: No such file or directory";
const PID_ZERO: &str = "Error response from daemon: bind-mount /proc/0/ns/net -> /run/docker/netns/f1530b97204f: no such file or directory";
const CHECKPOINT_DIR: &str = "Error response from daemon: custom checkpointdir is not supported";

/// The docker messages measured on trixie (docker 26.1.5, crun 1.21) and sid (docker 28.5.2,
/// crun 1.28), each held against the clause that applies to its cell; podman cells still pass.
#[rstest]
#[case::crun_1_21("baseline-counter", "docker", "crun", "1.21", "26.1.5", Some((FailStep::Checkpoint, vec![WORK_DIR])))]
#[case::crun_1_28_docker_28("baseline-counter", "docker", "crun", "1.28", "28.5.2", Some((FailStep::Restore, vec![STALE_TASK])))]
#[case::runc_docker_28("baseline-counter", "docker", "runc", "1.3.6", "28.5.2", Some((FailStep::Restore, vec![PID_ZERO, ALREADY_EXISTS])))]
#[case::runc_docker_26("baseline-counter", "docker", "runc", "1.1.15", "26.1.5", Some((FailStep::Restore, vec![ALREADY_EXISTS])))]
#[case::export_runc("baseline-counter-export", "docker", "runc", "1.1.15", "26.1.5", Some((FailStep::Restore, vec![CHECKPOINT_DIR])))]
#[case::export_crun_1_28("baseline-counter-export", "docker", "crun", "1.28", "28.5.2", Some((FailStep::Restore, vec![CHECKPOINT_DIR])))]
#[case::podman_runc("baseline-counter", "podman", "runc", "1.1.15", "26.1.5", None)]
#[case::podman_crun_export("baseline-counter-export", "podman", "crun", "1.21", "26.1.5", None)]
fn docker_cells_expect_the_docker_failures_measured_here(
    #[case] id: &str,
    #[case] engine: &'static str,
    #[case] runtime: &'static str,
    #[case] runtime_version: &'static str,
    #[case] docker: &'static str,
    #[case] expected: Option<(FailStep, Vec<&str>)>,
) {
    let e = scenario(id).expectation_for(&EngineCell { engine, runtime, runtime_version, docker });
    match expected {
        None => assert_eq!(e.outcome, ExpectedOutcome::Passes),
        Some((step, lines)) => {
            assert_eq!((e.outcome, e.step), (ExpectedOutcome::Fails, Some(step)));
            for line in lines {
                assert!(e.signature.as_ref().is_some_and(|s| s.is_match(line)), "{:?} !~ {line}", e.signature);
            }
        }
    }
}
