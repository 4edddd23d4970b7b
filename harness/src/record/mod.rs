//! The record of a run: `results/runs/<run-id>/`, with `cells.jsonl` (one line per cell, appended
//! and flushed as each cell finishes, so a crash loses no finished cell) and a `cells/<name>/`
//! directory of logs and the reproducer per cell.

use crate::plan::CellKey;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub mod merge;

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
    /// A stress cell's rate and freeze times (plain fields, for any report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress: Option<StressRecord>,
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

/// What a stress cell's rounds came to: the failure rate, which failure signs showed, and CRIU's
/// freeze times (µs, from `--print-stats`; only a successful dump prints them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StressRecord {
    /// The rounds the scenario asked for.
    pub planned: u32,
    /// The rounds that ran.
    pub rounds: u32,
    pub failures: u32,
    /// `failures / rounds`, in percent.
    pub failure_rate: f64,
    /// The bound the verdict held the rate against, e.g. `0%` or `<=100%`.
    pub expected_rate: String,
    /// The failed rounds (1-based).
    pub failed_rounds: Vec<u32>,
    /// Signature name -> how many failed rounds showed it.
    pub signatures: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freezing_time_us: Option<crate::rate::Summary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_time_us: Option<crate::rate::Summary>,
    /// The most polls a successful dump found the v1 freezer FREEZING (see `RoundRecord`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freezing_polls_max: Option<u32>,
    /// Rounds in which some task of the container was in uninterruptible sleep (D) right before
    /// the checkpoint.
    pub rounds_with_d_state: u32,
    /// Why the rounds stopped before `planned`, when they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_early: Option<String>,
}

impl StressRecord {
    pub fn new(run: &crate::verdict::StressRun, rounds: &[RoundRecord], expected_rate: String) -> StressRecord {
        let mut signatures = BTreeMap::new();
        for failure in rounds.iter().filter_map(|r| r.failure.as_ref()) {
            let names: std::collections::BTreeSet<&str> = failure.signatures.iter().map(|h| h.name.as_str()).collect();
            for name in names {
                *signatures.entry(name.to_string()).or_insert(0) += 1;
            }
        }
        let figures = |field: &str| -> Vec<f64> {
            rounds
                .iter()
                .filter(|r| r.failure.is_none())
                .filter_map(|r| r.checkpoint_stats.get(field).copied())
                .collect()
        };
        StressRecord {
            planned: run.planned,
            rounds: run.ran,
            failures: run.failures.len() as u32,
            failure_rate: run.percent(),
            expected_rate,
            failed_rounds: run.failures.iter().map(|f| f.round).collect(),
            signatures,
            freezing_time_us: crate::rate::Summary::of(&figures("freezing_time")),
            frozen_time_us: crate::rate::Summary::of(&figures("frozen_time")),
            freezing_polls_max: rounds.iter().filter_map(|r| r.freezing_polls).max(),
            rounds_with_d_state: rounds
                .iter()
                .filter(|r| r.tasks_before.as_ref().is_some_and(|t| !t.uninterruptible.is_empty()))
                .count() as u32,
            ended_early: run.ended_early.clone(),
        }
    }

    /// `3/20` (and `of N planned` when the rounds stopped early).
    pub fn fraction(&self) -> String {
        crate::rate::fraction(self.failures, self.rounds, self.planned)
    }
}

/// A failed round of a stress cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundFailure {
    pub step: String,
    pub message: String,
    /// The stress scenario's signatures this round's evidence matched, with the first line of each.
    #[serde(default)]
    pub signatures: Vec<SignatureHit>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignatureHit {
    pub name: String,
    pub line: String,
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
    /// The pidfds the container's processes held right before the checkpoint (a scenario with a
    /// `pidfd_holders` precheck): holder, fd, target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pidfds: Vec<crate::execute::pidfds::PidfdHolder>,
    /// The size of the exported checkpoint archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_bytes: Option<u64>,
    /// What a viewer saw after the restore (a `vnc` step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc: Option<VncSeen>,
    /// What a viewer saw before the first checkpoint (round 1 of a scenario with a `vnc` step),
    /// so that an undrawn picture after a restore can be told from a desktop never drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc_before: Option<VncSeen>,
    /// The PIDs (inside the container) of each process a `running` step names, before the
    /// checkpoint and after the restore.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub running: BTreeMap<String, RunningSeen>,
    /// The state of every task of the container right before the checkpoint (stress cells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_before: Option<crate::execute::tasks::TaskStates>,
    /// A stress round that failed, and the failure signs it showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RoundFailure>,
    /// How many times a successful dump's log read the v1 freezer as FREEZING (100 ms apart);
    /// 10 or more keeps that log as `round<N>-dump.log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freezing_polls: Option<u32>,
    /// The container's freezer after a failed checkpoint (`THAWED`, or what the harness found
    /// and thawed, e.g. `FREEZING, thawed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freezer_after: Option<String>,
}

/// A VNC session after a restore: the handshake and the picture.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VncSeen {
    /// `3.8 vnc-auth`: the protocol version and security type agreed.
    pub protocol: String,
    pub desktop: String,
    pub width: u16,
    pub height: u16,
    pub distinct_colors: usize,
    /// The PNG in the cell's log directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningSeen {
    pub before: Vec<u32>,
    pub after: Vec<u32>,
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
