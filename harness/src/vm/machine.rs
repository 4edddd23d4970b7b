//! A kernel and a stack made ready to boot (tools, kernel, cached disks), its qemu command line,
//! and a boot with a work disk of the caller's.

use super::boot::{self, Boot, BootCell, Seen};
use super::runs::{sanitize, sweep_orphan_runs, RemoveOnDrop};
use super::{disk, guest, kernel, tools};
use crate::events::Events;
use crate::files::remove_tree;
use crate::stack::Cache;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A kernel and a stack made ready to boot: tools, kernel, and the cached disks.
pub struct Machine {
    pub tools: tools::Tools,
    kernel: kernel::Kernel,
    stack_disk: PathBuf,
    modules_disk: PathBuf,
    vm_dir: PathBuf,
    /// The run directory holding the pinned stack disk, when it is pinned.
    pin: Option<RemoveOnDrop>,
}

/// A boot made ready: its run directory (with the work disk and the channel's file) goes when
/// this is dropped.
pub struct Staged {
    channel: PathBuf,
    pub argv: Vec<String>,
    _remove: RemoveOnDrop,
}

/// One boot's inputs besides the machine.
pub struct BootPlan<'a> {
    /// Names the boot's run directory (`vm/runs/<PID>-<name>`); unique among the run's boots.
    pub name: &'a str,
    pub cgroup: &'a str,
    pub init: &'a str,
    /// The cells the guest may run, with their limits and console files.
    pub cells: &'a [BootCell],
    /// The whole console of the boot.
    pub console: &'a Path,
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
        Ok(Machine { tools, kernel, stack_disk, modules_disk, vm_dir, pin: None })
    }

    /// Keeps this machine's stack disk for as long as the machine: a hard link in a run directory
    /// of its own (`vm/runs/<PID>-disk-<N>`, removed when the machine is dropped), which its boots
    /// use. Another run that rebuilds the cached disk (its images changed) removes the cache's
    /// name only, so these boots never lose their disk, and the stack need not stay locked while
    /// they run. Call it while the stack is still held.
    pub fn pin_stack_disk(&mut self) -> anyhow::Result<()> {
        static PINS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = PINS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let dir = self.runs_dir().join(format!("{}-disk-{n}", std::process::id()));
        remove_tree(&dir)?;
        std::fs::create_dir_all(&dir)?;
        let remove = RemoveOnDrop(dir.clone());
        let pinned = dir.join("stack.img");
        std::fs::hard_link(&self.stack_disk, &pinned).with_context(|| {
            format!("failed to link the stack disk {} into {}", self.stack_disk.display(), dir.display())
        })?;
        self.stack_disk = pinned;
        self.pin = Some(remove);
        Ok(())
    }

    /// Where the run directories of boots are (`vm/runs`).
    pub fn runs_dir(&self) -> PathBuf {
        self.vm_dir.join("runs")
    }

    /// Stages one boot: its run directory, the work disk made by `stage` (which fills the
    /// directory it is given, with a `guest.sh` for the init to run), the channel's file and the
    /// qemu command line.
    pub async fn stage(
        &self,
        plan: &BootPlan<'_>,
        stage: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Staged> {
        let runs = self.runs_dir();
        sweep_orphan_runs(&runs);
        let run_dir = runs.join(format!("{}-{}", std::process::id(), sanitize(plan.name)));
        remove_tree(&run_dir)?;
        std::fs::create_dir_all(&run_dir)?;
        let remove = RemoveOnDrop(run_dir.clone());
        let staging = run_dir.join("work");
        std::fs::create_dir_all(&staging)?;
        stage(&staging)?;
        let work_disk = run_dir.join("work.img");
        disk::make_work_disk(&self.tools, &staging, &work_disk).await?;
        remove_tree(&staging)?;
        let channel = run_dir.join("cells.stream");
        std::fs::write(&channel, b"")?;
        let accel = &crate::host::facts().accel.name;
        let argv = self.qemu_argv(plan.cgroup, plan.init, accel, &work_disk, &channel)?;
        Ok(Staged { channel, argv, _remove: remove })
    }

    /// Boots a staged VM, follows its console and the channel out of the guest, and hands what
    /// it sees (ready, every channel message) to `on_seen` as it comes.
    pub async fn boot(
        &self,
        plan: &BootPlan<'_>,
        staged: &Staged,
        events: &Events,
        on_seen: &mut (dyn FnMut(Seen) + Send),
    ) -> anyhow::Result<Boot> {
        boot::boot(&self.tools, &staged.argv, plan.console, &staged.channel, plan.cells, events, plan.name, on_seen)
            .await
    }

    /// The facts every cell of a boot records (`vm.*`), before the boot's own.
    pub fn facts(&self, argv: &[String], qemu: String) -> BTreeMap<String, String> {
        let accel = &crate::host::facts().accel;
        let mut facts = BTreeMap::new();
        facts.insert(
            "vm.kernel_package".into(),
            format!("linux-image-{} {}", self.kernel.release, self.kernel.package_version),
        );
        facts.insert("vm.accel".into(), format!("{} ({})", accel.name, accel.why));
        facts.insert("vm.qemu".into(), qemu);
        facts.insert("vm.command".into(), crate::process::shell_join(argv));
        facts
    }
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
    let plan = BootPlan { name, cgroup: "v2", init: "plain", cells: &[], console };
    let staged = machine.stage(&plan, stage).await?;
    let boot = machine.boot(&plan, &staged, events, &mut |_| {}).await?;
    let guest_said = std::fs::read_to_string(console)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once("probe: ").map(|(_, rest)| rest.to_string()))
        .collect();
    let mut facts = machine.facts(&staged.argv, machine.tools.qemu_version().await);
    if let Some(s) = boot.ready_seconds {
        facts.insert("vm.boot_to_ready_seconds".into(), format!("{s:.1}"));
    }
    Ok(BootProbe { seconds_to_ready: boot.ready_seconds, guest_said, error: boot.error, facts })
}

impl Machine {
    fn qemu_argv(
        &self,
        cgroup: &str,
        init: &str,
        accel: &str,
        work_disk: &Path,
        channel: &Path,
    ) -> anyhow::Result<Vec<String>> {
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
        // The channel out of the guest (see `channel`): a virtio-serial port qemu copies into a
        // host file as the guest writes it.
        argv.extend([
            "-device".to_string(),
            "virtio-serial-pci,id=vser0".to_string(),
            "-chardev".to_string(),
            format!("file,id=cells,path={}", tools.inner(channel)?),
            "-device".to_string(),
            format!("virtserialport,bus=vser0.0,chardev=cells,name={}", super::channel::PORT_NAME),
        ]);
        Ok(argv)
    }
}
