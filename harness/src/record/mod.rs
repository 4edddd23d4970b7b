//! The record of a run: `results/runs/<run-id>/`, with `cells.jsonl` (one line per cell, appended
//! and flushed as each cell finishes, so a crash loses no finished cell) and a `cells/<name>/`
//! directory of logs and the reproducer per cell.

use crate::plan::CellKey;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellRecord {
    pub name: String,
    pub key: CellKey,
    pub verdict: Verdict,
    /// One line: why this verdict.
    pub reason: String,
    /// What the scenario expected here, e.g. `passes` or `fails at round 2 checkpoint`.
    pub expected: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureRecord>,
    #[serde(default)]
    pub rounds: Vec<RoundRecord>,
    /// Kernel, cgroup, and the versions of every tool in the stack.
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    pub started: String,
    pub seconds: f64,
    /// Relative to the run directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproducer: Option<String>,
    /// The CRIU configuration in force while the cell ran (absent when it did not get that far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criu_config: Option<CriuConfigRecord>,
}

/// What CRIU could be configured by during a cell, besides the options the runtime passes:
/// every file in the stack's `/etc/criu/` (`default.conf`, which CRIU reads itself, and the
/// runtimes' `runc.conf`, `crun.conf`) and the `org.criu.config` annotation of the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriuConfigRecord {
    pub files: Vec<CriuConfigFileRecord>,
    /// The value of the container's `org.criu.config` annotation, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriuConfigFileRecord {
    /// The path in the stack.
    pub path: String,
    pub text: String,
    /// Written for this cell by the harness (else it belongs to the stack, and stays).
    pub by_harness: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureRecord {
    pub round: u32,
    pub step: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_matched: Option<String>,
    /// The last lines of the evidence (engine stderr, CRIU log), for reading without the files.
    pub excerpt: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoundRecord {
    pub round: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_after: Option<u64>,
    /// Figures from the engine's `--print-stats` (CRIU's freezing/frozen/memdump times in µs, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checkpoint_stats: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restore_stats: BTreeMap<String, f64>,
    /// Where each process of the container was after the restore (a `cgroup_placement` step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_placement: Option<crate::execute::placement::Placement>,
}

impl CellRecord {
    pub fn summary_line(&self) -> String {
        format!("{} ({:.1}s): {}", self.verdict, self.seconds, self.reason)
    }
}

/// A run directory being written.
pub struct RunDir {
    pub id: String,
    pub dir: PathBuf,
    cells: std::sync::Mutex<std::fs::File>,
}

impl RunDir {
    /// Creates `results/runs/<id>/`; the id is the UTC start time plus the PID, so runs sort by time.
    pub fn create(results: &Path) -> anyhow::Result<RunDir> {
        let now = time::OffsetDateTime::now_utc();
        let stamp = now
            .format(&time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
            .expect("static format");
        let id = format!("{stamp}-{}", std::process::id());
        let dir = results.join("runs").join(&id);
        std::fs::create_dir_all(dir.join("cells"))
            .map_err(|e| anyhow::anyhow!("failed to create the run directory {}: {e}", dir.display()))?;
        let cells = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("cells.jsonl"))?;
        // A stable name for "the newest run", for people and scripts.
        let latest = results.join("runs").join("latest");
        let _ = std::fs::remove_file(&latest);
        let _ = std::os::unix::fs::symlink(&id, &latest);
        Ok(RunDir { id, dir, cells: std::sync::Mutex::new(cells) })
    }

    /// The directory for one cell's logs and reproducer (created on demand).
    pub fn cell_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.dir.join("cells").join(Self::cell_dir_name(name));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// The directory name of a cell's logs under `cells/`.
    pub fn cell_dir_name(name: &str) -> String {
        name.replace("::", "__")
    }

    /// Appends one finished cell and flushes it to disk before returning.
    pub fn append(&self, record: &CellRecord) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(record)?;
        line.push('\n');
        let mut file = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        Ok(())
    }

    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.dir).unwrap_or(path).display().to_string()
    }
}

/// Reads a run's `cells.jsonl`. A torn last line (a crash mid-write) is ignored.
pub fn read_cells(run_dir: &Path) -> anyhow::Result<Vec<CellRecord>> {
    let text = std::fs::read_to_string(run_dir.join("cells.jsonl"))
        .map_err(|e| anyhow::anyhow!("failed to read {}/cells.jsonl: {e}", run_dir.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut records = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => anyhow::bail!("{}/cells.jsonl line {}: {e}", run_dir.display(), i + 1),
        }
    }
    Ok(records)
}
