//! One boot of a VM: qemu started, its console followed into a log until the guest says it is
//! ready and then done, within the time limits; killed (with its process group) otherwise.

use super::guest;
use super::tools::Tools;
use crate::events::Events;
use anyhow::Context as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt as _;

/// Time limits of a VM, overridable for slow hosts and for tests of the timeout path (a number
/// of seconds or `5m`, at most a day; `plan::bounds::check_environment` refuses other values
/// before a run starts).
pub fn limit(var: &str, default_secs: u64) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| crate::scenario::duration_text::parse(&v).ok())
        .unwrap_or(Duration::from_secs(default_secs))
}

/// How long a VM may run in all: `CRIU_MATRIX_VM_TIMEOUT` when set; else 1800 s, or the boot
/// limit plus the cell's own step limits when those add up to more (a desktop under TCG).
pub fn total_limit(work: Duration) -> Duration {
    if std::env::var_os("CRIU_MATRIX_VM_TIMEOUT").is_some() {
        return limit("CRIU_MATRIX_VM_TIMEOUT", 1800);
    }
    Duration::from_secs(1800).max(limit("CRIU_MATRIX_VM_READY_TIMEOUT", 300).saturating_add(work))
}

pub struct Boot {
    pub ready_seconds: Option<f64>,
    pub done: bool,
    pub seconds: f64,
    pub console_tail: String,
    pub error: Option<String>,
}

/// Boots the VM and follows its console until the guest is done or a limit passes.
pub async fn boot(
    tools: &Tools,
    argv: &[String],
    console: &Path,
    events: &Events,
    name: &str,
    total_limit: Duration,
) -> anyhow::Result<Boot> {
    let ready_limit = limit("CRIU_MATRIX_VM_READY_TIMEOUT", 300);
    let started = Instant::now();
    // Its limits are kept here, by the console's deadlines: `total_limit` at the most.
    let mut qemu = tools.command(argv, total_limit).spawn_piped().context("failed to start qemu")?;
    let mut log = std::fs::File::create(console)?;
    let mut lines = tokio::io::BufReader::new(qemu.stdout.take().context("qemu's console is not piped")?).lines();
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let (mut ready, mut done, mut error) = (None, false, None);
    loop {
        let deadline = if ready.is_none() { ready_limit } else { total_limit };
        let left = deadline.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, lines.next_line()).await {
            Err(_) => {
                let what = if ready.is_none() { "did not report ready" } else { "did not finish" };
                error = Some(format!("the VM {what} within {}s; killed", deadline.as_secs()));
                break;
            }
            Ok(Ok(Some(line))) => {
                let line = line.replace('\r', "");
                let _ = writeln!(log, "[{:7.2}] {line}", started.elapsed().as_secs_f64());
                if ready.is_none() && line.contains(guest::READY_MARK) {
                    let s = started.elapsed().as_secs_f64();
                    ready = Some(s);
                    events.emit(crate::events::Event::Step { name, round: 0, step: "vm boot", seconds: s });
                }
                if line.contains(guest::DONE_MARK) {
                    done = true;
                }
                tail.push_back(line);
                if tail.len() > 40 {
                    tail.pop_front();
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => break, // qemu closed the console: it exited
        }
    }
    // After `done` the guest powers off by itself; anything else is killed now, with its group.
    let exited = if done { qemu.wait_for(Duration::from_secs(60)).await } else { None };
    if exited.is_none() {
        qemu.kill().await;
    }
    let err_text = qemu.stderr_text().await;
    if !err_text.trim().is_empty() {
        let _ = writeln!(log, "--- qemu stderr ---\n{}", err_text.trim());
    }
    let console_tail = tail.into_iter().collect::<Vec<_>>().join("\n");
    if !done && error.is_none() {
        error = Some(format!("the VM stopped before the guest was done (qemu: {})", err_text.trim()));
    }
    if let Some(e) = &mut error {
        e.push_str(&format!("\n--- console tail ---\n{console_tail}"));
    }
    Ok(Boot { ready_seconds: ready, done, seconds: started.elapsed().as_secs_f64(), console_tail, error })
}
