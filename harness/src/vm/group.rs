//! A group of VM cells (one stack, kernel, cgroup layout and init) run in as few boots as it
//! takes: one boot runs the group's cells in order, with its stack probed once, and each cell's
//! record and logs come back over the channel as it finishes. A cell that errs or leaves anything
//! behind in the guest ends its boot (the guest says so); the cells after it go on in a fresh
//! boot, as does the rest of a group whose guest died while a cell ran (that cell is an error).

use super::boot::Seen;
use super::boot::{cell_limit, BootCell};
use super::channel::{safe_file_name, Message};
use super::machine::{BootPlan, Machine};
use crate::axes::Axis;
use crate::events::{Event, Events};
use crate::plan::CellKey;
use crate::record::CellRecord;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One cell of a group, as the host knows it.
#[derive(Debug, Clone)]
pub struct GroupCell {
    pub key: CellKey,
    pub name: String,
    /// The host's directory for this cell's logs.
    pub log_dir: PathBuf,
    /// The longest the cell's own steps may take (its scenario's limits added up).
    pub work_limit: Duration,
}

/// A group of VM cells: the same stack, kernel, cgroup and init, in the order they run.
pub struct VmGroup<'a> {
    pub cells: Vec<GroupCell>,
    pub project_root: &'a Path,
    pub events: &'a Events,
    /// Where each boot's whole console is kept (`<dir>/<boot>.console.log`).
    pub boots_dir: PathBuf,
}

/// How a cell of the group ended.
pub enum Ended {
    /// The guest's record of the cell.
    Recorded(Box<CellRecord>),
    /// No record: why (the boot failed, the guest died while the cell ran, ...).
    Failed(String),
}

/// A cell of the group, done.
pub struct Done<'a> {
    pub cell: &'a GroupCell,
    pub ended: Ended,
    /// The VM's facts for the record's versions (`vm.*`, `vm.boot` among them).
    pub facts: BTreeMap<String, String>,
    /// Host seconds from the previous cell of its boot (or the boot's start) to this one's end.
    pub seconds: f64,
}

/// The group's name in events and boot directories: `stack/kernel/cgroup/init`.
pub fn label(key: &CellKey) -> String {
    format!("{}/{}/{}/{}", key[Axis::Stack], key[Axis::Kernel], key[Axis::Cgroup], key[Axis::Init])
}

/// Runs every cell of `group` in `machine`, booting as often as it takes; each cell's end goes
/// to `on_done` as it happens, every cell exactly once. `next_boot` names each boot (`vm.boot`).
pub async fn run_group(
    machine: &Machine,
    group: &VmGroup<'_>,
    next_boot: &(dyn Fn() -> String + Sync),
    on_done: &mut (dyn FnMut(Done<'_>) + Send),
) -> anyhow::Result<()> {
    let Some(first) = group.cells.first() else { return Ok(()) };
    let label = label(&first.key);
    std::fs::create_dir_all(&group.boots_dir)?;
    let qemu = machine.tools.qemu_version().await;
    let mut pending: Vec<&GroupCell> = group.cells.iter().collect();
    while !pending.is_empty() {
        let boot_id = next_boot();
        let before = pending.len();
        boot_once(machine, group, &label, &boot_id, &qemu, &mut pending, on_done).await?;
        anyhow::ensure!(pending.len() < before, "a boot of {label} ended no cell (a harness bug)");
    }
    Ok(())
}

/// One boot over the cells still `pending` (those it ends are taken out).
async fn boot_once(
    machine: &Machine,
    group: &VmGroup<'_>,
    label: &str,
    boot_id: &str,
    qemu: &str,
    pending: &mut Vec<&GroupCell>,
    on_done: &mut (dyn FnMut(Done<'_>) + Send),
) -> anyhow::Result<()> {
    let started = Instant::now();
    let first = &pending[0].key;
    let boot_cells: Vec<BootCell> = pending
        .iter()
        .map(|c| BootCell {
            name: c.name.clone(),
            limit: cell_limit(c.work_limit),
            console: c.log_dir.join("console.log"),
        })
        .collect();
    let console = group.boots_dir.join(format!("{}.console.log", super::runs::sanitize(boot_id)));
    let plan = BootPlan {
        name: &format!("{label}-{boot_id}"),
        cgroup: &first[Axis::Cgroup],
        init: &first[Axis::Init],
        cells: &boot_cells,
        console: &console,
    };
    let cells_now: Vec<&GroupCell> = pending.clone();
    let staged = machine.stage(&plan, |dir| stage_work(group, &cells_now, dir)).await?;
    let mut facts = machine.facts(&staged.argv, qemu.to_string());
    facts.insert("vm.boot".to_string(), boot_id.to_string());
    let events = group.events;
    let mut mark = started;
    let mut ended: Vec<String> = Vec::new();
    let mut stop = None::<String>;
    let mut garbled = None::<String>;
    let mut on_seen = |seen: Seen| match seen {
        Seen::Ready(s) => {
            facts.insert("vm.boot_to_ready_seconds".into(), format!("{s:.1}"));
        }
        Seen::Channel(Message::Started { cell }) => {
            if let Some(c) = cells_now.iter().find(|c| c.name == cell) {
                events.emit(Event::CellStarted { name: &c.name });
            }
        }
        Seen::Channel(Message::File { cell, name, data }) => {
            match (cells_now.iter().find(|c| c.name == cell), safe_file_name(&name)) {
                (Some(c), Some(file)) => {
                    if let Err(e) = std::fs::write(c.log_dir.join(file), data) {
                        tracing::warn!("failed to keep {name} of {cell}: {e}");
                    }
                }
                _ => tracing::warn!("the guest sent a file {name:?} of {cell:?}, which is not of this boot"),
            }
        }
        Seen::Channel(Message::Record { cell, record }) => {
            let Some(c) = cells_now.iter().find(|c| c.name == cell).copied() else {
                tracing::warn!("the guest recorded {cell:?}, which is not of this boot");
                return;
            };
            if ended.contains(&cell) {
                return;
            }
            let now = Instant::now();
            let mut facts = facts.clone();
            facts.insert("vm.boot_position".into(), (ended.len() + 1).to_string());
            facts.insert("vm.guest_seconds".into(), format!("{:.1}", record.seconds));
            let seconds = (now - mark).as_secs_f64();
            mark = now;
            ended.push(cell);
            on_done(Done { cell: c, ended: Ended::Recorded(record), facts, seconds });
        }
        Seen::Channel(Message::Stop { reason }) => stop = Some(reason),
        Seen::Channel(Message::Garbled { why }) => garbled = Some(why),
    };
    let boot =
        machine.boot(&plan, &staged, events, &mut on_seen).await.with_context(|| format!("failed to boot {label}"))?;
    drop(on_seen);
    pending.retain(|c| !ended.contains(&c.name));
    let problem = |what: &str| -> String {
        let mut text = what.to_string();
        if let Some(g) = &garbled {
            text.push_str(&format!("; the channel out of the guest broke: {g}"));
        }
        if boot.cut_short > 0 {
            text.push_str(&format!("; {} bytes of a frame were cut short", boot.cut_short));
        }
        match &boot.error {
            Some(e) => format!("{text}: {e}"),
            None => format!("{text}\n--- console tail ---\n{}", boot.console_tail),
        }
    };
    fn fail<'c>(c: &'c GroupCell, why: String, facts: &BTreeMap<String, String>, seconds: f64) -> Done<'c> {
        Done { cell: c, ended: Ended::Failed(why), facts: facts.clone(), seconds }
    }
    match after_boot(pending.len(), boot.unfinished.as_deref(), !ended.is_empty(), stop.is_some(), boot.error.is_some())
    {
        AfterBoot::GoOn => {}
        AfterBoot::Unfinished(name) => {
            if let Some(i) = pending.iter().position(|c| c.name == name) {
                let c = pending.remove(i);
                let why = problem(&format!("the VM ended while {name} ran (boot {boot_id})"));
                on_done(fail(c, why, &facts, mark.elapsed().as_secs_f64()));
            }
        }
        AfterBoot::FailAll(what) => {
            let why = problem(&format!("{what} ({} cells, boot {boot_id})", pending.len()));
            let each = mark.elapsed().as_secs_f64() / pending.len() as f64;
            for c in pending.drain(..) {
                on_done(fail(c, why.clone(), &facts, each));
            }
        }
    }
    if let Some(reason) = &stop {
        if !pending.is_empty() {
            let message = format!(
                "{label}: boot {boot_id} ended early ({reason}); {} cells go on in a fresh boot",
                pending.len()
            );
            events.emit(Event::Warning { message: &message });
        }
    }
    Ok(())
}

/// What a boot's end means for the cells it did not record.
#[derive(Debug, PartialEq, Eq)]
enum AfterBoot {
    /// Nothing more: the cells left (if any) go on in a fresh boot.
    GoOn,
    /// This cell ran when the boot ended: it is an error; the cells after it go on.
    Unfinished(String),
    /// Every cell left is an error: a fresh boot would end the same way.
    FailAll(&'static str),
}

/// `pending` cells are left; `unfinished` is the one the guest ran when the boot ended;
/// `recorded` whether the boot recorded any; `stopped` whether the guest said it ended the boot
/// early; `failed` whether the boot ended in an error (a limit, qemu's exit).
fn after_boot(pending: usize, unfinished: Option<&str>, recorded: bool, stopped: bool, failed: bool) -> AfterBoot {
    match unfinished {
        _ if pending == 0 => AfterBoot::GoOn,
        Some(name) => AfterBoot::Unfinished(name.to_string()),
        // Not one cell ran: the boot itself failed, and would again for every other cell.
        None if !recorded => AfterBoot::FailAll("the VM ran none of its cells"),
        // The guest ended the boot after a cell that erred or left something: a fresh boot.
        None if stopped => AfterBoot::GoOn,
        // The boot failed between cells (a limit, qemu's exit): the next boot may get further.
        None if failed => AfterBoot::GoOn,
        // The guest's harness was done, said nothing, and left cells out.
        None => AfterBoot::FailAll("the guest's harness ended before these cells"),
    }
}

/// The work disk: the harness binary, the project's scenarios and images, the boot's cells as
/// a matrix (one part per cell, in order), and the script the guest's init runs.
fn stage_work(group: &VmGroup<'_>, cells: &[&GroupCell], staging: &Path) -> anyhow::Result<()> {
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
        crate::files::copy_dir(&group.project_root.join(dir), &project.join(dir))
            .with_context(|| format!("failed to copy {dir}/ into the work disk"))?;
    }
    std::fs::write(project.join("matrices/guest.yaml"), guest_matrix(cells))?;
    let key = &cells[0].key;
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
         # The port appears once virtio_console has probed it (a module on some kernels): wait for it.\n\
         for try in $(seq 1 300); do\n\
         \x20 for port in /sys/class/virtio-ports/*; do\n\
         \x20   [ \"$(cat \"$port/name\" 2>/dev/null)\" = {port} ] && [ -c \"/dev/${{port##*/}}\" ] && export {channel}=\"/dev/${{port##*/}}\"\n\
         \x20 done\n\
         \x20 [ -n \"${channel}\" ] && break\n\
         \x20 sleep 0.1\n\
         done\n\
         [ -n \"${channel}\" ] || echo \"criu-matrix-guest: no virtio-serial port named {port} after 30 s\"\n\
         cd /work/project\n\
         harness=/work/bin/criu-matrix\n\
         \"$harness\" --version >/dev/null 2>&1 || harness=\"/work/lib/ld-linux-x86-64.so.2 --library-path /work/lib $harness\"\n\
         $harness run --matrix guest --no-progress\n",
        env = crate::host::guest::ENV,
        identity = serde_json::to_string(&identity)?,
        port = super::channel::PORT_NAME,
        channel = super::channel::ENV,
    );
    std::fs::write(staging.join("guest.sh"), script)?;
    Ok(())
}

/// The boot's cells as a matrix the guest expands back into them, in this order: one part per
/// cell (the top level, then `more:`), each on the guest's own kernel.
fn guest_matrix(cells: &[&GroupCell]) -> String {
    let part = |c: &GroupCell, indent: &str| {
        let k = &c.key;
        format!(
            "{indent}scenarios: [{}]\n{pad}engines: [{}]\n{pad}runtimes: [{}]\n{pad}stacks: [{}]\n{pad}kernels: [host]\n",
            k[Axis::Scenario],
            k[Axis::Engine],
            k[Axis::Runtime],
            k[Axis::Stack],
            pad = " ".repeat(indent.len()),
        )
    };
    let mut text = format!("description: {} cells of one criu-matrix VM boot, in order\n", cells.len());
    if let Some((first, rest)) = cells.split_first() {
        text.push_str(&part(first, ""));
        if !rest.is_empty() {
            text.push_str("more:\n");
            for c in rest {
                text.push_str(&part(c, "  - "));
            }
        }
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Accel, HostFacts, Identity};

    fn cell(scenario: &str, runtime: &str) -> GroupCell {
        let values = [scenario, "podman", runtime, "trixie", "trixie", "v2", "plain", "tcg"];
        let key = CellKey::from_fn(|a| values[a as usize].to_string());
        GroupCell { name: key.name(), key, log_dir: PathBuf::new(), work_limit: Duration::ZERO }
    }

    fn scenario(id: &str) -> crate::scenario::Scenario {
        let images = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(images.path().join("img")).unwrap();
        std::fs::write(images.path().join("img/Containerfile"), "FROM x\n").unwrap();
        let text = format!("id: {id}\nsummary: s\nimage: img\nrun: {{}}\nready: {{ file: /f }}\nno_witness: a plan test runs nothing\n");
        crate::scenario::parse_scenario(Path::new("t.yaml"), &text, images.path()).unwrap()
    }

    #[test]
    fn a_boot_that_recorded_no_cell_never_boots_again_for_the_same_cells() {
        use AfterBoot::*;
        // Every boot ends at least one cell: recorded, unfinished, or all failed.
        assert_eq!(after_boot(3, None, false, false, true), FailAll("the VM ran none of its cells"));
        assert_eq!(after_boot(3, None, false, false, false), FailAll("the VM ran none of its cells"));
        assert_eq!(after_boot(3, Some("b"), false, false, true), Unfinished("b".into()));
        assert_eq!(after_boot(3, Some("b"), true, false, true), Unfinished("b".into()));
        // Records came: the rest go on in a fresh boot, whether the guest stopped or died between cells.
        assert_eq!(after_boot(2, None, true, true, false), GoOn);
        assert_eq!(after_boot(2, None, true, false, true), GoOn);
        // The guest said it was done with cells left and no reason: they cannot run there.
        assert_eq!(after_boot(2, None, true, false, false), FailAll("the guest's harness ended before these cells"));
        assert_eq!(after_boot(0, None, true, false, false), GoOn);
    }

    /// The guest expands the matrix it is given back into the boot's cells, in the boot's order
    /// (whatever that order is), under the host's names.
    #[test]
    fn the_guest_plans_exactly_the_boots_cells_in_their_order() {
        let cells = [cell("b", "runc"), cell("a", "crun"), cell("b", "crun"), cell("a", "runc")];
        let refs: Vec<&GroupCell> = cells.iter().collect();
        let text = guest_matrix(&refs);
        let matrix =
            crate::plan::parse_matrix(Path::new("guest.yaml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let guest = Identity {
            stack: "trixie".into(),
            kernel: "trixie".into(),
            cgroup: "v2".into(),
            init: "plain".into(),
            accel: "tcg".into(),
        };
        let host =
            HostFacts { cgroup: "v2".into(), accel: Accel { name: "tcg".into(), why: "t".into() }, guest: Some(guest) };
        let planned =
            crate::plan::expand(&matrix, &[scenario("a"), scenario("b")], &Default::default(), &host).unwrap();
        let names: Vec<String> = planned.iter().map(|c| c.name()).collect();
        let wanted: Vec<String> = cells.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, wanted);
        assert!(planned.iter().all(|c| !c.in_vm));
    }
}
