//! Reading a running container from the host, through `/proc/<pid>/root` and the stack's
//! `/proc` (never an `exec` into the container, which would add a process to what CRIU dumps).

use crate::engine::Engine;
use crate::stack::Session;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often readiness and progress are polled: short against every time limit in use.
pub const POLL: Duration = Duration::from_millis(100);

/// A container's observer: its engine says where the container's first process is, the
/// session where the stack's files are.
pub struct Probe<'a> {
    pub engine: &'a dyn Engine,
    pub session: &'a Session,
}

/// Reads a counter file: a decimal number, possibly followed by a newline.
pub fn read_counter(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|_| format!("expected a number in the counter file, found {:?}", text.trim()))
}

impl<'a> Probe<'a> {
    pub fn new(engine: &'a dyn Engine, session: &'a Session) -> Self {
        Probe { engine, session }
    }

    /// The host PID of the container's first process.
    pub async fn pid(&self, name: &str) -> Result<u32, String> {
        match self.engine.pid(name).await {
            Ok(Some(pid)) => Ok(pid),
            Ok(None) => Err(format!("container {name} is not running")),
            Err(e) => Err(format!("failed to inspect container {name}: {e:#}")),
        }
    }

    /// A file inside the container, as the host sees it.
    pub async fn read(&self, name: &str, path: &str) -> Result<String, String> {
        let pid = self.pid(name).await?;
        let host = self.session.host_path(&format!("/proc/{pid}/root{path}"));
        std::fs::read_to_string(&host).map_err(|e| format!("failed to read {path} in container {name}: {e}"))
    }

    /// Waits until `file` exists and is not empty in the container.
    pub async fn wait_ready(&self, name: &str, file: &str, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < limit {
            match self.read(name, file).await {
                Ok(text) if !text.trim().is_empty() => return Ok(()),
                Ok(_) => last = format!("{file} is empty"),
                Err(e) => last = e,
            }
            tokio::time::sleep(POLL).await;
        }
        Err(format!("the workload was not ready within {:.0}s ({last})", limit.as_secs_f64()))
    }

    /// Reads the counter. The workload rewrites the file in place, so a read may land between the
    /// truncation and the write, and a checkpoint taken there restores an empty file that stays
    /// empty until the restored workload is scheduled again (seconds under software emulation):
    /// an empty or partial read is retried until a number is there, for up to 20 seconds.
    pub async fn counter(&self, name: &str, path: &str) -> Result<u64, String> {
        let started = Instant::now();
        loop {
            match read_counter(&self.read(name, path).await?) {
                Ok(n) => return Ok(n),
                Err(e) if started.elapsed() > Duration::from_secs(20) => return Err(e),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Processes in the container's PID namespace, as the host sees them.
    pub async fn processes(&self, name: &str) -> Result<Vec<u32>, String> {
        let pid = self.pid(name).await?;
        super::proc::same_pid_namespace(&self.session.host_path("/proc"), pid).map_err(|e| e.to_string())
    }

    /// The PIDs inside the container of its processes named `names` (by `/proc/PID/comm`).
    pub async fn pids_named(&self, name: &str, names: &[String]) -> Result<BTreeMap<String, Vec<u32>>, String> {
        let proc_root = self.session.host_path("/proc");
        let mut found: BTreeMap<String, Vec<u32>> = names.iter().map(|n| (n.clone(), Vec::new())).collect();
        for pid in self.processes(name).await? {
            let Some(comm) = super::proc::comm(&proc_root, pid) else { continue };
            if let (Some(pids), Some(inner)) = (found.get_mut(&comm), super::proc::innermost_pid(&proc_root, pid)) {
                pids.push(inner);
            }
        }
        found.values_mut().for_each(|p| p.sort_unstable());
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_and_rejects_garbage() {
        assert_eq!(read_counter("42\n"), Ok(42));
        assert!(read_counter("").is_err());
        assert!(read_counter("4x2").is_err());
    }
}
