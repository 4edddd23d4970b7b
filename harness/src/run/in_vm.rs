//! VM cells, a group at a time (one stack, kernel, cgroup layout and init): their images are
//! built in the stack on the host first (they go into the VM on the stack disk), the stack is
//! let go, then the group's boots run the cells and each record comes back as its cell finishes.

use super::on_host::ensure_image;
use super::shared::{text_of, Shared};
use crate::axes::Axis;
use crate::execute::Outcome;
use crate::plan::Cell;
use crate::process::Transcript;
use crate::record::CellRecord;
use crate::scenario::Expectation;
use crate::verdict;
use crate::vm::{Done, Ended, GroupCell, Machine, VmGroup};
use std::path::Path;
use std::sync::Arc;

/// Runs `cells` (one group, in this order); each cell's record goes to `recorded` as it
/// finishes (before the group ends), every cell exactly once.
pub async fn run_group(shared: &Shared, cells: &[Cell], recorded: &mut (dyn FnMut(&Cell, CellRecord) + Send)) {
    let Some(first) = cells.first() else { return };
    let stack = first.key[Axis::Stack].clone();
    let mut group: Vec<(&Cell, GroupCell)> = Vec::new();
    let machine = {
        let mut lease = shared.stacks.lease(&stack).await;
        for cell in cells {
            let name = cell.name();
            let log_dir = shared.run.cell_dir(&name).unwrap_or_else(|_| shared.run.dir.clone());
            match prepare_cell(shared, &mut lease, cell, &log_dir).await {
                Err((step, message)) => recorded(cell, error_record(shared, cell, &log_dir, step, message)),
                Ok(()) => group.push((
                    cell,
                    GroupCell { key: cell.key.clone(), name, log_dir, work_limit: cell.scenario.work_limit() },
                )),
            }
        }
        let machine = match group.is_empty() {
            true => None,
            false => Some(prepare_machine(shared, first).await),
        };
        // The boots need nothing more of the stack: the next user (of this run or another) may have it.
        lease.done_with();
        machine
    };
    let machine = match machine {
        None => return,
        Some(Ok(m)) => m,
        Some(Err(message)) => {
            for (cell, g) in &group {
                recorded(cell, error_record(shared, cell, &g.log_dir, "vm", message.clone()));
            }
            return;
        }
    };
    let vm_group = VmGroup {
        cells: group.iter().map(|(_, g)| g.clone()).collect(),
        project_root: &shared.project.root,
        events: &shared.events,
        boots_dir: shared.run.dir.join("boots"),
    };
    let next_boot = || shared.next_boot_id();
    let mut ended: Vec<String> = Vec::new();
    let mut on_done = |done: Done<'_>| {
        let Some((cell, _)) = group.iter().find(|(_, g)| g.name == done.cell.name) else { return };
        let mut record = match done.ended {
            // The guest's record, under the host's name, key and log directory.
            Ended::Recorded(guest) => CellRecord {
                name: done.cell.name.clone(),
                key: cell.key.clone(),
                logs: Some(shared.run.relative(&done.cell.log_dir)),
                ..*guest
            },
            Ended::Failed(why) => error_record(shared, cell, &done.cell.log_dir, "vm", why),
        };
        record.versions.extend(done.facts);
        record.seconds = done.seconds;
        let started = time::OffsetDateTime::now_utc() - time::Duration::seconds_f64(done.seconds);
        record.started = text_of(started);
        ended.push(done.cell.name.clone());
        recorded(cell, record);
    };
    let result = crate::vm::run_group(&machine, &vm_group, &next_boot, &mut on_done).await;
    drop(on_done);
    // Cells the group could not end (it failed to stage or boot): each an error, once.
    let message = match result {
        Ok(()) => "the VM group ended without this cell (a harness bug)".to_string(),
        Err(e) => format!("{e:#}"),
    };
    for (cell, g) in group.iter().filter(|(_, g)| !ended.contains(&g.name)) {
        recorded(cell, error_record(shared, cell, &g.log_dir, "vm", message.clone()));
    }
}

/// The cell's stack opened on the host and its image built there: the VM boots with both.
async fn prepare_cell(
    shared: &Shared,
    lease: &mut super::stacks::Lease,
    cell: &Cell,
    log_dir: &Path,
) -> Result<(), (&'static str, String)> {
    let engine_name = &cell.key[Axis::Engine];
    lease.ensure(cell.derivation.as_deref(), engine_name, true, log_dir).await.map_err(|m| ("stack", m))?;
    let (session, bases) = lease.get().expect("ensured above");
    let engine = crate::engine::for_stack(session, engine_name, Arc::new(Transcript::default()))
        .map_err(|e| ("engine", format!("{e:#}")))?;
    ensure_image(engine.as_ref(), session, bases, &shared.project, &shared.events, cell)
        .await
        .map_err(|e| ("image", format!("{e:#}")))?;
    Ok(())
}

/// The tools, the kernel and the stack disk (with the images just built) of the group.
async fn prepare_machine(shared: &Shared, first: &Cell) -> Result<Machine, String> {
    let (stack, kernel) = (&first.key[Axis::Stack], &first.key[Axis::Kernel]);
    let dir = shared.cache.stack_dir(stack);
    let (rootfs, storage, docker) = (dir.join("rootfs"), dir.join("storage"), dir.join("docker"));
    let mut machine = Machine::prepare(&shared.cache, &shared.events, kernel, stack, &rootfs, &storage, &docker)
        .await
        .map_err(|e| format!("{e:#}"))?;
    // Before the stack is let go: from here on no other run can take the disk from these boots.
    machine.pin_stack_disk().map_err(|e| format!("{e:#}"))?;
    Ok(machine)
}

/// An `error` record: the VM cell did not get to a record of the guest's.
fn error_record(shared: &Shared, cell: &Cell, log_dir: &Path, step: &str, message: String) -> CellRecord {
    let _ = std::fs::write(log_dir.join("error.txt"), format!("{step}: {message}\n"));
    let class = verdict::classify(&Expectation::passes(), &Outcome::Error { step: step.into(), message });
    CellRecord {
        name: cell.name(),
        key: cell.key.clone(),
        verdict: class.verdict,
        reason: class.reason,
        expected: String::new(),
        clause: None,
        failure: None,
        rounds: Vec::new(),
        versions: Default::default(),
        started: text_of(time::OffsetDateTime::now_utc()),
        seconds: 0.0,
        logs: Some(shared.run.relative(log_dir)),
        reproducer: None,
        criu_config: None,
        stress: None,
        fault: None,
        components: Default::default(),
    }
}
