//! Runs and baselines named on the command line.

use crate::project::Project;
use std::path::PathBuf;

/// A run directory given on the command line: a path, a run id under results/runs/, or the latest run.
pub fn run_path(project: &Project, run: Option<&str>) -> anyhow::Result<PathBuf> {
    let runs = project.results().join("runs");
    let candidates = match run {
        None => vec![runs.join("latest")],
        Some(r) => vec![PathBuf::from(r), runs.join(r)],
    };
    candidates
        .into_iter()
        .find(|p| p.join("cells.jsonl").is_file() || p.is_file())
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "failed to find the run `{}` (no cells.jsonl there or under {})",
                run.unwrap_or("latest"),
                runs.display()
            )
        })
}

/// A baseline: a path, or a name in results/baselines/ (`default` is `default.jsonl`).
pub fn baseline_path(project: &Project, base: &str) -> anyhow::Result<PathBuf> {
    let named = project.results().join("baselines").join(format!("{base}.jsonl"));
    if !std::path::Path::new(base).exists() && named.is_file() {
        return Ok(named);
    }
    run_path(project, Some(base))
}
