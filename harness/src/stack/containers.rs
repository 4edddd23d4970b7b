//! Removing the harness's containers from a stack, blocking: the cleanup paths (a cell's guard,
//! leaving a stack, the interrupt handler, a killed run's leftovers) have no async runtime.
//! Podman's through its CLI, docker's through the API (`dockerd::api`).

use super::exec::Entry;
use std::path::Path;
use std::time::Duration;

/// The label every container the harness creates carries.
pub const LABEL: &str = "criu-matrix";

/// The limit of each podman command of a removal: `rm --force --time 0` kills at once, so this
/// is only reached when podman itself hangs.
pub const PODMAN_LIMIT: Duration = Duration::from_secs(120);

/// `podman rm --force` of these containers (names or IDs), then removal of the cgroups they
/// leave behind on the host (see `cgroups`).
pub fn remove_podman(entry: &Entry, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let mut inspect: Vec<String> = ["podman", "container", "inspect", "--format", "{{.Id}}"].map(String::from).to_vec();
    inspect.extend(names.iter().cloned());
    // Some names may be gone already; inspect prints the IDs of those that exist.
    let ids: Vec<String> = entry
        .run_blocking(&inspect, PODMAN_LIMIT)
        .map(|out| out.stdout.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    // `--volumes`: a container's anonymous volumes go with it.
    let mut argv: Vec<String> =
        ["podman", "rm", "--force", "--ignore", "--volumes", "--time", "0"].map(String::from).to_vec();
    argv.extend(names.iter().cloned());
    match entry.run_blocking(&argv, PODMAN_LIMIT) {
        Ok(out) if out.success() => {}
        Ok(out) => tracing::warn!("failed to remove containers {names:?}: {}", out.failure_text()),
        Err(e) => tracing::warn!("failed to remove containers {names:?}: {e:#}"),
    }
    super::cgroups::remove_container_cgroups(Path::new("/sys/fs/cgroup"), &ids);
}
