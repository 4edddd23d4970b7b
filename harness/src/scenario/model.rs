//! The scenario file format: what a YAML file in `scenarios/` may say.
//!
//! Every struct denies unknown fields and no enum is untagged: a typo in a scenario is an error
//! at its line and column, never a silently ignored key.

use super::duration::duration_text;
use super::stack_needs::{CriuConfigFile, MountSpec, ServiceSpec};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::time::Duration;

/// One failure case (or a control), exactly as written in its YAML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub id: Spanned<String>,
    pub summary: String,
    /// Upstream reports, as `owner/repo#N` or URLs. Empty for controls.
    #[serde(default)]
    pub upstream: Vec<String>,
    /// Directory name under `images/`, holding a `Containerfile`.
    pub image: Spanned<String>,
    pub run: RunSpec,
    pub ready: ReadySpec,
    #[serde(default = "default_rounds")]
    pub rounds: u32,
    #[serde(default)]
    pub checkpoint: CheckpointSpec,
    /// Checks before the first checkpoint that the case needs to mean anything (e.g. a pidfd is
    /// held); one that does not hold makes the cell an `error`, never a result about CRIU.
    #[serde(default)]
    pub precheck: Vec<PrecheckStep>,
    #[serde(default)]
    pub verify: Vec<VerifyStep>,
    /// Commands run in the container before each checkpoint (`podman exec`), after the witness
    /// is read: each must succeed (and print what `output` matches, line by line); what each
    /// printed is kept with its round, to be compared with what the checks after the restore see.
    #[serde(default)]
    pub before_checkpoint: Vec<ExecCheck>,
    /// Why this scenario has no witness (no `counter:` step): without one, a workload started
    /// again instead of restored could pass. Every image of this project carries a witness; a
    /// scenario that cannot must say why here.
    #[serde(default)]
    pub no_witness: Option<Spanned<String>>,
    /// Per-step time limits; each has a default.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// First matching clause wins; a scenario without one expects a pass everywhere.
    #[serde(default)]
    pub expect: Vec<ExpectClause>,
    /// Daemons run in the stack for the cell's lifetime (see `stack_needs`).
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// Paths of the stack bind-mounted into the container.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// Files written into the stack's `/etc/criu/` for the cell's lifetime.
    #[serde(default)]
    pub criu_config: Vec<CriuConfigFile>,
    /// Makes the cell a stress cell: rounds go on after a failed checkpoint while the workload
    /// still runs, and the result is a failure rate (see `expect:`'s `failure_rate`).
    #[serde(default)]
    pub stress: Option<StressSpec>,
}

/// A stress scenario's own settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StressSpec {
    /// Named patterns searched in every failed round's evidence; each match is recorded with the
    /// round (which of the known failure signs that round showed).
    #[serde(default)]
    pub signatures: Vec<NamedPattern>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPattern {
    pub name: Spanned<String>,
    /// A regular expression, searched line by line.
    pub pattern: Spanned<String>,
}

fn default_rounds() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Command and arguments of the workload; the image's default when empty.
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub env: Vec<String>,
    /// OCI annotations of the container (`--annotation KEY=VALUE`), e.g. `org.criu.config`: the
    /// CRIU configuration file runc (and crun >= 1.26) names to CRIU instead of its own.
    #[serde(default)]
    pub annotations: BTreeMap<String, Spanned<String>>,
    /// Anonymous volumes of the container, by their path in it (`--volume /data`); removed with
    /// the container.
    #[serde(default)]
    pub volumes: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No network namespace wiring: a cell does not depend on the host firewall.
    #[default]
    None,
    /// The engine's default bridge network.
    Bridge,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReadySpec {
    /// The workload is ready once this file exists inside the container (and is not empty).
    pub file: String,
    #[serde(default = "default_ready_timeout", with = "duration_text")]
    pub timeout: Duration,
}

fn default_ready_timeout() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Export the checkpoint to an archive and restore it into a new container (`--export` /
    /// `--import`), instead of restoring the same container in place.
    #[serde(default)]
    pub export: bool,
    /// Checkpoint and restore established TCP connections (`--tcp-established`).
    #[serde(default)]
    pub tcp_established: bool,
    /// Checkpoint and restore file locks (`--file-locks`).
    #[serde(default)]
    pub file_locks: bool,
    /// Leave the container running after the checkpoint (`--leave-running`); with `export`, the
    /// restore is a second container beside it (a running container cannot be restored in place).
    #[serde(default)]
    pub leave_running: bool,
    /// A pre-checkpoint first (`--pre-checkpoint`: memory only, the container keeps running),
    /// then the checkpoint with it as its parent (`--with-previous`; `--import-previous` for an
    /// export). Needs the kernel's memory tracking (soft-dirty).
    #[serde(default)]
    pub pre_checkpoint: bool,
    /// Leave the container's volumes out of the exported archive (`--ignore-volumes`).
    #[serde(default)]
    pub ignore_volumes: bool,
    /// Leave the container's changes to its root filesystem out of the exported archive, and
    /// restore without them (`--ignore-rootfs`).
    #[serde(default)]
    pub ignore_rootfs: bool,
    /// The exported archive's compression (`--compress`); the engine's default when absent.
    #[serde(default)]
    pub compress: Option<Compression>,
}

/// How an exported checkpoint archive is compressed (podman's `--compress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// A checkpoint option a scenario asks for, as engines name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointOption {
    TcpEstablished,
    FileLocks,
    LeaveRunning,
    PreCheckpoint,
    IgnoreVolumes,
    IgnoreRootfs,
    Compress,
}

impl CheckpointOption {
    /// The option as podman's CLI spells it.
    pub fn flag(self) -> &'static str {
        match self {
            CheckpointOption::TcpEstablished => "--tcp-established",
            CheckpointOption::FileLocks => "--file-locks",
            CheckpointOption::LeaveRunning => "--leave-running",
            CheckpointOption::PreCheckpoint => "--pre-checkpoint",
            CheckpointOption::IgnoreVolumes => "--ignore-volumes",
            CheckpointOption::IgnoreRootfs => "--ignore-rootfs",
            CheckpointOption::Compress => "--compress",
        }
    }
}

impl CheckpointSpec {
    /// The options this checkpoint asks of the engine.
    pub fn options(&self) -> Vec<CheckpointOption> {
        use CheckpointOption::*;
        [
            (self.tcp_established, TcpEstablished),
            (self.file_locks, FileLocks),
            (self.leave_running, LeaveRunning),
            (self.pre_checkpoint, PreCheckpoint),
            (self.ignore_volumes, IgnoreVolumes),
            (self.ignore_rootfs, IgnoreRootfs),
            (self.compress.is_some(), Compress),
        ]
        .into_iter()
        .filter_map(|(on, option)| on.then_some(option))
        .collect()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum VerifyStep {
    /// The witness: a file where the workload writes `ID COUNT`, a random identity it drew at
    /// start and keeps in memory, and a count it keeps in memory. After a restore the identity
    /// must be the one read before the checkpoint, the count not lower and then growing.
    Counter(Spanned<String>),
    /// How many processes must live in the container after a restore.
    Processes(ProcessCount),
    /// A command run in the container (`podman exec`) that must succeed, e.g. a D-Bus call the
    /// workload must still answer.
    Exec(ExecCheck),
    /// Where each process of the container is in the cgroup tree: recorded with the round, and
    /// (unless `enforce: false`) every process must be inside the container's cgroup.
    CgroupPlacement(PlacementSpec),
    /// Connect to the container's VNC server as a viewer does (RFB handshake, one full
    /// framebuffer update), keep the picture, and require a drawn desktop.
    Vnc(VncCheck),
    /// The container's mount table (its first process's mountinfo) before the checkpoint
    /// against after the restore: mount points, roots, options, filesystem and superblock
    /// options, less what a restore always renews (see `observe::mounts`). Every change is
    /// recorded with its round; unless `enforce: false`, one fails the round.
    Mounts(PlacementSpec),
    /// Processes (by command name) that must still run after a restore, with the PIDs they had
    /// inside the container before the checkpoint: restored, not started again.
    Running(Spanned<Vec<String>>),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VncCheck {
    /// The X display: the server listens on TCP port 5900 + display in the container.
    pub display: u16,
    /// The VNC password, when the server asks for VNC authentication.
    #[serde(default)]
    pub password: Option<String>,
    /// Keep the framebuffer as `screenshot-roundN.png` (and `screenshot-final.png`) in the cell's logs.
    #[serde(default = "screenshot_by_default")]
    pub screenshot: bool,
    /// The fewest distinct colors the picture must have: a bare or black screen has one or two.
    #[serde(default = "default_min_colors")]
    pub min_colors: u32,
}

fn screenshot_by_default() -> bool {
    true
}

fn default_min_colors() -> u32 {
    16
}

impl VncCheck {
    pub fn port(&self) -> u16 {
        // Bounded when the scenario is validated (`bounds::MAX_DISPLAY`); never an overflow.
        5900u16.saturating_add(self.display)
    }
}

/// A check before the first checkpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum PrecheckStep {
    /// At least this many pidfds held by the container's processes (waited for, up to the
    /// verify timeout); every one found is recorded with its holder and target.
    PidfdHolders(PidfdCount),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PidfdCount {
    pub at_least: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCheck {
    pub args: Spanned<Vec<String>>,
    /// A regular expression its standard output must match.
    #[serde(default)]
    pub output: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessCount {
    pub at_least: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSpec {
    /// Whether a process outside the container's cgroup fails the round. `false` only records
    /// where each process is: for a scenario whose bug must get to a later step to show itself.
    #[serde(default = "enforce_by_default")]
    pub enforce: bool,
}

fn enforce_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "secs::<120>", with = "duration_text")]
    pub start: Duration,
    #[serde(default = "secs::<120>", with = "duration_text")]
    pub checkpoint: Duration,
    #[serde(default = "secs::<120>", with = "duration_text")]
    pub restore: Duration,
    #[serde(default = "secs::<30>", with = "duration_text")]
    pub verify: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { start: secs::<120>(), checkpoint: secs::<120>(), restore: secs::<120>(), verify: secs::<30>() }
    }
}

fn secs<const N: u64>() -> Duration {
    Duration::from_secs(N)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectClause {
    #[serde(default)]
    pub when: When,
    pub outcome: Spanned<ExpectedOutcome>,
    /// The round (1-based) at which the failure is expected; any round when absent.
    pub round: Option<Spanned<u32>>,
    pub step: Option<FailStep>,
    /// A regular expression searched in the engine's stderr and the CRIU logs.
    pub signature: Option<Spanned<String>>,
    /// Stress scenarios only: the share of rounds that may fail (`passes`, default `0%`) or at
    /// which the bug is expected to show (`fails`, default `>0%`), e.g. `<=100%` for "may fail".
    #[serde(default)]
    pub failure_rate: Option<Spanned<String>>,
    /// Why this expectation holds (the upstream fact behind it).
    #[serde(default)]
    pub reason: Option<String>,
    /// The failure depends on timing (a race in the engine): a cell where every round passed
    /// is a pass, not `fixed`. The harness never retries to make it pass.
    #[serde(default)]
    pub intermittent: bool,
    /// After the expected refusal of a checkpoint, the workload must still be right: its witness
    /// goes on under the same identity and the `exec` checks hold (as zdtm's "crfail" tests ask).
    #[serde(default)]
    pub verify_after: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedOutcome {
    Passes,
    Fails,
}

/// The step of a round at which a cell failed, in the order they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailStep {
    /// `criu check` on the cell's stack and kernel, before any container (its round is 0).
    CriuCheck,
    /// What is read before each checkpoint: the witness, the container's first process.
    BeforeCheckpoint,
    Checkpoint,
    Restore,
    Verify,
}

impl std::fmt::Display for FailStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailStep::CriuCheck => "criu-check",
            FailStep::BeforeCheckpoint => "before-checkpoint",
            FailStep::Checkpoint => "checkpoint",
            FailStep::Restore => "restore",
            FailStep::Verify => "verify",
        })
    }
}

/// Conditions on a cell, as written. Every one must hold. A key is an axis (`engine`, `runtime`,
/// `stack`, `kernel`, `cgroup`, `init`, `accel`) with one of its values, `cgroup_manager`
/// (`cgroupfs` or `systemd`, as the stack reports it), or a tool of
/// [`super::VERSIONED_TOOLS`] with a version range such as `"<1.21"` or `">=4.1, <4.2"`, checked
/// against the stack's probed versions (`linux`: the kernel). Keys and values are checked when
/// the scenario is parsed, against the axes table (`crate::axes`).
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct When(pub BTreeMap<String, Spanned<String>>);
