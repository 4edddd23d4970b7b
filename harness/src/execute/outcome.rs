//! What running a cell came to, before any expectation is applied: the input of `verdict`.

use crate::scenario::FailStep;

/// What running a cell came to, before any expectation is applied.
#[derive(Debug, Clone)]
pub enum Outcome {
    Passed {
        rounds: u32,
    },
    /// Checkpoint, restore or verification failed: a result about the stack under test.
    Failed(Failure),
    /// A stress cell's rounds: which of them failed (rounds go on after a failed checkpoint).
    Stress(StressRun),
    /// The harness or environment broke (provisioning, build, start, readiness).
    Error {
        step: String,
        message: String,
    },
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub round: u32,
    pub step: FailStep,
    /// One line: what went wrong, as the harness saw it.
    pub message: String,
    /// The engine's stderr and the CRIU logs of the failed step, searched for the signature.
    pub evidence: String,
}

/// What the rounds of a stress cell came to.
#[derive(Debug, Clone)]
pub struct StressRun {
    /// The rounds the scenario asked for.
    pub planned: u32,
    /// The rounds that ran (fewer than `planned` when the workload did not survive a failure).
    pub ran: u32,
    /// Each failed round.
    pub failures: Vec<Failure>,
    /// Why the rounds stopped before `planned`, when they did.
    pub ended_early: Option<String>,
}

impl StressRun {
    pub fn percent(&self) -> f64 {
        crate::rate::percent(self.failures.len() as u32, self.ran)
    }

    /// `3/20`, and `of 24 planned` when the rounds stopped early.
    pub fn fraction(&self) -> String {
        crate::rate::fraction(self.failures.len() as u32, self.ran, self.planned)
    }
}
