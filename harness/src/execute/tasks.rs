//! The state of every task (thread) of a container, read from `/proc` right before a checkpoint:
//! the evidence of which tasks were in uninterruptible sleep (D) when CRIU began to freeze them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// How many tasks were in each state, and each one that was in uninterruptible sleep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskStates {
    /// State letter (`R`, `S`, `D`, `Z`, ...) -> number of tasks (threads) in it.
    pub counts: BTreeMap<String, u32>,
    /// Every task in state D, with where in the kernel it slept.
    #[serde(default)]
    pub uninterruptible: Vec<SleepingTask>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SleepingTask {
    /// The process (as the host sees it) and the task (thread) id.
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// `/proc/PID/task/TID/wchan`: the kernel function it sleeps in.
    pub wchan: String,
}

/// The comm and state letter of a `/proc/.../stat` line: `PID (COMM) STATE ...`, where COMM
/// may hold spaces and parentheses (the last `)` ends it).
pub fn parse_stat(text: &str) -> Option<(String, char)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let state = text.get(close + 1..)?.trim_start().chars().next()?;
    Some((comm, state))
}

/// Reads every task of `pids` under `proc_root` (the stack's `/proc` as the host sees it).
/// Tasks that exit while being read are skipped: process churn is what is measured.
pub fn read(proc_root: &Path, pids: &[u32]) -> TaskStates {
    let mut states = TaskStates::default();
    for &pid in pids {
        let Ok(tasks) = std::fs::read_dir(proc_root.join(format!("{pid}/task"))) else { continue };
        for tid in tasks.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
            let dir = proc_root.join(format!("{pid}/task/{tid}"));
            let Some((comm, state)) = std::fs::read_to_string(dir.join("stat")).ok().as_deref().and_then(parse_stat)
            else {
                continue;
            };
            *states.counts.entry(state.to_string()).or_insert(0) += 1;
            if state == 'D' {
                let wchan = std::fs::read_to_string(dir.join("wchan")).unwrap_or_default().trim().to_string();
                states.uninterruptible.push(SleepingTask { pid, tid, comm, wchan });
            }
        }
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_comm_and_state_even_with_parentheses_in_the_name() {
        assert_eq!(parse_stat("42 (python3) D 1 42 42 0"), Some(("python3".into(), 'D')));
        assert_eq!(parse_stat("7 (a (b) c) S 1"), Some(("a (b) c".into(), 'S')));
        assert_eq!(parse_stat("garbage"), None);
    }

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
