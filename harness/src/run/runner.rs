//! The run: its jobs (the host-kernel cells of a stack; a group of VM cells sharing a boot), up
//! to `--jobs N` at once, each cell's record appended to `cells.jsonl` as it finishes.

use super::jobs::{jobs, Job};
use super::shared::{text_of, Shared};
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
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// The run. Cheap to clone: every job gets one.
#[derive(Clone)]
pub struct Runner {
    shared: Arc<Shared>,
    pub run: Arc<RunDir>,
}

impl Runner {
    pub fn new(project: Project, cache: Cache, events: Events, host: &HostFacts) -> anyhow::Result<Runner> {
        let run = Arc::new(RunDir::create(&project.results())?);
        // Inside a VM the cache is the work disk, made to fit.
        if let Some(message) = cache.low_space_warning().filter(|_| host.guest.is_none()) {
            events.emit(Event::Warning { message: &message });
        }
        let stacks = Stacks::new(cache.clone(), events.clone(), host.clone(), run.dir.clone());
        let shared = Shared::new(project, cache, events, run.clone(), stacks);
        Ok(Runner { shared: Arc::new(shared), run })
    }

    /// Says which cells this run will be asked for (`run_cell`), each `repeat` times: VM cells
    /// then share boots with the other planned cells of their group, and each stack is closed
    /// as soon as its last user is done.
    pub async fn plan(&self, cells: &[Cell], repeat: u32) {
        for job in jobs(cells) {
            let users = match &job {
                Job::Host { cells, .. } => cells.len(),
                Job::Vm { .. } => 1,
            };
            self.shared.stacks.expect_users(job.stack(), users * repeat as usize).await;
        }
        self.shared.planned.lock().unwrap_or_else(|p| p.into_inner()).extend(cells.iter().cloned());
    }

    /// Runs `cells`, each `repeat` times, up to `jobs` jobs at once (see `jobs`). Every record is
    /// appended as its cell finishes.
    pub async fn run_all(&self, cells: &[Cell], jobs: usize, repeat: u32) {
        let list = super::jobs::jobs(cells);
        self.plan(cells, repeat).await;
        let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
        let mut running = Vec::new();
        for job in list {
            // In plan order: the next job starts when one of the running ones ends.
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let me = self.clone();
            running.push(tokio::spawn(async move {
                me.run_job(&job, repeat).await;
                drop(permit);
            }));
        }
        for task in running {
            if let Err(e) = task.await {
                tracing::error!("a job of the run failed: {e}");
            }
        }
    }

    async fn run_job(&self, job: &Job, repeat: u32) {
        let label = job.label();
        let names: Vec<String> = job.cells().iter().map(Cell::name).collect();
        self.shared.events.emit(Event::JobStarted { job: &label, cells: &names });
        match job {
            Job::Host { cells, .. } => {
                for cell in cells {
                    for _ in 0..repeat {
                        let record = self.run_host_cell(cell).await;
                        self.shared.finish_cell(&record);
                    }
                }
            }
            Job::Vm { cells, .. } => {
                for _ in 0..repeat {
                    in_vm::run_group(&self.shared, cells, &mut |_, record| self.shared.finish_cell(&record)).await;
                }
            }
        }
        self.shared.events.emit(Event::JobFinished { job: &label });
    }

    /// Runs one cell to its record (already appended to `cells.jsonl`). A VM cell runs with the
    /// cells planned after it in its group (`plan`), in one boot when it can; their records are
    /// appended as they finish and handed out when they are asked for.
    pub async fn run_cell(&self, cell: &Cell) -> CellRecord {
        let name = cell.name();
        if !cell.in_vm {
            let record = self.run_host_cell(cell).await;
            self.shared.finish_cell(&record);
            return record;
        }
        if let Some(record) = self.take_ahead(&name) {
            return record;
        }
        let group = self.group_from(cell);
        let mut mine = None;
        in_vm::run_group(&self.shared, &group, &mut |c, record| {
            self.shared.finish_cell(&record);
            if mine.is_none() && c.key == cell.key {
                mine = Some(record);
            } else {
                let mut ahead = self.shared.ahead.lock().unwrap_or_else(|p| p.into_inner());
                ahead.entry(c.name()).or_default().push_back(record);
            }
        })
        .await;
        mine.unwrap_or_else(|| panic!("the VM group of {name} did not record it"))
    }

    fn take_ahead(&self, name: &str) -> Option<CellRecord> {
        let mut ahead = self.shared.ahead.lock().unwrap_or_else(|p| p.into_inner());
        ahead.get_mut(name).and_then(VecDeque::pop_front)
    }

    /// `cell` and the planned cells after it in its group, once each: the cells one boot runs.
    fn group_from(&self, cell: &Cell) -> Vec<Cell> {
        let mut planned = self.shared.planned.lock().unwrap_or_else(|p| p.into_inner());
        let Some(at) = planned.iter().position(|c| c.key == cell.key) else { return vec![cell.clone()] };
        let label = crate::vm::group_label(&cell.key);
        let mut group = vec![planned.remove(at)];
        let mut i = at;
        while i < planned.len() {
            if planned[i].in_vm && crate::vm::group_label(&planned[i].key) == label {
                group.push(planned.remove(i));
            } else {
                i += 1;
            }
        }
        group
    }

    async fn run_host_cell(&self, cell: &Cell) -> CellRecord {
        let shared = &self.shared;
        let name = cell.name();
        shared.events.emit(Event::CellStarted { name: &name });
        let started = Instant::now();
        let started_at = text_of(time::OffsetDateTime::now_utc());
        let log_dir = shared.run.cell_dir(&name).unwrap_or_else(|_| shared.run.dir.clone());
        let logs = shared.run.relative(&log_dir);
        let transcript = Arc::new(Transcript::default());
        let engine = &cell.key[Axis::Engine];
        let mut lease = shared.stacks.lease(&cell.key[Axis::Stack]).await;
        let ran = match lease.ensure(cell.derivation.as_deref(), engine, false, &log_dir).await {
            Err(message) => to_record::Ran::before_stack(Outcome::Error { step: "stack".into(), message }),
            Ok(()) => {
                let (session, bases) = lease.get().expect("ensured above");
                on_host::run(session, bases, &shared.project, &shared.events, cell, &log_dir, &transcript).await
            }
        };
        let mut record = to_record::record(cell, ran, &log_dir, logs);
        if let Some((session, _)) = lease.get() {
            record.components = session.components.clone();
        }
        let script = lease.get().and_then(|(session, _)| {
            reproducer::write(cell, session, &shared.cache, &transcript, &log_dir, &record.reason)
        });
        lease.done_with();
        drop(lease);
        record.reproducer = script.map(|p| shared.run.relative(&p));
        record.started = started_at;
        record.seconds = started.elapsed().as_secs_f64();
        record
    }

    /// Stack `name`, once no job of this run holds it.
    pub(super) async fn lease(&self, name: &str) -> super::stacks::Lease {
        self.shared.stacks.lease(name).await
    }

    /// The private mount namespaces of the stacks open now: after `finish`, no process may be
    /// left in any of them.
    pub fn stack_namespaces(&self) -> Vec<String> {
        self.shared.stacks.namespaces()
    }

    /// Processes found left in the namespace of a stack this run closed before its end (each
    /// checked right after it closed, before another run could take its namespace's number).
    pub fn leaked_from_closed_stacks(&self) -> Vec<u32> {
        self.shared.stacks.leaked()
    }

    /// Closes every stack (removing what the run made there) and writes the matrix reports.
    pub fn finish(self) -> anyhow::Result<(Arc<RunDir>, Vec<CellRecord>)> {
        self.shared.stacks.close();
        self.shared.events.finish();
        let records = crate::record::read_cells(&self.run.dir)?;
        crate::report::write(&self.run.dir, &records)?;
        let unrecorded = self.shared.unrecorded.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !unrecorded.is_empty() {
            anyhow::bail!(
                "failed to append {} record(s) to {}: {}",
                unrecorded.len(),
                self.run.dir.join("cells.jsonl").display(),
                unrecorded.join(", ")
            );
        }
        Ok((self.run, records))
    }
}
