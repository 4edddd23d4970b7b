//! Where a container's processes are in the cgroup tree after a restore.
//!
//! A restore that leaves a process outside the container's cgroup breaks the next checkpoint:
//! CRIU freezes the container's cgroup, then cannot seize the process that was not frozen
//! (`Unseizable non-zombie N found, state S, err -1/10`, crun#1651). So after a restore every
//! process of the container's PID namespace is looked up in `/proc/PID/cgroup` (read from the
//! host), and compared with the container's cgroup: the one the engine asked the runtime for
//! (OCI `linux.cgroupsPath`) when the engine can tell, else the cgroup of the container's first
//! process. Only the hierarchies the stack uses are judged (every v1 hierarchy, or the v2 one);
//! every line is recorded.

use super::probe::Probe;
use super::proc::{container_pid, parse_cgroup_file, CgroupLine};
use crate::record::{Placement, ProcessPlacement};

/// The lines that count in a stack with this cgroup version: hierarchy 0 is cgroup v2; on a v1
/// (or hybrid) stack it is the hidden unified hierarchy and is only recorded.
pub fn judged(lines: &[CgroupLine], cgroup_version: &str) -> Vec<CgroupLine> {
    lines.iter().filter(|l| (l.hierarchy == 0) == (cgroup_version == "v2")).cloned().collect()
}

/// Whether `path` is `container` or a cgroup below it.
pub fn is_inside(path: &str, container: &str) -> bool {
    let container = container.trim_end_matches('/');
    container.is_empty() || path == container || path.strip_prefix(container).is_some_and(|rest| rest.starts_with('/'))
}

/// Judges one process's cgroup lines against the container's cgroup.
pub fn process_inside(lines: &[CgroupLine], cgroup_version: &str, container: &str) -> bool {
    let judged = judged(lines, cgroup_version);
    !judged.is_empty() && judged.iter().all(|l| is_inside(&l.path, container))
}

/// The container's cgroup taken from its first process: the longest judged path (a v1 host may
/// leave some hierarchies at `/`; the container's own directory is the deepest one).
pub fn cgroup_of_first_process(lines: &[CgroupLine], cgroup_version: &str) -> Option<String> {
    judged(lines, cgroup_version).into_iter().map(|l| l.path).max_by_key(|p| p.len())
}

impl Probe<'_> {
    /// Where every process of the container is, judged against the container's cgroup.
    pub async fn placement(&self, name: &str, cgroup_version: &str) -> Result<Placement, String> {
        let first = self.pid(name).await?;
        let read = |pid: u32, file: &str| {
            std::fs::read_to_string(self.session.host_path(&format!("/proc/{pid}/{file}")))
                .map_err(|e| format!("failed to read /proc/{pid}/{file} of container {name}: {e}"))
        };
        let (container_cgroup, source) = match self.engine.cgroup_path(name).await {
            Ok(Some(path)) => (path, "engine"),
            Ok(None) => {
                let lines = parse_cgroup_file(&read(first, "cgroup")?);
                let path = cgroup_of_first_process(&lines, cgroup_version)
                    .ok_or_else(|| format!("the first process of {name} has no {cgroup_version} cgroup"))?;
                (path, "first process")
            }
            Err(e) => return Err(format!("failed to find the cgroup of container {name}: {e:#}")),
        };
        let mut processes = Vec::new();
        let mut pids = self.processes(name).await?;
        pids.sort_unstable();
        for pid in pids {
            // A process may exit between the listing and the read: it is no longer the container's.
            let Ok(text) = read(pid, "cgroup") else { continue };
            let lines = parse_cgroup_file(&text);
            processes.push(ProcessPlacement {
                pid,
                container_pid: read(pid, "status").ok().as_deref().and_then(container_pid),
                comm: read(pid, "comm").unwrap_or_default().trim().to_string(),
                inside: process_inside(&lines, cgroup_version, &container_cgroup),
                cgroups: text.lines().map(String::from).collect(),
            });
        }
        Ok(Placement { container_cgroup, source: source.to_string(), judged: cgroup_version.to_string(), processes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const V1: &str = "9:name=systemd:/libpod_parent/libpod-abc\n6:freezer:/libpod_parent/libpod-abc\n\
                      4:memory:/libpod_parent/libpod-abc\n0::/libpod_parent/libpod-old/libpod_parent/libpod-abc\n";

    #[test]
    fn parses_and_judges_the_hierarchies_of_the_stack() {
        let lines = parse_cgroup_file(V1);
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[1],
            CgroupLine { hierarchy: 6, controllers: "freezer".into(), path: "/libpod_parent/libpod-abc".into() }
        );
        assert_eq!(judged(&lines, "v1").len(), 3);
        assert_eq!(judged(&lines, "v2").len(), 1);
        assert!(process_inside(&lines, "v1", "/libpod_parent/libpod-abc"));
        // On a hybrid host the hidden unified line points into another container: not judged on v1.
        assert!(!process_inside(&lines, "v2", "/libpod_parent/libpod-abc"));
    }

    #[rstest]
    #[case("/machine.slice/libpod-1.scope", "/machine.slice/libpod-1.scope", true)]
    #[case("/machine.slice/libpod-1.scope/container", "/machine.slice/libpod-1.scope", true)]
    #[case("/machine.slice/libpod-10.scope", "/machine.slice/libpod-1.scope", false)]
    #[case("/machine.slice", "/machine.slice/libpod-1.scope", false)]
    #[case("/", "/machine.slice/libpod-1.scope", false)]
    #[case("/anything", "/", true)]
    fn a_cgroup_is_inside_itself_and_its_descendants(
        #[case] path: &str,
        #[case] container: &str,
        #[case] inside: bool,
    ) {
        assert_eq!(is_inside(path, container), inside);
    }

    #[test]
    fn a_process_with_no_judged_line_is_not_inside() {
        let lines = parse_cgroup_file("0::/x\n");
        assert!(!process_inside(&lines, "v1", "/"));
    }

    #[test]
    fn the_first_process_gives_its_deepest_cgroup() {
        let lines = parse_cgroup_file("3:cpuset:/\n6:freezer:/libpod_parent/libpod-abc\n0::/elsewhere/deeper/still\n");
        assert_eq!(cgroup_of_first_process(&lines, "v1").as_deref(), Some("/libpod_parent/libpod-abc"));
    }

    #[test]
    fn describes_the_processes_outside() {
        let p = |pid, inside| ProcessPlacement {
            pid,
            container_pid: None,
            comm: "java".into(),
            cgroups: vec!["0::/x".into()],
            inside,
        };
        let placement = Placement {
            container_cgroup: "/c".into(),
            source: "engine".into(),
            judged: "v2".into(),
            processes: vec![p(1, true), p(2, false)],
        };
        let text = placement.describe_outside();
        assert!(text.starts_with("1 of 2 processes are outside the container's cgroup /c"), "{text}");
        assert!(text.contains("pid 2 (java): 0::/x"), "{text}");
    }
}
