//! Classification: what a cell did, held against what its scenario expects there, then against
//! the known issues (`known-issues/`) that apply to the cell.
//!
//! The scenario's clause comes first. When it calls the outcome a `fail`, a known issue whose
//! step, round and signature the failure shows makes it `reproduced` under that issue's id (the
//! engine, runtime or CRIU bug stopped the cell before the scenario's own behaviour could show).
//! When it calls the outcome a `pass` but a known issue that stops every cell where it applies
//! (`every_cell`) applies here, the cell is `fixed` under that id. A stress cell's failed rounds
//! are each explained by the scenario's signature or by a known issue's.

use crate::execute::{Failure, Outcome, StressRun};
use crate::record::Verdict;
use crate::scenario::{ClauseSource, Expectation, ExpectedOutcome};
use crate::text::one_line;

/// The verdict, one line saying why, the log line that matched the expected signature, and the
/// clause that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub verdict: Verdict,
    pub reason: String,
    pub matched: Option<String>,
    pub clause: ClauseSource,
}

pub fn classify(expected: &Expectation, outcome: &Outcome) -> Classification {
    let c = classify_known(expected, outcome);
    Classification { reason: one_line(&c.reason), ..c }
}

/// A known issue that stops every cell where it applies (and is no race).
fn stops_every_cell(k: &Expectation) -> Option<&str> {
    match &k.source {
        ClauseSource::KnownIssue { id, every_cell: true } if !k.intermittent => Some(id),
        _ => None,
    }
}

fn classify_known(expected: &Expectation, outcome: &Outcome) -> Classification {
    if let Outcome::Stress(run) = outcome {
        return classify_stress(expected, run);
    }
    let c = classify_full(expected, outcome);
    match (c.verdict, outcome) {
        (Verdict::Fail, Outcome::Failed(f)) => {
            for known in &expected.known {
                let k = classify_full(known, outcome);
                if k.verdict == Verdict::Reproduced {
                    let id = known.source.known_issue().unwrap_or_default();
                    let summary = known.reason.as_deref().unwrap_or_default();
                    return Classification {
                        reason: format!("round {} {}: known issue {id}: {summary}", f.round, f.step),
                        ..k
                    };
                }
            }
            c
        }
        (Verdict::Pass, Outcome::Passed { rounds }) => match expected.known.iter().find_map(|k| stops_every_cell(k).map(|id| (k, id))) {
            Some((k, id)) => Classification {
                verdict: Verdict::Fixed,
                reason: format!(
                    "expected known issue {id} here but all {rounds} rounds passed: it is fixed here or the known issue is stale"
                ),
                matched: None,
                clause: k.source.clone(),
            },
            None => c,
        },
        _ => c,
    }
}

/// Whether `expected` (a `fails` clause) explains this failed round: its signature at its step
/// (and round, when it names one).
fn explains(expected: &Expectation, f: &Failure) -> bool {
    expected.outcome == ExpectedOutcome::Fails
        && expected.step.is_none_or(|s| s == f.step)
        && expected.round.is_none_or(|r| r == f.round)
        && signature_line(expected, f).is_some()
}

/// A stress cell with known issues: the rounds a known issue explains (and the scenario's clause
/// does not) are that issue's; the others are held against the scenario's clause as usual.
fn classify_stress(expected: &Expectation, run: &StressRun) -> Classification {
    let mut theirs: Vec<(&Failure, &Expectation)> = Vec::new();
    let mut ours: Vec<Failure> = Vec::new();
    for f in &run.failures {
        match expected.known.iter().find(|k| !explains(expected, f) && explains(k, f)) {
            Some(k) => theirs.push((f, k)),
            None => ours.push(f.clone()),
        }
    }
    if theirs.is_empty() {
        let c = classify_rate(expected, run);
        if c.verdict == Verdict::Pass && run.failures.is_empty() {
            if let Some((k, id)) = expected.known.iter().find_map(|k| stops_every_cell(k).map(|id| (k, id))) {
                return Classification {
                    verdict: Verdict::Fixed,
                    reason: format!(
                        "{} rounds failed: expected known issue {id} here, it is fixed here or the known issue is stale",
                        run.fraction()
                    ),
                    matched: None,
                    clause: k.source.clone(),
                };
            }
        }
        return c;
    }
    let rest = StressRun { failures: ours.clone(), ..run.clone() };
    let c = classify_rate(expected, &rest);
    if c.verdict == Verdict::Fail {
        return c;
    }
    let (first, known) = theirs[0];
    let mut ids: Vec<&str> = theirs.iter().filter_map(|(_, k)| k.source.known_issue()).collect();
    ids.dedup();
    let ended = run.ended_early.as_ref().map(|why| format!("; {why}")).unwrap_or_default();
    Classification {
        verdict: Verdict::Reproduced,
        reason: format!(
            "{} rounds failed: {} with known issue {} (first: round {} {}), {} with the scenario's own signature{ended}",
            run.fraction(),
            theirs.len(),
            ids.join(", "),
            first.round,
            first.step,
            ours.len()
        ),
        matched: signature_line(known, first),
        clause: known.source.clone(),
    }
}

/// The record's name for a clause.
pub fn matched_clause(source: &ClauseSource) -> crate::record::MatchedClause {
    use crate::record::{ClauseKind, MatchedClause};
    match source {
        ClauseSource::Default => MatchedClause { kind: ClauseKind::Default, id: "passes".into() },
        ClauseSource::Scenario { line } => MatchedClause { kind: ClauseKind::Scenario, id: format!("line {line}") },
        ClauseSource::KnownIssue { id, .. } => MatchedClause { kind: ClauseKind::KnownIssue, id: id.clone() },
    }
}

fn classify_full(expected: &Expectation, outcome: &Outcome) -> Classification {
    let c = classify_clause(expected, outcome);
    Classification { clause: expected.source.clone(), ..c }
}

/// An outcome held against one clause (its `clause` is filled in by the caller).
fn classify_clause(expected: &Expectation, outcome: &Outcome) -> Classification {
    let plain =
        |verdict, reason: String| Classification { verdict, reason, matched: None, clause: ClauseSource::Default };
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
    let plain =
        |verdict, reason: String| Classification { verdict, reason, matched: None, clause: expected.source.clone() };
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
                    clause: expected.source.clone(),
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
    Classification { verdict, reason, matched, clause: expected.source.clone() }
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
            clause: expected.source.clone(),
        },
        Some(line) => Classification {
            verdict: Verdict::Fail,
            reason: format!(
                "{at}: the expected signature appeared, but the bug is expected{}",
                where_expected(expected)
            ),
            matched: Some(line),
            clause: expected.source.clone(),
        },
        None => Classification {
            verdict: Verdict::Fail,
            reason: format!("{at}: failed without the expected signature: {}", f.message),
            matched: None,
            clause: expected.source.clone(),
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
            verify_after: false,
            source: ClauseSource::Scenario { line: 12 },
            known: Vec::new(),
        }
    }

    /// A known issue: `crun#1741` at checkpoint, stopping every cell where it applies.
    fn known(id: &str, step: FailStep, signature: &str, every_cell: bool, intermittent: bool) -> Expectation {
        Expectation {
            round: None,
            step: Some(step),
            signature: Some(Regex::new(signature).unwrap()),
            reason: Some(format!("the summary of {id}")),
            intermittent,
            source: ClauseSource::KnownIssue { id: id.into(), every_cell },
            ..expect_bug()
        }
    }

    const WORK_DIR: &str = "Error: error opening CRIU work directory `/run/x/criu-work`: No such file or directory";
    const VDSO: &str = "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds";

    fn with_known(primary: Expectation, known: Vec<Expectation>) -> Expectation {
        Expectation { known, ..primary }
    }

    fn crun_1741() -> Expectation {
        known("crun#1741", FailStep::Checkpoint, "error opening CRIU work directory", true, false)
    }

    fn race_42900() -> Expectation {
        known("moby#42900", FailStep::Restore, "already exists", false, true)
    }

    /// The scenario's clause first; a failure it does not explain is a known issue's when that
    /// issue's step and signature are there, else a `fail`; a pass where an every-cell known
    /// issue applies is `fixed` under its id; a race that did not happen stays a pass.
    #[rstest]
    #[case::known_issue_explains(with_known(Expectation::passes(), vec![crun_1741()]), failed(1, FailStep::Checkpoint, WORK_DIR), Verdict::Reproduced, Some("crun#1741"))]
    #[case::known_issue_at_another_step(with_known(Expectation::passes(), vec![crun_1741()]), failed(1, FailStep::Restore, WORK_DIR), Verdict::Fail, None)]
    #[case::known_issue_without_its_signature(with_known(Expectation::passes(), vec![crun_1741()]), failed(1, FailStep::Checkpoint, "Error: boom"), Verdict::Fail, None)]
    #[case::scenario_first(with_known(expect_bug(), vec![known("x#1", FailStep::Checkpoint, "Unseizable", true, false)]), failed(2, FailStep::Checkpoint, BUG_LOG), Verdict::Reproduced, None)]
    #[case::fixed_every_cell(with_known(Expectation::passes(), vec![crun_1741()]), Outcome::Passed { rounds: 3 }, Verdict::Fixed, Some("crun#1741"))]
    #[case::race_not_fixed(with_known(Expectation::passes(), vec![race_42900()]), Outcome::Passed { rounds: 3 }, Verdict::Pass, None)]
    #[case::race_happened(with_known(Expectation::passes(), vec![race_42900()]), failed(3, FailStep::Restore, "commit failed: content sha256:ab: already exists"), Verdict::Reproduced, Some("moby#42900"))]
    #[case::criu_check(with_known(Expectation::passes(), vec![known("criu#2532", FailStep::CriuCheck, "vdso: Unexpected rt vDSO area bounds", true, false)]), failed(0, FailStep::CriuCheck, VDSO), Verdict::Reproduced, Some("criu#2532"))]
    #[case::criu_check_unknown(Expectation::passes(), failed(0, FailStep::CriuCheck, VDSO), Verdict::Fail, None)]
    fn known_issues_come_after_the_scenario(
        #[case] expected: Expectation,
        #[case] outcome: Outcome,
        #[case] verdict: Verdict,
        #[case] known_issue: Option<&str>,
    ) {
        let c = classify(&expected, &outcome);
        assert_eq!(c.verdict, verdict, "{}", c.reason);
        assert_eq!(c.clause.known_issue(), known_issue, "{}", c.reason);
        if let Some(id) = known_issue {
            assert!(c.reason.contains(id), "the reason names the known issue: {}", c.reason);
        }
    }

    #[test]
    fn a_stress_cell_counts_each_round_for_the_clause_that_explains_it() {
        let vfork = may_fail();
        let expected = with_known(vfork.clone(), vec![crun_1741(), race_42900()]);
        // Every round stopped by a known issue: reproduced under its id.
        let all_known = stress(3, &[(1, FailStep::Checkpoint, WORK_DIR), (2, FailStep::Checkpoint, WORK_DIR)]);
        let c = classify(&expected, &all_known);
        assert_eq!((c.verdict, c.clause.known_issue()), (Verdict::Reproduced, Some("crun#1741")), "{}", c.reason);
        // The scenario's own signature in one round, a known race ending the cell in another.
        let mixed = stress(
            2,
            &[(1, FailStep::Checkpoint, TIMEOUT), (2, FailStep::Restore, "content sha256:ab: already exists")],
        );
        let c = classify(&Expectation { step: None, ..expected.clone() }, &mixed);
        assert_eq!((c.verdict, c.clause.known_issue()), (Verdict::Reproduced, Some("moby#42900")), "{}", c.reason);
        assert!(c.reason.contains("1 with the scenario's own signature"), "{}", c.reason);
        // A round neither explains fails the cell.
        let unexplained = stress(2, &[(1, FailStep::Checkpoint, WORK_DIR), (2, FailStep::Checkpoint, "Error: boom")]);
        assert_eq!(classify(&expected, &unexplained).verdict, Verdict::Fail);
        // No round failed: the scenario's clause alone where only a race applies, `fixed` where
        // a known issue that stops every cell does.
        let race_only = with_known(vfork.clone(), vec![race_42900()]);
        assert_eq!(classify(&race_only, &stress(20, &[])).verdict, classify(&vfork, &stress(20, &[])).verdict);
        let c = classify(&expected, &stress(20, &[]));
        assert_eq!((c.verdict, c.clause.known_issue()), (Verdict::Fixed, Some("crun#1741")), "{}", c.reason);
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
