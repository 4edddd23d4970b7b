//! Which processes of a container hold pidfds, read from the host's /proc.
//!
//! A pidfd's link reads `anon_inode:[pidfd]` (also on kernels >= 6.9, where pidfds live on
//! pidfs), and its fdinfo has a `Pid:` line: the target as this /proc sees it (`-1` once the
//! target exited, `0` when it is outside this PID namespace), `NSpid:` the same in every nested
//! namespace, and `flags:` with O_EXCL set for a pidfd opened with PIDFD_THREAD. CRIU before 4.1
//! cannot dump any pidfd (checkpoint-restore/criu#2258); 4.1 and later cannot dump PIDFD_THREAD
//! ones nor those of a process outside the dumped tree: the record says which case each one is.

use super::probe::Probe;
use super::proc::{comm, innermost_pid};
use crate::record::PidfdHolder;
use std::path::Path;

/// What a pidfd's fdinfo says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidfdInfo {
    pub pid: i64,
    pub ns_pids: Vec<i64>,
    pub flags: u32,
}

/// PIDFD_THREAD is O_EXCL in the pidfd's flags.
const O_EXCL_AS_PIDFD_THREAD: u32 = rustix::fs::OFlags::EXCL.bits();

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

/// Whether an fd's target, as procfs reads its link, is a pidfd.
fn is_pidfd_target(target: &procfs::process::FDTarget) -> bool {
    use procfs::process::FDTarget;
    match target {
        FDTarget::AnonInode(name) => is_pidfd_link(&format!("anon_inode:{name}")),
        FDTarget::Other(kind, _) | FDTarget::Unknown(kind, _) => kind == "pidfd",
        _ => false,
    }
}

/// The pidfds held by `pids` (host PIDs of the container's processes), read under `proc_root`.
/// Processes or fds that vanish while being read are skipped: a desktop keeps changing.
pub fn scan(proc_root: &Path, pids: &[u32]) -> Vec<PidfdHolder> {
    let mut holders = Vec::new();
    for &pid in pids {
        let Some(fds) = super::proc::process(proc_root, pid).and_then(|p| p.fd().ok()) else { continue };
        let mut found: Vec<(u32, PidfdInfo)> = fds
            .flatten()
            .filter(|fd| is_pidfd_target(&fd.target))
            .filter_map(|fd| {
                let info = std::fs::read_to_string(proc_root.join(format!("{pid}/fdinfo/{}", fd.fd))).ok()?;
                Some((u32::try_from(fd.fd).ok()?, parse_fdinfo(&info)?))
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

impl Probe<'_> {
    /// The pidfds the container's processes hold now.
    pub async fn pidfds(&self, name: &str) -> Result<Vec<PidfdHolder>, String> {
        let pids = self.processes(name).await?;
        Ok(scan(&self.session.host_path("/proc"), &pids))
    }
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
        let mut child = crate::process::Command::new(["sleep", "30"], std::time::Duration::ZERO).spawn(None).unwrap();
        // Under the parallel test threads the child is sometimes seen before its exec.
        let named = || comm(Path::new("/proc"), child.pid).as_deref() == Some("sleep");
        assert!(crate::process::wait_until(std::time::Duration::from_secs(5), named));
        let pid = rustix::process::Pid::from_raw(child.pid as i32).unwrap();
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).expect("pidfd_open");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&pidfd);
        let me = std::process::id();
        let inside = scan(Path::new("/proc"), &[me, child.pid]);
        let outside = scan(Path::new("/proc"), &[me]);
        drop(pidfd);
        child.stop("sleep", std::time::Duration::ZERO);
        let ours: Vec<_> = inside.iter().filter(|h| h.fd == fd as u32).collect();
        assert_eq!(ours.len(), 1, "{inside:?}");
        let h = ours[0];
        assert_eq!((h.pid, h.target_pid), (me, i64::from(child.pid)));
        assert_eq!(h.target_comm.as_deref(), Some("sleep"));
        assert!(h.target_in_container && !h.thread, "{h:?}");
        let theirs = outside.iter().find(|h| h.fd == fd as u32).unwrap();
        assert!(!theirs.target_in_container);
        assert!(theirs.describe().ends_with("outside the container"), "{}", theirs.describe());
    }
}
