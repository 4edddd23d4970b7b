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

/// A cell as the freezer clauses see it: CRIU's version, the kernel's, and the cgroup layout.
struct FreezerCell {
    criu: &'static str,
    linux: &'static str,
    cgroup: &'static str,
}

impl CellFacts for FreezerCell {
    fn axis(&self, name: &str) -> Option<String> {
        (name == "cgroup").then(|| self.cgroup.to_string())
    }
    fn tool_version(&self, tool: &str) -> Option<semver::Version> {
        match tool {
            "criu" => criu_matrix::version::parse_lenient(self.criu),
            "linux" => criu_matrix::version::parse_lenient(self.linux),
            _ => None,
        }
    }
}

/// Upstream's log (runc#4273): the freezer still FREEZING near CRIU's alarm, then the task that
/// was never seized. The vfork wait found here says the same words but froze at once.
const UPSTREAM_FREEZING: &str = "(09.914957) freezer.state=FREEZING";
const UPSTREAM_UNSEIZED: &str =
    "(10.000694) Error (compel/src/lib/infect.c:234): Unseizable non-zombie 9017 found, state D, err -1/10";
/// Measured here with CRIU 3.17.1 on 6.1 (cgroup v1), after ~98 polls of FREEZING.
const MEASURED_UNSEIZED: &str =
    "(10.076809) Error (compel/src/lib/infect.c:234): Unseizable non-zombie 685 found, state R, err -1/10";
const FROZE_AT_ONCE: &str = "(00.003976) freezer.state=FREEZING";
const VFORK_WAIT: &str =
    "(10.088899) Error (compel/src/lib/infect.c:263): Unseizable non-zombie 11316 found, state D, err -1/4";

#[rstest]
#[case::criu_3_17_v1("3.17.1", "6.1.0", "v1", Some("<=100%"))]
#[case::criu_3_17_v2("3.17.1", "6.1.0", "v2", None)]
#[case::criu_4_1_v1("4.1.1", "6.1.0", "v1", None)]
#[case::criu_4_2_v1("4.2.1", "6.18.4", "v1", None)]
#[case::criu_4_1_on_7_2("4.1.1", "7.2.0", "v2", Some("100%"))]
fn the_freezer_bug_may_show_only_before_criu_4_1_on_cgroup_v1(
    #[case] criu: &'static str,
    #[case] linux: &'static str,
    #[case] cgroup: &'static str,
    #[case] rate: Option<&str>,
) {
    let e = scenario("freezer-stress").expectation_for(&FreezerCell { criu, linux, cgroup });
    match rate {
        None => {
            assert_eq!(e.outcome, ExpectedOutcome::Passes);
            assert_eq!(e.rate_bound().to_string(), "0%");
        }
        Some(rate) => {
            assert_eq!((e.outcome, e.step), (ExpectedOutcome::Fails, Some(FailStep::Checkpoint)));
            assert_eq!(e.rate_bound().to_string(), rate);
        }
    }
    if (criu, cgroup) == ("3.17.1", "v1") {
        let signature = e.signature.expect("a signature");
        assert!(signature.is_match(UPSTREAM_FREEZING) && signature.is_match(UPSTREAM_UNSEIZED));
        assert!(signature.is_match(MEASURED_UNSEIZED));
        assert!(!signature.is_match(FROZE_AT_ONCE) && !signature.is_match(VFORK_WAIT), "{signature}");
    }
}

/// The vfork variant: before CRIU 4.1 on cgroup v1 a failed round may be either failure case 2
/// or the vfork wait; elsewhere only the vfork wait is expected.
#[rstest]
#[case::criu_3_17_v1("3.17.1", "v1", true)]
#[case::criu_4_1_v1("4.1.1", "v1", false)]
#[case::criu_3_17_v2("3.17.1", "v2", false)]
fn the_vfork_variant_expects_case_2_only_before_4_1_on_v1(
    #[case] criu: &'static str,
    #[case] cgroup: &'static str,
    #[case] case_2: bool,
) {
    let e = scenario("freezer-stress-vfork").expectation_for(&FreezerCell { criu, linux: "6.1.0", cgroup });
    assert_eq!(e.outcome, ExpectedOutcome::Fails);
    assert!(e.rate_bound().admits_none());
    let signature = e.signature.expect("a signature");
    assert!(signature.is_match(VFORK_WAIT));
    assert_eq!(signature.is_match(UPSTREAM_FREEZING), case_2, "{signature}");
}
