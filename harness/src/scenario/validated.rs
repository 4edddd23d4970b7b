//! A scenario as the rest of the harness uses it: validated, every regex compiled, every range
//! parsed, its clauses ready to match a cell.

use super::model::{CheckpointSpec, ExpectedOutcome, FailStep, PrecheckStep, ReadySpec, RunSpec, Timeouts, VerifyStep};
use super::stack_needs::{CriuConfigFile, MountSpec, ServiceSpec};
use crate::axes::Axis;
use crate::version::Range;
use regex::Regex;

/// A validated scenario: every regex compiled, every range parsed, its image directory found.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub id: String,
    pub summary: String,
    pub upstream: Vec<String>,
    pub image: String,
    pub run: RunSpec,
    pub ready: ReadySpec,
    pub rounds: u32,
    pub checkpoint: CheckpointSpec,
    pub precheck: Vec<PrecheckStep>,
    pub verify: Vec<VerifyStep>,
    pub timeouts: Timeouts,
    pub expect: Vec<Expectation>,
    pub services: Vec<ServiceSpec>,
    pub mounts: Vec<MountSpec>,
    pub criu_config: Vec<CriuConfigFile>,
    /// Set for a stress scenario: rounds go on after a failed checkpoint, the result is a rate.
    pub stress: Option<Stress>,
    /// The file it came from, for messages.
    pub source: std::path::PathBuf,
}

/// A stress scenario's settings, validated.
#[derive(Debug, Clone, Default)]
pub struct Stress {
    /// (name, pattern): the failure signs recorded for each failed round.
    pub signatures: Vec<(String, Regex)>,
}

/// `CRIU_MATRIX_STRESS_ROUNDS`: the rounds of every stress scenario in this run, when set.
pub const STRESS_ROUNDS_ENV: &str = "CRIU_MATRIX_STRESS_ROUNDS";

impl Scenario {
    /// Applies `CRIU_MATRIX_STRESS_ROUNDS` to a stress scenario (other scenarios keep theirs).
    pub fn with_stress_rounds(mut self, rounds: Option<u32>) -> Scenario {
        if let (Some(n), Some(_)) = (rounds, &self.stress) {
            self.rounds = n.max(1);
        }
        self
    }
}

/// The rounds `CRIU_MATRIX_STRESS_ROUNDS` asks for, if it is set to a number.
pub fn stress_rounds_override() -> anyhow::Result<Option<u32>> {
    match std::env::var(STRESS_ROUNDS_ENV) {
        Err(_) => Ok(None),
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=super::bounds::MAX_ROUNDS).contains(n))
            .map(Some)
            .ok_or_else(|| {
                let most = super::bounds::MAX_ROUNDS;
                anyhow::anyhow!("{STRESS_ROUNDS_ENV} must be a number of rounds from 1 to {most}, got `{text}`")
            }),
    }
}

/// One `expect:` clause, ready to match against a cell.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub when: Conditions,
    pub outcome: ExpectedOutcome,
    pub round: Option<u32>,
    pub step: Option<FailStep>,
    pub signature: Option<Regex>,
    /// Stress scenarios: the bound on the failure rate (absent: the outcome's default).
    pub failure_rate: Option<crate::rate::RateBound>,
    pub reason: Option<String>,
    /// A timing-dependent failure: every round passing is a pass, not `fixed`.
    pub intermittent: bool,
}

impl Expectation {
    /// What a scenario expects where none of its clauses applies.
    pub fn passes() -> Expectation {
        Expectation {
            when: Conditions::default(),
            outcome: ExpectedOutcome::Passes,
            round: None,
            step: None,
            signature: None,
            failure_rate: None,
            reason: None,
            intermittent: false,
        }
    }

    /// The bound on a stress cell's failure rate: the clause's own, else `0%` for `passes` and
    /// `>0%` for `fails` (the bug is expected to show at least once).
    pub fn rate_bound(&self) -> crate::rate::RateBound {
        self.failure_rate.clone().unwrap_or_else(|| {
            let text = match self.outcome {
                ExpectedOutcome::Passes => "0%",
                ExpectedOutcome::Fails => ">0%",
            };
            crate::rate::RateBound::parse(text).expect("static bound")
        })
    }
}

/// The `when:` of a clause: axis values (checked against the axes table when parsed), the
/// engine's cgroup manager, and tool versions as ranges. Every condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub axes: Vec<(Axis, String)>,
    /// The engine's cgroup manager (`cgroupfs`, `systemd`): a fact of the stack, not an axis.
    pub cgroup_manager: Option<String>,
    /// (tool name, range): one of [`VERSIONED_TOOLS`].
    pub versions: Vec<(String, Range)>,
}

/// The tools whose versions a `when:` clause can compare: `linux` is the running kernel.
pub const VERSIONED_TOOLS: &[&str] = &["criu", "crun", "runc", "podman", "docker", "linux"];

/// The cgroup managers an engine reports.
pub const CGROUP_MANAGERS: &[&str] = &["cgroupfs", "systemd"];

impl Scenario {
    /// The longest a cell of this scenario may take if every step ran to its limit: start,
    /// readiness, the precheck, and each round's checkpoint, restore and verification.
    pub fn work_limit(&self) -> std::time::Duration {
        let t = &self.timeouts;
        let precheck = if self.precheck.is_empty() { std::time::Duration::ZERO } else { t.verify };
        t.start + self.ready.timeout + precheck + (t.checkpoint + t.restore + t.verify) * self.rounds
    }

    /// The first clause whose conditions hold for this cell, or "passes".
    pub fn expectation_for(&self, facts: &dyn CellFacts) -> Expectation {
        self.expect.iter().find(|clause| clause.when.hold_for(facts)).cloned().unwrap_or_else(Expectation::passes)
    }
}

/// What a `when:` clause can ask of a cell.
pub trait CellFacts {
    fn axis(&self, axis: Axis) -> Option<String>;
    /// The cgroup manager of the cell's engine, as the stack reports it.
    fn cgroup_manager(&self) -> Option<String>;
    fn tool_version(&self, tool: &str) -> Option<semver::Version>;
}

impl Conditions {
    pub fn hold_for(&self, facts: &dyn CellFacts) -> bool {
        let axes_hold = self.axes.iter().all(|(axis, wanted)| facts.axis(*axis).as_deref() == Some(wanted.as_str()));
        let manager_holds = self.cgroup_manager.as_ref().is_none_or(|m| facts.cgroup_manager().as_ref() == Some(m));
        // A version condition on a tool the cell does not have (or could not probe) does not hold.
        axes_hold
            && manager_holds
            && self.versions.iter().all(|(tool, range)| facts.tool_version(tool).is_some_and(|v| range.matches(&v)))
    }
}
