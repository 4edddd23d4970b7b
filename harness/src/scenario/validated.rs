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
    /// Commands run in the container before each checkpoint, their output kept.
    pub before_checkpoint: Vec<super::model::ExecCheck>,
    /// The witness file (the `counter:` step's path): `ID COUNT`. `None` only with `no_witness`.
    pub witness: Option<String>,
    /// Why the scenario has no witness, when it has none.
    pub no_witness: Option<String>,
    pub timeouts: Timeouts,
    pub expect: Vec<Expectation>,
    pub services: Vec<ServiceSpec>,
    pub mounts: Vec<MountSpec>,
    pub criu_config: Vec<CriuConfigFile>,
    /// Set for a stress scenario: rounds go on after a failed checkpoint, the result is a rate.
    pub stress: Option<Stress>,
    /// The file it came from, for messages.
    pub source: std::path::PathBuf,
    /// The project's known issues (`known-issues/`), held against every cell after the
    /// scenario's own clauses.
    pub known_issues: std::sync::Arc<Vec<KnownIssue>>,
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
    /// After the expected refused checkpoint, the workload is verified as still right.
    pub verify_after: bool,
    /// Which clause this is: the scenario's (its line), a known issue's, or the default.
    pub source: ClauseSource,
    /// The known issues whose conditions hold for the cell, in file order, held against its
    /// outcome after this clause (empty on a known issue's own clause).
    pub known: Vec<Expectation>,
}

/// Where an expectation comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClauseSource {
    /// No clause applies: the scenario passes.
    Default,
    /// A clause of the scenario's `expect:`, by its line.
    Scenario { line: u64 },
    /// A known issue of `known-issues/`; `every_cell`: every cell where it applies meets it.
    KnownIssue { id: String, every_cell: bool },
}

impl ClauseSource {
    /// The known issue's id, when it is one.
    pub fn known_issue(&self) -> Option<&str> {
        match self {
            ClauseSource::KnownIssue { id, .. } => Some(id),
            _ => None,
        }
    }
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
            verify_after: false,
            source: ClauseSource::Default,
            known: Vec::new(),
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

    /// The first clause whose conditions hold for this cell, or "passes"; with it, every known
    /// issue whose conditions (and checkpoint flow) hold, to be held against the outcome after it.
    pub fn expectation_for(&self, facts: &dyn CellFacts) -> Expectation {
        let mut primary =
            self.expect.iter().find(|clause| clause.when.hold_for(facts)).cloned().unwrap_or_else(Expectation::passes);
        let flow = if self.checkpoint.export { Flow::Export } else { Flow::InPlace };
        primary.known = self
            .known_issues
            .iter()
            .filter(|k| k.flow.is_none_or(|f| f == flow) && k.expectation.when.hold_for(facts))
            .map(|k| k.expectation.clone())
            .collect();
        primary
    }

    /// A known issue of this project by its id.
    pub fn known_issue(&self, id: &str) -> Option<&KnownIssue> {
        self.known_issues.iter().find(|k| k.id == id)
    }
}

/// What a `when:` clause can ask of a cell.
pub trait CellFacts {
    fn axis(&self, axis: Axis) -> Option<String>;
    /// The cgroup manager of the cell's engine, as the stack reports it.
    fn cgroup_manager(&self) -> Option<String>;
    fn tool_version(&self, tool: &str) -> Option<crate::version::ToolVersion>;
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

/// The checkpoint flow a known issue is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// Restored in place (the same container).
    InPlace,
    /// Exported, and restored into a new container.
    Export,
}

/// A known issue, validated: what a cell must show to be a reproduction of it.
#[derive(Debug, Clone)]
pub struct KnownIssue {
    pub id: String,
    pub upstream: String,
    pub summary: String,
    pub flow: Option<Flow>,
    /// The clause it stands for: `fails` at its step (and round) with its signature.
    pub expectation: Expectation,
    pub source: std::path::PathBuf,
}
