//! Scenarios: one YAML file per failure case, parsed and validated before any cell runs.

mod model;
mod parse;
pub mod surroundings;

pub use model::{
    duration_text, CheckpointSpec, ExecCheck, ExpectedOutcome, FailStep, Network, PidfdCount, PlacementSpec,
    PrecheckStep, ProcessCount, ReadySpec, RunSpec, Timeouts, VerifyStep, VncCheck,
};
pub use parse::{load_all, parse_scenario, ScenarioError};
pub use surroundings::{CriuConfigFile, MountSpec, ServiceSpec};

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
    /// The file it came from, for messages.
    pub source: std::path::PathBuf,
}

/// One `expect:` clause, ready to match against a cell.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub when: Conditions,
    pub outcome: ExpectedOutcome,
    pub round: Option<u32>,
    pub step: Option<FailStep>,
    pub signature: Option<Regex>,
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
            reason: None,
            intermittent: false,
        }
    }
}

/// The `when:` of a clause. Axis values compare as text; tool versions as ranges.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub engine: Option<String>,
    pub runtime: Option<String>,
    pub stack: Option<String>,
    pub kernel: Option<String>,
    pub cgroup: Option<String>,
    /// The engine's cgroup manager (`cgroupfs`, `systemd`): a fact of the stack, not an axis.
    pub cgroup_manager: Option<String>,
    /// (tool name, range): `criu`, `crun`, `runc`, `podman`, `docker`, `linux` (the kernel).
    pub versions: Vec<(String, Range)>,
}

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
    fn axis(&self, name: &str) -> Option<String>;
    fn tool_version(&self, tool: &str) -> Option<semver::Version>;
}

impl Conditions {
    pub fn hold_for(&self, facts: &dyn CellFacts) -> bool {
        let axes = [
            ("engine", &self.engine),
            ("runtime", &self.runtime),
            ("stack", &self.stack),
            ("kernel", &self.kernel),
            ("cgroup", &self.cgroup),
            ("cgroup_manager", &self.cgroup_manager),
        ];
        let axes_hold = axes.iter().all(|(name, wanted)| match wanted {
            None => true,
            Some(wanted) => facts.axis(name).as_deref() == Some(wanted.as_str()),
        });
        // A version condition on a tool the cell does not have (or could not probe) does not hold.
        axes_hold
            && self.versions.iter().all(|(tool, range)| facts.tool_version(tool).is_some_and(|v| range.matches(&v)))
    }
}
