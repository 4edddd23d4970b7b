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

/// What a workload's witness file says: `ID COUNT`, a random identity the workload drew at start
/// and keeps in memory, and its count. A workload started again instead of restored has another
/// identity; one restored has the same identity and a count that goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessReading {
    pub id: String,
    pub count: u64,
}

/// Reads a witness file: `ID COUNT`, possibly followed by a newline. The identity is 8 to 64
/// letters, digits, `-` or `_`, not a bare number (so a plain counter is never taken for one).
pub fn read_witness(text: &str) -> Result<WitnessReading, String> {
    let wrong =
        || format!("expected `ID COUNT` (a random identity and a count) in the witness file, found {:?}", text.trim());
    let mut words = text.split_whitespace();
    let (Some(id), Some(count), None) = (words.next(), words.next(), words.next()) else { return Err(wrong()) };
    let id_ok = (8..=64).contains(&id.len())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !id.chars().all(|c| c.is_ascii_digit());
    let count = count.parse::<u64>().ok().filter(|_| id_ok).ok_or_else(wrong)?;
    Ok(WitnessReading { id: id.to_string(), count })
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

    /// Reads the witness. The workload may rewrite the file in place, so a read may land between
    /// the truncation and the write, and a checkpoint taken there restores an empty file that
    /// stays empty until the restored workload is scheduled again (seconds under software
    /// emulation): an empty or partial read is retried until `ID COUNT` is there, for up to 20
    /// seconds, and so is a file not there yet. A file that cannot be read otherwise, or a
    /// container that does not run, is an error at once.
    pub async fn witness(&self, name: &str, path: &str) -> Result<WitnessReading, String> {
        let started = Instant::now();
        loop {
            let pid = self.pid(name).await?;
            let host = self.session.host_path(&format!("/proc/{pid}/root{path}"));
            let read = match std::fs::read_to_string(&host) {
                Ok(text) => read_witness(&text),
                // Not there yet: a restore without the root filesystem's changes (`--ignore-rootfs`)
                // until the restored workload writes it again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(format!("failed to read {path} in container {name}: {e}"))
                }
                Err(e) => return Err(format!("failed to read {path} in container {name}: {e}")),
            };
            match read {
                Ok(w) => return Ok(w),
                Err(e) if started.elapsed() > Duration::from_secs(20) => return Err(format!("{path}: {e}")),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// The container's first process as a host process: its PID and start time as the stack's
    /// `/proc` shows them. A restore makes a new one; a container left running keeps it.
    pub async fn init_process(&self, name: &str) -> Result<crate::record::HostProcess, String> {
        let pid = self.pid(name).await?;
        let start_time = super::proc::process(&self.session.host_path("/proc"), pid)
            .and_then(|p| p.stat().ok())
            .map(|s| s.starttime)
            .ok_or_else(|| format!("failed to read the start time of the container's first process (pid {pid})"))?;
        Ok(crate::record::HostProcess { pid, start_time })
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
    fn reads_witnesses_and_rejects_what_is_not_one() {
        let id = "3f6c1c2e-7a59-4c31-9d0e-1b2a3c4d5e6f";
        assert_eq!(read_witness(&format!("{id} 42\n")), Ok(WitnessReading { id: id.into(), count: 42 }));
        assert_eq!(read_witness("0123abcdef 7").map(|w| w.count), Ok(7));
        for bad in
            ["", "42\n", "12345678 42", "short 42", "id-with space 4", "abcdefgh 4x2", "abcdefgh", "abcdefgh 1 2"]
        {
            let err = read_witness(bad).expect_err(bad);
            assert!(err.contains("expected `ID COUNT`"), "{err}");
        }
    }
}
