//! Entering a stack: a private mount namespace whose root is the stack's rootfs.
//!
//! `chroot` is not enough for CRIU (`mnt: No parent found for mountpoint`), so a *holder* process
//! makes a private mount namespace, mounts fresh /proc, /run, /tmp, the host's /sys and /dev,
//! podman's storage from the cache, then `pivot_root`s into the rootfs and waits. Every command
//! then enters it with `nsenter --target HOLDER --mount --root`. The host reads files inside it
//! through `/proc/HOLDER/root/...`.
//!
//! Invariant: every process in that namespace is the harness's. Leaving a stack removes its
//! containers through podman, then ends any process still in the namespace by PID, then the
//! holder. A state file lets the next run do the same for a run that was killed outright.

use super::containers::LABEL;
use super::exec::Entry;
use crate::cleanup::{self, Guard};
use crate::process::{self, Service};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The setup the holder runs before waiting: also printed into reproducers, so a person can enter
/// the same stack by hand. `$1` is the rootfs, `$2` podman's storage directory, `$3` docker's data
/// root (both in the cache, so images outlive the namespace).
pub const ENTER_SCRIPT: &str = r#"set -eu
root=$1 storage=$2 docker=$3
mount --make-rprivate /
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
# crun refuses a hybrid cgroup layout: drop the empty cgroup2 beside the v1 controllers.
if [ -d "$root/sys/fs/cgroup/unified" ] && mountpoint -q "$root/sys/fs/cgroup/unified"; then
  umount "$root/sys/fs/cgroup/unified"
fi
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
mount -t mqueue mqueue "$root/dev/mqueue" 2>/dev/null || true
mount -t tmpfs -o mode=755 run "$root/run"
mount -t tmpfs -o mode=1777 tmp "$root/tmp"
mkdir -p "$storage" "$root/var/lib/containers"
mount --bind "$storage" "$root/var/lib/containers"
mkdir -p "$docker" "$root/var/lib/docker"
mount --bind "$docker" "$root/var/lib/docker"
cd "$root"
mkdir -p .old-root
pivot_root . .old-root
umount -l /.old-root
rmdir /.old-root
cd /
echo ready
exec sleep infinity
"#;

#[derive(Debug, Serialize, Deserialize)]
struct HolderState {
    pid: u32,
    mnt_ns: String,
    /// Where this state file was written. A cache copied while a run held the stack carries the
    /// file along; its holder belongs to the original cache, and is not the copy's to end.
    #[serde(default)]
    state_file: Option<PathBuf>,
}

/// A live stack namespace. Dropping it (or an interrupt) tears it down.
pub struct Holder {
    pub pid: u32,
    pub mnt_ns: String,
    _teardown: Guard,
}

impl Holder {
    pub fn entry(&self) -> Entry {
        Entry::namespace(self.pid)
    }

    /// A path inside the stack, as the host sees it.
    pub fn host_path(&self, inner: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{}", self.pid, inner))
    }
}

/// Enters the stack rooted at `rootfs`, after tearing down what a killed earlier run left.
pub async fn enter(
    stack: &str,
    rootfs: &Path,
    storage: &Path,
    docker: &Path,
    state_file: &Path,
) -> anyhow::Result<Holder> {
    recover_stale(state_file);
    let argv: Vec<String> = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", ENTER_SCRIPT]
        .into_iter()
        .map(String::from)
        .chain(["criu-matrix-enter".to_string()])
        .chain([rootfs, storage, docker].map(|p| p.display().to_string()))
        .collect();
    // Its limit is the session's: the holder waits until the stack is left.
    let mut holder = process::Command::new(argv, Duration::ZERO)
        .spawn(None)
        .context("failed to start `unshare` (util-linux) to enter the stack")?;
    let pid = holder.pid;
    let (stdout, stderr) = holder.take_pipes();
    let (stdout, stderr) = (stdout.context("piped")?, stderr.context("piped")?);
    let child = Arc::new(Mutex::new(holder));
    // Until the namespace is known, tearing down means killing the holder.
    let early = {
        let child = child.clone();
        cleanup::on_cleanup(format!("stop the {stack} stack holder {pid}"), move || stop_holder(&child))
    };
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(60), ready)
        .await
        .context("the stack namespace was not ready within 60s")???;
    if line.trim() != "ready" {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut err);
        anyhow::bail!("failed to enter the {stack} stack: {}", err.trim());
    }
    let mnt_ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))?.display().to_string();
    std::fs::write(
        state_file,
        serde_json::to_string(&HolderState {
            pid,
            mnt_ns: mnt_ns.clone(),
            state_file: Some(std::path::absolute(state_file)?),
        })?,
    )?;
    let teardown = {
        let (mnt_ns, state_file, stack) = (mnt_ns.clone(), state_file.to_path_buf(), stack.to_string());
        cleanup::on_cleanup(format!("remove the {stack} stack's containers and namespace"), move || {
            remove_containers(&Entry::namespace(pid), pid);
            end_namespace_processes(&mnt_ns, Some(pid));
            stop_holder(&child);
            super::cgroups::remove_empty_parents(Path::new("/sys/fs/cgroup"));
            let _ = std::fs::remove_file(&state_file);
        })
    };
    early.disarm(); // `teardown` also stops the holder
    Ok(Holder { pid, mnt_ns, _teardown: teardown })
}

/// Removes every container the harness labelled, through the stack's own podman (and its
/// dockerd, when one still answers: a run killed outright leaves it running).
pub fn remove_containers(entry: &Entry, holder: u32) {
    let socket =
        PathBuf::from(format!("/proc/{holder}/root{}", super::dockerd::daemon::DaemonPaths::standard().socket));
    super::dockerd::api::remove_labelled_at(&socket);
    remove_podman_containers(entry);
}

fn remove_podman_containers(entry: &Entry) {
    let list = ["podman", "ps", "--all", "--quiet", "--filter", &format!("label={LABEL}")].map(String::from);
    let Ok(out) = entry.run_blocking(&list, super::containers::PODMAN_LIMIT) else { return };
    let ids: Vec<String> = out.stdout.split_whitespace().map(String::from).collect();
    super::containers::remove_podman(entry, &ids);
}

/// PIDs of the processes whose mount namespace is `mnt_ns` (e.g. `mnt:[4026532301]`).
pub fn namespace_processes(mnt_ns: &str) -> Vec<u32> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.flatten()
        .filter(|p| {
            std::fs::read_link(format!("/proc/{}/ns/mnt", p.pid())).is_ok_and(|l| l.display().to_string() == mnt_ns)
        })
        .map(|p| p.pid() as u32)
        .collect()
}

/// Ends every process left in the stack's namespace except `keep`: they can only be the
/// harness's (conmon or a container of a cell that could not be removed). Processes that are
/// already exiting (conmon after `podman rm`) get a moment to do so first.
fn end_namespace_processes(mnt_ns: &str, keep: Option<u32>) {
    let others = || namespace_processes(mnt_ns).into_iter().filter(|p| Some(*p) != keep).collect::<Vec<_>>();
    if !process::wait_until(Duration::from_secs(5), || others().is_empty()) {
        for pid in others() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            tracing::warn!("ending process {pid} ({}) left in the stack namespace", comm.trim());
            // A PID just observed in the harness's own private mount namespace.
            if let Some(p) = process::ProcessId::of(pid) {
                p.signal(rustix::process::Signal::KILL);
            }
        }
        if !process::wait_until(Duration::from_secs(5), || others().is_empty()) {
            tracing::error!("processes still in the stack namespace after SIGKILL: {:?}", others());
        }
    }
}

fn stop_holder(holder: &Mutex<Service>) {
    // `sleep infinity` has nothing to clean up: no grace.
    holder.lock().unwrap_or_else(|p| p.into_inner()).kill();
}

/// Tears down what a run killed with SIGKILL left: its holder if alive, its containers, and any
/// process still in its namespace.
fn recover_stale(state_file: &Path) {
    let Ok(text) = std::fs::read_to_string(state_file) else { return };
    let _ = std::fs::remove_file(state_file);
    let Ok(state) = serde_json::from_str::<HolderState>(&text) else { return };
    if !written_here(&state, state_file) {
        tracing::warn!(
            "ignoring a stack state file copied from {} (its holder {} is that cache's)",
            state.state_file.as_deref().unwrap_or(Path::new("?")).display(),
            state.pid
        );
        return;
    }
    let holder_alive = std::fs::read_link(format!("/proc/{}/ns/mnt", state.pid))
        .is_ok_and(|l| l.display().to_string() == state.mnt_ns);
    tracing::warn!("cleaning up after an earlier run of this stack that did not finish (holder {})", state.pid);
    if holder_alive {
        remove_containers(&Entry::namespace(state.pid), state.pid);
    }
    end_namespace_processes(&state.mnt_ns, None);
}

/// Whether the state file was written at this path (not copied here with its cache).
fn written_here(state: &HolderState, state_file: &Path) -> bool {
    match (&state.state_file, std::path::absolute(state_file)) {
        (Some(written), Ok(here)) => *written == here,
        // Written before the path was recorded: trust it, as before.
        (None, _) => true,
        (Some(_), Err(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_copied_with_its_cache_is_not_this_caches() {
        let dir = tempfile::tempdir().unwrap();
        let (original, copy) = (dir.path().join("a/holder.json"), dir.path().join("b/holder.json"));
        let state = |at: &Path| HolderState { pid: 1, mnt_ns: "mnt:[1]".into(), state_file: Some(at.to_path_buf()) };
        assert!(written_here(&state(&original), &original));
        assert!(!written_here(&state(&original), &copy));
        // Files from before the path was recorded keep their old meaning.
        assert!(written_here(&HolderState { pid: 1, mnt_ns: "mnt:[1]".into(), state_file: None }, &copy));
    }
}
