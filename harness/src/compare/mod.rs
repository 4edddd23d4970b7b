//! Regressions against a baseline: each cell of two runs held against each other and its
//! change classified. A cell is the same cell in both when its axes match, except `accel` (how
//! a VM kernel was run, KVM or TCG, depends on the machine, not on what is tested).
//!
//! Only a cell that passed (or reproduced its bug) in the baseline and now fails, errs or finds
//! its expected bug gone is a regression. A cell the baseline does not have is `new`, never a
//! regression (matrices grow: new scenarios, engines, stacks), and one the run lacks is `gone`
//! (filtered out, sharded away). Repeats of a cell in one run that disagree make it `flaky`.

use crate::axes::Axis;
use crate::record::{CellRecord, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What happened to one cell between the baseline and the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Passed (or reproduced) in the baseline; fails, errs or is `fixed` now.
    Regression,
    /// Passed (or reproduced) in the baseline; skipped now, or not in the run at all: what the
    /// baseline proved is no longer proved.
    LostCoverage,
    /// Its repeats disagree (in this run, or in the baseline and the run is one of them).
    Flaky,
    /// Failed in the baseline; passes (or reproduces) now. (Not the verdict `fixed`, which is
    /// a bad one: the expected bug did not show.)
    Recovered,
    /// Failed in the baseline and still does.
    StillFailing,
    /// Ran in the baseline; skipped now.
    NewlySkipped,
    /// Skipped in the baseline; runs now (its own verdict says how it went).
    NowRuns,
    /// Passed in the baseline and passes now, with the other good verdict (`pass` <-> `reproduced`).
    Changed,
    /// The same verdict, decided by another clause (e.g. `reproduced` by the scenario's clause
    /// in the baseline, by known issue `criu#2705` now).
    ClauseChanged,
    Unchanged,
    /// Not in the baseline.
    New,
    /// In the baseline (with a bad verdict or a skip), not in the run.
    Gone,
}

impl Change {
    pub fn describe(&self) -> &'static str {
        match self {
            Change::Regression => "regression (new failure)",
            Change::LostCoverage => "lost coverage (good in the baseline, skipped or gone now)",
            Change::Flaky => "flaky (repeats disagree)",
            Change::Recovered => "recovered (failed in the baseline, good now)",
            Change::StillFailing => "still failing",
            Change::NewlySkipped => "newly skipped",
            Change::NowRuns => "runs now (was skipped)",
            Change::Changed => "changed between pass and reproduced",
            Change::ClauseChanged => "decided by another clause",
            Change::Unchanged => "unchanged",
            Change::New => "new (not in the baseline)",
            Change::Gone => "gone (not in this run)",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CellChange {
    /// The cell's name without its `accel` axis.
    pub cell: String,
    pub change: Change,
    /// Every verdict the cell had, in record order; empty where it did not exist.
    pub base: Vec<Verdict>,
    pub run: Vec<Verdict>,
    /// Why the run's last record has its verdict (else the baseline's).
    pub reason: String,
    /// The clause that decided the last verdict, in the baseline and in the run (`known issue
    /// criu#2705`), where the records name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_clause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_clause: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub changes: Vec<CellChange>,
}

/// A cell's identity across runs: its name without `accel` (how a VM kernel happened to run).
pub fn identity(record: &CellRecord) -> String {
    record.key.name_without(&[Axis::Accel])
}

fn good(v: Verdict) -> bool {
    v.is_good()
}

fn distinct(verdicts: &[Verdict]) -> Vec<Verdict> {
    let mut d: Vec<Verdict> = Vec::new();
    for v in verdicts {
        if !d.contains(v) {
            d.push(*v);
        }
    }
    d
}

/// Classifies one cell from its verdicts in the baseline and in the run.
pub fn classify(base: &[Verdict], run: &[Verdict]) -> Change {
    let (b, r) = (distinct(base), distinct(run));
    if b.is_empty() {
        return Change::New;
    }
    if r.is_empty() {
        return if b.iter().any(|v| good(*v)) { Change::LostCoverage } else { Change::Gone };
    }
    if r.len() > 1 || (b.len() > 1 && b.contains(&r[0])) {
        return Change::Flaky;
    }
    let now = r[0];
    // A baseline that disagreed with itself, and the run is none of it: if the cell ever
    // passed there, a failure now is new.
    let then = b.iter().copied().find(|v| good(*v)).unwrap_or(*base.last().expect("not empty"));
    match (then, now) {
        _ if then == now && (now == Verdict::Skip || good(now)) => Change::Unchanged,
        _ if then == now => Change::StillFailing,
        (Verdict::Skip, _) => Change::NowRuns,
        (_, Verdict::Skip) if good(then) => Change::LostCoverage,
        (_, Verdict::Skip) => Change::NewlySkipped,
        _ if good(then) && good(now) => Change::Changed,
        _ if good(then) => Change::Regression,
        _ if good(now) => Change::Recovered,
        _ => Change::StillFailing,
    }
}

/// Every cell of either side, classified, in the run's order (then the baseline's for `gone`).
pub fn compare(base: &[CellRecord], run: &[CellRecord]) -> Comparison {
    #[derive(Default)]
    struct Sides {
        base: Vec<Verdict>,
        run: Vec<Verdict>,
        reason: String,
        base_clause: Option<String>,
        run_clause: Option<String>,
    }
    let mut order: Vec<String> = Vec::new();
    let mut verdicts: BTreeMap<String, Sides> = BTreeMap::new();
    for (side, records) in [(1, run), (0, base)] {
        for r in records {
            let id = identity(r);
            let entry = verdicts.entry(id.clone()).or_insert_with(|| {
                order.push(id);
                Sides::default()
            });
            let clause = r.clause.as_ref().map(|c| c.to_string());
            if side == 1 {
                entry.run.push(r.verdict);
                entry.reason = r.reason.clone();
                entry.run_clause = clause;
            } else {
                entry.base.push(r.verdict);
                entry.base_clause = clause;
                if entry.reason.is_empty() {
                    entry.reason = r.reason.clone();
                }
            }
        }
    }
    let changes = order
        .into_iter()
        .map(|cell| {
            let s = verdicts.remove(&cell).expect("recorded above");
            let mut change = classify(&s.base, &s.run);
            // Records from before clauses were named say nothing either way.
            let clauses_differ = matches!((&s.base_clause, &s.run_clause), (Some(b), Some(r)) if b != r);
            if change == Change::Unchanged && clauses_differ && s.run.last() != Some(&Verdict::Skip) {
                change = Change::ClauseChanged;
            }
            CellChange {
                change,
                cell,
                base: s.base,
                run: s.run,
                reason: s.reason,
                base_clause: s.base_clause,
                run_clause: s.run_clause,
            }
        })
        .collect();
    Comparison { changes }
}

/// A run's records as a baseline to commit (`results/baselines/NAME.jsonl`): every record as it
/// is, less the per-process cgroup listings and the mount tables of each round (evidence of
/// that run, bulky, naming this machine's paths, and not compared), and with no file of the run (logs, reproducers) named, as none is kept beside it.
pub fn baseline(records: &[CellRecord]) -> String {
    let mut out = String::new();
    for r in records {
        let mut r = r.clone();
        r.logs = None;
        r.reproducer = None;
        for round in &mut r.rounds {
            round.cgroup_placement = None;
            // The whole mount table names this machine's paths (a stack's docker data root);
            // what changed in it stays.
            round.mounts_before.clear();
        }
        out.push_str(&serde_json::to_string(&r).expect("records serialize"));
        out.push('\n');
    }
    out
}

/// Reads records from a run directory (its `cells.jsonl`), or from a `.jsonl` file (a baseline).
pub fn load(path: &Path) -> anyhow::Result<Vec<CellRecord>> {
    if path.is_dir() {
        crate::record::read_cells(path)
    } else {
        crate::record::read_cells_file(path)
    }
}

fn verdicts_text(v: &[Verdict]) -> String {
    match v {
        [] => "-".to_string(),
        _ => v.iter().map(Verdict::to_string).collect::<Vec<_>>().join(","),
    }
}

impl Comparison {
    pub fn count(&self, change: Change) -> usize {
        self.changes.iter().filter(|c| c.change == change).count()
    }

    pub fn regressions(&self) -> usize {
        self.count(Change::Regression)
    }

    /// Cells good in the baseline that are skipped or gone now.
    pub fn lost(&self) -> usize {
        self.count(Change::LostCoverage)
    }

    /// Cells good in the baseline and skipped now (a filtered run has cells gone, never skipped).
    pub fn lost_to_skips(&self) -> usize {
        self.changes.iter().filter(|c| c.change == Change::LostCoverage && !c.run.is_empty()).count()
    }

    /// How many cells of each change, in the order of `Change`.
    pub fn totals(&self) -> BTreeMap<Change, usize> {
        let mut totals = BTreeMap::new();
        for c in &self.changes {
            *totals.entry(c.change).or_insert(0) += 1;
        }
        totals
    }

    fn totals_line(&self) -> String {
        self.totals().iter().map(|(c, n)| format!("{n} {}", c.describe())).collect::<Vec<_>>().join(", ")
    }

    /// Plain text for a terminal or a test's output: every cell that did not stay the same,
    /// grouped by change, then the totals.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (change, _) in self.totals() {
            // Counted in the totals only: a filtered or sharded run has most cells gone.
            if matches!(change, Change::Unchanged | Change::Gone) {
                continue;
            }
            out.push_str(&format!("{}:\n", change.describe()));
            for c in self.changes.iter().filter(|c| c.change == change) {
                out.push_str(&format!(
                    "  {}: {} -> {}: {}\n",
                    c.cell,
                    verdicts_text(&c.base),
                    verdicts_text(&c.run),
                    c.reason
                ));
                if c.change == Change::ClauseChanged {
                    out.push_str(&format!(
                        "    decided by {} -> {}\n",
                        c.base_clause.as_deref().unwrap_or("-"),
                        c.run_clause.as_deref().unwrap_or("-")
                    ));
                }
            }
        }
        out.push_str(&format!("{} cells compared: {}\n", self.changes.len(), self.totals_line()));
        out
    }

    /// Markdown for a CI job summary.
    pub fn markdown(&self) -> String {
        let regressions = self.regressions();
        let mut out = format!(
            "## Against the baseline: {}\n\n{}\n\n",
            if regressions == 0 { "no regression".to_string() } else { format!("{regressions} regression(s)") },
            self.totals_line()
        );
        let shown: Vec<&CellChange> =
            self.changes.iter().filter(|c| !matches!(c.change, Change::Unchanged | Change::Gone)).collect();
        if !shown.is_empty() {
            out.push_str("| change | cell | baseline | run | why |\n|---|---|---|---|---|\n");
            for c in shown {
                out.push_str(&format!(
                    "| {} | `{}` | {} | {} | {} |\n",
                    c.change.describe(),
                    c.cell,
                    verdicts_text(&c.base),
                    verdicts_text(&c.run),
                    c.reason.replace('|', "\\|")
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use Verdict::*;

    #[rstest]
    #[case(&[Pass], &[Pass], Change::Unchanged)]
    #[case(&[Skip], &[Skip], Change::Unchanged)]
    #[case(&[Pass], &[Fail], Change::Regression)]
    #[case(&[Reproduced], &[Fixed], Change::Regression)]
    #[case(&[Pass], &[Error], Change::Regression)]
    #[case(&[Fail], &[Pass], Change::Recovered)]
    #[case(&[Error], &[Reproduced], Change::Recovered)]
    #[case(&[Fail], &[Fail], Change::StillFailing)]
    #[case(&[Fail], &[Error], Change::StillFailing)]
    #[case(&[Pass], &[Skip], Change::LostCoverage)]
    #[case(&[Reproduced], &[Skip], Change::LostCoverage)]
    #[case(&[Reproduced], &[], Change::LostCoverage)]
    #[case(&[Fail], &[], Change::Gone)]
    #[case(&[Skip], &[], Change::Gone)]
    #[case(&[Fail], &[Skip], Change::NewlySkipped)]
    #[case(&[Skip], &[Fail], Change::NowRuns)]
    #[case(&[Pass], &[Reproduced], Change::Changed)]
    #[case(&[Pass], &[Pass, Fail], Change::Flaky)]
    #[case(&[Pass, Fail], &[Fail], Change::Flaky)]
    #[case(&[Pass, Fail], &[Error], Change::Regression)]
    #[case(&[], &[Fail], Change::New)]
    #[case(&[Pass], &[], Change::LostCoverage)]
    fn classifies_a_cell_change(#[case] base: &[Verdict], #[case] run: &[Verdict], #[case] expected: Change) {
        assert_eq!(classify(base, run), expected, "{base:?} -> {run:?}");
    }

    fn record(scenario: &str, runtime: &str, accel: &str, verdict: Verdict) -> CellRecord {
        let mut r = crate::record::testing::record(scenario, runtime, "trixie", verdict);
        r.key.set(Axis::Accel, accel);
        r.reason = format!("{verdict} here");
        r
    }

    #[test]
    fn cells_match_across_accels_and_new_cells_are_not_regressions() {
        let base = vec![record("a", "crun", "kvm", Pass), record("b", "crun", "native", Pass)];
        let run = vec![
            record("a", "crun", "tcg", Fail),
            record("c", "crun", "native", Fail),
            record("b", "runc", "native", Error),
        ];
        let cmp = compare(&base, &run);
        let by_cell: BTreeMap<&str, Change> = cmp.changes.iter().map(|c| (c.cell.as_str(), c.change)).collect();
        assert_eq!(by_cell.len(), 4, "{by_cell:?}");
        assert_eq!(by_cell["a::podman::crun::trixie::host::v1::host"], Change::Regression);
        assert_eq!(by_cell["c::podman::crun::trixie::host::v1::host"], Change::New);
        assert_eq!(by_cell["b::podman::runc::trixie::host::v1::host"], Change::New);
        assert_eq!(by_cell["b::podman::crun::trixie::host::v1::host"], Change::LostCoverage);
        assert_eq!(cmp.regressions(), 1);
        let text = cmp.text();
        assert!(
            text.contains(
                "regression (new failure):\n  a::podman::crun::trixie::host::v1::host: pass -> fail: fail here"
            ),
            "{text}"
        );
        assert!(cmp.markdown().contains("## Against the baseline: 1 regression(s)"), "{}", cmp.markdown());
    }

    #[test]
    fn a_verdict_decided_by_another_clause_is_reported() {
        let clause = |kind, id: &str| Some(crate::record::MatchedClause { kind, id: id.into() });
        use crate::record::ClauseKind::*;
        let mut base = record("tcp", "runc", "native", Reproduced);
        base.clause = clause(Scenario, "line 27");
        let mut run = record("tcp", "runc", "native", Reproduced);
        run.clause = clause(KnownIssue, "criu#2705");
        let cmp = compare(&[base.clone()], &[run.clone()]);
        assert_eq!(cmp.changes[0].change, Change::ClauseChanged);
        assert!(
            cmp.text().contains("decided by the scenario's clause at line 27 -> known issue criu#2705"),
            "{}",
            cmp.text()
        );
        // The same clause, or a record that names none (an old baseline): unchanged.
        assert_eq!(compare(&[run.clone()], &[run.clone()]).changes[0].change, Change::Unchanged);
        base.clause = None;
        assert_eq!(compare(&[base], &[run]).changes[0].change, Change::Unchanged);
    }

    #[test]
    fn lost_coverage_counts_skips_apart_from_cells_gone() {
        let base = vec![record("a", "crun", "native", Pass), record("b", "crun", "native", Pass)];
        let run = vec![record("a", "crun", "native", Skip)];
        let cmp = compare(&base, &run);
        assert_eq!((cmp.lost(), cmp.lost_to_skips(), cmp.regressions()), (2, 1, 0));
    }
}
