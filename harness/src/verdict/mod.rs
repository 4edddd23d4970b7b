//! Classification: what a cell did, held against what its scenario expects there.

use crate::scenario::{Expectation, ExpectedOutcome, FailStep};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every round checkpointed, restored and verified, as expected.
    Pass,
    /// Failed where the scenario expects the upstream bug, with its signature in the logs.
    Reproduced,
    /// The scenario expects the bug here, but every round passed: stale expectation or a fix.
    Fixed,
    /// An unexpected failure, or a failure without the expected signature.
    Fail,
    /// The harness or its environment broke; says nothing about CRIU.
    Error,
    /// A requirement is not met here.
    Skip,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Reproduced => "reproduced",
            Verdict::Fixed => "fixed",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
            Verdict::Skip => "skip",
        })
    }
}

/// What running a cell came to, before any expectation is applied.
#[derive(Debug, Clone)]
pub enum Outcome {
    Passed {
        rounds: u32,
    },
    /// Checkpoint, restore or verification failed: a result about the stack under test.
    Failed(Failure),
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

/// The verdict, one line saying why, and the log line that matched the expected signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub verdict: Verdict,
    pub reason: String,
    pub matched: Option<String>,
}

/// A reason fits on one line of a matrix: the first line of a message, at most 300 characters.
pub fn one_line(text: &str) -> String {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    match first.char_indices().nth(300) {
        Some((at, _)) => format!("{}...", &first[..at]),
        None => first.to_string(),
    }
}

pub fn classify(expected: &Expectation, outcome: &Outcome) -> Classification {
    let c = classify_full(expected, outcome);
    Classification { reason: one_line(&c.reason), ..c }
}

fn classify_full(expected: &Expectation, outcome: &Outcome) -> Classification {
    let plain = |verdict, reason: String| Classification { verdict, reason, matched: None };
    match (expected.outcome, outcome) {
        (_, Outcome::Skipped(why)) => plain(Verdict::Skip, why.clone()),
        (_, Outcome::Error { step, message }) => plain(Verdict::Error, format!("{step}: {message}")),
        (ExpectedOutcome::Passes, Outcome::Passed { rounds }) => {
            plain(Verdict::Pass, format!("{rounds} rounds checkpointed, restored and verified"))
        }
        (ExpectedOutcome::Passes, Outcome::Failed(f)) => {
            plain(Verdict::Fail, format!("round {} {}: {}", f.round, f.step, f.message))
        }
        (ExpectedOutcome::Fails, Outcome::Passed { rounds }) if expected.intermittent => plain(
            Verdict::Pass,
            format!(
                "{rounds} rounds checkpointed, restored and verified; the intermittent failure expected{} did not occur",
                where_expected(expected)
            ),
        ),
        (ExpectedOutcome::Fails, Outcome::Passed { rounds }) => plain(
            Verdict::Fixed,
            format!(
                "expected to fail{} but all {rounds} rounds passed: the bug is fixed here or the expectation is stale",
                where_expected(expected)
            ),
        ),
        (ExpectedOutcome::Fails, Outcome::Failed(f)) => classify_expected_failure(expected, f),
    }
}

fn classify_expected_failure(expected: &Expectation, f: &Failure) -> Classification {
    let at = format!("round {} {}", f.round, f.step);
    let matched = expected
        .signature
        .as_ref()
        .and_then(|re| f.evidence.lines().find(|line| re.is_match(line)).map(|l| l.trim().to_string()));
    let step_ok = expected.step.is_none_or(|s| s == f.step);
    let round_ok = expected.round.is_none_or(|r| r == f.round);
    match matched {
        Some(line) if step_ok && round_ok => Classification {
            verdict: Verdict::Reproduced,
            reason: format!("{at}: expected signature found"),
            matched: Some(line),
        },
        Some(line) => Classification {
            verdict: Verdict::Fail,
            reason: format!(
                "{at}: the expected signature appeared, but the bug is expected{}",
                where_expected(expected)
            ),
            matched: Some(line),
        },
        None => Classification {
            verdict: Verdict::Fail,
            reason: format!("{at}: failed without the expected signature: {}", f.message),
            matched: None,
        },
    }
}

fn where_expected(expected: &Expectation) -> String {
    match (expected.round, expected.step) {
        (Some(r), Some(s)) => format!(" at round {r} {s}"),
        (Some(r), None) => format!(" at round {r}"),
        (None, Some(s)) => format!(" at {s}"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Conditions;
    use regex::Regex;
    use rstest::rstest;

    fn expect_bug() -> Expectation {
        Expectation {
            when: Conditions::default(),
            outcome: ExpectedOutcome::Fails,
            round: Some(2),
            step: Some(FailStep::Checkpoint),
            signature: Some(Regex::new(r"Unseizable non-zombie \d+ found, state S").unwrap()),
            reason: None,
            intermittent: false,
        }
    }

    fn expect_race() -> Expectation {
        Expectation { intermittent: true, round: None, step: Some(FailStep::Restore), ..expect_bug() }
    }

    fn failed(round: u32, step: FailStep, evidence: &str) -> Outcome {
        Outcome::Failed(Failure { round, step, message: "checkpoint failed".into(), evidence: evidence.into() })
    }

    const BUG_LOG: &str =
        "(00.1) Dumping\n(00.2) Error (compel/src/lib/infect.c:125): Unseizable non-zombie 7 found, state S, err -1/10\n";

    #[rstest]
    #[case::passes_as_expected(Expectation::passes(), Outcome::Passed { rounds: 3 }, Verdict::Pass)]
    #[case::unexpected_failure(Expectation::passes(), failed(1, FailStep::Restore, "boom"), Verdict::Fail)]
    #[case::reproduced(expect_bug(), failed(2, FailStep::Checkpoint, BUG_LOG), Verdict::Reproduced)]
    #[case::wrong_round(expect_bug(), failed(1, FailStep::Checkpoint, BUG_LOG), Verdict::Fail)]
    #[case::wrong_step(expect_bug(), failed(2, FailStep::Restore, BUG_LOG), Verdict::Fail)]
    #[case::no_signature(expect_bug(), failed(2, FailStep::Checkpoint, "Error: something else"), Verdict::Fail)]
    #[case::fixed(expect_bug(), Outcome::Passed { rounds: 3 }, Verdict::Fixed)]
    #[case::a_race_that_did_not_happen(expect_race(), Outcome::Passed { rounds: 3 }, Verdict::Pass)]
    #[case::a_race_that_did(expect_race(), failed(3, FailStep::Restore, BUG_LOG), Verdict::Reproduced)]
    #[case::a_race_elsewhere(expect_race(), failed(1, FailStep::Checkpoint, BUG_LOG), Verdict::Fail)]
    #[case::error_wins(expect_bug(), Outcome::Error { step: "build".into(), message: "x".into() }, Verdict::Error)]
    #[case::skip_wins(Expectation::passes(), Outcome::Skipped("no podman".into()), Verdict::Skip)]
    fn verdicts(#[case] expected: Expectation, #[case] outcome: Outcome, #[case] verdict: Verdict) {
        assert_eq!(classify(&expected, &outcome).verdict, verdict);
    }

    #[test]
    fn a_reproduction_keeps_the_matching_log_line() {
        let c = classify(&expect_bug(), &failed(2, FailStep::Checkpoint, BUG_LOG));
        assert_eq!(
            c.matched.as_deref(),
            Some("(00.2) Error (compel/src/lib/infect.c:125): Unseizable non-zombie 7 found, state S, err -1/10")
        );
    }
}
