//! The record: the data every later stage writes and reads. A cell's record (`cell`), the
//! evidence its rounds kept (`evidence`), its verdict (`verdict`), and the run directory that
//! holds `cells.jsonl` and each cell's logs (`run_dir`).
//!
//! It sits low in the pipeline on purpose: execution fills in these types, classification sets
//! the verdict, and reports, comparisons and bug reports read them back, all without importing
//! one another.

mod cell;
mod evidence;
mod origin;
mod run_dir;
#[cfg(test)]
pub(crate) mod testing;
mod verdict;

pub use cell::{CellRecord, ClauseKind, ExecSeen, FailureRecord, MatchedClause, RoundRecord, StressRecord};
pub use evidence::{
    CriuConfigFileRecord, CriuConfigRecord, HostProcess, MountChange, MountSeen, PidfdHolder, Placement,
    ProcessPlacement, RoundFailure, RunningSeen, SignatureHit, SleepingTask, TaskStates, VncSeen,
};
pub use origin::{ComponentOrigin, PatchOrigin};
pub use run_dir::{inside, read_cells, read_cells_file, RunDir};
pub use verdict::Verdict;
