//! One cell's record: its coordinates, verdict and why, the failure, every round's figures and
//! evidence, the versions, and where its logs are.

use super::evidence::{
    CriuConfigRecord, HostProcess, PidfdHolder, Placement, RoundFailure, RunningSeen, TaskStates, VncSeen,
};
use super::verdict::Verdict;
use crate::plan::CellKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellRecord {
    pub name: String,
    pub key: CellKey,
    pub verdict: Verdict,
    /// One line: why this verdict.
    pub reason: String,
    /// What the scenario expected here, e.g. `passes` or `fails at round 2 checkpoint`.
    pub expected: String,
    /// The clause that decided the verdict: the scenario's own, or a known issue's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clause: Option<MatchedClause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureRecord>,
    #[serde(default)]
    pub rounds: Vec<RoundRecord>,
    /// Kernel, cgroup, and the versions of every tool in the stack.
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    pub started: String,
    pub seconds: f64,
    /// Relative to the run directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproducer: Option<String>,
    /// The CRIU configuration in force while the cell ran (absent when it did not get that far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criu_config: Option<CriuConfigRecord>,
    /// A stress cell's rate and freeze times (plain fields, for any report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress: Option<StressRecord>,
    /// Where each component of the stack came from (Debian's package, or an override: its source,
    /// commit, patches, the hash of what was installed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, super::origin::ComponentOrigin>,
    /// The harness's fault mode (`CRIU_MATRIX_FAULT`) this cell ran under: a self-check of the
    /// harness, never a result about the stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// Which clause decided a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedClause {
    pub kind: ClauseKind,
    /// A known issue's id (`criu#2705`), a scenario clause's `line N`, or `passes` (the default).
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClauseKind {
    /// A clause of the scenario's `expect:`.
    Scenario,
    /// A file of `known-issues/`.
    KnownIssue,
    /// No clause applied: the scenario passes.
    Default,
}

impl MatchedClause {
    /// The known issue's id, when a known issue decided the verdict.
    pub fn known_issue(&self) -> Option<&str> {
        (self.kind == ClauseKind::KnownIssue).then_some(self.id.as_str())
    }
}

impl std::fmt::Display for MatchedClause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ClauseKind::KnownIssue => write!(f, "known issue {}", self.id),
            ClauseKind::Scenario => write!(f, "the scenario's clause at {}", self.id),
            ClauseKind::Default => f.write_str("no clause (passes)"),
        }
    }
}

/// What a stress cell's rounds came to: the failure rate, which failure signs showed, and CRIU's
/// freeze times (µs, from `--print-stats`; only a successful dump prints them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StressRecord {
    /// The rounds the scenario asked for.
    pub planned: u32,
    /// The rounds that ran.
    pub rounds: u32,
    pub failures: u32,
    /// `failures / rounds`, in percent.
    pub failure_rate: f64,
    /// The bound the verdict held the rate against, e.g. `0%` or `<=100%`.
    pub expected_rate: String,
    /// The failed rounds (1-based).
    pub failed_rounds: Vec<u32>,
    /// Signature name -> how many failed rounds showed it.
    pub signatures: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freezing_time_us: Option<crate::rate::Summary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_time_us: Option<crate::rate::Summary>,
    /// The most polls a successful dump found the v1 freezer FREEZING (see `RoundRecord`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freezing_polls_max: Option<u32>,
    /// Rounds in which some task of the container was in uninterruptible sleep (D) right before
    /// the checkpoint.
    pub rounds_with_d_state: u32,
    /// Why the rounds stopped before `planned`, when they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_early: Option<String>,
}

impl StressRecord {
    /// The figures of a stress cell's rounds: `planned` asked for, `ran`, the `failed` ones
    /// (1-based), and why they stopped early when they did.
    pub fn new(
        planned: u32,
        ran: u32,
        failed: Vec<u32>,
        ended_early: Option<String>,
        rounds: &[RoundRecord],
        expected_rate: String,
    ) -> StressRecord {
        let mut signatures = BTreeMap::new();
        for failure in rounds.iter().filter_map(|r| r.failure.as_ref()) {
            let names: std::collections::BTreeSet<&str> = failure.signatures.iter().map(|h| h.name.as_str()).collect();
            for name in names {
                *signatures.entry(name.to_string()).or_insert(0) += 1;
            }
        }
        let figures = |field: &str| -> Vec<f64> {
            rounds
                .iter()
                .filter(|r| r.failure.is_none())
                .filter_map(|r| r.checkpoint_stats.get(field).copied())
                .collect()
        };
        StressRecord {
            planned,
            rounds: ran,
            failures: failed.len() as u32,
            failure_rate: crate::rate::percent(failed.len() as u32, ran),
            expected_rate,
            failed_rounds: failed,
            signatures,
            freezing_time_us: crate::rate::Summary::of(&figures("freezing_time")),
            frozen_time_us: crate::rate::Summary::of(&figures("frozen_time")),
            freezing_polls_max: rounds.iter().filter_map(|r| r.freezing_polls).max(),
            rounds_with_d_state: rounds
                .iter()
                .filter(|r| r.tasks_before.as_ref().is_some_and(|t| !t.uninterruptible.is_empty()))
                .count() as u32,
            ended_early,
        }
    }

    /// `3/20` (and `of N planned` when the rounds stopped early).
    pub fn fraction(&self) -> String {
        crate::rate::fraction(self.failures, self.rounds, self.planned)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureRecord {
    pub round: u32,
    pub step: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_matched: Option<String>,
    /// The last lines of the evidence (engine stderr, CRIU log), for reading without the files.
    pub excerpt: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoundRecord {
    pub round: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_seconds: Option<f64>,
    /// A pre-checkpoint's seconds (`pre_checkpoint: true`), before the checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_checkpoint_seconds: Option<f64>,
    /// After a refused checkpoint whose clause asks it (`verify_after`): whether the workload was
    /// still right (its witness went on, its checks held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_after_failure: Option<bool>,
    /// After a checkpoint with `--leave-running`: the container went on running (its witness
    /// kept counting under its identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_running: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    /// The witness's count right before the checkpoint, and right after the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_after: Option<u64>,
    /// The witness's identity (the random one the workload drew at start) before the checkpoint
    /// and after the restore: the same when it was restored, another when it started again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_after: Option<String>,
    /// The container's first process before the checkpoint and after the restore: a restore
    /// makes a new host process, a container left running keeps its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_before: Option<HostProcess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_after: Option<HostProcess>,
    /// Figures from the engine's `--print-stats` (CRIU's freezing/frozen/memdump times in µs, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checkpoint_stats: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restore_stats: BTreeMap<String, f64>,
    /// Where each process of the container was after the restore (a `cgroup_placement` step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_placement: Option<Placement>,
    /// The pidfds the container's processes held right before the checkpoint (a scenario with a
    /// `pidfd_holders` precheck): holder, fd, target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pidfds: Vec<PidfdHolder>,
    /// The size of the exported checkpoint archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_bytes: Option<u64>,
    /// What a viewer saw after the restore (a `vnc` step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc: Option<VncSeen>,
    /// What a viewer saw before the first checkpoint (round 1 of a scenario with a `vnc` step),
    /// so that an undrawn picture after a restore can be told from a desktop never drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc_before: Option<VncSeen>,
    /// The PIDs (inside the container) of each process a `running` step names, before the
    /// checkpoint and after the restore.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub running: BTreeMap<String, RunningSeen>,
    /// The state of every task of the container right before the checkpoint (stress cells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_before: Option<TaskStates>,
    /// The container's mount table before the checkpoint (a `mounts` step), and what changed in
    /// it after the restore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts_before: Vec<super::evidence::MountSeen>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts_changed: Option<Vec<super::evidence::MountChange>>,
    /// What each `exec` step printed: the commands before the checkpoint, and the checks after
    /// the restore, passed or failed (a passing check keeps its evidence too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub execs: Vec<ExecSeen>,
    /// A stress round that failed, and the failure signs it showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RoundFailure>,
    /// How many times a successful dump's log read the v1 freezer as FREEZING (100 ms apart);
    /// 10 or more keeps that log as `round<N>-dump.log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freezing_polls: Option<u32>,
    /// The container's freezer after a failed checkpoint (`THAWED`, or what the harness found
    /// and thawed, e.g. `FREEZING, thawed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freezer_after: Option<String>,
}

/// One `exec` in the container, as it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSeen {
    /// `before-checkpoint` or `verify`.
    pub step: String,
    pub command: String,
    /// Its exit status (none when it timed out or was killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    pub stdout: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

impl CellRecord {
    pub fn summary_line(&self) -> String {
        format!("{} ({:.1}s): {}", self.verdict, self.seconds, self.reason)
    }
}
