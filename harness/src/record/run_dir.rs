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
    /// the same cell in a run (`--repeat`, a merge of repeats) gets `<name>.2`, and so on. A
    /// name that is not a cell name (a record of another run says anything) is refused: its
    /// directory could be outside `cells/`.
    pub fn cell_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let base = Self::checked_cell_dir_name(name)?;
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

    /// [`RunDir::cell_dir_name`] of a name made of what cell names are made of (axis values
    /// and scenario ids: letters, digits, `-`, `_`, `.`, joined by `::`), else an error.
    pub fn checked_cell_dir_name(name: &str) -> anyhow::Result<String> {
        let plain = |part: &str| {
            !part.is_empty()
                && !part.starts_with('.')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        anyhow::ensure!(
            name.len() <= 255 && name.split("::").all(plain),
            "the cell name `{}` is not one criu-matrix makes: its directory would not be a plain name under cells/",
            name.escape_debug()
        );
        Ok(Self::cell_dir_name(name))
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

/// `relative`, a path a record names (its logs, its reproducer), under `run_dir`: refused
/// when it would lead out of it (absolute, with `..`, or through a symbolic link, a run
/// directory from elsewhere may hold anything).
pub fn inside(run_dir: &Path, relative: &str) -> anyhow::Result<PathBuf> {
    use std::path::Component;
    let refuse = |why: &str| {
        anyhow::anyhow!("the path `{}` of a record {why}: refused (it must stay in {})", relative.escape_debug(), run_dir.display())
    };
    let path = Path::new(relative);
    if !path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(refuse("is absolute or has `..`"));
    }
    let mut at = run_dir.to_path_buf();
    for component in path.components() {
        at.push(component);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(refuse("goes through a symbolic link"));
        }
    }
    Ok(at)
}

/// Reads a run's `cells.jsonl`. A torn last line (a crash mid-write) is ignored.
pub fn read_cells(run_dir: &Path) -> anyhow::Result<Vec<CellRecord>> {
    read_cells_file(&run_dir.join("cells.jsonl"))
}

/// Reads records from a `cells.jsonl`-shaped file (a run's, or a committed baseline). A line
/// that cannot be read is an error, except a torn last line (a crash mid-write), which is left
/// out with a warning on stderr: the user sees that a record was lost.
pub fn read_cells_file(path: &Path) -> anyhow::Result<Vec<CellRecord>> {
    let (records, torn) = read_cells_text(path)?;
    if let Some(problem) = torn {
        eprintln!("warning: {problem}");
    }
    Ok(records)
}

/// The records of a `cells.jsonl`-shaped file, and what was wrong with its torn last line.
pub fn read_cells_text(path: &Path) -> anyhow::Result<(Vec<CellRecord>, Option<String>)> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("failed to read {}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut records = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            Err(e) if i + 1 == lines.len() && !text.ends_with('\n') => {
                let torn = format!(
                    "{} line {} is torn (a run killed while writing it?) and was left out: {e}",
                    path.display(),
                    i + 1
                );
                return Ok((records, Some(torn)));
            }
            Err(e) => anyhow::bail!("{} line {} cannot be read: {e}", path.display(), i + 1),
        }
    }
    Ok((records, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str) -> String {
        let mut r = crate::record::testing::record(name, "runc", "trixie", crate::record::Verdict::Pass);
        r.name = name.into();
        serde_json::to_string(&r).unwrap()
    }

    #[test]
    fn a_torn_last_line_is_reported_and_any_other_bad_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cells.jsonl");
        std::fs::write(&file, format!("{}\n{}\n", line("a"), line("b"))).unwrap();
        assert_eq!(read_cells_text(&file).unwrap().0.len(), 2);
        let torn = format!("{}\n{}", line("a"), &line("b")[..40]);
        std::fs::write(&file, &torn).unwrap();
        let (records, problem) = read_cells_text(&file).unwrap();
        assert_eq!(records.len(), 1);
        assert!(problem.unwrap().contains("line 2 is torn"));
        std::fs::write(&file, format!("{}\n{}\n", &line("a")[..40], line("b"))).unwrap();
        assert!(read_cells_text(&file).unwrap_err().to_string().contains("line 1 cannot be read"));
        // A complete last line that does not parse is no tear: it is an error.
        std::fs::write(&file, format!("{}\n{{\"name\": 1}}\n", line("a"))).unwrap();
        assert!(read_cells_text(&file).is_err());
    }

    use rstest::rstest;

    #[rstest]
    #[case::logs("cells/a__podman__crun", true)]
    #[case::file("cells/a__podman__crun/reproduce.sh", true)]
    #[case::dot("./cells/x", true)]
    #[case::absolute("/etc/shadow", false)]
    #[case::up("cells/../../../etc", false)]
    #[case::up_only("..", false)]
    fn paths_of_records_stay_in_the_run(#[case] path: &str, #[case] ok: bool) {
        let run = tempfile::tempdir().unwrap();
        let found = inside(run.path(), path);
        assert_eq!(found.is_ok(), ok, "{path}: {found:?}");
        if let Ok(p) = found {
            assert!(p.starts_with(run.path()));
        } else {
            assert!(found.unwrap_err().to_string().contains("refused"));
        }
    }

    #[test]
    fn a_link_in_a_run_does_not_lead_out_of_it() {
        let run = tempfile::tempdir().unwrap();
        std::fs::create_dir(run.path().join("cells")).unwrap();
        std::os::unix::fs::symlink("/etc", run.path().join("cells/x")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", run.path().join("cells/r.sh")).unwrap();
        for path in ["cells/x/shadow", "cells/r.sh"] {
            let err = inside(run.path(), path).unwrap_err().to_string();
            assert!(err.contains("through a symbolic link"), "{err}");
        }
    }

    #[rstest]
    #[case("java-daemon-double-checkpoint::podman::crun::trixie::host::v1::host::native", true)]
    #[case("a::b", true)]
    #[case("../../etc", false)]
    #[case("a/b::c", false)]
    #[case("..::x", false)]
    #[case("", false)]
    #[case("a::::b", false)]
    fn only_cell_names_get_a_directory(#[case] name: &str, #[case] ok: bool) {
        let results = tempfile::tempdir().unwrap();
        let run = RunDir::create(results.path()).unwrap();
        let dir = run.cell_dir(name);
        assert_eq!(dir.is_ok(), ok, "{name}: {dir:?}");
        if let Ok(d) = dir {
            assert_eq!(d.parent(), Some(run.dir.join("cells").as_path()));
        }
    }
}
