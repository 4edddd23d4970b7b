//! The state of every task (thread) of a container, read from `/proc` right before a checkpoint:
//! the evidence of which tasks were in uninterruptible sleep (D) when CRIU began to freeze them.

use super::probe::Probe;
use crate::record::{SleepingTask, TaskStates};
use std::path::Path;

/// Reads every task of `pids` under `proc_root` (the stack's `/proc` as the host sees it).
/// Tasks that exit while being read are skipped: process churn is what is measured.
pub fn read(proc_root: &Path, pids: &[u32]) -> TaskStates {
    let mut states = TaskStates::default();
    for &pid in pids {
        let Some(tasks) = super::proc::process(proc_root, pid).and_then(|p| p.tasks().ok()) else { continue };
        for task in tasks.flatten() {
            let Ok(stat) = task.stat() else { continue };
            *states.counts.entry(stat.state.to_string()).or_insert(0) += 1;
            if stat.state == 'D' {
                let wchan = proc_root.join(format!("{pid}/task/{}/wchan", task.tid));
                let wchan = std::fs::read_to_string(wchan).unwrap_or_default().trim().to_string();
                states.uninterruptible.push(SleepingTask { pid, tid: task.tid as u32, comm: stat.comm, wchan });
            }
        }
    }
    states
}

impl Probe<'_> {
    /// The state of every task of the container, read right before a checkpoint.
    pub async fn task_states(&self, name: &str) -> Result<TaskStates, String> {
        let pids = self.processes(name).await?;
        Ok(read(&self.session.host_path("/proc"), &pids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_this_process_tasks() {
        let me = std::process::id();
        let states = read(Path::new("/proc"), &[me, u32::MAX]);
        let total: u32 = states.counts.values().sum();
        let threads = std::fs::read_dir(format!("/proc/{me}/task")).unwrap().count() as u32;
        // Threads of the test harness come and go, but this one is running while it reads.
        assert!(total >= 1 && total <= threads + 8, "{states:?}");
        assert!(states.counts.contains_key("R"), "the reading thread runs: {states:?}");
    }
}
