//! `compare`, `baseline` and `merge`: what is done with the records of finished runs.

use super::paths::{baseline_path, run_path};
use crate::project::Project;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct CompareArgs {
    /// A run directory, a cells.jsonl file, or the name of a baseline in results/baselines/.
    base: String,
    /// A run directory or cells.jsonl file (default: results/runs/latest).
    run: Option<String>,
    /// Also write the comparison as Markdown (for a CI job summary) to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Do not fail on lost coverage (cells good in BASE, skipped or gone in RUN): for a run
    /// that was filtered or sharded on purpose.
    #[arg(long)]
    allow_lost: bool,
}

#[derive(Args)]
pub struct BaselineArgs {
    /// A run directory (default: results/runs/latest).
    run: Option<String>,
    /// The baseline's name, e.g. `default` for the default matrix.
    #[arg(long, default_value = "default")]
    name: String,
}

#[derive(Args)]
pub struct MergeArgs {
    /// Run directories, in order.
    #[arg(required_unless_present = "shards_dir")]
    runs: Vec<String>,
    /// The shards of one sharded run, `DIR/shard-1` ... `DIR/shard-N` (each a run directory with
    /// the harness's exit code in `exit-code`), merged in order after any RUN. Exit 1, naming
    /// each, when a shard is missing or its harness crashed (any exit but 0, or 1 for "some cells
    /// did not pass"); what is there is merged anyway.
    #[arg(long, value_name = "DIR", requires = "shards")]
    shards_dir: Option<PathBuf>,
    /// How many shards `--shards-dir` must hold.
    #[arg(long, value_name = "N", requires = "shards_dir")]
    shards: Option<usize>,
    /// Exit 1 when the merged run has fewer distinct cells than this (the plan's count).
    #[arg(long, value_name = "CELLS")]
    planned: Option<usize>,
}

pub fn compare(project: &Project, args: &CompareArgs) -> anyhow::Result<ExitCode> {
    // Exit 1 means "regressed": a comparison that cannot be made is 2.
    let loaded = baseline_path(project, &args.base).and_then(|base| {
        let run = run_path(project, args.run.as_deref())?;
        let records = (crate::compare::load(&base)?, crate::compare::load(&run)?);
        Ok((base, run, records))
    });
    let (base, run, (base_records, run_records)) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let comparison = crate::compare::compare(&base_records, &run_records);
    println!("{} -> {}", base.display(), run.display());
    print!("{}", comparison.text());
    if let Some(path) = &args.markdown {
        std::fs::write(path, comparison.markdown())
            .map_err(|e| anyhow::anyhow!("failed to write {}: {e}", path.display()))?;
    }
    let lost = if args.allow_lost { 0 } else { comparison.lost() };
    if lost > 0 {
        eprintln!(
            "error: {lost} cell(s) good in the baseline are skipped or gone now (lost coverage; --allow-lost accepts it)"
        );
    }
    Ok(if comparison.regressions() == 0 && lost == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub fn baseline(project: &Project, args: &BaselineArgs) -> anyhow::Result<ExitCode> {
    let run = run_path(project, args.run.as_deref())?;
    let records = crate::compare::load(&run)?;
    if let Some(fault) = records.iter().find_map(|r| r.fault.as_deref()) {
        eprintln!(
            "error: {} ran under CRIU_MATRIX_FAULT={fault}: a self-check of the harness is no baseline",
            run.display()
        );
        return Ok(ExitCode::from(2));
    }
    let dir = project.results().join("baselines");
    std::fs::create_dir_all(&dir)?;
    let plain = !args.name.is_empty()
        && !args.name.starts_with('.')
        && args.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    anyhow::ensure!(plain, "a baseline name is a file name in {} (letters, digits, `-`, `_`, `.`), not `{}`", dir.display(), args.name);
    let path = dir.join(format!("{}.jsonl", args.name));
    std::fs::write(&path, crate::compare::baseline(&records))?;
    println!("{} records of {} -> {}", records.len(), run.display(), path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn merge(project: &Project, args: &MergeArgs) -> anyhow::Result<ExitCode> {
    let mut runs: Vec<PathBuf> = args.runs.iter().map(|r| run_path(project, Some(r))).collect::<anyhow::Result<_>>()?;
    let mut problems = Vec::new();
    if let (Some(dir), Some(count)) = (&args.shards_dir, args.shards) {
        let (present, missing) = shards_in(dir, count);
        runs.extend(present);
        problems.extend(missing);
    }
    if runs.is_empty() {
        problems.push("nothing to merge: no shard left a run".to_string());
    } else {
        let (run, records) = crate::report::merge::merge(&project.results(), &runs)?;
        println!("{}", std::fs::read_to_string(run.dir.join("matrix.md"))?);
        println!("merged {} records from {} runs: {}", records.len(), runs.len(), run.dir.display());
        let cells: std::collections::BTreeSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
        if let Some(planned) = args.planned.filter(|p| cells.len() < *p) {
            problems.push(format!(
                "the merged run has {} cells, the plan {planned}: {} are missing",
                cells.len(),
                planned - cells.len()
            ));
        }
    }
    for p in &problems {
        eprintln!("error: {p}");
        if std::env::var_os("GITHUB_ACTIONS").is_some() {
            println!("::error::{p}");
        }
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The run directories of `dir/shard-1..=count`, in order, and what is wrong with the others: a
/// shard with no run (its artifact is missing, or its harness left none) or whose harness
/// crashed. A harness's exit 1 means only that some cells did not pass: the baseline judges
/// those.
fn shards_in(dir: &std::path::Path, count: usize) -> (Vec<PathBuf>, Vec<String>) {
    let (mut present, mut problems) = (Vec::new(), Vec::new());
    for i in 1..=count {
        let shard = dir.join(format!("shard-{i}"));
        let exit = std::fs::read_to_string(shard.join("exit-code")).ok().map(|t| t.trim().to_string());
        let has_run = shard.join("cells.jsonl").is_file();
        match (shard.is_dir(), exit.as_deref(), has_run) {
            (false, _, _) => problems.push(format!("shard {i}/{count}: its artifact is missing ({})", shard.display())),
            (true, None, _) => {
                problems.push(format!("shard {i}/{count}: no exit-code (the shard job ended before its harness did)"))
            }
            (true, Some("0" | "1"), true) => {}
            (true, Some(code @ ("0" | "1")), false) => {
                problems.push(format!("shard {i}/{count}: its harness exited {code} but left no cells.jsonl"))
            }
            (true, Some(code), _) => problems.push(format!(
                "shard {i}/{count}: its harness crashed (exit {code}; 0 is all passed, 1 some cells did not pass)"
            )),
        }
        if has_run {
            present.push(shard);
        }
    }
    (present, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_or_crashed_shard_is_named_and_the_others_are_merged() {
        let dir = tempfile::tempdir().unwrap();
        let shard = |i: usize, code: Option<&str>, run: bool| {
            let d = dir.path().join(format!("shard-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            if let Some(c) = code {
                std::fs::write(d.join("exit-code"), format!("{c}\n")).unwrap();
            }
            if run {
                std::fs::write(d.join("cells.jsonl"), "").unwrap();
            }
        };
        shard(1, Some("0"), true);
        shard(2, Some("1"), true);
        // 3 is missing altogether.
        shard(4, Some("101"), true); // a panic
        shard(5, Some("2"), false); // the plan did not load
        shard(6, None, false);
        let (present, problems) = shards_in(dir.path(), 6);
        let names: Vec<String> =
            present.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["shard-1", "shard-2", "shard-4"]);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("shard 3/6: its artifact is missing"), "{problems:?}");
        assert!(problems[1].contains("shard 4/6: its harness crashed (exit 101"), "{problems:?}");
        assert!(problems[2].contains("shard 5/6: its harness crashed (exit 2"), "{problems:?}");
        assert!(problems[3].contains("shard 6/6: no exit-code"), "{problems:?}");
    }
}
