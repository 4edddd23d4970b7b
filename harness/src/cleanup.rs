//! Everything the harness creates is undone by it: on success, failure, timeout, panic and
//! Ctrl-C (SIGINT/SIGTERM).
//!
//! Whatever creates something (a container, a stack's namespace holder) registers an undo action
//! and keeps the returned [`Guard`]; dropping the guard runs the action. On an interrupt the
//! handler first kills the commands still running (the process groups of the commands the harness
//! spawned, never by name),
//! then runs every registered action, newest first, and exits with 130. The actions are synchronous
//! on purpose: they must work from `Drop` and from the signal thread, with no async runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

type Action = Box<dyn FnOnce() + Send>;

struct Registry {
    next: u64,
    actions: BTreeMap<u64, (String, Action)>,
    /// Process groups of running commands: killed at once on an interrupt.
    children: BTreeSet<u32>,
    /// Process groups of long-running programs (services, dockerd, holders): stopped by their
    /// owners' undo actions, and waited for before the process exits.
    services: BTreeSet<u32>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next: 0,
    actions: BTreeMap::new(),
    children: BTreeSet::new(),
    services: BTreeSet::new(),
});
/// How long the interrupt handler waits for every process of the harness's groups to be gone
/// after it killed them (qemu takes seconds to release a guest's memory).
const GONE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Actions being run by other threads right now (a guard dropped on the normal path): the
/// interrupt handler must not exit while one is half done.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A panic while holding the lock must not stop the cleanup of everything else.
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs its action when dropped, unless the action already ran on an interrupt.
#[must_use = "dropping the guard runs the cleanup at once"]
pub struct Guard {
    id: u64,
}

/// Registers `action` to undo something just created. `label` says what, for the log.
pub fn on_cleanup(label: impl Into<String>, action: impl FnOnce() + Send + 'static) -> Guard {
    let mut reg = registry();
    let id = reg.next;
    reg.next += 1;
    reg.actions.insert(id, (label.into(), Box::new(action)));
    Guard { id }
}

impl Guard {
    /// Runs the action now (the normal path at the end of a cell or a stack session).
    pub fn run(self) {
        drop(self)
    }

    /// Forgets the action without running it: another guard took over its job.
    pub fn disarm(self) {
        registry().actions.remove(&self.id);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let action = {
            let mut reg = registry();
            let action = reg.actions.remove(&self.id);
            if action.is_some() {
                // Counted while the registry is locked, so the handler cannot miss it.
                RUNNING.fetch_add(1, Ordering::SeqCst);
            }
            action
        };
        if let Some((label, action)) = action {
            tracing::debug!("cleanup: {label}");
            action();
            RUNNING.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// True once Ctrl-C (or SIGTERM) arrived: no new command may start.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Called by the main thread before it would exit or record more: after an interrupt, the
/// handler thread owns the end of the process (it exits with 130 once everything is undone), so
/// the main thread waits for it instead of returning from `main` in the middle of a cleanup.
pub fn hold_if_interrupted() {
    if interrupted() {
        loop {
            std::thread::park();
        }
    }
}

/// Tracks a running command's process group (its leader's PID) until it is reaped, so that an
/// interrupt can end the whole group.
pub struct ChildGuard {
    pgid: u32,
    service: bool,
}

impl ChildGuard {
    /// A command's group: killed at once on an interrupt. One started while the interrupt
    /// handler was already collecting the groups kills itself here: the handler set the flag
    /// before it looked, so either it saw this group or this sees the flag.
    pub fn track_group(pgid: u32) -> ChildGuard {
        let guard = ChildGuard::track_cleanup_group(pgid);
        if interrupted() {
            kill_group(pgid);
        }
        guard
    }

    /// A command of a cleanup path (the undo actions run by the interrupt handler itself): it
    /// runs to its own limit, and the handler waits for it to be gone before the process exits.
    pub fn track_cleanup_group(pgid: u32) -> ChildGuard {
        registry().children.insert(pgid);
        ChildGuard { pgid, service: false }
    }

    /// A long-running program's group: its owner stops it; an interrupt waits until it is gone.
    pub fn track_service(pgid: u32) -> ChildGuard {
        registry().services.insert(pgid);
        ChildGuard { pgid, service: true }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let mut reg = registry();
        match self.service {
            false => reg.children.remove(&self.pgid),
            true => reg.services.remove(&self.pgid),
        };
    }
}

fn kill_group(pgid: u32) {
    // A group whose leader this process spawned and has not reaped: its ID is not reused.
    if let Some(pgid) = rustix::process::Pid::from_raw(pgid as i32) {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
}

/// The live (not zombie) processes whose process group is one of `groups`: (pid, pgid, comm).
fn live_members(groups: &BTreeSet<u32>) -> Vec<(u32, u32, String)> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.flatten()
        .filter_map(|p| p.stat().ok())
        .filter(|s| s.pgrp > 0 && groups.contains(&(s.pgrp as u32)) && s.state != 'Z')
        .map(|s| (s.pid as u32, s.pgrp as u32, s.comm))
        .collect()
}

/// Waits until no process of the harness's groups lives (after their kill or their owners'
/// stop), killing any group still there or started meanwhile; says what is left after `limit`.
fn wait_until_gone(limit: std::time::Duration) -> Vec<(u32, u32, String)> {
    let started = std::time::Instant::now();
    let mut killed = BTreeSet::new();
    loop {
        let groups: BTreeSet<u32> = {
            let reg = registry();
            reg.children.union(&reg.services).copied().chain(killed.iter().copied()).collect()
        };
        let live = live_members(&groups);
        if live.is_empty() || started.elapsed() >= limit {
            return live;
        }
        for (_, pgid, _) in &live {
            if killed.insert(*pgid) {
                kill_group(*pgid);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Installs the SIGINT/SIGTERM handler (once per process).
pub fn install_interrupt_handler() {
    INSTALL.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                return; // a second Ctrl-C while cleaning up: keep cleaning
            }
            eprintln!("\ninterrupted: stopping running commands and removing what this run created...");
            undo_everything();
            let left = wait_until_gone(GONE_LIMIT);
            if left.is_empty() {
                eprintln!("interrupted: cleanup done, no process of this run is left");
            } else {
                let named: Vec<String> = left.iter().map(|(pid, _, comm)| format!("{pid} ({comm})")).collect();
                eprintln!("interrupted: cleanup done, but these processes were still there after {GONE_LIMIT:?}: {}", named.join(", "));
            }
            std::process::exit(130);
        });
        if let Err(e) = installed {
            tracing::warn!("failed to install the interrupt handler: {e}");
        }
    });
}

/// Kills the groups of tracked commands, then runs every pending action, newest first.
fn undo_everything() {
    let groups: Vec<u32> = registry().children.iter().copied().collect();
    for pgid in groups {
        kill_group(pgid);
    }
    loop {
        let newest = {
            let mut reg = registry();
            let id = reg.actions.keys().next_back().copied();
            id.and_then(|id| reg.actions.remove(&id))
        };
        match newest {
            Some((label, action)) => {
                eprintln!("interrupted: {label}");
                action();
            }
            None => break,
        }
    }
    // Another thread may be in the middle of an action it took from the registry.
    let started = std::time::Instant::now();
    while RUNNING.load(Ordering::SeqCst) > 0 && started.elapsed() < std::time::Duration::from_secs(120) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    #[test]
    fn a_guard_runs_its_action_exactly_once_when_dropped() {
        let count = Arc::new(AtomicU32::new(0));
        let c = count.clone();
        let guard = on_cleanup("count", move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(count.load(Ordering::SeqCst), 0);
        drop(guard);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_guard_runs_during_unwinding() {
        let count = Arc::new(AtomicU32::new(0));
        let c = count.clone();
        let result = std::panic::catch_unwind(move || {
            let _guard = on_cleanup("count", move || {
                c.fetch_add(1, Ordering::SeqCst);
            });
            panic!("a cell failed badly");
        });
        assert!(result.is_err());
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
