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

/// A cell of the Netty ghost-file scenarios as a clause sees it: the engine and its version,
/// the runtime and its version, and CRIU's version (crun >= 1.26 names a configuration file only
/// through the libcriu of CRIU >= 4.2).
struct ConfigCell {
    engine: &'static str,
    engine_version: &'static str,
    runtime: &'static str,
    version: &'static str,
    criu: &'static str,
}

impl CellFacts for ConfigCell {
    fn axis(&self, name: &str) -> Option<String> {
        match name {
            "engine" => Some(self.engine.to_string()),
            "runtime" => Some(self.runtime.to_string()),
            _ => None,
        }
    }
    fn tool_version(&self, tool: &str) -> Option<semver::Version> {
        let version = match tool {
            "criu" => self.criu,
            t if t == self.runtime => self.version,
            t if t == self.engine => self.engine_version,
            _ => return None,
        };
        criu_matrix::version::parse_lenient(version)
    }
}

/// How a Netty ghost-file cell must end: passing, or failing with this measured line in its logs.
#[derive(Debug, Clone, Copy)]
enum Ghost {
    Dumped,
    /// CRIU's own refusal (trixie, CRIU 4.1.1), at the first checkpoint.
    OverLimit,
    /// crun 1.26+ refusing the annotation with CRIU < 4.2's libcriu, at the first checkpoint.
    NoLibcriuConfig,
    /// Docker with crun < 1.22: no checkpoint at all (crun#1741).
    NoWorkDir,
    /// Docker 28 with crun: the first restore (moby#50750).
    StaleTask,
    /// Docker 28 with runc: a restore (containerd#12141).
    NoNetns,
}

impl Ghost {
    fn line(self) -> Option<(&'static str, FailStep, Option<u32>)> {
        Some(match self {
            Ghost::Dumped => return None,
            Ghost::OverLimit => (
                "(00.010172) Error (criu/files-reg.c:1031): Can't dump ghost file \
                 /tmp/libnetty_tcnative_linux_x86_641674480247226347803.so of 7028736 size, increase limit",
                FailStep::Checkpoint,
                Some(1),
            ),
            Ghost::NoLibcriuConfig => {
                ("Error: libcriu RPC config files supported in CRIU >= 4.2", FailStep::Checkpoint, Some(1))
            }
            Ghost::NoWorkDir => (
                "exit status 1: error opening CRIU work directory \
                 `/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/2829ff3f/work/criu-work`: \
                 No such file or directory",
                FailStep::Checkpoint,
                Some(1),
            ),
            Ghost::StaleTask => (
                "could not delete stale containerd task object: failed to delete task: failed to delete task: \
                 cannot open directory `/run/docker/runtime-runc/moby/fc8c097a0ee4c705`",
                FailStep::Restore,
                Some(1),
            ),
            Ghost::NoNetns => (
                "Error response from daemon: bind-mount /proc/0/ns/net -> /run/docker/netns/e88183f08b99: \
                 no such file or directory",
                FailStep::Restore,
                None,
            ),
        })
    }
}

/// Where each variant's ghost-limit is read, by the facts of runc's and crun's CRIU code: runc
/// names runc.conf (or the annotation's file); crun before 1.26 names no file; crun 1.26+ names
/// the annotation's file, else crun.conf, else runc.conf, with CRIU 4.2's libcriu only. CRIU reads
/// default.conf itself. Docker adds its own failures where the checkpoint would pass (measured).
#[rstest]
#[case::no_config_runc("netty-jni-ghost-file", "podman", "runc", "1.3.6", "4.2.1", Ghost::OverLimit)]
#[case::no_config_crun("netty-jni-ghost-file", "podman", "crun", "1.28", "4.2.1", Ghost::OverLimit)]
#[case::runc_conf_runc_1_1_5("netty-jni-ghost-file-runc-conf", "podman", "runc", "1.1.5", "3.17.1", Ghost::Dumped)]
#[case::runc_conf_runc_1_1_15("netty-jni-ghost-file-runc-conf", "podman", "runc", "1.1.15", "4.1.1", Ghost::Dumped)]
#[case::runc_conf_crun_1_21("netty-jni-ghost-file-runc-conf", "podman", "crun", "1.21", "4.1.1", Ghost::OverLimit)]
#[case::runc_conf_crun_1_26_old_libcriu(
    "netty-jni-ghost-file-runc-conf",
    "podman",
    "crun",
    "1.26",
    "4.1.1",
    Ghost::OverLimit
)]
#[case::runc_conf_crun_1_28("netty-jni-ghost-file-runc-conf", "podman", "crun", "1.28", "4.2.1", Ghost::Dumped)]
#[case::default_conf_runc("netty-jni-ghost-file-default-conf", "podman", "runc", "1.1.15", "4.1.1", Ghost::Dumped)]
#[case::default_conf_crun_1_8("netty-jni-ghost-file-default-conf", "podman", "crun", "1.8.1", "3.17.1", Ghost::Dumped)]
#[case::default_conf_crun_1_21("netty-jni-ghost-file-default-conf", "podman", "crun", "1.21", "4.1.1", Ghost::Dumped)]
#[case::crun_conf_runc("netty-jni-ghost-file-crun-conf", "podman", "runc", "1.3.6", "4.2.1", Ghost::OverLimit)]
#[case::crun_conf_crun_1_21("netty-jni-ghost-file-crun-conf", "podman", "crun", "1.21", "4.1.1", Ghost::OverLimit)]
#[case::crun_conf_crun_1_26_old_libcriu(
    "netty-jni-ghost-file-crun-conf",
    "podman",
    "crun",
    "1.26",
    "4.1.1",
    Ghost::OverLimit
)]
#[case::crun_conf_crun_1_26("netty-jni-ghost-file-crun-conf", "podman", "crun", "1.26", "4.2", Ghost::Dumped)]
#[case::annotation_runc_1_1_5("netty-jni-ghost-file-annotation", "podman", "runc", "1.1.5", "3.17.1", Ghost::Dumped)]
#[case::annotation_crun_1_21("netty-jni-ghost-file-annotation", "podman", "crun", "1.21", "4.1.1", Ghost::OverLimit)]
#[case::annotation_crun_1_26_old_libcriu(
    "netty-jni-ghost-file-annotation",
    "podman",
    "crun",
    "1.26",
    "4.1.1",
    Ghost::NoLibcriuConfig
)]
#[case::annotation_crun_1_28("netty-jni-ghost-file-annotation", "podman", "crun", "1.28", "4.2.1", Ghost::Dumped)]
#[case::docker_26_no_config_runc("netty-jni-ghost-file", "docker", "runc", "1.1.15", "4.1.1", Ghost::OverLimit)]
#[case::docker_26_no_config_crun("netty-jni-ghost-file", "docker", "crun", "1.21", "4.1.1", Ghost::NoWorkDir)]
#[case::docker_28_no_config_crun("netty-jni-ghost-file", "docker", "crun", "1.28", "4.2.1", Ghost::OverLimit)]
#[case::docker_26_runc_conf_runc("netty-jni-ghost-file-runc-conf", "docker", "runc", "1.1.15", "4.1.1", Ghost::Dumped)]
#[case::docker_26_annotation_crun(
    "netty-jni-ghost-file-annotation",
    "docker",
    "crun",
    "1.21",
    "4.1.1",
    Ghost::NoWorkDir
)]
#[case::docker_28_runc_conf_runc("netty-jni-ghost-file-runc-conf", "docker", "runc", "1.3.6", "4.2.1", Ghost::NoNetns)]
#[case::docker_28_default_conf_crun(
    "netty-jni-ghost-file-default-conf",
    "docker",
    "crun",
    "1.28",
    "4.2.1",
    Ghost::StaleTask
)]
#[case::docker_28_crun_conf_runc(
    "netty-jni-ghost-file-crun-conf",
    "docker",
    "runc",
    "1.3.6",
    "4.2.1",
    Ghost::OverLimit
)]
fn the_ghost_limit_holds_where_the_runtime_or_criu_reads_it(
    #[case] id: &str,
    #[case] engine: &'static str,
    #[case] runtime: &'static str,
    #[case] version: &'static str,
    #[case] criu: &'static str,
    #[case] ghost: Ghost,
) {
    // The suites' docker: 26.1.5 with CRIU 4.1.1 (trixie), 28.5.2 with CRIU 4.2.1 (sid).
    let engine_version = match (engine, criu) {
        ("docker", "4.2.1") => "28.5.2",
        ("docker", _) => "26.1.5",
        _ => "5.4.2",
    };
    let cell = ConfigCell { engine, engine_version, runtime, version, criu };
    let e = scenario(id).expectation_for(&cell);
    match ghost.line() {
        None => assert_eq!(e.outcome, ExpectedOutcome::Passes, "{:?}", e.reason),
        Some((line, step, round)) => {
            assert_eq!((e.outcome, e.step, e.round), (ExpectedOutcome::Fails, Some(step), round), "{:?}", e.reason);
            assert!(e.signature.as_ref().is_some_and(|s| s.is_match(line)), "{:?} !~ {line}", e.signature);
        }
    }
}
