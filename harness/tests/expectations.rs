//! The committed scenarios' `expect:` clauses, checked against the facts of cells that cannot
//! run on this machine yet (a VM with systemd on cgroup v2, a crun before 1.21): which clause
//! applies where. No containers.

use criu_matrix::axes::Axis;
use criu_matrix::execute::{Failure, Outcome};
use criu_matrix::record::Verdict;
use criu_matrix::scenario::{load_all, CellFacts, Expectation, ExpectedOutcome, FailStep, Scenario};
use rstest::rstest;
use std::path::Path;

/// A cell as a clause sees it, written out by hand.
struct Cell {
    runtime: &'static str,
    version: &'static str,
    cgroup: &'static str,
    manager: &'static str,
}

impl Cell {
    fn named(&self, name: &str) -> Option<String> {
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
}

impl CellFacts for Cell {
    axes_by_name!();
    fn tool_version(&self, tool: &str) -> Option<criu_matrix::version::ToolVersion> {
        (tool == self.runtime).then(|| criu_matrix::version::parse_lenient(self.version)).flatten()
    }
}

/// A test cell answers `when:` axes and the cgroup manager by name (its own `named`).
macro_rules! axes_by_name {
    () => {
        fn axis(&self, axis: Axis) -> Option<String> {
            self.named(axis.name())
        }
        fn cgroup_manager(&self) -> Option<String> {
            self.named("cgroup_manager")
        }
    };
}
use axes_by_name;

/// A cell whose round `round` failed at `step` with `line` in the engine's or CRIU's output,
/// judged against what the scenario and the known issues expect there.
fn judged(e: &Expectation, step: FailStep, round: u32, line: &str) -> criu_matrix::verdict::Classification {
    let failure =
        Failure { round, step, message: "failed".into(), evidence: format!("noise before\n{line}\nnoise after") };
    criu_matrix::verdict::classify(e, &Outcome::Failed(failure))
}

/// A cell whose every round passed, judged.
fn passed(e: &Expectation) -> Verdict {
    criu_matrix::verdict::classify(e, &Outcome::Passed { rounds: 3 }).verdict
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
#[case::crun_1_8_systemd_v1(
    "crun",
    "1.8.1",
    "v1",
    "systemd",
    Some("(00.036468) Error (criu/cgroup.c:1357): cg: Failed writing 0-1 to cpuset/machine.slice/libpod-5438.scope/container/cpuset.cpus: Permission denied")
)]
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
            // The cgroup v1 cpuset failure (measured) comes at the first restore already.
            let (round, step) =
                if line.contains("cpuset") { (1, FailStep::Restore) } else { (2, FailStep::Checkpoint) };
            assert_eq!((e.outcome, e.round, e.step), (ExpectedOutcome::Fails, Some(round), Some(step)));
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

/// A cell as the VNC desktop's clauses see it: runtime, CRIU's and the kernel's versions.
struct DesktopCell {
    runtime: &'static str,
    runtime_version: &'static str,
    criu: &'static str,
    linux: &'static str,
}

impl DesktopCell {
    fn named(&self, name: &str) -> Option<String> {
        match name {
            "engine" => Some("podman".to_string()),
            "runtime" => Some(self.runtime.to_string()),
            _ => None,
        }
    }
}

impl CellFacts for DesktopCell {
    axes_by_name!();
    fn tool_version(&self, tool: &str) -> Option<criu_matrix::version::ToolVersion> {
        let version = match tool {
            "criu" => self.criu,
            "linux" => self.linux,
            t if t == self.runtime => self.runtime_version,
            _ => return None,
        };
        criu_matrix::version::parse_lenient(version)
    }
}

const PIDFD_6_1: &str = "Error (criu/files-ext.c:94): Can't dump file 11 of that type [600] (anon anon_inode:[pidfd])";
const PIDFD_PIDFS: &str = "Can't dump file 9 of that type [700] (anon anon_inode:[pidfd])";
const TCP_6_16: &str = "Error (criu/sockets.c:628): sockets: Can't get 1:16 opt: Operation not supported";
const INOTIFY: &str = "(10.661234) Error (criu/fsnotify.c:284): fsnotify: \tCan't dump that handle";
/// What `cat /sys/class/net/lo/operstate` prints in a container whose loopback is down.
const LO_DOWN: &str = "down";
const SETNS: &str = "(04.757609)    116: Error (criu/namespaces.c:258): Can't setns 7/mnt: Invalid argument";

fn desktop(
    runtime: &'static str,
    runtime_version: &'static str,
    criu: &'static str,
    linux: &'static str,
) -> DesktopCell {
    DesktopCell { runtime, runtime_version, criu, linux }
}

/// Failure case 4 (criu#2459): CRIU before 4.1 stops at the first pidfd, with the mode of an
/// anonymous inode (6.1) or of pidfs (6.9+); 4.1.x on 6.16+ stops earlier, at the VNC server's
/// TCP socket (criu#2705); 4.1+ elsewhere dumps the pidfds and stops at ibus-daemon's inotify
/// watch (criu#2734), unless the irmap hint reaches it (runc, crun >= 1.26); then 4.1 restores
/// fail on a unix socket (criu#2687) and 4.2 passes with crun (runc leaves loopback down).
#[rstest]
#[case::bookworm_in_its_vm(
    "vnc-xfce-pidfd",
    desktop("runc", "1.1.5", "3.17.1", "6.1.0-50-cloud-amd64"),
    Some(PIDFD_6_1)
)]
#[case::old_criu_on_pidfs("vnc-xfce-pidfd", desktop("runc", "1.1.15", "4.0", "6.12.73"), Some(PIDFD_PIDFS))]
#[case::trixie_on_6_18("vnc-xfce-pidfd", desktop("crun", "1.21", "4.1.1", "6.18.44-fc-v657"), Some(TCP_6_16))]
#[case::trixie_in_6_1("vnc-xfce-pidfd", desktop("runc", "1.1.15", "4.1.1", "6.1.0-50-cloud-amd64"), Some(INOTIFY))]
#[case::sid_on_6_18("vnc-xfce-pidfd", desktop("crun", "1.28", "4.2.1", "6.18.44-fc-v657"), Some(INOTIFY))]
#[case::hint_bookworm(
    "vnc-xfce-pidfd-irmap-hint",
    desktop("runc", "1.1.5", "3.17.1", "6.1.0-50-cloud-amd64"),
    Some(PIDFD_6_1)
)]
#[case::hint_trixie_on_6_18("vnc-xfce-pidfd-irmap-hint", desktop("runc", "1.1.15", "4.1.1", "6.18.44"), Some(TCP_6_16))]
#[case::hint_unread_by_crun_1_21(
    "vnc-xfce-pidfd-irmap-hint",
    desktop("crun", "1.21", "4.1.1", "6.1.0-50-cloud-amd64"),
    Some(INOTIFY)
)]
#[case::hint_trixie_runc_in_6_1(
    "vnc-xfce-pidfd-irmap-hint",
    desktop("runc", "1.1.15", "4.1.1", "6.1.0-50-cloud-amd64"),
    Some(SETNS)
)]
#[case::hint_sid_crun("vnc-xfce-pidfd-irmap-hint", desktop("crun", "1.28", "4.2.1", "6.18.44-fc-v657"), None)]
#[case::hint_sid_runc("vnc-xfce-pidfd-irmap-hint", desktop("runc", "1.3.6", "4.2.1", "6.18.44-fc-v657"), Some(LO_DOWN))]
fn the_desktop_fails_where_criu_cannot_dump_what_it_holds(
    #[case] id: &str,
    #[case] cell: DesktopCell,
    #[case] log_line: Option<&str>,
) {
    let e = scenario(id).expectation_for(&cell);
    match log_line {
        None => assert_eq!(passed(&e), Verdict::Pass),
        Some(line) => {
            let step = match line {
                SETNS => FailStep::Restore,
                LO_DOWN => FailStep::Verify,
                _ => FailStep::Checkpoint,
            };
            let c = judged(&e, step, 1, line);
            assert_eq!(c.verdict, Verdict::Reproduced, "{}", c.reason);
            // Criu#2705 is a known issue now, held after the scenario's clauses.
            assert_eq!(c.clause.known_issue(), (line == TCP_6_16).then_some("criu#2705"), "{}", c.reason);
            assert_ne!(passed(&e), Verdict::Pass, "a cell expected to fail here must not pass quietly");
        }
    }
}

/// A docker (or podman) cell on this machine's kernel, as a clause sees it.
struct EngineCell {
    engine: &'static str,
    runtime: &'static str,
    runtime_version: &'static str,
    docker: &'static str,
}

impl EngineCell {
    fn named(&self, name: &str) -> Option<String> {
        match name {
            "engine" => Some(self.engine.to_string()),
            "runtime" => Some(self.runtime.to_string()),
            "cgroup" => Some("v1".to_string()),
            "cgroup_manager" => Some("cgroupfs".to_string()),
            _ => None,
        }
    }
}

impl CellFacts for EngineCell {
    axes_by_name!();
    fn tool_version(&self, tool: &str) -> Option<criu_matrix::version::ToolVersion> {
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
#[case::crun_1_21("baseline-counter", "docker", "crun", "1.21", "26.1.5", Some((FailStep::Checkpoint, vec![(WORK_DIR, "crun#1741")])))]
#[case::crun_1_28_docker_28("baseline-counter", "docker", "crun", "1.28", "28.5.2", Some((FailStep::Restore, vec![(STALE_TASK, "moby#50750")])))]
#[case::runc_docker_28("baseline-counter", "docker", "runc", "1.3.6", "28.5.2", Some((FailStep::Restore, vec![(PID_ZERO, "containerd#12141"), (ALREADY_EXISTS, "moby#42900")])))]
#[case::runc_docker_26("baseline-counter", "docker", "runc", "1.1.15", "26.1.5", Some((FailStep::Restore, vec![(ALREADY_EXISTS, "moby#42900")])))]
#[case::export_runc("baseline-counter-export", "docker", "runc", "1.1.15", "26.1.5", Some((FailStep::Restore, vec![(CHECKPOINT_DIR, "moby#37344")])))]
#[case::export_crun_1_28("baseline-counter-export", "docker", "crun", "1.28", "28.5.2", Some((FailStep::Restore, vec![(CHECKPOINT_DIR, "moby#37344")])))]
#[case::desktop_crun_1_21("vnc-xfce-pidfd", "docker", "crun", "1.21", "26.1.5", Some((FailStep::Checkpoint, vec![(WORK_DIR, "crun#1741")])))]
#[case::desktop_hint_sid_crun("vnc-xfce-pidfd-irmap-hint", "docker", "crun", "1.28", "28.5.2", Some((FailStep::Restore, vec![(CHECKPOINT_DIR, "moby#37344")])))]
#[case::desktop_hint_sid_runc("vnc-xfce-pidfd-irmap-hint", "docker", "runc", "1.3.6", "28.5.2", Some((FailStep::Restore, vec![(CHECKPOINT_DIR, "moby#37344")])))]
#[case::desktop_hint_sid_podman("vnc-xfce-pidfd-irmap-hint", "podman", "crun", "1.28", "28.5.2", None)]
#[case::podman_runc("baseline-counter", "podman", "runc", "1.1.15", "26.1.5", None)]
#[case::podman_crun_export("baseline-counter-export", "podman", "crun", "1.21", "26.1.5", None)]
fn docker_cells_expect_the_docker_failures_measured_here(
    #[case] id: &str,
    #[case] engine: &'static str,
    #[case] runtime: &'static str,
    #[case] runtime_version: &'static str,
    #[case] docker: &'static str,
    #[case] expected: Option<(FailStep, Vec<(&str, &str)>)>,
) {
    let e = scenario(id).expectation_for(&EngineCell { engine, runtime, runtime_version, docker });
    match expected {
        None => {
            assert_eq!(passed(&e), Verdict::Pass);
            assert!(e.known.is_empty(), "no known issue applies to a podman cell");
        }
        Some((step, lines)) => {
            for (line, id) in lines {
                let c = judged(&e, step, 1, line);
                assert_eq!((c.verdict, c.clause.known_issue()), (Verdict::Reproduced, Some(id)), "{}", c.reason);
                // The same failure at another step is no reproduction.
                let other = if step == FailStep::Restore { FailStep::Checkpoint } else { FailStep::Restore };
                assert_eq!(judged(&e, other, 1, line).verdict, Verdict::Fail);
            }
        }
    }
}

/// A stress cell on docker: every round a known issue stopped is that issue's (docker's own
/// failures come before any freezer can), and the cell is `reproduced` under its id.
#[rstest]
#[case::stress_crun_1_21("freezer-stress", "crun", "1.21", "26.1.5", FailStep::Checkpoint, WORK_DIR, "crun#1741")]
#[case::stress_runc_docker_28(
    "freezer-stress",
    "runc",
    "1.3.6",
    "28.5.2",
    FailStep::Restore,
    PID_ZERO,
    "containerd#12141"
)]
#[case::stress_crun_docker_28("freezer-stress", "crun", "1.28", "28.5.2", FailStep::Restore, STALE_TASK, "moby#50750")]
#[case::stress_runc_docker_26(
    "freezer-stress",
    "runc",
    "1.1.15",
    "26.1.5",
    FailStep::Restore,
    ALREADY_EXISTS,
    "moby#42900"
)]
#[case::vfork_runc_docker_26(
    "freezer-stress-vfork",
    "runc",
    "1.1.15",
    "26.1.5",
    FailStep::Restore,
    ALREADY_EXISTS,
    "moby#42900"
)]
fn docker_stress_cells_are_their_known_issues(
    #[case] id: &str,
    #[case] runtime: &'static str,
    #[case] runtime_version: &'static str,
    #[case] docker: &'static str,
    #[case] step: FailStep,
    #[case] line: &str,
    #[case] known: &str,
) {
    let e = scenario(id).expectation_for(&EngineCell { engine: "docker", runtime, runtime_version, docker });
    let failure = |round| Failure { round, step, message: "failed".into(), evidence: line.to_string() };
    // A failed checkpoint leaves the workload running and the rounds go on; a failed restore
    // leaves no container, and ends the cell.
    let failures = if step == FailStep::Checkpoint { vec![failure(1), failure(2)] } else { vec![failure(1)] };
    let ran = failures.len() as u32;
    let run = criu_matrix::execute::StressRun {
        planned: 20,
        ran,
        failures,
        ended_early: (step == FailStep::Restore).then(|| "stopped after round 1".into()),
    };
    let c = criu_matrix::verdict::classify(&e, &Outcome::Stress(run));
    assert_eq!((c.verdict, c.clause.known_issue()), (Verdict::Reproduced, Some(known)), "{}", c.reason);
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

impl ConfigCell {
    fn named(&self, name: &str) -> Option<String> {
        match name {
            "engine" => Some(self.engine.to_string()),
            "runtime" => Some(self.runtime.to_string()),
            _ => None,
        }
    }
}

impl CellFacts for ConfigCell {
    axes_by_name!();
    fn tool_version(&self, tool: &str) -> Option<criu_matrix::version::ToolVersion> {
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
        None => assert_eq!(passed(&e), Verdict::Pass, "{:?}", e.reason),
        Some((line, step, round)) => {
            let c = judged(&e, step, round.unwrap_or(2), line);
            assert_eq!(c.verdict, Verdict::Reproduced, "{}", c.reason);
            let known = match ghost {
                Ghost::NoWorkDir => Some("crun#1741"),
                Ghost::StaleTask => Some("moby#50750"),
                Ghost::NoNetns => Some("containerd#12141"),
                _ => None,
            };
            assert_eq!(c.clause.known_issue(), known, "{}", c.reason);
        }
    }
}

/// A cell as the freezer clauses see it: CRIU's version, the kernel's, and the cgroup layout.
struct FreezerCell {
    criu: &'static str,
    linux: &'static str,
    cgroup: &'static str,
}

impl FreezerCell {
    fn named(&self, name: &str) -> Option<String> {
        (name == "cgroup").then(|| self.cgroup.to_string())
    }
}

impl CellFacts for FreezerCell {
    axes_by_name!();
    fn tool_version(&self, tool: &str) -> Option<criu_matrix::version::ToolVersion> {
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
#[case::criu_4_1_on_7_2("4.1.1", "7.2.0", "v2", None)]
fn the_freezer_bug_may_show_only_before_criu_4_1_on_cgroup_v1(
    #[case] criu: &'static str,
    #[case] linux: &'static str,
    #[case] cgroup: &'static str,
    #[case] rate: Option<&str>,
) {
    let e = scenario("freezer-stress").expectation_for(&FreezerCell { criu, linux, cgroup });
    // Criu#3002 (every dump fails on 7.1+ before 4.2) is a known issue held after the clauses.
    let known: Vec<_> = e.known.iter().filter_map(|k| k.source.known_issue()).collect();
    assert_eq!(known.contains(&"criu#3002"), linux.starts_with('7') && criu < "4.2", "{known:?}");
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
    // Before 4.1 on v1 it was measured in every run (a lower bound); elsewhere it may show.
    assert_eq!(!e.rate_bound().admits_none(), case_2, "{}", e.rate_bound());
    assert_eq!(e.intermittent, !case_2);
    let signature = e.signature.expect("a signature");
    assert!(signature.is_match(VFORK_WAIT));
    assert_eq!(signature.is_match(UPSTREAM_FREEZING), case_2, "{signature}");
}
