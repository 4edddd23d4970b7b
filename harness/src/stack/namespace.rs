//! Entering a stack: a private mount namespace whose root is the stack's rootfs, and a PID
//! namespace of its own.
//!
//! `chroot` is not enough for CRIU (`mnt: No parent found for mountpoint`), so a *holder* process
//! makes a private mount namespace and a PID namespace, in which it is PID 1, mounts a fresh
//! /proc (of that PID namespace), /run, /tmp, the host's /sys and /dev, podman's storage from the
//! cache, then `pivot_root`s into the rootfs and waits. Every command then enters both with
//! `nsenter --target HOLDER --mount --pid --root --wd`. The host reads files inside it through
//! `/proc/HOLDER/root/...` (where `/proc` is the stack's own: PIDs as the stack's engines give
//! them).
//!
//! The PID namespace is the guarantee that nothing the stack runs can touch a process outside
//! it, whatever a runtime does: a runtime that kills "every process of a cgroup" reads PIDs
//! through the stack's /proc and its own PID namespace, where no process of the machine is
//! visible. It also bounds the cleanup: when the holder dies, the kernel kills every process of
//! its PID namespace (conmon, containers, dockerd and its shims), so nothing of a stack can
//! outlive it, and recovering after a killed run needs no guess about which processes were its.
//! The `host` stack gets the same holder without the `pivot_root` ([`HOST_ENTER_SCRIPT`]).
//!
//! Leaving a stack removes its containers through its engines, then ends the holder, and with
//! it the PID namespace. A state file (the holder's PID, start time and namespaces) lets the next
//! run do the same for a run that was killed outright, and only while that holder is still the
//! same process holding the same namespaces: a namespace is never known by its inode number
//! alone (the kernel reuses them).

use super::containers::LABEL;
use super::exec::Entry;
use crate::cleanup::{self, Guard};
use crate::process::{self, ProcessId, Service};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The holder's command line before its script: a mount namespace and a PID namespace (the
/// script runs as PID 1 in it; `--kill-child`: if `unshare` itself is killed, so is it, and the
/// kernel ends the namespace).
pub const UNSHARE: &[&str] = &["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"];

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

/// The `host` stack's holder: the machine's own root and programs, in a PID namespace of its
/// own with a /proc of that namespace (and a private mount namespace for that /proc).
pub const HOST_ENTER_SCRIPT: &str = r#"set -eu
mount --make-rprivate /
mount -t proc proc /proc
echo ready
exec sleep infinity
"#;

#[derive(Debug, Serialize, Deserialize)]
struct HolderState {
    /// The holder: PID 1 of the stack's PID namespace, by its PID on the host.
    pid: u32,
    /// Its start time (clock ticks after boot): the same PID later is another process.
    #[serde(default)]
    start_time: Option<u64>,
    mnt_ns: String,
    /// The stack's PID namespace (`pid:[N]`); absent in files of runs from before it had one.
    #[serde(default)]
    pid_ns: Option<String>,
    /// Where this state file was written. A cache copied while a run held the stack carries the
    /// file along; its holder belongs to the original cache, and is not the copy's to end.
    #[serde(default)]
    state_file: Option<PathBuf>,
}

/// A live stack namespace. Dropping it (or an interrupt) tears it down.
pub struct Holder {
    /// PID 1 of the stack's PID namespace, as the host numbers it.
    pub pid: u32,
    pub mnt_ns: String,
    pub pid_ns: String,
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
    let args = [rootfs, storage, docker].map(|p| p.display().to_string());
    enter_with(stack, ENTER_SCRIPT, &args, state_file).await
}

/// Enters the `host` stack: the machine's root, in a PID namespace of its own.
pub async fn enter_host(state_file: &Path) -> anyhow::Result<Holder> {
    enter_with("host", HOST_ENTER_SCRIPT, &[], state_file).await
}

fn namespace_of(pid: u32, kind: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok().map(|l| l.display().to_string())
}

async fn enter_with(stack: &str, script: &str, args: &[String], state_file: &Path) -> anyhow::Result<Holder> {
    recover_stale(state_file);
    let argv: Vec<String> = UNSHARE
        .iter()
        .chain(&["--", "sh", "-c", script, "criu-matrix-enter"])
        .map(|a| a.to_string())
        .chain(args.iter().cloned())
        .collect();
    // Its limit is the session's: the holder waits until the stack is left.
    let refused = "the harness enters every stack in a PID namespace of its own, so that nothing a \
                   runtime does in it can reach another process of this machine; without one it \
                   refuses the stack";
    let mut holder = process::Command::new(argv, Duration::ZERO)
        .spawn(None)
        .with_context(|| format!("failed to start `unshare` (util-linux) to enter the {stack} stack ({refused})"))?;
    let unshare = holder.pid;
    let (stdout, stderr) = holder.take_pipes();
    let (stdout, stderr) = (stdout.context("piped")?, stderr.context("piped")?);
    let child = Arc::new(Mutex::new(holder));
    // Until the namespace is known, tearing down means killing the holder.
    let early = {
        let child = child.clone();
        cleanup::on_cleanup(format!("stop the {stack} stack holder {unshare}"), move || stop_holder(&child))
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
        anyhow::bail!("failed to enter the {stack} stack: {} ({refused})", err.trim());
    }
    // The script, PID 1 of the new PID namespace, is unshare's child.
    let init = {
        let mut holder = child.lock().unwrap_or_else(|p| p.into_inner());
        holder.adopt_forked_child(Duration::from_secs(10))?;
        holder.main_pid()
    };
    let id = ProcessId::of(init).context("the stack's holder is gone")?;
    let mnt_ns = namespace_of(init, "mnt").context("the stack's holder is gone")?;
    let pid_ns = namespace_of(init, "pid").context("the stack's holder is gone")?;
    anyhow::ensure!(
        Some(&pid_ns) != namespace_of(std::process::id(), "pid").as_ref(),
        "the {stack} stack's holder is in the harness's own PID namespace ({refused})"
    );
    std::fs::write(
        state_file,
        serde_json::to_string(&HolderState {
            pid: init,
            start_time: Some(id.start_time),
            mnt_ns: mnt_ns.clone(),
            pid_ns: Some(pid_ns.clone()),
            state_file: Some(std::path::absolute(state_file)?),
        })?,
    )?;
    let teardown = {
        let (pid_ns, state_file, stack) = (pid_ns.clone(), state_file.to_path_buf(), stack.to_string());
        cleanup::on_cleanup(format!("remove the {stack} stack's containers and namespace"), move || {
            remove_containers(&Entry::namespace(init), init);
            end_pid_namespace(&pid_ns, init, || stop_holder(&child));
            super::cgroups::remove_empty_parents(Path::new("/sys/fs/cgroup"));
            let _ = std::fs::remove_file(&state_file);
        })
    };
    early.disarm(); // `teardown` also stops the holder
    Ok(Holder { pid: init, mnt_ns, pid_ns, _teardown: teardown })
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
    processes_in("mnt", mnt_ns)
}

/// PIDs (as the host numbers them) of the processes whose `kind` namespace is `ns`.
fn processes_in(kind: &str, ns: &str) -> Vec<u32> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.flatten()
        .filter(|p| namespace_of(p.pid() as u32, kind).is_some_and(|l| l == ns))
        .map(|p| p.pid() as u32)
        .collect()
}

/// Ends the stack's PID namespace by ending its init (`kill_init`): the kernel then kills every
/// process in it. Processes that are already exiting (conmon after `podman rm`) get a moment to
/// do so first; those still there are named in the log.
fn end_pid_namespace(pid_ns: &str, init: u32, kill_init: impl FnOnce()) {
    let others = || processes_in("pid", pid_ns).into_iter().filter(|p| *p != init).collect::<Vec<_>>();
    if !process::wait_until(Duration::from_secs(5), || others().is_empty()) {
        for pid in others() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            tracing::warn!("ending process {pid} ({}) left in the stack's PID namespace", comm.trim());
        }
    }
    // A process in a frozen cgroup cannot die: a dump cut short (CRIU or dockerd killed) can
    // leave a container frozen, and then the namespace would outlive its init.
    thaw_frozen(&others());
    kill_init();
    if !process::wait_until(Duration::from_secs(10), || processes_in("pid", pid_ns).is_empty()) {
        thaw_frozen(&others());
    }
    if !process::wait_until(Duration::from_secs(10), || processes_in("pid", pid_ns).is_empty()) {
        tracing::error!("processes still in the stack's PID namespace after its init was killed: {:?}", others());
    }
}

/// Thaws the freezer (cgroup v1 `freezer.state`, v2 `cgroup.freeze`) of each of `pids`' cgroups
/// that is frozen or freezing, naming it in the log.
fn thaw_frozen(pids: &[u32]) {
    let root = Path::new("/sys/fs/cgroup");
    let mut done = std::collections::BTreeSet::new();
    for pid in pids {
        let Ok(cgroups) = procfs::process::Process::new(*pid as i32).and_then(|p| p.cgroups()) else { continue };
        for cgroup in cgroups {
            let path = cgroup.pathname.trim_start_matches('/');
            let (file, thawed) = if cgroup.controllers.iter().any(|c| c == "freezer") {
                (root.join("freezer").join(path).join("freezer.state"), "THAWED")
            } else if cgroup.hierarchy == 0 {
                (root.join(path).join("cgroup.freeze"), "0")
            } else {
                continue;
            };
            let state = std::fs::read_to_string(&file).unwrap_or_default();
            if matches!(state.trim(), "FROZEN" | "FREEZING" | "1") && done.insert(file.clone()) {
                tracing::warn!("thawing {} ({}), which holds process {pid} of the stack", file.display(), state.trim());
                if let Err(e) = std::fs::write(&file, thawed) {
                    tracing::error!("failed to thaw {}: {e}", file.display());
                }
            }
        }
    }
}

fn stop_holder(holder: &Mutex<Service>) {
    // `sleep infinity` has nothing to clean up: no grace. Killing its group kills the PID
    // namespace's init, and the kernel every process of the namespace.
    holder.lock().unwrap_or_else(|p| p.into_inner()).kill();
}

/// Tears down what a run killed with SIGKILL left, if its holder still holds the namespace: its
/// containers, then the holder, and with it every process of its PID namespace. A holder that
/// is gone (or whose PID is another process now) took its PID namespace with it: nothing is
/// left to end, and nothing is ended by a namespace number that may be another run's now.
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
    match still_held(&state, |pid, kind| namespace_of(pid, kind), ProcessId::of) {
        Held::No(why) => {
            tracing::info!("an earlier run of this stack did not finish; its holder {} {why}: nothing to end", state.pid);
        }
        Held::Yes(holder) => {
            tracing::warn!("cleaning up after an earlier run of this stack that did not finish (holder {})", state.pid);
            remove_containers(&Entry::namespace(state.pid), state.pid);
            match &state.pid_ns {
                Some(pid_ns) => end_pid_namespace(pid_ns, state.pid, || {
                    holder.signal(rustix::process::Signal::KILL);
                }),
                // A holder of an older run, without a PID namespace, that still holds its mount
                // namespace (so its number is that namespace's): what runs in it is that run's.
                None => end_mount_namespace_processes(&state.mnt_ns),
            }
        }
    }
}

/// Whether a dead run's holder still holds its namespaces.
#[derive(Debug, PartialEq)]
enum Held {
    Yes(ProcessId),
    No(&'static str),
}

/// The holder of `state` is the same process (PID and start time), alive, and in the recorded
/// mount and PID namespaces.
fn still_held(
    state: &HolderState,
    namespace: impl Fn(u32, &str) -> Option<String>,
    process: impl Fn(u32) -> Option<ProcessId>,
) -> Held {
    let Some(now) = process(state.pid) else { return Held::No("is gone") };
    if state.start_time.is_some_and(|t| t != now.start_time) {
        return Held::No("is gone (its PID is another process now)");
    }
    if namespace(state.pid, "mnt").as_ref() != Some(&state.mnt_ns) {
        return Held::No("no longer holds its mount namespace");
    }
    if state.pid_ns.as_ref().is_some_and(|ns| namespace(state.pid, "pid").as_ref() != Some(ns)) {
        return Held::No("no longer holds its PID namespace");
    }
    Held::Yes(now)
}

/// The cleanup of holders from before stacks had PID namespaces: every process of the mount
/// namespace, which a live holder still holds.
fn end_mount_namespace_processes(mnt_ns: &str) {
    for pid in namespace_processes(mnt_ns) {
        if let Some(p) = ProcessId::of(pid) {
            p.signal(rustix::process::Signal::KILL);
        }
    }
    process::wait_until(Duration::from_secs(5), || namespace_processes(mnt_ns).is_empty());
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
        let state = |at: Option<&Path>| HolderState {
            pid: 1,
            start_time: None,
            mnt_ns: "mnt:[1]".into(),
            pid_ns: None,
            state_file: at.map(Path::to_path_buf),
        };
        assert!(written_here(&state(Some(&original)), &original));
        assert!(!written_here(&state(Some(&original)), &copy));
        // Files from before the path was recorded keep their old meaning.
        assert!(written_here(&state(None), &copy));
    }

    /// A namespace number alone never makes a process a dead run's: the holder must be the
    /// same process (PID and start time) and still hold both namespaces.
    #[test]
    fn a_dead_runs_namespace_is_its_only_while_its_holder_holds_it() {
        let state = HolderState {
            pid: 42,
            start_time: Some(1000),
            mnt_ns: "mnt:[4026532174]".into(),
            pid_ns: Some("pid:[4026532175]".into()),
            state_file: None,
        };
        let same = |pid| Some(ProcessId { pid, start_time: 1000 });
        let held = |pid: u32, kind: &str| match kind {
            "mnt" => Some("mnt:[4026532174]".to_string()),
            _ => Some(format!("pid:[{}]", 4026532175 + u64::from(pid != 42))),
        };
        assert_eq!(still_held(&state, held, same), Held::Yes(ProcessId { pid: 42, start_time: 1000 }));
        assert_eq!(still_held(&state, held, |_| None), Held::No("is gone"));
        let reused = |pid| Some(ProcessId { pid, start_time: 2000 });
        assert_eq!(still_held(&state, held, reused), Held::No("is gone (its PID is another process now)"));
        // The same mount namespace number, held by another process than the holder: not held.
        let moved = |_: u32, kind: &str| (kind == "mnt").then(|| "mnt:[4026532999]".to_string());
        assert_eq!(still_held(&state, moved, same), Held::No("no longer holds its mount namespace"));
        let other_pid_ns = |_: u32, kind: &str| {
            Some(if kind == "mnt" { "mnt:[4026532174]".to_string() } else { "pid:[4026531836]".to_string() })
        };
        assert_eq!(still_held(&state, other_pid_ns, same), Held::No("no longer holds its PID namespace"));
    }

    /// A real holder: its script is PID 1 of a PID namespace of its own, the processes entered
    /// in it see only that namespace, and stopping the holder ends every process in it.
    #[tokio::test]
    async fn a_host_holder_has_a_pid_namespace_that_dies_with_it() {
        if !nix_root() {
            eprintln!("skipped: entering namespaces needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("holder.json");
        let holder = enter_host(&state_file).await.unwrap();
        assert_ne!(Some(&holder.pid_ns), namespace_of(std::process::id(), "pid").as_ref());
        let state: HolderState = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
        assert_eq!((state.pid, state.pid_ns.as_ref()), (holder.pid, Some(&holder.pid_ns)));
        // Inside: the holder is PID 1, and a process started there sees few PIDs.
        let argv: Vec<String> =
            ["sh", "-c", "cat /proc/1/comm; ls -d /proc/[0-9]* | wc -l; sleep 300 >/dev/null 2>&1 &"].map(String::from).to_vec();
        let out = crate::stack::exec::run(&holder.entry(), &argv, Duration::from_secs(10), None).await.unwrap();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[0], "sleep", "{out:?}");
        assert!(lines[1].trim().parse::<u32>().unwrap() < 10, "{out:?}");
        let inner_sleep: Vec<u32> = processes_in("pid", &holder.pid_ns).into_iter().filter(|p| *p != holder.pid).collect();
        assert_eq!(inner_sleep.len(), 1, "the sleep left in the namespace");
        drop(holder);
        assert!(processes_in("pid", &state.pid_ns.unwrap()).is_empty(), "the namespace outlived its holder");
        assert!(!state_file.exists());
    }

    fn nix_root() -> bool {
        rustix::process::geteuid().is_root()
    }
}
