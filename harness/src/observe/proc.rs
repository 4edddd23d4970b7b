//! What `/proc` says of one process, read under a given proc root (the stack's `/proc` as the
//! host sees it): its command name, its PID inside its own PID namespace, its cgroup lines.

use std::path::Path;

/// A process under `proc_root`, for procfs's readers.
pub fn process(proc_root: &Path, pid: u32) -> Option<procfs::process::Process> {
    procfs::process::Process::new_with_root(proc_root.join(pid.to_string())).ok()
}

/// A process's command name (`/proc/PID/comm`).
pub fn comm(proc_root: &Path, pid: u32) -> Option<String> {
    std::fs::read_to_string(proc_root.join(format!("{pid}/comm"))).ok().map(|c| c.trim_end().to_string())
}

/// A process's PID in its own (innermost) PID namespace.
pub fn innermost_pid(proc_root: &Path, pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(proc_root.join(format!("{pid}/status"))).ok()?;
    container_pid(&status)
}

/// The PID in the innermost PID namespace, from the `NSpid:` line of `/proc/PID/status`.
pub fn container_pid(status: &str) -> Option<u32> {
    status.lines().find_map(|l| l.strip_prefix("NSpid:"))?.split_whitespace().last()?.parse().ok()
}

/// The processes under `proc_root` whose PID namespace is that of `pid` (the container's first
/// process): every process of the container, as the host sees them.
pub fn same_pid_namespace(proc_root: &Path, pid: u32) -> std::io::Result<Vec<u32>> {
    let ns = std::fs::read_link(proc_root.join(format!("{pid}/ns/pid")))?;
    let all = procfs::process::all_processes_with_root(proc_root).map_err(std::io::Error::other)?;
    Ok(all
        .flatten()
        .map(|p| p.pid() as u32)
        .filter(|p| std::fs::read_link(proc_root.join(format!("{p}/ns/pid"))).is_ok_and(|l| l == ns))
        .collect())
}

/// One line of `/proc/PID/cgroup`: `ID:CONTROLLERS:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    pub hierarchy: u32,
    pub controllers: String,
    pub path: String,
}

pub fn parse_cgroup_file(text: &str) -> Vec<CgroupLine> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy = parts.next()?.parse().ok()?;
            let controllers = parts.next()?.to_string();
            let path = parts.next()?.to_string();
            Some(CgroupLine { hierarchy, controllers, path })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_innermost_pid() {
        assert_eq!(container_pid("Name:\tjava\nNSpid:\t4242\t7\n"), Some(7));
        assert_eq!(container_pid("Name:\tjava\n"), None);
    }

    #[test]
    fn this_process_shares_its_pid_namespace_with_its_parent() {
        let me = std::process::id();
        let found = same_pid_namespace(Path::new("/proc"), me).unwrap();
        assert!(found.contains(&me) && found.contains(&std::os::unix::process::parent_id()), "{found:?}");
        assert!(comm(Path::new("/proc"), me).is_some());
    }
}
