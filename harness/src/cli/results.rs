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
    #[arg(required = true)]
    runs: Vec<String>,
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
    let runs: Vec<PathBuf> = args.runs.iter().map(|r| run_path(project, Some(r))).collect::<anyhow::Result<_>>()?;
    let (run, records) = crate::report::merge::merge(&project.results(), &runs)?;
    println!("{}", std::fs::read_to_string(run.dir.join("matrix.md"))?);
    println!("merged {} records from {} runs: {}", records.len(), runs.len(), run.dir.display());
    Ok(ExitCode::SUCCESS)
}
