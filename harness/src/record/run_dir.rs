//! A run directory: `results/runs/<run-id>/`, with `cells.jsonl` (one line per cell, appended
//! and flushed as each cell finishes, so a crash loses no finished cell) and a `cells/<name>/`
//! directory of logs and the reproducer per cell.

use super::cell::CellRecord;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A run directory being written.
pub struct RunDir {
    pub id: String,
    pub dir: PathBuf,
    cells: std::sync::Mutex<std::fs::File>,
    /// Cell directories handed out so far: a repeat of a cell gets a directory of its own.
    cell_dirs: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl RunDir {
    /// Creates `results/runs/<id>/`; the id is the UTC start time plus the PID, so runs sort by time.
    pub fn create(results: &Path) -> anyhow::Result<RunDir> {
        let now = time::OffsetDateTime::now_utc();
        let stamp = now
            .format(&time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
            .expect("static format");
        let runs = results.join("runs");
        std::fs::create_dir_all(&runs)
            .map_err(|e| anyhow::anyhow!("failed to create the runs directory {}: {e}", runs.display()))?;
        // Two runs of one process in the same second (a merge after its shards) get `-2`, ...
        let (id, dir) = (1..)
            .map(|n| match n {
                1 => format!("{stamp}-{}", std::process::id()),
                n => format!("{stamp}-{}-{n}", std::process::id()),
            })
            .map(|id| (id.clone(), runs.join(id)))
            .find_map(|(id, dir)| match std::fs::create_dir(&dir) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                other => Some(other.map(|()| (id, dir))),
            })
            .expect("an unbounded range")
            .map_err(|e| anyhow::anyhow!("failed to create a run directory in {}: {e}", runs.display()))?;
        std::fs::create_dir_all(dir.join("cells"))?;
        let cells = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("cells.jsonl"))?;
        // A stable name for "the newest run", for people and scripts.
        let latest = results.join("runs").join("latest");
        let _ = std::fs::remove_file(&latest);
        let _ = std::os::unix::fs::symlink(&id, &latest);
        Ok(RunDir { id, dir, cells: std::sync::Mutex::new(cells), cell_dirs: Default::default() })
    }

    /// The directory for one cell's logs and reproducer (created on demand). The second run of
    /// the same cell in a run (`--repeat`, a merge of repeats) gets `<name>.2`, and so on.
    pub fn cell_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let base = Self::cell_dir_name(name);
        let mut taken = self.cell_dirs.lock().unwrap_or_else(|p| p.into_inner());
        let chosen = (1..)
            .map(|n| if n == 1 { base.clone() } else { format!("{base}.{n}") })
            .find(|d| !taken.contains(d))
            .expect("an unbounded range");
        taken.insert(chosen.clone());
        let dir = self.dir.join("cells").join(chosen);
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
    read_cells_file(&run_dir.join("cells.jsonl"))
}

/// Reads records from a `cells.jsonl`-shaped file (a run's, or a committed baseline).
pub fn read_cells_file(path: &Path) -> anyhow::Result<Vec<CellRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("failed to read {}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut records = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => anyhow::bail!("{} line {}: {e}", path.display(), i + 1),
        }
    }
    Ok(records)
}
