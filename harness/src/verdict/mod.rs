//! Classification: what a cell did, held against what its scenario expects there.

use crate::execute::{Failure, Outcome, StressRun};
use crate::record::Verdict;
use crate::scenario::{Expectation, ExpectedOutcome};
use crate::text::one_line;

/// The verdict, one line saying why, and the log line that matched the expected signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub verdict: Verdict,
    pub reason: String,
    pub matched: Option<String>,
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
        (_, Outcome::Stress(run)) => classify_rate(expected, run),
    }
}

/// A stress cell, held against the clause's bound on the failure rate:
/// - `passes` (bound `0%` unless given): `pass` when the rate is within it, else `fail`;
/// - `fails` (bound `>0%` unless given): every failed round must carry the signature (at the
///   expected step), else `fail`; then `reproduced` when the rate is within the bound and some
///   round failed, `pass` when none did and the bound admits that (the bug *may* show here),
///   `fixed` when the rate is below the bound, `fail` when above it.
fn classify_rate(expected: &Expectation, run: &StressRun) -> Classification {
    let bound = expected.rate_bound();
    let fraction = run.fraction();
    let place = bound.place(run.percent());
    let ended = run.ended_early.as_ref().map(|why| format!("; {why}")).unwrap_or_default();
    let plain = |verdict, reason: String| Classification { verdict, reason, matched: None };
    let first_failure =
        || run.failures.first().map(|f| format!(": round {} {}: {}", f.round, f.step, f.message)).unwrap_or_default();
    if expected.outcome == ExpectedOutcome::Passes {
        return match place {
            crate::rate::Placement::Within => {
                plain(Verdict::Pass, format!("{fraction} rounds failed, within {bound}{ended}"))
            }
            _ => plain(Verdict::Fail, format!("{fraction} rounds failed, expected {bound}{ended}{}", first_failure())),
        };
    }
    let mut matched = None;
    for f in &run.failures {
        let line = signature_line(expected, f);
        let step_ok = expected.step.is_none_or(|s| s == f.step);
        match line {
            Some(line) if step_ok => {
                matched.get_or_insert(line);
            }
            _ => {
                let why = if step_ok { "without the expected signature" } else { "at another step than expected" };
                return Classification {
                    verdict: Verdict::Fail,
                    reason: format!(
                        "{fraction} rounds failed; round {} {} failed {why}: {}{ended}",
                        f.round, f.step, f.message
                    ),
                    matched: line,
                };
            }
        }
    }
    let (verdict, reason) = match place {
        crate::rate::Placement::Within if run.failures.is_empty() => {
            (Verdict::Pass, format!("{fraction} rounds failed: the bug may show here ({bound}) but did not{ended}"))
        }
        crate::rate::Placement::Within => {
            (Verdict::Reproduced, format!("{fraction} rounds failed with the expected signature, within {bound}{ended}"))
        }
        crate::rate::Placement::Below => (
            Verdict::Fixed,
            format!("{fraction} rounds failed, expected {bound}: the bug is fixed here, rarer than expected, or the expectation is stale{ended}"),
        ),
        crate::rate::Placement::Above => {
            (Verdict::Fail, format!("{fraction} rounds failed with the expected signature, more than {bound}{ended}"))
        }
    };
    Classification { verdict, reason, matched }
}

fn classify_expected_failure(expected: &Expectation, f: &Failure) -> Classification {
    let at = format!("round {} {}", f.round, f.step);
    let matched = signature_line(expected, f);
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

/// The first line of a failure's evidence that the expected signature matches.
fn signature_line(expected: &Expectation, f: &Failure) -> Option<String> {
    let re = expected.signature.as_ref()?;
    f.evidence.lines().find(|line| re.is_match(line)).map(|l| l.trim().to_string())
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
    use crate::scenario::{Conditions, FailStep};
    use regex::Regex;
    use rstest::rstest;

    fn expect_bug() -> Expectation {
        Expectation {
            when: Conditions::default(),
            outcome: ExpectedOutcome::Fails,
            round: Some(2),
            step: Some(FailStep::Checkpoint),
            signature: Some(Regex::new(r"Unseizable non-zombie \d+ found, state S").unwrap()),
            failure_rate: None,
            reason: None,
            intermittent: false,
        }
    }

    fn expect_race() -> Expectation {
        Expectation { intermittent: true, round: None, step: Some(FailStep::Restore), ..expect_bug() }
    }

    /// A stress clause: the freezer bug may show (any rate), with its signature, at checkpoint.
    fn may_fail() -> Expectation {
        Expectation {
            round: None,
            signature: Some(Regex::new(r"Timeout reached|state D").unwrap()),
            failure_rate: Some(crate::rate::RateBound::parse("<=100%").unwrap()),
            ..expect_bug()
        }
    }

    fn stress(ran: u32, failed: &[(u32, FailStep, &str)]) -> Outcome {
        Outcome::Stress(StressRun {
            planned: 20,
            ran,
            failures: failed
                .iter()
                .map(|(round, step, evidence)| Failure {
                    round: *round,
                    step: *step,
                    message: "checkpoint failed".into(),
                    evidence: evidence.to_string(),
                })
                .collect(),
            ended_early: None,
        })
    }

    const TIMEOUT: &str = "(10.1) Error (criu/cr-dump.c:2093): Timeout reached. Try to interrupt: 0";

    #[rstest]
    #[case::passes_none_failed(Expectation::passes(), stress(20, &[]), Verdict::Pass)]
    #[case::passes_one_failed(Expectation::passes(), stress(20, &[(3, FailStep::Checkpoint, TIMEOUT)]), Verdict::Fail)]
    #[case::may_fail_none(may_fail(), stress(20, &[]), Verdict::Pass)]
    #[case::may_fail_some(may_fail(), stress(20, &[(3, FailStep::Checkpoint, TIMEOUT), (9, FailStep::Checkpoint, TIMEOUT)]), Verdict::Reproduced)]
    #[case::may_fail_other_error(may_fail(), stress(20, &[(3, FailStep::Checkpoint, TIMEOUT), (9, FailStep::Checkpoint, "Error: boom")]), Verdict::Fail)]
    #[case::may_fail_wrong_step(may_fail(), stress(4, &[(4, FailStep::Restore, TIMEOUT)]), Verdict::Fail)]
    #[case::must_show_but_none(Expectation { failure_rate: None, ..may_fail() }, stress(20, &[]), Verdict::Fixed)]
    #[case::more_than_allowed(Expectation { failure_rate: crate::rate::RateBound::parse("<=10%").ok(), ..may_fail() }, stress(10, &[(1, FailStep::Checkpoint, TIMEOUT), (2, FailStep::Checkpoint, TIMEOUT)]), Verdict::Fail)]
    fn rate_verdicts(#[case] expected: Expectation, #[case] outcome: Outcome, #[case] verdict: Verdict) {
        let c = classify(&expected, &outcome);
        assert_eq!(c.verdict, verdict, "{}", c.reason);
        assert!(c.reason.contains('/'), "a rate cell's reason shows its rate: {}", c.reason);
    }

    #[test]
    fn a_reproduced_rate_keeps_the_first_matching_line() {
        let c = classify(&may_fail(), &stress(20, &[(3, FailStep::Checkpoint, TIMEOUT)]));
        assert_eq!(c.matched.as_deref(), Some(TIMEOUT));
        assert!(c.reason.starts_with("1/20 rounds failed"), "{}", c.reason);
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
