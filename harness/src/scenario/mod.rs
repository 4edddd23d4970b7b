//! Scenarios: one YAML file per failure case, parsed and validated before any cell runs.
//!
//! - `model`: the file format, exactly as written (serde types that deny unknown fields);
//! - `stack_needs`: what a scenario asks of its stack around the container (services, mounts,
//!   CRIU configuration files) and its validation;
//! - `parse`: YAML to a validated scenario, every error at `file:line:col`;
//! - `validated`: the scenario the rest of the harness uses, and how its `when:` clauses match;
//! - `known`: the known issues of `known-issues/`, one file per upstream bug, held against
//!   every cell after the scenario's own clauses;
//! - `harness_text`: the harness's own words, which no signature may match;
//! - `bounds`: the size of a file and the bounds of every number in it;
//! - `duration`, `error`: durations as written, and where a file is wrong.

pub mod bounds;
mod check;
mod duration;
mod error;
pub mod harness_text;
pub mod known;
mod model;
mod parse;
pub mod stack_needs;
mod validated;

pub use duration::duration_text;
pub use error::ScenarioError;
pub use known::{load_known_issues, parse_known_issue};
pub use model::{
    CheckpointOption, CheckpointSpec, Compression, ExecCheck, ExpectedOutcome, FailStep, Network, PidfdCount,
    PlacementSpec, PrecheckStep, ProcessCount, ReadySpec, RunSpec, Timeouts, VerifyStep, VncCheck,
};
pub use parse::{load_all, parse_scenario};
pub use stack_needs::{CriuConfigFile, MountSpec, ServiceSpec};
pub use validated::{
    stress_rounds_override, CellFacts, ClauseSource, Conditions, Expectation, Flow, KnownIssue, Scenario, Stress,
    CGROUP_MANAGERS, STRESS_ROUNDS_ENV, VERSIONED_TOOLS,
};
