//! The run directories of VM boots (`vm/runs/<PID>-<cell>`): each removed when its boot ends,
//! and those of harness processes that are gone swept by the next boot.

use crate::files::remove_tree;
use std::path::{Path, PathBuf};

pub fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

pub struct RemoveOnDrop(pub PathBuf);

/// Removes the run directories of harness processes that are gone. A run killed with SIGKILL
/// (a CI timeout, a session that ends) cannot remove its own; each name starts with its PID.
/// A PID that is alive again under another program keeps its directory until that one ends.
pub fn sweep_orphan_runs(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if orphan_owner(&name, |pid| Path::new(&format!("/proc/{pid}")).exists()).is_some() {
            tracing::info!("removing VM run directory {} left by a process that is gone", entry.path().display());
            let _ = remove_tree(&entry.path());
        }
    }
}

/// The PID a run directory name starts with, when that process is not alive.
fn orphan_owner(name: &str, alive: impl Fn(u32) -> bool) -> Option<u32> {
    let pid: u32 = name.split_once('-')?.0.parse().ok()?;
    (!alive(pid)).then_some(pid)
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = remove_tree(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::owner_gone("4242-baseline-counter__podman", false, Some(4242))]
    #[case::owner_alive("4242-baseline-counter__podman", true, None)]
    #[case::not_a_run_directory("lost+found", false, None)]
    #[case::no_pid_prefix("abc-def", false, None)]
    fn a_run_directory_is_an_orphan_only_when_its_pid_is_gone(
        #[case] name: &str,
        #[case] alive: bool,
        #[case] orphan: Option<u32>,
    ) {
        assert_eq!(orphan_owner(name, |_| alive), orphan);
    }

    #[test]
    fn the_sweep_removes_a_dead_process_run_and_keeps_a_live_one() {
        let runs = tempfile::tempdir().unwrap();
        // PID 0 is never a process of ours; this test's own PID is alive.
        let dead = runs.path().join("0-cell");
        let live = runs.path().join(format!("{}-cell", std::process::id()));
        for d in [&dead, &live] {
            std::fs::create_dir_all(d.join("work")).unwrap();
        }
        sweep_orphan_runs(runs.path());
        assert!(!dead.exists());
        assert!(live.exists());
    }
}
