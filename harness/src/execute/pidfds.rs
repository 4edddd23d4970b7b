//! Which processes of a container hold pidfds, read from the host's /proc.
//!
//! A pidfd's link reads `anon_inode:[pidfd]` (also on kernels >= 6.9, where pidfds live on
//! pidfs), and its fdinfo has a `Pid:` line: the target as this /proc sees it (`-1` once the
//! target exited, `0` when it is outside this PID namespace), `NSpid:` the same in every nested
//! namespace, and `flags:` with O_EXCL set for a pidfd opened with PIDFD_THREAD. CRIU before 4.1
//! cannot dump any pidfd (checkpoint-restore/criu#2258); 4.1 and later cannot dump PIDFD_THREAD
//! ones nor those of a process outside the dumped tree: the record says which case each one is.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// One pidfd held by a process of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidfdHolder {
    /// The holder, as the host sees it, and inside the container.
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_pid: Option<u32>,
    pub comm: String,
    pub fd: u32,
    /// The target as the host sees it: -1 when it has exited, 0 when the host cannot see it.
    pub target_pid: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ns_pid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_comm: Option<String>,
    /// Whether the target is one of the container's processes (in the tree CRIU dumps).
    pub target_in_container: bool,
    /// Opened with PIDFD_THREAD: it refers to a thread, which CRIU does not support.
    pub thread: bool,
}

impl PidfdHolder {
    /// One line: `xfce4-terminal (pid 61, 40 in the container) fd 14 -> bash (pid 75, 54 in the container)`.
    pub fn describe(&self) -> String {
        let within = |ns: Option<i64>| ns.map(|n| format!(", {n} in the container")).unwrap_or_default();
        let target = match (self.target_pid, &self.target_comm) {
            (-1, _) => "an exited process".to_string(),
            (0, _) => "a process outside this PID namespace".to_string(),
            (pid, Some(comm)) => format!("{comm} (pid {pid}{})", within(self.target_ns_pid)),
            (pid, None) => format!("pid {pid}"),
        };
        let mut line = format!(
            "{} (pid {}{}) fd {} -> {target}",
            self.comm,
            self.pid,
            within(self.ns_pid.map(i64::from)),
            self.fd
        );
        if !self.target_in_container && self.target_pid > 0 {
            line.push_str(", outside the container");
        }
        if self.thread {
            line.push_str(", PIDFD_THREAD");
        }
        line
    }
}

/// What a pidfd's fdinfo says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidfdInfo {
    pub pid: i64,
    pub ns_pids: Vec<i64>,
    pub flags: u32,
}

const O_EXCL_AS_PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// Parses a pidfd's fdinfo; `None` when it has no `Pid:` line (not a pidfd).
pub fn parse_fdinfo(text: &str) -> Option<PidfdInfo> {
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name).map(str::trim));
    let pid = field("Pid:")?.parse().ok()?;
    let ns_pids =
        field("NSpid:").map(|v| v.split_whitespace().filter_map(|n| n.parse().ok()).collect()).unwrap_or_default();
    let flags = field("flags:").and_then(|f| u32::from_str_radix(f, 8).ok()).unwrap_or(0);
    Some(PidfdInfo { pid, ns_pids, flags })
}

/// Whether an fd's link is a pidfd (an anonymous inode before pidfs, the same name on pidfs).
pub fn is_pidfd_link(target: &str) -> bool {
    target == "anon_inode:[pidfd]" || target.starts_with("pidfd:")
}

/// The pidfds held by `pids` (host PIDs of the container's processes), read under `proc_root`.
/// Processes or fds that vanish while being read are skipped: a desktop keeps changing.
pub fn scan(proc_root: &Path, pids: &[u32]) -> Vec<PidfdHolder> {
    let mut holders = Vec::new();
    for &pid in pids {
        let Ok(fds) = std::fs::read_dir(proc_root.join(format!("{pid}/fd"))) else { continue };
        let mut found: Vec<(u32, PidfdInfo)> = fds
            .flatten()
            .filter_map(|entry| {
                let fd: u32 = entry.file_name().to_str()?.parse().ok()?;
                let link = std::fs::read_link(entry.path()).ok()?;
                if !is_pidfd_link(&link.to_string_lossy()) {
                    return None;
                }
                let info = std::fs::read_to_string(proc_root.join(format!("{pid}/fdinfo/{fd}"))).ok()?;
                Some((fd, parse_fdinfo(&info)?))
            })
            .collect();
        found.sort_by_key(|(fd, _)| *fd);
        for (fd, info) in found {
            let target_comm = u32::try_from(info.pid).ok().filter(|p| *p > 0).and_then(|p| comm(proc_root, p));
            holders.push(PidfdHolder {
                pid,
                ns_pid: innermost_pid(proc_root, pid),
                comm: comm(proc_root, pid).unwrap_or_default(),
                fd,
                target_pid: info.pid,
                target_ns_pid: (info.ns_pids.len() > 1).then(|| *info.ns_pids.last().expect("not empty")),
                target_comm,
                target_in_container: u32::try_from(info.pid).is_ok_and(|p| pids.contains(&p)),
                thread: info.flags & O_EXCL_AS_PIDFD_THREAD != 0,
            });
        }
    }
    holders
}

/// A process's command name (`/proc/PID/comm`).
pub fn comm(proc_root: &Path, pid: u32) -> Option<String> {
    std::fs::read_to_string(proc_root.join(format!("{pid}/comm"))).ok().map(|c| c.trim_end().to_string())
}

/// A process's PID in its own (innermost) PID namespace.
pub fn innermost_pid(proc_root: &Path, pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(proc_root.join(format!("{pid}/status"))).ok()?;
    super::placement::container_pid(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_pidfd_fdinfo() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nPid:\t4242\nNSpid:\t4242\t17\n";
        assert_eq!(parse_fdinfo(text), Some(PidfdInfo { pid: 4242, ns_pids: vec![4242, 17], flags: 0o2000002 }));
        let exited = "pos:\t0\nflags:\t02004002\nPid:\t-1\nNSpid:\t-1\n";
        assert_eq!(parse_fdinfo(exited).map(|i| i.pid), Some(-1));
        let thread = "flags:\t02000202\nPid:\t9\nNSpid:\t9\n";
        assert_ne!(parse_fdinfo(thread).unwrap().flags & O_EXCL_AS_PIDFD_THREAD, 0);
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t4\nino:\t7\n"), None, "an eventfd or the like");
    }

    #[test]
    fn knows_a_pidfd_link() {
        assert!(is_pidfd_link("anon_inode:[pidfd]"));
        assert!(!is_pidfd_link("anon_inode:[eventfd]"));
        assert!(!is_pidfd_link("socket:[1234]"));
    }

    /// The real thing: this test process opens a pidfd to a child of its own, and the scan of
    /// its own /proc entry finds it with the child as target.
    #[test]
    fn finds_a_real_pidfd_and_its_target() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        // SAFETY: pidfd_open(2) on our own child; the fd is closed below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) } as i32;
        assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        let me = std::process::id();
        let inside = scan(Path::new("/proc"), &[me, child.id()]);
        let outside = scan(Path::new("/proc"), &[me]);
        // SAFETY: closing the fd opened above.
        unsafe { libc::close(fd) };
        let _ = child.kill();
        let _ = child.wait();
        let ours: Vec<_> = inside.iter().filter(|h| h.fd == fd as u32).collect();
        assert_eq!(ours.len(), 1, "{inside:?}");
        let h = ours[0];
        assert_eq!((h.pid, h.target_pid), (me, i64::from(child.id())));
        assert_eq!(h.target_comm.as_deref(), Some("sleep"));
        assert!(h.target_in_container && !h.thread, "{h:?}");
        let theirs = outside.iter().find(|h| h.fd == fd as u32).unwrap();
        assert!(!theirs.target_in_container);
        assert!(theirs.describe().ends_with("outside the container"), "{}", theirs.describe());
    }
}
