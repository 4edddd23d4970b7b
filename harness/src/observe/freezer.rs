//! A container's freezer: after a failed checkpoint CRIU should have thawed it, but a dump that
//! gave up mid-freeze can leave the cgroup v1 freezer in FREEZING or FROZEN (or cgroup v2's
//! `cgroup.freeze` at 1). The harness reads it, records what it found, and thaws it, so the
//! next round (and the removal of the container) finds running tasks.

use super::probe::Probe;
use super::proc::parse_cgroup_file;
use std::path::{Path, PathBuf};

/// The freezer control of the cgroup a process is in, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `<freezer hierarchy>/<path>/freezer.state`: THAWED, FREEZING or FROZEN.
    V1(PathBuf),
    /// `<unified>/<path>/cgroup.freeze`: 0 or 1 (and `cgroup.events` says `frozen 0|1`).
    V2(PathBuf),
}

/// Finds the freezer of the cgroup `proc_cgroup` (the text of `/proc/PID/cgroup`) names, under
/// `cgroup_root` (the stack's `/sys/fs/cgroup` as the host sees it).
pub fn control(cgroup_root: &Path, proc_cgroup: &str) -> Option<Control> {
    let lines = parse_cgroup_file(proc_cgroup);
    if let Some(line) = lines.iter().find(|l| l.controllers.split(',').any(|c| c == "freezer")) {
        let dir = cgroup_root.join("freezer").join(line.path.trim_start_matches('/'));
        return Some(Control::V1(dir.join("freezer.state")));
    }
    let unified = lines.iter().find(|l| l.hierarchy == 0 && l.controllers.is_empty())?;
    let dir = cgroup_root.join(unified.path.trim_start_matches('/'));
    dir.join("cgroup.freeze").is_file().then(|| Control::V2(dir.join("cgroup.freeze")))
}

impl Control {
    /// The state as the kernel reports it: `THAWED`, `FREEZING`, `FROZEN` (v1), or `0`/`1` (v2).
    pub fn state(&self) -> std::io::Result<String> {
        let path = match self {
            Control::V1(p) | Control::V2(p) => p,
        };
        Ok(std::fs::read_to_string(path)?.trim().to_string())
    }

    fn frozen_or_freezing(state: &str) -> bool {
        matches!(state, "FREEZING" | "FROZEN" | "1")
    }

    /// Reads the state and thaws the cgroup if it is not thawed. Returns what was found, e.g.
    /// `THAWED` or `FREEZING, thawed`.
    pub fn check_and_thaw(&self) -> String {
        let found = match self.state() {
            Ok(s) => s,
            Err(e) => return format!("unreadable: {e}"),
        };
        if !Self::frozen_or_freezing(&found) {
            return found;
        }
        let (path, thawed) = match self {
            Control::V1(p) => (p, "THAWED"),
            Control::V2(p) => (p, "0"),
        };
        match std::fs::write(path, thawed) {
            Ok(()) => format!("{found}, thawed"),
            Err(e) => format!("{found}, failed to thaw: {e}"),
        }
    }
}

/// How many times CRIU read the cgroup v1 freezer as FREEZING in a dump log (it polls every
/// 100 ms): 0 on cgroup v2, whose state CRIU does not log that way.
pub fn freezing_polls(log: &str) -> u32 {
    log.lines().filter(|l| l.trim_end().ends_with("freezer.state=FREEZING")).count() as u32
}

/// A dump that polled FREEZING this often (a second or more) keeps its log as evidence.
pub const SLOW_FREEZE_POLLS: u32 = 10;

/// Thaws the freezer when dropped (also on Ctrl-C, before the container is removed: a frozen
/// task cannot die), in case a checkpoint cut short left it frozen.
pub fn thaw_on_cleanup(control: Control) -> crate::cleanup::Guard {
    let label = format!("thaw {control:?} if a checkpoint left it frozen");
    crate::cleanup::on_cleanup(label, move || {
        let found = control.check_and_thaw();
        if found.contains("thaw") {
            tracing::warn!("the container's freezer was left {found} ({control:?})");
        }
    })
}

impl Probe<'_> {
    /// The freezer of the container's cgroup (that of its first process).
    pub async fn freezer(&self, name: &str) -> Result<Control, String> {
        let pid = self.pid(name).await?;
        let text = std::fs::read_to_string(self.session.host_path(&format!("/proc/{pid}/cgroup")))
            .map_err(|e| format!("failed to read the cgroups of {name}: {e}"))?;
        control(&self.session.host_path("/sys/fs/cgroup"), &text)
            .ok_or_else(|| format!("no freezer found for {name} in {text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v1_freezer_or_the_v2_control() {
        let root = tempfile::tempdir().unwrap();
        let v1 = "5:freezer:/machine/libpod-abc\n4:cpu,cpuacct:/machine/libpod-abc\n";
        assert_eq!(
            control(root.path(), v1),
            Some(Control::V1(root.path().join("freezer/machine/libpod-abc/freezer.state")))
        );
        let v2 = "0::/machine.slice/libpod-abc.scope/container\n";
        assert_eq!(control(root.path(), v2), None, "no cgroup.freeze there: not a v2 cgroup");
        let dir = root.path().join("machine.slice/libpod-abc.scope/container");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.freeze"), "0\n").unwrap();
        assert_eq!(control(root.path(), v2), Some(Control::V2(dir.join("cgroup.freeze"))));
    }

    #[test]
    fn counts_the_polls_that_found_the_freezer_freezing() {
        let log = "(00.003839) freezer.state=THAWED\n(00.003976) freezer.state=FREEZING\n\
                   (00.104001) freezer.state=FREEZING\n(00.208449) freezer.state=FROZEN\n";
        assert_eq!(freezing_polls(log), 2);
        assert_eq!(freezing_polls("(00.1) cgroup.freeze=1\n"), 0);
    }

    #[test]
    fn a_frozen_control_is_thawed_and_reported() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("freezer.state");
        std::fs::write(&file, "FREEZING\n").unwrap();
        let control = Control::V1(file.clone());
        assert_eq!(control.check_and_thaw(), "FREEZING, thawed");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "THAWED");
        assert_eq!(control.check_and_thaw(), "THAWED");
    }
}
