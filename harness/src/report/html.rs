//! `matrix.html`: the matrix as one self-contained page (inline CSS, script and SVG; nothing is
//! fetched). Scenarios are rows; engine, runtime, stack, kernel and cgroup (and, for VM cells,
//! init and accel) are grouped column headers; each cell has a colored verdict, and clicking it
//! shows its evidence: the failing step and round, the signature matched, the log excerpt, the
//! versions, the timings per round (with a chart) and the reproducer. `#cell=NAME` in the
//! address opens a cell's evidence, so a link can point at one.
//!
//! The page is built from the records alone, plus the files they name in the run directory
//! (reproducers, log file names): a baseline's records make a page too, without those.

use super::chart::{self, Series};
use crate::axes::Axis;
use crate::record::CellRecord;
use crate::record::Verdict;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

const TEMPLATE: &str = include_str!("../../templates/matrix.html");

/// The axes that make a column, outermost first: every axis but the scenario (the rows).
const COLUMN_AXES: [Axis; 7] =
    [Axis::Engine, Axis::Runtime, Axis::Stack, Axis::Kernel, Axis::Cgroup, Axis::Init, Axis::Accel];

#[derive(Serialize)]
struct Page {
    title: String,
    run_id: String,
    totals: Vec<(String, usize)>,
    header: Vec<HeaderRow>,
    rows: Vec<Row>,
    charts: Vec<ScenarioChart>,
    evidence: BTreeMap<String, Evidence>,
    cells: usize,
}

#[derive(Serialize)]
struct HeaderRow {
    axis: String,
    groups: Vec<(String, usize)>,
}

#[derive(Serialize)]
struct Row {
    scenario: String,
    cells: Vec<Option<CellView>>,
}

#[derive(Serialize)]
struct CellView {
    id: String,
    verdict: String,
    /// Repeats of the cell disagree.
    flaky: bool,
    runs: usize,
    tooltip: String,
    /// A stress cell's failed rounds, `3/20`: its result is a rate, not only a verdict.
    rate: Option<String>,
    /// The known issue that decided the verdict (`criu#2705`), shown beside it.
    known_issue: Option<String>,
}

#[derive(Serialize)]
struct ScenarioChart {
    scenario: String,
    chart: chart::Chart,
}

#[derive(Serialize)]
struct Evidence {
    name: String,
    verdict: String,
    reason: String,
    expected: String,
    /// The clause that decided the verdict: `known issue criu#2705`, `the scenario's clause at line 27`.
    clause: String,
    /// The fault mode the cell ran under (a self-check of the harness), if any.
    fault: Option<String>,
    seconds: f64,
    started: String,
    failure: Option<crate::record::FailureRecord>,
    versions: BTreeMap<String, String>,
    rounds: Vec<RoundView>,
    chart: Option<chart::Chart>,
    reproducer: Option<String>,
    reproducer_path: Option<String>,
    log_files: Vec<String>,
    /// Every verdict of the cell when it ran more than once, in order.
    repeats: Vec<String>,
}

#[derive(Serialize)]
struct RoundView {
    round: u32,
    checkpoint: Option<f64>,
    restore: Option<f64>,
    counter_before: Option<u64>,
    counter_after: Option<u64>,
    /// The witness's identity before the checkpoint and after the restore.
    witness_before: Option<String>,
    witness_after: Option<String>,
    /// CRIU's own figures for the checkpoint (`--print-stats`), e.g. frozen time.
    stats: String,
}

fn column_key(r: &CellRecord) -> Vec<String> {
    COLUMN_AXES.iter().map(|a| r.key[*a].clone()).collect()
}

/// A column's values ordered axis by axis, each axis in the order its values first appear
/// (the plan's order: stacks as the matrix lists them).
fn ordered_columns(records: &[CellRecord]) -> Vec<Vec<String>> {
    let mut first_seen: Vec<Vec<String>> = vec![Vec::new(); COLUMN_AXES.len()];
    let mut columns: Vec<Vec<String>> = Vec::new();
    for r in records {
        let key = column_key(r);
        for (i, v) in key.iter().enumerate() {
            if !first_seen[i].contains(v) {
                first_seen[i].push(v.clone());
            }
        }
        if !columns.contains(&key) {
            columns.push(key);
        }
    }
    let rank = |key: &Vec<String>| -> Vec<usize> {
        key.iter().enumerate().map(|(i, v)| first_seen[i].iter().position(|s| s == v).unwrap_or(0)).collect()
    };
    columns.sort_by_key(rank);
    columns
}

/// Header rows: adjacent columns that agree on this axis and every outer one share a header.
fn header_rows(columns: &[Vec<String>]) -> Vec<HeaderRow> {
    // init and accel only say something for VM cells; fold them into one row, or drop it.
    let any_vm = columns.iter().any(|c| c[3] != "host");
    let levels = if any_vm { 6 } else { 5 };
    (0..levels)
        .map(|level| {
            let label = |c: &Vec<String>| {
                if level == 5 {
                    if c[3] == "host" {
                        "-".to_string()
                    } else {
                        format!("{} {}", c[5], c[6])
                    }
                } else {
                    c[level].clone()
                }
            };
            let mut groups: Vec<(String, usize)> = Vec::new();
            for (i, c) in columns.iter().enumerate() {
                let same_group = i > 0 && columns[i - 1][..=level.min(4)] == c[..=level.min(4)];
                let text = label(c);
                match groups.last_mut() {
                    Some((last, span)) if same_group && *last == text => *span += 1,
                    _ => groups.push((text, 1)),
                }
            }
            let axis = if level == 5 { "init accel".to_string() } else { COLUMN_AXES[level].name().to_string() };
            HeaderRow { axis, groups }
        })
        .collect()
}

fn rounds_chart(title: &str, records: &[(&str, &CellRecord)]) -> Option<chart::Chart> {
    let mut series = Vec::new();
    for (i, (label, r)) in records.iter().enumerate() {
        let color = chart::PALETTE[i % chart::PALETTE.len()].to_string();
        let checkpoint: Vec<(u32, f64)> =
            r.rounds.iter().filter_map(|x| x.checkpoint_seconds.map(|s| (x.round, s))).collect();
        let restore: Vec<(u32, f64)> =
            r.rounds.iter().filter_map(|x| x.restore_seconds.map(|s| (x.round, s))).collect();
        if checkpoint.is_empty() && restore.is_empty() {
            continue;
        }
        let name = |what: &str| if label.is_empty() { what.to_string() } else { format!("{label} {what}") };
        series.push(Series { label: name("checkpoint"), color: color.clone(), dashed: false, points: checkpoint });
        series.push(Series { label: name("restore"), color, dashed: true, points: restore });
    }
    chart::rounds_chart(title, &series)
}

fn stats_text(stats: &BTreeMap<String, f64>) -> String {
    stats.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

fn evidence(run_dir: &Path, runs: &[&CellRecord]) -> Evidence {
    let r = *runs.last().expect("a cell has a record");
    // Only files inside the run, never through a link: a record may name any path.
    let reproducer = r
        .reproducer
        .as_ref()
        .and_then(|p| crate::record::inside(run_dir, p).ok())
        .and_then(|p| std::fs::read_to_string(p).ok());
    let mut log_files: Vec<String> = r
        .logs
        .as_ref()
        .and_then(|l| std::fs::read_dir(crate::record::inside(run_dir, l).ok()?).ok().map(|d| (l.clone(), d)))
        .map(|(l, d)| {
            d.filter_map(|e| e.ok()?.file_name().to_str().map(|n| format!("{l}/{n}")))
                .filter(|p| Some(p) != r.reproducer.as_ref())
                .collect()
        })
        .unwrap_or_default();
    log_files.sort();
    Evidence {
        name: r.name.clone(),
        verdict: r.verdict.to_string(),
        reason: r.reason.clone(),
        expected: r.expected.clone(),
        clause: r.clause.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        fault: r.fault.clone(),
        seconds: r.seconds,
        started: r.started.clone(),
        failure: r.failure.clone(),
        versions: r.versions.clone(),
        rounds: r
            .rounds
            .iter()
            .map(|x| RoundView {
                round: x.round,
                checkpoint: x.checkpoint_seconds,
                restore: x.restore_seconds,
                counter_before: x.counter_before,
                counter_after: x.counter_after,
                witness_before: x.witness_before.clone(),
                witness_after: x.witness_after.clone(),
                stats: stats_text(&x.checkpoint_stats),
            })
            .collect(),
        chart: rounds_chart(&format!("{}: seconds per round", r.name), &[("", r)]),
        reproducer,
        reproducer_path: r.reproducer.clone(),
        log_files,
        repeats: if runs.len() > 1 { runs.iter().map(|x| x.verdict.to_string()).collect() } else { Vec::new() },
    }
}

/// The page for `records`, reading reproducers from `run_dir`.
pub fn html(run_dir: &Path, run_id: &str, records: &[CellRecord]) -> anyhow::Result<String> {
    let columns = ordered_columns(records);
    let mut scenarios: Vec<&str> = Vec::new();
    for r in records {
        if !scenarios.contains(&r.key[Axis::Scenario].as_str()) {
            scenarios.push(&r.key[Axis::Scenario]);
        }
    }
    let mut by_cell: BTreeMap<(String, Vec<String>), Vec<&CellRecord>> = BTreeMap::new();
    for r in records {
        by_cell.entry((r.key[Axis::Scenario].clone(), column_key(r))).or_default().push(r);
    }
    let mut evidences = BTreeMap::new();
    let mut rows = Vec::new();
    let mut charts = Vec::new();
    for scenario in &scenarios {
        let mut timed: Vec<(String, &CellRecord)> = Vec::new();
        let cells = columns
            .iter()
            .map(|col| {
                let runs = by_cell.get(&(scenario.to_string(), col.clone()))?;
                let last = *runs.last().expect("not empty");
                let id = last.name.clone();
                evidences.insert(id.clone(), evidence(run_dir, runs));
                if last.rounds.iter().any(|x| x.checkpoint_seconds.is_some()) {
                    timed.push((col[..5].join("/"), last));
                }
                let flaky = runs.iter().any(|x| x.verdict != last.verdict);
                Some(CellView {
                    id,
                    verdict: last.verdict.to_string(),
                    flaky,
                    runs: runs.len(),
                    tooltip: format!("{}: {}", last.verdict, last.reason),
                    rate: last.stress.as_ref().map(|s| s.fraction()),
                    known_issue: last.clause.as_ref().and_then(|c| c.known_issue()).map(String::from),
                })
            })
            .collect();
        rows.push(Row { scenario: scenario.to_string(), cells });
        let labelled: Vec<(&str, &CellRecord)> = timed.iter().map(|(l, r)| (l.as_str(), *r)).collect();
        if let Some(chart) = rounds_chart(&format!("{scenario}: checkpoint and restore seconds per round"), &labelled) {
            charts.push(ScenarioChart { scenario: scenario.to_string(), chart });
        }
    }
    let mut totals: BTreeMap<Verdict, usize> = BTreeMap::new();
    for r in records {
        *totals.entry(r.verdict).or_insert(0) += 1;
    }
    let page = Page {
        title: format!("criu-matrix {run_id}"),
        run_id: run_id.to_string(),
        totals: totals.into_iter().map(|(v, n)| (v.to_string(), n)).collect(),
        header: header_rows(&columns),
        rows,
        charts,
        cells: evidences.len(),
        evidence: evidences,
    };
    let mut env = minijinja::Environment::new();
    env.add_template("matrix.html", TEMPLATE)?;
    Ok(env.get_template("matrix.html")?.render(minijinja::value::Serde(&page))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::testing::record;

    fn timed(mut r: CellRecord) -> CellRecord {
        r.rounds = (1..=3)
            .map(|round| crate::record::RoundRecord {
                round,
                checkpoint_seconds: Some(0.5 * f64::from(round)),
                restore_seconds: Some(0.4),
                ..Default::default()
            })
            .collect();
        r
    }

    #[test]
    fn the_page_has_grouped_headers_a_verdict_per_cell_and_evidence() {
        let mut failed = record("a", "runc", "trixie", Verdict::Fail);
        failed.reason = "</script><b>not markup</b>".into();
        let records = vec![
            timed(record("a", "crun", "trixie", Verdict::Pass)),
            failed,
            record("b", "crun", "sid", Verdict::Reproduced),
            record("b", "crun", "sid", Verdict::Skip),
        ];
        let dir = tempfile::tempdir().unwrap();
        let page = html(dir.path(), "run-1", &records).unwrap();
        // Columns: trixie's two runtimes grouped under podman; crun spans trixie and sid.
        let columns = ordered_columns(&records);
        let header = header_rows(&columns);
        assert_eq!(header.len(), 5, "no VM cell, no init/accel row");
        assert_eq!(header[0].groups, vec![("podman".to_string(), 3)]);
        assert_eq!(header[1].groups, vec![("crun".to_string(), 2), ("runc".to_string(), 1)]);
        assert_eq!(
            header[2].groups,
            vec![("trixie".to_string(), 1), ("sid".to_string(), 1), ("trixie".to_string(), 1)]
        );
        assert!(page.contains(r#"class="cell v-pass""#), "{page}");
        assert!(page.contains(r#"class="cell v-fail""#));
        // The repeated sid cell shows its last verdict, marked flaky.
        assert!(page.contains(r#"class="cell v-skip flaky""#));
        // Evidence is data for the script, with markup escaped inside the script element.
        assert!(!page.contains("</script><b>"), "unescaped markup in the page");
        assert!(page.contains("a: checkpoint and restore seconds per round"));
        assert_eq!(page.matches("<svg").count(), 1, "one scenario chart; cell charts live in the data");
        for fetch in ["src=\"http", "href=\"http", "<link", "@import", "url("] {
            assert!(!page.contains(fetch), "the page would fetch something: {fetch}");
        }
    }

    /// Record text reaches the page only through the template's escaping or as JSON data that
    /// the script writes as text: the template has no `|safe`, the script no `innerHTML`, and
    /// markup in a record (a chart label included) is escaped in the page.
    #[test]
    fn record_text_reaches_the_page_only_escaped() {
        assert!(!TEMPLATE.contains("|safe") && !TEMPLATE.contains("| safe"), "the template marks something safe");
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"] {
            assert!(!TEMPLATE.contains(sink), "the page's script writes markup with {sink}");
        }
        let mut r = timed(record("<img src=x onerror=alert(1)>", "crun", "trixie", Verdict::Fail));
        r.reason = "<script>alert(2)</script>".into();
        let dir = tempfile::tempdir().unwrap();
        let page = html(dir.path(), "run-1", &[r]).unwrap();
        assert!(!page.contains("<img src=x"), "a scenario name became markup");
        assert!(!page.contains("<script>alert"), "a reason became markup");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"), "the chart's caption is escaped text");
    }

    #[test]
    fn a_stress_cell_shows_its_rate_beside_its_verdict() {
        let mut stress = record("freezer", "runc", "bookworm", Verdict::Reproduced);
        stress.stress = Some(crate::record::StressRecord {
            planned: 20,
            rounds: 20,
            failures: 3,
            failure_rate: 15.0,
            expected_rate: "<=100%".into(),
            failed_rounds: vec![4, 9, 17],
            signatures: Default::default(),
            freezing_time_us: None,
            frozen_time_us: None,
            freezing_polls_max: None,
            rounds_with_d_state: 0,
            ended_early: None,
        });
        let dir = tempfile::tempdir().unwrap();
        let page = html(dir.path(), "run-1", &[stress, record("a", "crun", "sid", Verdict::Pass)]).unwrap();
        assert!(page.contains(">reproduced 3&#x2f;20<"), "{page}");
        assert!(page.contains(">pass<"));
    }

    #[test]
    fn vm_columns_get_an_init_and_accel_row() {
        let mut vm = record("a", "crun", "trixie", Verdict::Pass);
        vm.key.set(Axis::Kernel, "bookworm");
        vm.key.set(Axis::Cgroup, "v2");
        vm.key.set(Axis::Init, "systemd");
        vm.key.set(Axis::Accel, "tcg");
        let records = vec![record("a", "crun", "trixie", Verdict::Pass), vm];
        let header = header_rows(&ordered_columns(&records));
        assert_eq!(header.len(), 6);
        assert_eq!(header[5].groups, vec![("-".to_string(), 1), ("systemd tcg".to_string(), 1)]);
    }
}
