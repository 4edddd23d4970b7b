//! The kernel axis: a cell whose kernel is not `host` runs inside a qemu VM that boots a Debian
//! kernel with the stack's rootfs. The guest runs the same cell code (`criu-matrix run` on its
//! own root); the host brings back the guest's record and logs, plus the console.
//!
//! Invariants: the cached stack disk is attached copy-on-write and never changes; a VM that does
//! not report ready or done in time is killed, and its cell is an `error` with the console tail;
//! no qemu process outlives its cell (it is tracked for Ctrl-C and killed on drop).

pub mod disk;
pub mod guest;
pub mod kernel;
pub mod tools;

use crate::axes::Axis;
use crate::events::Events;
use crate::files::remove_tree;
use crate::plan::CellKey;
use crate::record::CellRecord;
use crate::stack::Cache;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt as _;

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

/// Time limits of a VM, overridable for slow hosts and for tests of the timeout path.
fn limit(var: &str, default_secs: u64) -> Duration {
    let secs = std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default_secs);
    Duration::from_secs(secs)
}

/// How long a VM may run in all: `CRIU_MATRIX_VM_TIMEOUT` when set; else 1800 s, or the boot
/// limit plus the cell's own step limits when those add up to more (a desktop under TCG).
fn total_limit(work: Duration) -> Duration {
    if std::env::var_os("CRIU_MATRIX_VM_TIMEOUT").is_some() {
        return limit("CRIU_MATRIX_VM_TIMEOUT", 1800);
    }
    Duration::from_secs(1800).max(limit("CRIU_MATRIX_VM_READY_TIMEOUT", 300) + work)
}

/// A kernel and a stack made ready to boot: tools, kernel, and the cached disks.
pub struct Machine {
    tools: tools::Tools,
    kernel: kernel::Kernel,
    stack_disk: PathBuf,
    modules_disk: PathBuf,
    vm_dir: PathBuf,
}

/// A booted-and-ended VM, with its work disk (removed when this is dropped).
struct Booted {
    boot: Boot,
    work_disk: PathBuf,
    run_dir: PathBuf,
    argv: Vec<String>,
    _remove: RemoveOnDrop,
}

impl Machine {
    pub async fn prepare(
        cache: &Cache,
        events: &Events,
        kernel_name: &str,
        stack: &str,
        rootfs: &Path,
        storage: &Path,
        docker: &Path,
    ) -> anyhow::Result<Machine> {
        let tools = events
            .timed("vm", "VM tools rootfs (qemu, e2fsprogs)", tools::ensure(cache))
            .await
            .context("failed to provision the VM tools")?;
        let kernel = events
            .timed(
                &format!("{kernel_name} kernel"),
                &format!("kernel {kernel_name}"),
                kernel::ensure(cache, kernel_name),
            )
            .await
            .with_context(|| format!("failed to fetch the {kernel_name} kernel"))?;
        let vm_dir = cache.root.join("vm");
        let init_text = format!("{}\n# unit:\n# {}", guest::INIT_SCRIPT, guest::SYSTEMD_UNIT.replace('\n', "\n# "));
        let stack_disk = events
            .timed(
                stack,
                "VM stack disk",
                disk::ensure_stack_disk(&tools, &vm_dir, stack, rootfs, storage, docker, &init_text),
            )
            .await?;
        let modules_disk = disk::ensure_modules_disk(&tools, &vm_dir, &kernel).await?;
        Ok(Machine { tools, kernel, stack_disk, modules_disk, vm_dir })
    }

    /// Boots once with a work disk made by `stage` (which fills the directory it is given, with a
    /// `guest.sh` for the init to run) and follows the console into `console`.
    #[allow(clippy::too_many_arguments)] // one boot's inputs, each used once
    async fn boot(
        &self,
        name: &str,
        cgroup: &str,
        init: &str,
        stage: impl FnOnce(&Path) -> anyhow::Result<()>,
        console: &Path,
        events: &Events,
        total: Duration,
    ) -> anyhow::Result<Booted> {
        let runs = self.vm_dir.join("runs");
        sweep_orphan_runs(&runs);
        let run_dir = runs.join(format!("{}-{}", std::process::id(), sanitize(name)));
        remove_tree(&run_dir)?;
        std::fs::create_dir_all(&run_dir)?;
        let remove = RemoveOnDrop(run_dir.clone());
        let staging = run_dir.join("work");
        std::fs::create_dir_all(&staging)?;
        stage(&staging)?;
        let work_disk = run_dir.join("work.img");
        disk::make_work_disk(&self.tools, &staging, &work_disk).await?;
        remove_tree(&staging)?;
        let argv = self.qemu_argv(cgroup, init, &crate::host::facts().accel.name, &work_disk)?;
        let boot = boot(&self.tools, &argv, console, events, name, total).await?;
        Ok(Booted { boot, work_disk, run_dir, argv, _remove: remove })
    }

    fn facts(&self, booted: &Booted, qemu: String) -> BTreeMap<String, String> {
        let accel = &crate::host::facts().accel;
        let mut facts = BTreeMap::new();
        facts.insert(
            "vm.kernel_package".into(),
            format!("linux-image-{} {}", self.kernel.release, self.kernel.package_version),
        );
        facts.insert("vm.accel".into(), format!("{} ({})", accel.name, accel.why));
        facts.insert("vm.qemu".into(), qemu);
        facts.insert("vm.command".into(), crate::process::shell_join(&booted.argv));
        if let Some(s) = booted.boot.ready_seconds {
            facts.insert("vm.boot_to_ready_seconds".into(), format!("{s:.1}"));
        }
        facts.insert("vm.seconds".into(), format!("{:.1}", booted.boot.seconds));
        facts
    }
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

/// Whether a kernel boots the stack, for `doctor`: its release, seconds to ready, cgroup layout
/// and `criu check`, as the guest printed them.
pub struct BootProbe {
    pub seconds_to_ready: Option<f64>,
    pub guest_said: Vec<String>,
    pub error: Option<String>,
    pub facts: BTreeMap<String, String>,
}

pub async fn probe_boot(machine: &Machine, name: &str, console: &Path, events: &Events) -> anyhow::Result<BootProbe> {
    let script = "echo \"probe: kernel $(uname -r), cgroup $(stat -fc %T /sys/fs/cgroup)\"\n\
                  echo \"probe: $(criu --version | head -n 1)\"\n\
                  echo \"probe: criu check: $(criu check 2>&1 | tail -n 1)\"\n";
    let stage = |dir: &Path| -> anyhow::Result<()> { Ok(std::fs::write(dir.join("guest.sh"), script)?) };
    let booted = machine.boot(name, "v2", "plain", stage, console, events, total_limit(Duration::ZERO)).await?;
    let guest_said = std::fs::read_to_string(console)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once("probe: ").map(|(_, rest)| rest.to_string()))
        .collect();
    let facts = machine.facts(&booted, machine.tools.qemu_version().await);
    Ok(BootProbe { seconds_to_ready: booted.boot.ready_seconds, guest_said, error: booted.boot.error.clone(), facts })
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
         /work/bin/criu-matrix run --matrix guest --no-progress\n",
        env = crate::host::guest::ENV,
        identity = serde_json::to_string(&identity)?,
    );
    std::fs::write(staging.join("guest.sh"), script)?;
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

impl Machine {
    fn qemu_argv(&self, cgroup: &str, init: &str, accel: &str, work_disk: &Path) -> anyhow::Result<Vec<String>> {
        let (tools, kernel, stack_disk, modules_disk) =
            (&self.tools, &self.kernel, &self.stack_disk, &self.modules_disk);
        let init_arg = match init {
        "systemd" => "init=/lib/systemd/systemd systemd.unit=multi-user.target systemd.show_status=0 systemd.mask=serial-getty@ttyS0.service",
        _ => "init=/criu-matrix-init",
    };
        let hierarchy = match cgroup {
        // Pure v1: crun refuses the hybrid layout systemd mounts by default.
        "v1" => "systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1 SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1",
        _ => "systemd.unified_cgroup_hierarchy=1",
    };
        let extra = std::env::var("CRIU_MATRIX_VM_APPEND").unwrap_or_default();
        // no_timer_check: on a loaded host, TCG delivers the early timer interrupt too late and
        // the kernel panics with "IO-APIC + timer doesn't work!" (seen with 6.12 at load 25).
        let append = format!(
        "console=ttyS0 {root} rw {init_arg} panic=-1 loglevel=5 apparmor=0 no_timer_check criu_matrix.cgroup={cgroup} {hierarchy} {extra}",
        root = disk::root_argument(),
    );
        let (accel_arg, cpu) = match accel {
            "kvm" => ("kvm", "host"),
            // ENVIRONMENT.md: qemu 10 with `-cpu max` and MTTCG boots Debian kernels cleanly.
            _ => ("tcg,thread=multi", "max"),
        };
        // One NVMe controller with three namespaces. Their device names follow probe order, which
        // is asynchronous: the guest finds root by PARTUUID and the others by their `nsid`.
        let drive = |path: &Path, id: &str, nsid: u32, opts: &str| -> anyhow::Result<[String; 4]> {
            Ok([
                "-drive".into(),
                format!("file={},if=none,id={id},format=raw{opts}", tools.inner(path)?),
                "-device".into(),
                format!("nvme-ns,drive={id},bus=nvme0,nsid={nsid}"),
            ])
        };
        let mut argv: Vec<String> = [
            "qemu-system-x86_64",
            "-accel",
            accel_arg,
            "-cpu",
            cpu,
            "-smp",
            "2",
            "-m",
            "4096",
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-monitor",
            "none",
            "-chardev",
            "stdio,id=console,signal=off",
            "-serial",
            "chardev:console",
            "-kernel",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.push(tools.inner(&kernel.vmlinuz)?);
        argv.push("-append".into());
        argv.push(append);
        argv.extend(["-device".to_string(), "nvme,id=nvme0,serial=criu-matrix".to_string()]);
        argv.extend(drive(stack_disk, "root", 1, ",snapshot=on")?);
        argv.extend(drive(modules_disk, "modules", 2, ",snapshot=on")?);
        argv.extend(drive(work_disk, "work", 3, "")?);
        Ok(argv)
    }
}

struct Boot {
    ready_seconds: Option<f64>,
    done: bool,
    seconds: f64,
    console_tail: String,
    error: Option<String>,
}

/// Boots the VM and follows its console until the guest is done or a limit passes.
async fn boot(
    tools: &tools::Tools,
    argv: &[String],
    console: &Path,
    events: &Events,
    name: &str,
    total_limit: Duration,
) -> anyhow::Result<Boot> {
    let ready_limit = limit("CRIU_MATRIX_VM_READY_TIMEOUT", 300);
    let started = Instant::now();
    // Its limits are kept here, by the console's deadlines: `total_limit` at the most.
    let mut qemu = tools.command(argv, total_limit).spawn_piped().context("failed to start qemu")?;
    let mut log = std::fs::File::create(console)?;
    let mut lines = tokio::io::BufReader::new(qemu.stdout.take().context("qemu's console is not piped")?).lines();
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let (mut ready, mut done, mut error) = (None, false, None);
    loop {
        let deadline = if ready.is_none() { ready_limit } else { total_limit };
        let left = deadline.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, lines.next_line()).await {
            Err(_) => {
                let what = if ready.is_none() { "did not report ready" } else { "did not finish" };
                error = Some(format!("the VM {what} within {}s; killed", deadline.as_secs()));
                break;
            }
            Ok(Ok(Some(line))) => {
                let line = line.replace('\r', "");
                let _ = writeln!(log, "[{:7.2}] {line}", started.elapsed().as_secs_f64());
                if ready.is_none() && line.contains(guest::READY_MARK) {
                    let s = started.elapsed().as_secs_f64();
                    ready = Some(s);
                    events.emit(crate::events::Event::Step { name, round: 0, step: "vm boot", seconds: s });
                }
                if line.contains(guest::DONE_MARK) {
                    done = true;
                }
                tail.push_back(line);
                if tail.len() > 40 {
                    tail.pop_front();
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => break, // qemu closed the console: it exited
        }
    }
    // After `done` the guest powers off by itself; anything else is killed now, with its group.
    let exited = if done { qemu.wait_for(Duration::from_secs(60)).await } else { None };
    if exited.is_none() {
        qemu.kill().await;
    }
    let err_text = qemu.stderr_text().await;
    if !err_text.trim().is_empty() {
        let _ = writeln!(log, "--- qemu stderr ---\n{}", err_text.trim());
    }
    let console_tail = tail.into_iter().collect::<Vec<_>>().join("\n");
    if !done && error.is_none() {
        error = Some(format!("the VM stopped before the guest was done (qemu: {})", err_text.trim()));
    }
    if let Some(e) = &mut error {
        e.push_str(&format!("\n--- console tail ---\n{console_tail}"));
    }
    Ok(Boot { ready_seconds: ready, done, seconds: started.elapsed().as_secs_f64(), console_tail, error })
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

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

struct RemoveOnDrop(PathBuf);

/// Removes the run directories of harness processes that are gone. A run killed with SIGKILL
/// (a CI timeout, a session that ends) cannot remove its own; each name starts with its PID.
/// A PID that is alive again under another program keeps its directory until that one ends.
fn sweep_orphan_runs(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if orphan_owner(&name, |pid| Path::new(&format!("/proc/{pid}")).exists()).is_some() {
            tracing::info!("removing VM run directory {} left by a process that is gone", entry.path().display());
            let _ = remove_tree(&entry.path());
        }
    }
}

/// The PID a run directory name starts with, when that process is not alive.
fn orphan_owner(name: &str, alive: impl Fn(u32) -> bool) -> Option<u32> {
    let pid: u32 = name.split_once('-')?.0.parse().ok()?;
    (!alive(pid)).then_some(pid)
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = remove_tree(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::owner_gone("4242-baseline-counter__podman", false, Some(4242))]
    #[case::owner_alive("4242-baseline-counter__podman", true, None)]
    #[case::not_a_run_directory("lost+found", false, None)]
    #[case::no_pid_prefix("abc-def", false, None)]
    fn a_run_directory_is_an_orphan_only_when_its_pid_is_gone(
        #[case] name: &str,
        #[case] alive: bool,
        #[case] orphan: Option<u32>,
    ) {
        assert_eq!(orphan_owner(name, |_| alive), orphan);
    }

    #[test]
    fn the_sweep_removes_a_dead_process_run_and_keeps_a_live_one() {
        let runs = tempfile::tempdir().unwrap();
        // PID 0 is never a process of ours; this test's own PID is alive.
        let dead = runs.path().join("0-cell");
        let live = runs.path().join(format!("{}-cell", std::process::id()));
        for d in [&dead, &live] {
            std::fs::create_dir_all(d.join("work")).unwrap();
        }
        sweep_orphan_runs(runs.path());
        assert!(!dead.exists());
        assert!(live.exists());
    }
}
