//! The matrix of a run: scenarios as rows, engine/runtime/stack/kernel (and a VM's
//! cgroup/init/accel) as columns, a verdict in every cell; in Markdown (also a CI job summary)
//! and as JSON.

use crate::axes::Axis;
use crate::record::{CellRecord, Verdict};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Serialize)]
pub struct Matrix {
    /// Column labels: `engine/runtime/stack/kernel`.
    pub columns: Vec<String>,
    pub rows: Vec<MatrixRow>,
    pub totals: BTreeMap<Verdict, usize>,
    /// The harness's fault mode the run was under (a self-check), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MatrixRow {
    pub scenario: String,
    /// One entry per column; `None` where the run had no such cell.
    pub cells: Vec<Option<MatrixCell>>,
}

#[derive(Debug, Serialize)]
pub struct MatrixCell {
    pub verdict: Verdict,
    /// A stress cell's failed rounds over its rounds, e.g. `9/24`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    pub reason: String,
    pub seconds: f64,
    pub logs: Option<String>,
    /// A stress cell's rate, signatures and freeze times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stress: Option<crate::record::StressRecord>,
    /// The known issue that decided the verdict, e.g. `criu#2705`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_issue: Option<String>,
}

impl MatrixCell {
    /// The verdict as a matrix shows it: `pass`, `reproduced criu#2705` where a known issue
    /// decided it, `reproduced 9/24` for a stress cell.
    pub fn label(&self) -> String {
        let mut label = self.verdict.to_string();
        if let Some(id) = &self.known_issue {
            label.push_str(&format!(" {id}"));
        }
        if let Some(rate) = &self.rate {
            label.push_str(&format!(" {rate}"));
        }
        label
    }
}

fn column_of(r: &CellRecord) -> String {
    let k = &r.key;
    let mut column = [Axis::Engine, Axis::Runtime, Axis::Stack, Axis::Kernel].map(|a| k[a].as_str()).join("/");
    if k.boots_a_kernel() {
        for axis in [Axis::Cgroup, Axis::Init, Axis::Accel] {
            column.push(' ');
            column.push_str(&k[axis]);
        }
    }
    column
}

pub fn build(records: &[CellRecord]) -> Matrix {
    let columns: Vec<String> = records.iter().map(column_of).collect::<BTreeSet<_>>().into_iter().collect();
    let scenarios: BTreeSet<&str> = records.iter().map(|r| r.key[Axis::Scenario].as_str()).collect();
    let mut totals = BTreeMap::new();
    for r in records {
        *totals.entry(r.verdict).or_insert(0) += 1;
    }
    let rows = scenarios
        .into_iter()
        .map(|scenario| MatrixRow {
            scenario: scenario.to_string(),
            cells: columns
                .iter()
                .map(|col| {
                    // The last record wins when a cell was run more than once.
                    records.iter().rev().find(|r| r.key[Axis::Scenario] == scenario && &column_of(r) == col).map(|r| {
                        MatrixCell {
                            verdict: r.verdict,
                            rate: r.stress.as_ref().map(|s| s.fraction()),
                            reason: r.reason.clone(),
                            seconds: r.seconds,
                            logs: r.logs.clone(),
                            stress: r.stress.clone(),
                            known_issue: r.clause.as_ref().and_then(|c| c.known_issue()).map(String::from),
                        }
                    })
                })
                .collect(),
        })
        .collect();
    let fault = records.iter().find_map(|r| r.fault.clone());
    Matrix { columns, rows, totals, fault }
}

pub fn markdown(matrix: &Matrix) -> String {
    let mut out = String::from("| scenario |");
    for c in &matrix.columns {
        out.push_str(&format!(" {c} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(matrix.columns.len()));
    out.push('\n');
    for row in &matrix.rows {
        out.push_str(&format!("| {} |", row.scenario));
        for cell in &row.cells {
            match cell {
                Some(c) => out.push_str(&format!(" {} |", c.label())),
                None => out.push_str(" |"),
            }
        }
        out.push('\n');
    }
    let totals: Vec<String> = matrix.totals.iter().map(|(v, n)| format!("{n} {v}")).collect();
    out.push_str(&format!("\nTotals: {}\n", totals.join(", ")));
    if let Some(fault) = &matrix.fault {
        out.push_str(&format!(
            "\nFault mode `{fault}` (CRIU_MATRIX_FAULT): every restore was replaced by what is not one; \
             a self-check of the harness, not a result about any stack.\n"
        ));
    }
    out.push_str(&stress_table(matrix));
    out.push_str("\nWhy each cell has its verdict:\n\n");
    for row in &matrix.rows {
        for (col, cell) in matrix.columns.iter().zip(&row.cells) {
            if let Some(c) = cell {
                out.push_str(&format!(
                    "- `{}` {col}: **{}** ({:.1}s) {}\n",
                    row.scenario,
                    c.label(),
                    c.seconds,
                    c.reason
                ));
            }
        }
    }
    out
}

/// The stress cells, one line each: rounds, failures, the signatures seen, and CRIU's freezing
/// and frozen times (median and maximum over the successful dumps, in ms). Empty without any.
fn stress_table(matrix: &Matrix) -> String {
    let ms = |s: &Option<crate::rate::Summary>| match s {
        Some(s) => (format!("{:.0}", s.median / 1000.0), format!("{:.0}", s.max / 1000.0)),
        None => ("-".to_string(), "-".to_string()),
    };
    let mut lines = Vec::new();
    for row in &matrix.rows {
        for (col, cell) in matrix.columns.iter().zip(&row.cells) {
            let Some((cell, st)) = cell.as_ref().and_then(|c| Some((c, c.stress.as_ref()?))) else { continue };
            let (freezing_median, freezing_max) = ms(&st.freezing_time_us);
            let (frozen_median, frozen_max) = ms(&st.frozen_time_us);
            let signs: Vec<String> = st.signatures.iter().map(|(n, k)| format!("{n} {k}")).collect();
            lines.push(format!(
                "| {} | {col} | {} | {} | {} | {:.0}% | {} | {freezing_median} | {freezing_max} | {frozen_median} | {frozen_max} | {} |",
                row.scenario,
                cell.verdict,
                st.rounds,
                st.failures,
                st.failure_rate,
                if signs.is_empty() { "-".to_string() } else { signs.join(", ") },
                st.rounds_with_d_state,
            ));
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\nStress cells (freeze times in ms, from CRIU's statistics of the successful dumps):\n\n\
         | scenario | cell | verdict | rounds | failures | rate | signatures | freezing median | freezing max | frozen median | frozen max | rounds with D tasks |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n{}\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::testing::record;

    #[test]
    fn every_scenario_is_a_row_and_every_column_has_a_verdict() {
        let records = vec![
            record("a", "crun", "trixie", Verdict::Pass),
            record("a", "runc", "trixie", Verdict::Fail),
            record("b", "crun", "bookworm", Verdict::Skip),
        ];
        let m = build(&records);
        assert_eq!(m.columns, vec!["podman/crun/bookworm/host", "podman/crun/trixie/host", "podman/runc/trixie/host"]);
        assert_eq!(m.rows.len(), 2);
        assert!(m.rows[0].cells[0].is_none());
        assert_eq!(m.rows[0].cells[2].as_ref().unwrap().verdict, Verdict::Fail);
        let md = markdown(&m);
        assert!(md.contains("| a | | pass | fail |"), "{md}");
        assert!(md.contains("1 pass, 1 fail, 1 skip"), "{md}");
        assert!(!md.contains("Stress cells"), "{md}");
    }

    #[test]
    fn a_stress_cell_shows_its_rate_and_freeze_times() {
        let mut r = record("churn", "runc", "bookworm", Verdict::Reproduced);
        r.stress = Some(crate::record::StressRecord {
            planned: 24,
            rounds: 24,
            failures: 9,
            failure_rate: 37.5,
            expected_rate: "<=100%".into(),
            failed_rounds: vec![1, 2, 3, 5, 8, 13, 14, 20, 21],
            signatures: [("timeout".to_string(), 9)].into(),
            freezing_time_us: crate::rate::Summary::of(&[1500.0, 2500.0, 90_000.0]),
            frozen_time_us: None,
            freezing_polls_max: Some(3),
            rounds_with_d_state: 4,
            ended_early: None,
        });
        let md = markdown(&build(&[r]));
        assert!(md.contains("| churn | reproduced 9/24 |"), "{md}");
        assert!(md.contains("| reproduced | 24 | 9 | 38% | timeout 9 | 2 | 90 | - | - | 4 |"), "{md}");
    }
}
