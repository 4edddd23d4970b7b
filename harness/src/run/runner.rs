//! The run: cells one by one, each to its record, appended to `cells.jsonl` as it finishes.

use super::stacks::Stacks;
use super::{in_vm, on_host, reproducer, to_record};
use crate::axes::Axis;
use crate::events::{Event, Events};
use crate::execute::Outcome;
use crate::host::HostFacts;
use crate::plan::Cell;
use crate::process::Transcript;
use crate::project::Project;
use crate::record::{CellRecord, RunDir};
use crate::stack::Cache;
use std::sync::Arc;
use std::time::Instant;

pub struct Runner {
    project: Project,
    cache: Cache,
    events: Events,
    pub run: RunDir,
    stacks: Stacks,
}

impl Runner {
    pub fn new(project: Project, cache: Cache, events: Events, host: &HostFacts) -> anyhow::Result<Runner> {
        let run = RunDir::create(&project.results())?;
        if let Some(message) = cache.low_space_warning() {
            events.emit(Event::Warning { message: &message });
        }
        let stacks = Stacks::new(cache.clone(), events.clone(), host.clone(), run.dir.clone());
        Ok(Runner { project, cache, events, run, stacks })
    }

    /// Runs one cell to its record (already appended to `cells.jsonl`).
    pub async fn run_cell(&mut self, cell: &Cell) -> CellRecord {
        let name = cell.name();
        self.events.emit(Event::CellStarted { name: &name });
        let started = Instant::now();
        let started_at = now_text();
        let log_dir = self.run.cell_dir(&name).unwrap_or_else(|_| self.run.dir.clone());
        let logs = self.run.relative(&log_dir);
        let mut record = if cell.in_vm {
            in_vm::run(&mut self.stacks, &self.project, &self.cache, &self.events, cell, &log_dir, logs).await
        } else {
            self.run_on_host(cell, &log_dir, logs).await
        };
        record.started = started_at;
        record.seconds = started.elapsed().as_secs_f64();
        // A cell cut short by Ctrl-C is not a finished cell: record nothing, let the handler end it.
        crate::cleanup::hold_if_interrupted();
        if let Err(e) = self.run.append(&record) {
            tracing::error!("failed to record {name}: {e:#}");
        }
        self.events.emit(Event::CellFinished { record: &record });
        record
    }

    async fn run_on_host(&mut self, cell: &Cell, log_dir: &std::path::Path, logs: String) -> CellRecord {
        let transcript = Arc::new(Transcript::default());
        let (stack, engine) = (&cell.key[Axis::Stack], &cell.key[Axis::Engine]);
        let ran = match self.stacks.ensure(stack, cell.derivation.as_deref(), engine, false, log_dir).await {
            Err(message) => to_record::Ran::before_stack(Outcome::Error { step: "stack".into(), message }),
            Ok(()) => on_host::run(&self.stacks, &self.project, &self.events, cell, log_dir, &transcript).await,
        };
        let mut record = to_record::record(cell, ran, log_dir, logs);
        if let Some((session, _)) = self.stacks.get(stack) {
            record.components = session.components.clone();
        }
        let script = self.stacks.get(stack).and_then(|(session, _)| {
            reproducer::write(cell, session, &self.cache, &transcript, log_dir, &record.reason)
        });
        record.reproducer = script.map(|p| self.run.relative(&p));
        record
    }

    /// The private mount namespaces of the stacks opened so far: after `finish`, no process may
    /// be left in any of them.
    pub fn stack_namespaces(&self) -> Vec<String> {
        self.stacks.namespaces()
    }

    /// Closes every stack (removing what the run made there) and writes the matrix reports.
    pub fn finish(mut self) -> anyhow::Result<(RunDir, Vec<CellRecord>)> {
        self.stacks.close();
        self.events.finish();
        let records = crate::record::read_cells(&self.run.dir)?;
        crate::report::write(&self.run.dir, &records)?;
        Ok((self.run, records))
    }
}

fn now_text() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
