//! A cell in a VM: its work disk staged (the harness binary, the project's scenarios and images,
//! a one-cell matrix), the VM booted, and the guest's record and logs brought back.

use super::boot::total_limit;
use super::disk;
use super::machine::Machine;
use crate::axes::Axis;
use crate::events::Events;
use crate::plan::CellKey;
use crate::record::CellRecord;
use crate::stack::Cache;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a VM cell needs from the host side.
pub struct VmCell<'a> {
    pub key: &'a CellKey,
    pub name: &'a str,
    pub project_root: &'a Path,
    pub cache: &'a Cache,
    pub events: &'a Events,
    pub stack_rootfs: PathBuf,
    pub stack_storage: PathBuf,
    /// docker's data root of the stack (images built on the host for docker cells).
    pub stack_docker: PathBuf,
    /// The host's directory for this cell's logs.
    pub log_dir: &'a Path,
    /// The longest the cell's own steps may take (its scenario's limits added up).
    pub work_limit: Duration,
}

/// What came back from the VM.
pub struct VmRun {
    /// The guest's record of the cell, when the guest got that far.
    pub record: Option<CellRecord>,
    /// Facts about the VM, for the record's versions (`vm.*`).
    pub facts: BTreeMap<String, String>,
    /// Why the VM run failed, with the console tail, when it did.
    pub error: Option<String>,
}

pub async fn run_cell(cell: &VmCell<'_>) -> anyhow::Result<VmRun> {
    let key = cell.key;
    let (rootfs, storage, docker) = (&cell.stack_rootfs, &cell.stack_storage, &cell.stack_docker);
    let (kernel, stack) = (&key[Axis::Kernel], &key[Axis::Stack]);
    let machine = Machine::prepare(cell.cache, cell.events, kernel, stack, rootfs, storage, docker).await?;
    let console_path = cell.log_dir.join("console.log");
    let booted = machine
        .boot(
            cell.name,
            &key[Axis::Cgroup],
            &key[Axis::Init],
            |dir| stage_work(cell, dir),
            &console_path,
            cell.events,
            total_limit(cell.work_limit),
        )
        .await?;
    let facts = machine.facts(&booted, machine.tools.qemu_version().await);
    let boot = &booted.boot;
    let mut error = boot.error.clone();
    let mut record = None;
    if boot.done {
        let out = booted.run_dir.join("out");
        match disk::extract(&machine.tools, &booted.work_disk, "/project/results", &out).await {
            Err(e) => error = Some(format!("failed to read the guest's results: {e:#}")),
            Ok(()) => match read_guest_record(&out.join("results"), cell.name, cell.log_dir) {
                Ok(r) => record = Some(r),
                Err(e) => error = Some(format!("{e:#}\n--- console tail ---\n{}", boot.console_tail)),
            },
        }
    }
    Ok(VmRun { record, facts, error })
}

/// The work disk: the harness binary, the project's scenarios and images, a one-cell matrix, and
/// the script the guest's init runs.
fn stage_work(cell: &VmCell<'_>, staging: &Path) -> anyhow::Result<()> {
    let project = staging.join("project");
    std::fs::create_dir_all(project.join("matrices"))?;
    std::fs::create_dir_all(staging.join("bin"))?;
    let exe = std::env::current_exe().context("failed to find the harness binary")?;
    let binary = harness_binary(&exe)?;
    std::fs::copy(&binary, staging.join("bin/criu-matrix"))
        .with_context(|| format!("failed to copy {} into the work disk", binary.display()))?;
    // A stack older than the host (bullseye's glibc 2.31) cannot run the harness with its own
    // C library: the host's goes along, used only when the binary does not start without it.
    copy_libraries(&staging.join("bin/criu-matrix"), &staging.join("lib"))?;
    for dir in ["scenarios", "images"] {
        crate::files::copy_dir(&cell.project_root.join(dir), &project.join(dir))
            .with_context(|| format!("failed to copy {dir}/ into the work disk"))?;
    }
    let key = cell.key;
    let matrix = format!(
        "description: one cell, run inside a criu-matrix VM\nscenarios: [{}]\nengines: [{}]\nruntimes: [{}]\nstacks: [{}]\nkernels: [host]\n",
        key[Axis::Scenario], key[Axis::Engine], key[Axis::Runtime], key[Axis::Stack]
    );
    std::fs::write(project.join("matrices/guest.yaml"), matrix)?;
    let identity = crate::host::Identity {
        stack: key[Axis::Stack].clone(),
        kernel: key[Axis::Kernel].clone(),
        cgroup: key[Axis::Cgroup].clone(),
        init: key[Axis::Init].clone(),
        accel: key[Axis::Accel].clone(),
    };
    // The run's stress rounds go with the cell (a number: validated when the plan was made).
    let stress_rounds = match crate::scenario::stress_rounds_override()? {
        Some(n) => format!("export {}={n}\n", crate::scenario::STRESS_ROUNDS_ENV),
        None => String::new(),
    };
    let script = format!(
        "export HOME=/root CRIU_MATRIX_PROJECT=/work/project CRIU_MATRIX_CACHE=/work/cache\n\
         export {env}='{identity}'\n\
         {stress_rounds}\
         cd /work/project\n\
         harness=/work/bin/criu-matrix\n\
         \"$harness\" --version >/dev/null 2>&1 || harness=\"/work/lib/ld-linux-x86-64.so.2 --library-path /work/lib $harness\"\n\
         $harness run --matrix guest --no-progress\n",
        env = crate::host::guest::ENV,
        identity = serde_json::to_string(&identity)?,
    );
    std::fs::write(staging.join("guest.sh"), script)?;
    Ok(())
}

/// Copies the shared libraries `binary` links (as `ldd` lists them) and the dynamic loader into `dir`.
fn copy_libraries(binary: &Path, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let argv = ["ldd".to_string(), binary.display().to_string()];
    let out = crate::process::Command::new(argv, Duration::from_secs(30)).run_blocking()?;
    // A static binary has nothing to copy.
    if !out.success() {
        return Ok(());
    }
    for line in out.stdout.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, or the loader's own path.
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        let Some(path) = path.map(Path::new).filter(|p| p.is_absolute()) else { continue };
        let name = path.file_name().context("a library has a name")?;
        std::fs::copy(path, dir.join(name)).with_context(|| format!("failed to copy {}", path.display()))?;
    }
    Ok(())
}

/// The `criu-matrix` binary: `CRIU_MATRIX_BIN` (set by the `cargo test` entry point), else this
/// process's own executable through /proc/self/exe, which still works when a rebuild replaced
/// the file while the run goes on.
fn harness_binary(exe: &Path) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("CRIU_MATRIX_BIN") {
        return Ok(PathBuf::from(p));
    }
    if exe.file_name().is_some_and(|n| n.to_string_lossy().starts_with("criu-matrix")) {
        return Ok(PathBuf::from("/proc/self/exe"));
    }
    anyhow::bail!("failed to find the criu-matrix binary to run in the guest (set CRIU_MATRIX_BIN)")
}

/// Reads the guest's record of `name` and copies its cell files into the host's log dir.
fn read_guest_record(results: &Path, name: &str, log_dir: &Path) -> anyhow::Result<CellRecord> {
    let runs = results.join("runs");
    let run = std::fs::read_dir(&runs)
        .with_context(|| format!("the guest left no run in {}", runs.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("cells.jsonl").is_file())
        .context("the guest's run has no cells.jsonl")?;
    let records = crate::record::read_cells(&run)?;
    let record = records.into_iter().find(|r| r.name == name).context("the guest did not record this cell")?;
    if let Ok(files) = std::fs::read_dir(run.join("cells").join(crate::record::RunDir::cell_dir_name(name))) {
        for f in files.flatten() {
            let _ = std::fs::copy(f.path(), log_dir.join(f.file_name()));
        }
    }
    Ok(record)
}
