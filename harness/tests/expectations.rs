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

/// A cell as the VNC desktop's clauses see it: CRIU's and the kernel's versions.
struct CriuCell {
    criu: &'static str,
    linux: &'static str,
}

impl CellFacts for CriuCell {
    fn axis(&self, name: &str) -> Option<String> {
        (name == "engine").then(|| "podman".to_string())
    }
    fn tool_version(&self, tool: &str) -> Option<semver::Version> {
        match tool {
            "criu" => criu_matrix::version::parse_lenient(self.criu),
            "linux" => criu_matrix::version::parse_lenient(self.linux),
            _ => None,
        }
    }
}

/// Failure case 4 (criu#2459): CRIU before 4.1 stops at the first pidfd, with the mode of an
/// anonymous inode (6.1) or of pidfs (6.9+); 4.1.x on 6.16+ stops earlier, at the VNC server's
/// TCP socket (criu#2705); 4.1 on older kernels and 4.2 pass.
#[rstest]
#[case::bookworm_in_its_vm("3.17.1", "6.1.0-44-cloud-amd64", Some("Error (criu/files.c:517): Can't dump file 11 of that type [600] (anon anon_inode:[pidfd])"))]
#[case::old_criu_on_pidfs("4.0", "6.12.73", Some("Can't dump file 9 of that type [700] (anon anon_inode:[pidfd])"))]
#[case::trixie_on_6_18("4.1.1", "6.18.44-fc-v657", Some("Error (criu/sockets.c:628): sockets: Can't get 1:16 opt: Operation not supported"))]
#[case::trixie_in_its_vm("4.1.1", "6.12.73+deb13-cloud-amd64", None)]
#[case::sid_on_6_18("4.2.1", "6.18.44-fc-v657", None)]
fn the_desktop_fails_where_criu_cannot_dump_what_it_holds(
    #[case] criu: &'static str,
    #[case] linux: &'static str,
    #[case] log_line: Option<&str>,
) {
    let e = scenario("vnc-xfce-pidfd").expectation_for(&CriuCell { criu, linux });
    match log_line {
        None => assert_eq!(e.outcome, ExpectedOutcome::Passes),
        Some(line) => {
            assert_eq!((e.outcome, e.round, e.step), (ExpectedOutcome::Fails, Some(1), Some(FailStep::Checkpoint)));
            assert!(e.signature.as_ref().is_some_and(|s| s.is_match(line)), "{:?} !~ {line}", e.signature);
        }
    }
}
