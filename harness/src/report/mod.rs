//! Reports built from records: `matrix.md` and `matrix.json` (scenarios as rows,
//! engine/runtime/stack/kernel as columns, a verdict in every cell).

use crate::record::CellRecord;
use crate::verdict::Verdict;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct Matrix {
    /// Column labels: `engine/runtime/stack/kernel`.
    pub columns: Vec<String>,
    pub rows: Vec<MatrixRow>,
    pub totals: BTreeMap<Verdict, usize>,
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
    pub reason: String,
    pub seconds: f64,
    pub logs: Option<String>,
}

fn column_of(r: &CellRecord) -> String {
    let k = &r.key;
    if k.in_vm() {
        format!("{}/{}/{}/{} {} {} {}", k.engine, k.runtime, k.stack, k.kernel, k.cgroup, k.init, k.accel)
    } else {
        format!("{}/{}/{}/{}", k.engine, k.runtime, k.stack, k.kernel)
    }
}

pub fn build(records: &[CellRecord]) -> Matrix {
    let columns: Vec<String> = records.iter().map(column_of).collect::<BTreeSet<_>>().into_iter().collect();
    let scenarios: BTreeSet<&str> = records.iter().map(|r| r.key.scenario.as_str()).collect();
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
                    records.iter().rev().find(|r| r.key.scenario == scenario && &column_of(r) == col).map(|r| {
                        MatrixCell {
                            verdict: r.verdict,
                            reason: r.reason.clone(),
                            seconds: r.seconds,
                            logs: r.logs.clone(),
                        }
                    })
                })
                .collect(),
        })
        .collect();
    Matrix { columns, rows, totals }
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
                Some(c) => out.push_str(&format!(" {} |", c.verdict)),
                None => out.push_str(" |"),
            }
        }
        out.push('\n');
    }
    let totals: Vec<String> = matrix.totals.iter().map(|(v, n)| format!("{n} {v}")).collect();
    out.push_str(&format!("\nTotals: {}\n", totals.join(", ")));
    out.push_str("\nWhy each cell has its verdict:\n\n");
    for row in &matrix.rows {
        for (col, cell) in matrix.columns.iter().zip(&row.cells) {
            if let Some(c) = cell {
                out.push_str(&format!(
                    "- `{}` {col}: **{}** ({:.1}s) {}\n",
                    row.scenario, c.verdict, c.seconds, c.reason
                ));
            }
        }
    }
    out
}

/// Writes `matrix.md` and `matrix.json` into the run directory.
pub fn write(run_dir: &Path, records: &[CellRecord]) -> anyhow::Result<()> {
    let matrix = build(records);
    std::fs::write(run_dir.join("matrix.md"), markdown(&matrix))?;
    std::fs::write(run_dir.join("matrix.json"), serde_json::to_string_pretty(&matrix)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::CellKey;

    fn record(scenario: &str, runtime: &str, stack: &str, verdict: Verdict) -> CellRecord {
        CellRecord {
            name: format!("{scenario}::podman::{runtime}::{stack}::host"),
            key: CellKey {
                scenario: scenario.into(),
                engine: "podman".into(),
                runtime: runtime.into(),
                stack: stack.into(),
                kernel: "host".into(),
                cgroup: "v1".into(),
                init: "host".into(),
                accel: "native".into(),
            },
            verdict,
            reason: "why".into(),
            expected: "passes".into(),
            failure: None,
            rounds: vec![],
            versions: Default::default(),
            started: String::new(),
            seconds: 1.0,
            logs: None,
            reproducer: None,
            stress: None,
        }
    }

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
    }
}
