//! Scenarios: one YAML file per failure case, parsed and validated before any cell runs.
//!
//! - `model`: the file format, exactly as written (serde types that deny unknown fields);
//! - `stack_needs`: what a scenario asks of its stack around the container (services, mounts,
//!   CRIU configuration files) and its validation;
//! - `parse`: YAML to a validated scenario, every error at `file:line:col`;
//! - `validated`: the scenario the rest of the harness uses, and how its `when:` clauses match;
//! - `bounds`: the size of a file and the bounds of every number in it;
//! - `duration`, `error`: durations as written, and where a file is wrong.

pub mod bounds;
mod duration;
mod error;
mod model;
mod parse;
pub mod stack_needs;
mod validated;

pub use duration::duration_text;
pub use error::ScenarioError;
pub use model::{
    CheckpointSpec, ExecCheck, ExpectedOutcome, FailStep, Network, PidfdCount, PlacementSpec, PrecheckStep,
    ProcessCount, ReadySpec, RunSpec, Timeouts, VerifyStep, VncCheck,
};
pub use parse::{load_all, parse_scenario};
pub use stack_needs::{CriuConfigFile, MountSpec, ServiceSpec};
pub use validated::{
    stress_rounds_override, CellFacts, Conditions, Expectation, Scenario, Stress, CGROUP_MANAGERS, STRESS_ROUNDS_ENV,
    VERSIONED_TOOLS,
};
