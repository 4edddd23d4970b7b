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
use crate::record::{CellRecord, Verdict};
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
    let name = cell.name();
    let mut record = CellRecord {
        name: name.clone(),
        key: cell.key.clone(),
        verdict: Verdict::Error,
        reason: String::new(),
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
    };
    let fail = |record: &mut CellRecord, step: &str, message: String| {
        let _ = std::fs::write(log_dir.join("error.txt"), format!("{step}: {message}\n"));
        let class = verdict::classify(&Expectation::passes(), &Outcome::Error { step: step.into(), message });
        record.verdict = class.verdict;
        record.reason = class.reason;
    };
    let (stack, engine_name) = (&cell.key[Axis::Stack], &cell.key[Axis::Engine]);
    if let Err(message) = stacks.ensure(stack, engine_name, true, log_dir).await {
        fail(&mut record, "stack", message);
        return record;
    }
    let (session, bases) = stacks.get(stack).expect("ensured above");
    let engine = match crate::engine::for_stack(session, engine_name, Arc::new(Transcript::default())) {
        Ok(engine) => engine,
        Err(e) => {
            fail(&mut record, "engine", format!("{e:#}"));
            return record;
        }
    };
    if let Err(e) = ensure_image(engine.as_ref(), session, bases, project, events, cell).await {
        fail(&mut record, "image", format!("{e:#}"));
        return record;
    }
    let stack_dir = cache.stack_dir(stack);
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
    match crate::vm::run_cell(&vm_cell).await {
        Err(e) => fail(&mut record, "vm", format!("{e:#}")),
        Ok(run) => {
            match (run.record, run.error) {
                (Some(guest), _) => {
                    let logs = record.logs.take();
                    record = CellRecord {
                        name: record.name,
                        key: record.key,
                        logs,
                        started: String::new(),
                        seconds: 0.0,
                        ..guest
                    };
                }
                (None, error) => fail(&mut record, "vm", error.unwrap_or_else(|| "the guest recorded nothing".into())),
            }
            record.versions.extend(run.facts);
        }
    }
    record
}
