//! What a cell sets up in the stack around its container (what `scenario::stack_needs` asks
//! for): CRIU configuration files (`criu_config`), a directory of its own, and services started
//! from it. Dropping the value undoes it all, newest first (services are stopped by their PID);
//! so does an interrupt.

use super::criu_config;
use crate::cleanup::{self, Guard};
use crate::engine::BindMount;
use crate::observe::POLL;
use crate::process::{shell_join, Transcript};
use crate::scenario::stack_needs::in_cell_dir;
use crate::scenario::{Scenario, ServiceSpec};
use crate::stack::exec::log_tail;
use crate::stack::Session;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the cells' directories are made in a stack (a tmpfs in the Debian stacks). Short, so that
/// a socket path inside stays far below the 108 bytes of `sun_path`.
const CELL_DIRS: &str = "/run/criu-matrix";

/// How long a service gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub struct StackSetup {
    /// The bind mounts of the container, with `{dir}` replaced.
    pub mounts: Vec<BindMount>,
    /// How a person undoes it by hand, in order (for the reproducer).
    pub teardown: Vec<(String, String)>,
    /// Undo actions in the order they were made; dropped newest first.
    guards: Vec<Guard>,
}

impl Drop for StackSetup {
    fn drop(&mut self) {
        while let Some(guard) = self.guards.pop() {
            guard.run();
        }
    }
}

/// A new directory name for each cell of this process.
fn cell_dir() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!("{CELL_DIRS}/{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Sets up what the cell needs in the stack; on an error, what was set up so far is undone.
/// `image_dir` holds the files services copy; `log_dir` receives each service's output.
pub async fn prepare(
    session: &Session,
    scenario: &Scenario,
    image_dir: &Path,
    log_dir: &Path,
    transcript: &Transcript,
) -> Result<StackSetup, String> {
    let mut made = StackSetup { mounts: Vec::new(), teardown: Vec::new(), guards: Vec::new() };
    let root = session.host_path("/");
    criu_config::remove_leftovers(&root);
    for config in &scenario.criu_config {
        let written = criu_config::write(&root, config, transcript)?;
        made.guards.push(written.guard);
        made.teardown.push(written.teardown);
    }
    if scenario.services.is_empty() && scenario.mounts.is_empty() {
        return Ok(made);
    }
    let dir = cell_dir();
    let on_host = session.host_path(&dir);
    std::fs::create_dir_all(&on_host).map_err(|e| format!("failed to create the cell directory {dir}: {e}"))?;
    made.guards.push(cleanup::on_cleanup(format!("remove the cell directory {dir}"), move || {
        let _ = std::fs::remove_dir_all(&on_host);
        // The parent goes too once no other cell uses it.
        let _ = on_host.parent().map(std::fs::remove_dir);
    }));
    transcript.push_equivalent("the cell's own directory in the stack", &format!("mkdir -p {dir}"));
    made.teardown.push(("remove the cell's directory".into(), format!("rm -rf {dir}")));
    for service in &scenario.services {
        start_service(session, service, &dir, image_dir, log_dir, transcript, &mut made).await?;
    }
    made.mounts = scenario
        .mounts
        .iter()
        .map(|m| BindMount { source: in_cell_dir(&m.source.value, &dir), target: m.target.value.clone() })
        .collect();
    Ok(made)
}

/// Copies the service's files into the cell's directory, starts it and waits until it is ready.
async fn start_service(
    session: &Session,
    service: &ServiceSpec,
    dir: &str,
    image_dir: &Path,
    log_dir: &Path,
    transcript: &Transcript,
    made: &mut StackSetup,
) -> Result<(), String> {
    let name = &service.name.value;
    for file in &service.files {
        let target = session.host_path(&format!("{dir}/{}", file.value));
        let copied = target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::copy(image_dir.join(&file.value), &target));
        copied.map_err(|e| format!("failed to copy {} into {dir} for service {name}: {e}", file.value))?;
        let image = image_dir.file_name().unwrap_or_default().to_string_lossy();
        transcript.push_equivalent(
            &format!("a file of service {name}"),
            &format!("cp images/{image}/{} {dir}/{}", file.value, file.value),
        );
    }
    let argv: Vec<String> = service.args.value.iter().map(|a| in_cell_dir(a, dir)).collect();
    let log_path = log_dir.join(format!("service-{name}.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| format!("failed to create {}: {e}", log_path.display()))?;
    let child = session.entry().spawn(&argv, log).map_err(|e| format!("failed to start service {name}: {e:#}"))?;
    let pid = child.main_pid();
    let child = Arc::new(Mutex::new(child));
    let owned = child.clone();
    let label = format!("stop service {name} (pid {pid})");
    let what = format!("service {name}");
    made.guards.push(cleanup::on_cleanup(label, move || {
        owned.lock().unwrap_or_else(|p| p.into_inner()).stop(&what, STOP_GRACE)
    }));
    let variable = format!("service_{}", name.replace('-', "_"));
    transcript.push_equivalent(
        &format!("start service {name} in the stack (pid {pid} here)"),
        &format!("{} >/tmp/service-{name}.log 2>&1 &\n{variable}=$!", shell_join(&argv)),
    );
    made.teardown.push((format!("stop service {name}"), format!("kill \"${variable}\"; wait \"${variable}\"")));

    let ready = in_cell_dir(&service.ready.file.value, dir);
    transcript.push_equivalent(
        &format!("wait until service {name} is ready"),
        &format!("until [ -e {} ]; do sleep 0.1; done", shell_join(std::slice::from_ref(&ready))),
    );
    let ready_on_host = session.host_path(&ready);
    let started = Instant::now();
    loop {
        if ready_on_host.exists() {
            return Ok(());
        }
        let exited = child.lock().unwrap_or_else(|p| p.into_inner()).exited();
        let why = match exited {
            Some(status) => format!("exited ({status})"),
            None if started.elapsed() > service.ready.timeout => {
                format!("did not make {ready} within {:.0}s", service.ready.timeout.as_secs_f64())
            }
            None => {
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        return Err(format!("service {name} {why}; its log ({}):\n{}", log_path.display(), log_tail(&log_path)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_directories_are_distinct_and_short() {
        let (a, b) = (cell_dir(), cell_dir());
        assert_ne!(a, b);
        // Room for a socket name within sun_path's 108 bytes.
        assert!(a.len() < 40, "{a}");
    }
}
