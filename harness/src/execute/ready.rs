//! Readiness: the workload's ready file, waited for after a start (the first one, and a
//! `restart` fault's); when it never comes, what the workload printed is the evidence.

use super::spec::CellSpec;
use crate::observe::Probe;
use std::time::Duration;

/// Waits for the ready file; when it never comes, what the workload printed is the evidence.
pub(super) async fn wait_ready(probe: &Probe<'_>, spec: &CellSpec<'_>, name: &str) -> Result<(), String> {
    let (engine, ready) = (probe.engine, &spec.scenario.ready);
    spec.transcript.push_equivalent(
        "wait until the workload is ready",
        &format!("until {} >/dev/null 2>&1; do sleep 0.1; done", engine.read_file_command(name, &ready.file)),
    );
    let Err(message) = probe.wait_ready(name, &ready.file, ready.timeout).await else { return Ok(()) };
    let printed = engine.logs(name, Duration::from_secs(30)).await.ok();
    let printed = printed.map(|o| format!("{}{}", o.stdout, o.stderr)).unwrap_or_default();
    let _ = std::fs::write(spec.log_dir.join("container.log"), &printed);
    let tail: Vec<&str> = printed.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
    Err(if tail.is_empty() { message } else { format!("{message}; the workload printed:\n{}", tail.join("\n")) })
}
