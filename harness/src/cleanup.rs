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
    children: BTreeSet<u32>,
}

static REGISTRY: Mutex<Registry> =
    Mutex::new(Registry { next: 0, actions: BTreeMap::new(), children: BTreeSet::new() });
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
pub struct ChildGuard(u32);

impl ChildGuard {
    pub fn track_group(pgid: u32) -> ChildGuard {
        registry().children.insert(pgid);
        ChildGuard(pgid)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        registry().children.remove(&self.0);
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
            eprintln!("interrupted: cleanup done");
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
        // A group whose leader this process spawned and has not reaped: its ID is not reused.
        if let Some(pgid) = rustix::process::Pid::from_raw(pgid as i32) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
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
