//! The run inside a VM guest: the boot's cells in their order, each one's record and logs sent
//! out through the channel as it finishes, and what it left behind checked before the next. A
//! cell that erred or left anything ends the boot (the guest says why); the host runs the rest
//! in a fresh boot.

use super::leftovers::{left_behind, Snapshot};
use super::runner::Runner;
use crate::axes::Axis;
use crate::plan::Cell;
use crate::record::Verdict;
use crate::vm::channel::Sender;
use std::path::Path;

/// Runs `cells` in order, reporting each through the channel `channel` (the port's device).
pub async fn run_in_guest(runner: &Runner, cells: &[Cell], channel: &Path) -> anyhow::Result<()> {
    let mut out = Sender::open(channel)?;
    for cell in cells {
        let name = cell.name();
        let before = Snapshot::take();
        out.started(&name)?;
        let mut record = runner.run_cell(cell).await;
        let left = {
            let lease = runner.lease(&cell.key[Axis::Stack]).await;
            left_behind(&before, lease.get().map(|(session, _)| session)).await
        };
        if !left.is_empty() {
            record.versions.insert("vm.left_behind".into(), left.join("; "));
        }
        let dir = record.logs.as_ref().map(|l| runner.run.dir.join(l));
        out.finished(&record, dir.as_deref())?;
        let stop = match (&record.verdict, left.is_empty()) {
            (Verdict::Error, _) => Some(format!("{name} erred")),
            (_, false) => Some(format!("{name} left behind {}", left.join("; "))),
            _ => None,
        };
        if let Some(reason) = stop {
            eprintln!("criu-matrix-guest: ending this boot: {reason}");
            out.stop(&reason)?;
            break;
        }
    }
    Ok(())
}
