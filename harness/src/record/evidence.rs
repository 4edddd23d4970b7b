//! What the harness saw of a container, recorded with the round that saw it: where its
//! processes were in the cgroup tree, which pidfds they held, the state of every task, what a
//! VNC viewer saw, the PIDs of named processes, and the CRIU configuration in force. The
//! observers of `observe/` and the steps of `execute/` fill these in; reports read them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where every process of a container was, as recorded with a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// The container's cgroup, as a path under the cgroup root of each judged hierarchy.
    pub container_cgroup: String,
    /// Where `container_cgroup` came from: `engine` (the OCI config) or `first process`.
    pub source: String,
    /// The hierarchies judged: `v1` (every numbered v1 hierarchy) or `v2` (the unified one).
    pub judged: String,
    pub processes: Vec<ProcessPlacement>,
}

/// One process and its cgroups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessPlacement {
    /// The PID as the host (and the stack, and CRIU's log) sees it.
    pub pid: u32,
    /// The PID inside the container's PID namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_pid: Option<u32>,
    pub comm: String,
    /// The lines of `/proc/PID/cgroup`, as read.
    pub cgroups: Vec<String>,
    /// Whether every judged line is the container's cgroup or below it.
    pub inside: bool,
}

impl Placement {
    pub fn outside(&self) -> impl Iterator<Item = &ProcessPlacement> {
        self.processes.iter().filter(|p| !p.inside)
    }

    /// One line per process outside the container's cgroup, for a verification failure.
    pub fn describe_outside(&self) -> String {
        let lines: Vec<String> =
            self.outside().map(|p| format!("  pid {} ({}): {}", p.pid, p.comm, p.cgroups.join(" "))).collect();
        format!(
            "{} of {} processes are outside the container's cgroup {} ({} hierarchies, from the {}):\n{}",
            lines.len(),
            self.processes.len(),
            self.container_cgroup,
            self.judged,
            self.source,
            lines.join("\n")
        )
    }
}

/// One pidfd held by a process of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidfdHolder {
    /// The holder, as the host sees it, and inside the container.
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_pid: Option<u32>,
    pub comm: String,
    pub fd: u32,
    /// The target as the host sees it: -1 when it has exited, 0 when the host cannot see it.
    pub target_pid: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ns_pid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_comm: Option<String>,
    /// Whether the target is one of the container's processes (in the tree CRIU dumps).
    pub target_in_container: bool,
    /// Opened with PIDFD_THREAD: it refers to a thread, which CRIU does not support.
    pub thread: bool,
}

impl PidfdHolder {
    /// One line: `xfce4-terminal (pid 61, 40 in the container) fd 14 -> bash (pid 75, 54 in the container)`.
    pub fn describe(&self) -> String {
        let within = |ns: Option<i64>| ns.map(|n| format!(", {n} in the container")).unwrap_or_default();
        let target = match (self.target_pid, &self.target_comm) {
            (-1, _) => "an exited process".to_string(),
            (0, _) => "a process outside this PID namespace".to_string(),
            (pid, Some(comm)) => format!("{comm} (pid {pid}{})", within(self.target_ns_pid)),
            (pid, None) => format!("pid {pid}"),
        };
        let mut line = format!(
            "{} (pid {}{}) fd {} -> {target}",
            self.comm,
            self.pid,
            within(self.ns_pid.map(i64::from)),
            self.fd
        );
        if !self.target_in_container && self.target_pid > 0 {
            line.push_str(", outside the container");
        }
        if self.thread {
            line.push_str(", PIDFD_THREAD");
        }
        line
    }
}

/// How many tasks were in each state, and each one that was in uninterruptible sleep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskStates {
    /// State letter (`R`, `S`, `D`, `Z`, ...) -> number of tasks (threads) in it.
    pub counts: BTreeMap<String, u32>,
    /// Every task in state D, with where in the kernel it slept.
    #[serde(default)]
    pub uninterruptible: Vec<SleepingTask>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SleepingTask {
    /// The process (as the host sees it) and the task (thread) id.
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// `/proc/PID/task/TID/wchan`: the kernel function it sleeps in.
    pub wchan: String,
}

/// A VNC session after a restore: the handshake and the picture.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VncSeen {
    /// `3.8 vnc-auth`: the protocol version and security type agreed.
    pub protocol: String,
    pub desktop: String,
    pub width: u16,
    pub height: u16,
    pub distinct_colors: usize,
    /// The PNG in the cell's log directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<String>,
    pub seconds: f64,
}

/// A process as the host sees it: its PID and its start time (clock ticks after boot). A
/// restore makes new processes; a container that was never restored keeps its first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProcess {
    pub pid: u32,
    pub start_time: u64,
}

impl std::fmt::Display for HostProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} started at tick {}", self.pid, self.start_time)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningSeen {
    pub before: Vec<u32>,
    pub after: Vec<u32>,
}

/// A failed round of a stress cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundFailure {
    pub step: String,
    pub message: String,
    /// The stress scenario's signatures this round's evidence matched, with the first line of each.
    #[serde(default)]
    pub signatures: Vec<SignatureHit>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignatureHit {
    pub name: String,
    pub line: String,
}

/// What CRIU could be configured by during a cell, besides the options the runtime passes:
/// every file in the stack's `/etc/criu/` (`default.conf`, which CRIU reads itself, and the
/// runtimes' `runc.conf`, `crun.conf`) and the `org.criu.config` annotation of the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriuConfigRecord {
    pub files: Vec<CriuConfigFileRecord>,
    /// The value of the container's `org.criu.config` annotation, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriuConfigFileRecord {
    /// The path in the stack.
    pub path: String,
    pub text: String,
    /// Written for this cell by the harness (else it belongs to the stack, and stays).
    pub by_harness: bool,
}

/// One mount of a container's table, as compared across a restore (see `observe::mounts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSeen {
    pub mount_point: String,
    pub root: String,
    /// Per-mount options, sorted (`nosuid,ro`).
    pub options: String,
    pub fs_type: String,
    pub source: String,
    /// Per-superblock options, sorted, less overlay's storage paths.
    pub super_options: String,
}

impl MountSeen {
    pub fn describe(&self) -> String {
        format!("{} {} ({} {}) {}", self.fs_type, self.root, self.options, self.super_options, self.source)
    }
}

/// What changed at one mount point across a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountChange {
    pub mount_point: String,
    /// `root`, `options`, `fs_type`, `source`, `super_options`, or `mount` (gone or new).
    pub field: String,
    pub before: String,
    pub after: String,
}

impl MountChange {
    pub fn describe(&self) -> String {
        format!("{} {}: {} -> {}", self.mount_point, self.field, self.before, self.after)
    }
}
