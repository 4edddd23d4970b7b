//! A cell in a VM: its images are built in the stack on the host first (they go into the VM on
//! the stack disk), then the guest runs the cell and its record comes back.

use super::on_host::ensure_image;
use super::stacks::Stacks;
use crate::axes::Axis;
use crate::events::Events;
use crate::execute::Outcome;
use crate::plan::Cell;
use crate::process::Transcript;
use crate::project::Project;
use crate::record::CellRecord;
use crate::scenario::Expectation;
use crate::stack::Cache;
use crate::verdict;
use std::path::Path;
use std::sync::Arc;

/// The record of the cell as the guest made it (or an `error` saying why there is none), with
/// the VM's facts among its versions. `logs` is the cell's log directory, relative to the run.
pub async fn run(
    stacks: &mut Stacks,
    project: &Project,
    cache: &Cache,
    events: &Events,
    cell: &Cell,
    log_dir: &Path,
    logs: String,
) -> CellRecord {
    let error = |step: &str, message: String| error_record(cell, log_dir, logs.clone(), step, message);
    if let Err((step, message)) = prepare(stacks, project, events, cell, log_dir).await {
        return error(step, message);
    }
    let stack_dir = cache.stack_dir(&cell.key[Axis::Stack]);
    let name = cell.name();
    let vm_cell = crate::vm::VmCell {
        key: &cell.key,
        name: &name,
        project_root: &project.root,
        cache,
        events,
        stack_rootfs: stack_dir.join("rootfs"),
        stack_storage: stack_dir.join("storage"),
        stack_docker: stack_dir.join("docker"),
        log_dir,
        work_limit: cell.scenario.work_limit(),
    };
    let run = match crate::vm::run_cell(&vm_cell).await {
        Err(e) => return error("vm", format!("{e:#}")),
        Ok(run) => run,
    };
    let mut record = match (run.record, run.error) {
        // The guest's record, under the host's name, key and log directory.
        (Some(guest), _) => {
            CellRecord { name, key: cell.key.clone(), logs: Some(logs), started: String::new(), seconds: 0.0, ..guest }
        }
        (None, e) => error("vm", e.unwrap_or_else(|| "the guest recorded nothing".into())),
    };
    record.versions.extend(run.facts);
    record
}

/// The cell's stack opened on the host and its image built there: the VM boots with both.
async fn prepare(
    stacks: &mut Stacks,
    project: &Project,
    events: &Events,
    cell: &Cell,
    log_dir: &Path,
) -> Result<(), (&'static str, String)> {
    let (stack, engine_name) = (&cell.key[Axis::Stack], &cell.key[Axis::Engine]);
    stacks.ensure(stack, cell.derivation.as_deref(), engine_name, true, log_dir).await.map_err(|m| ("stack", m))?;
    let (session, bases) = stacks.get(stack).expect("ensured above");
    let engine = crate::engine::for_stack(session, engine_name, Arc::new(Transcript::default()))
        .map_err(|e| ("engine", format!("{e:#}")))?;
    ensure_image(engine.as_ref(), session, bases, project, events, cell)
        .await
        .map_err(|e| ("image", format!("{e:#}")))?;
    Ok(())
}

/// An `error` record: the VM cell did not get to a record of the guest's.
fn error_record(cell: &Cell, log_dir: &Path, logs: String, step: &str, message: String) -> CellRecord {
    let _ = std::fs::write(log_dir.join("error.txt"), format!("{step}: {message}\n"));
    let class = verdict::classify(&Expectation::passes(), &Outcome::Error { step: step.into(), message });
    CellRecord {
        name: cell.name(),
        key: cell.key.clone(),
        verdict: class.verdict,
        reason: class.reason,
        expected: String::new(),
        failure: None,
        rounds: Vec::new(),
        versions: Default::default(),
        started: String::new(),
        seconds: 0.0,
        logs: Some(logs),
        reproducer: None,
        criu_config: None,
        stress: None,
        components: Default::default(),
    }
}
