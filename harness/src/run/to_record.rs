//! What a cell came to, classified against its expectation and made into its record.

use crate::execute::Outcome;
use crate::plan::Cell;
use crate::record::{CellRecord, CriuConfigRecord, FailureRecord, RoundRecord, StressRecord};
use crate::scenario::{Expectation, ExpectedOutcome};
use crate::verdict;
use std::collections::BTreeMap;

/// What running a cell came to, with what the classification and the record need.
pub struct Ran {
    pub outcome: Outcome,
    pub rounds: Vec<RoundRecord>,
    pub expectation: Expectation,
    pub versions: BTreeMap<String, String>,
    pub criu_config: Option<CriuConfigRecord>,
}

impl Ran {
    /// A cell that ended before its stack was known: no expectation applies but "passes".
    pub fn before_stack(outcome: Outcome) -> Ran {
        Ran::before_container(outcome, Expectation::passes(), Default::default())
    }

    /// A cell that ended before its container was set up (skipped, or its image failed).
    pub fn before_container(outcome: Outcome, expectation: Expectation, versions: BTreeMap<String, String>) -> Ran {
        Ran { outcome, rounds: Vec::new(), expectation, versions, criu_config: None }
    }
}

/// The cell's record (its reproducer is the caller's to add); `logs` is relative to the run
/// directory. An error's whole message is kept in `error.txt` in `log_dir`: the verdict keeps
/// one line.
pub fn record(cell: &Cell, ran: Ran, log_dir: &std::path::Path, logs: String) -> CellRecord {
    let Ran { outcome, rounds, expectation, versions, criu_config } = ran;
    if let Outcome::Error { step, message } = &outcome {
        let _ = std::fs::write(log_dir.join("error.txt"), format!("{step}: {message}\n"));
    }
    let class = verdict::classify(&expectation, &outcome);
    let first_failure = match &outcome {
        Outcome::Failed(f) => Some(f),
        // A stress cell keeps its first failed round here; every one is in `rounds`.
        Outcome::Stress(run) => run.failures.first(),
        _ => None,
    };
    let failure = first_failure.map(|f| FailureRecord {
        round: f.round,
        step: f.step.to_string(),
        message: f.message.clone(),
        signature_matched: class.matched.clone(),
        excerpt: excerpt(&f.evidence, &class.matched),
    });
    let stress = match &outcome {
        Outcome::Stress(run) => {
            let failed = run.failures.iter().map(|f| f.round).collect();
            let bound = expectation.rate_bound().to_string();
            Some(StressRecord::new(run.planned, run.ran, failed, run.ended_early.clone(), &rounds, bound))
        }
        // A stress cell that erred keeps the figures of the rounds it recorded.
        Outcome::Error { message, .. } if cell.scenario.stress.is_some() && !rounds.is_empty() => {
            let failed = rounds.iter().filter(|r| r.failure.is_some()).map(|r| r.round).collect();
            let ran = rounds.iter().filter(|r| r.checkpoint_seconds.is_some()).count() as u32;
            let bound = expectation.rate_bound().to_string();
            let why = Some(format!("the harness broke: {}", crate::text::one_line(message)));
            Some(StressRecord::new(cell.scenario.rounds, ran, failed, why, &rounds, bound))
        }
        _ => None,
    };
    CellRecord {
        name: cell.name(),
        key: cell.key.clone(),
        verdict: class.verdict,
        reason: class.reason,
        expected: describe(&expectation),
        clause: Some(verdict::matched_clause(&class.clause)),
        failure,
        rounds,
        versions,
        started: String::new(),
        seconds: 0.0,
        logs: Some(logs),
        reproducer: None,
        criu_config,
        stress,
        fault: crate::execute::Fault::from_env().ok().flatten().map(|f| f.to_string()),
        components: Default::default(),
    }
}

/// What the expectation says, in a few words: `passes`, `fails at round 2 checkpoint with /.../`,
/// then the known issues that apply to the cell.
pub fn describe(e: &Expectation) -> String {
    let mut text = describe_clause(e);
    let known: Vec<&str> = e.known.iter().filter_map(|k| k.source.known_issue()).collect();
    if !known.is_empty() {
        text.push_str(&format!("; known issues here: {}", known.join(", ")));
    }
    text
}

fn describe_clause(e: &Expectation) -> String {
    match e.outcome {
        ExpectedOutcome::Passes => match &e.failure_rate {
            Some(rate) => format!("passes, with failures in {rate} of the rounds"),
            None => "passes".to_string(),
        },
        ExpectedOutcome::Fails => {
            let mut s = if e.intermittent { "may fail" } else { "fails" }.to_string();
            if let Some(r) = e.round {
                s.push_str(&format!(" at round {r}"));
            }
            if let Some(step) = e.step {
                s.push_str(&format!(" {step}"));
            }
            if let Some(sig) = &e.signature {
                s.push_str(&format!(" with /{}/", sig.as_str()));
            }
            if let Some(rate) = &e.failure_rate {
                s.push_str(&format!(" in {rate} of the rounds"));
            }
            s
        }
    }
}

/// The last lines of the evidence, and the matched line with its neighbours when there is one.
fn excerpt(evidence: &str, matched: &Option<String>) -> String {
    let lines: Vec<&str> = evidence.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::new();
    if let Some(m) = matched {
        if let Some(at) = lines.iter().position(|l| l.trim() == m) {
            out.extend_from_slice(&lines[at.saturating_sub(5)..(at + 3).min(lines.len())]);
            out.push("...");
        }
    }
    out.extend_from_slice(&lines[lines.len().saturating_sub(20)..]);
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_shows_the_matched_line_with_its_neighbours_then_the_tail() {
        let evidence: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let text = excerpt(&evidence, &Some("line 10".into()));
        assert!(text.starts_with("line 5\nline 6"), "{text}");
        assert!(text.contains("line 12\n...\nline 21"), "{text}");
        assert!(text.ends_with("line 40"), "{text}");
    }
}
