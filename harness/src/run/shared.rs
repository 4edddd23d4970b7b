//! What every job of a run shares: the project, the cache, the event stream, the run directory
//! and the stacks; each finished cell is appended and announced through it.

use super::stacks::Stacks;
use crate::events::{Event, Events};
use crate::plan::Cell;
use crate::project::Project;
use crate::record::{CellRecord, RunDir};
use crate::stack::Cache;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What every job of a run shares.
pub struct Shared {
    pub project: Project,
    pub cache: Cache,
    pub events: Events,
    pub run: Arc<RunDir>,
    pub stacks: Stacks,
    boots: AtomicUsize,
    /// Records of VM cells that ran with an earlier cell of their group, for `run_cell`.
    pub(super) ahead: Mutex<HashMap<String, VecDeque<CellRecord>>>,
    /// The cells `run_cell` is going to be asked for, in order (groups are formed from them).
    pub(super) planned: Mutex<Vec<Cell>>,
    /// Cells whose record could not be appended to `cells.jsonl`: the run fails at its end.
    pub(super) unrecorded: Mutex<Vec<String>>,
}

impl Shared {
    pub fn new(project: Project, cache: Cache, events: Events, run: Arc<RunDir>, stacks: Stacks) -> Shared {
        let (boots, ahead, planned) = (AtomicUsize::new(0), Mutex::default(), Mutex::default());
        Shared { project, cache, events, run, stacks, boots, ahead, planned, unrecorded: Mutex::default() }
    }

    /// `vm.boot`: the run's id and the boot's number in the run, unique across merged shards.
    pub fn next_boot_id(&self) -> String {
        format!("{}/{}", self.run.id, self.boots.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Appends a finished cell and announces it. A cell cut short by Ctrl-C is not a finished
    /// cell: nothing is recorded, the interrupt handler ends the run.
    pub fn finish_cell(&self, record: &CellRecord) {
        crate::cleanup::hold_if_interrupted();
        if let Err(e) = self.run.append(record) {
            tracing::error!("failed to record {}: {e:#}", record.name);
            self.unrecorded.lock().unwrap_or_else(|p| p.into_inner()).push(record.name.clone());
        }
        self.events.emit(Event::CellFinished { record });
    }
}

/// A time as records write it (RFC 3339).
pub fn text_of(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
