//! Where a container's processes are in the cgroup tree after a restore.
//!
//! A restore that leaves a process outside the container's cgroup breaks the next checkpoint:
//! CRIU freezes the container's cgroup, then cannot seize the process that was not frozen
//! (`Unseizable non-zombie N found, state S, err -1/10`, crun#1651). So after a restore every
//! process of the container's PID namespace is looked up in `/proc/PID/cgroup` (read from the
//! host), and compared with the container's cgroup: the one the engine asked the runtime for
//! (OCI `linux.cgroupsPath`) when the engine can tell, else the cgroup of the container's first
//! process. Only the hierarchies the engine manages are judged: the v2 one, or the v1 ones
//! mounted under the stack's `/sys/fs/cgroup` in which the container's cgroup exists. A named v1
//! hierarchy that no engine uses (`name=zdtmtst` left by CRIU's test suite, in which every
//! process sits at `/`) is only recorded; every line is recorded.

use super::probe::Probe;
use super::proc::{container_pid, parse_cgroup_file, CgroupLine};
use crate::record::{Placement, ProcessPlacement};

/// The lines that count in a stack with this cgroup version: hierarchy 0 is cgroup v2; on a v1
/// (or hybrid) stack it is the hidden unified hierarchy and is only recorded.
pub fn judged(lines: &[CgroupLine], cgroup_version: &str) -> Vec<CgroupLine> {
    lines.iter().filter(|l| (l.hierarchy == 0) == (cgroup_version == "v2")).cloned().collect()
}

/// The cgroup v1 mounts under `/sys/fs/cgroup` in a `mountinfo` text: (mount point, the
/// controllers or `name=` it carries).
pub fn v1_mounts(mountinfo: &str) -> Vec<(String, Vec<String>)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let mut fs = fs.split_whitespace();
            let (kind, options) = (fs.next()?, fs.nth(1)?);
            let point = mount.split_whitespace().nth(4)?;
            let under = point.strip_prefix("/sys/fs/cgroup/").is_some_and(|rest| !rest.is_empty());
            (kind == "cgroup" && under).then(|| {
                let carried = options.split(',').filter(|o| o.starts_with("name=") || is_controller(o));
                (point.to_string(), carried.map(String::from).collect())
            })
        })
        .collect()
}

/// A mount option that names a v1 controller (not `rw`, `relatime`, `xattr`, `release_agent=`...).
fn is_controller(option: &str) -> bool {
    const CONTROLLERS: &[&str] = &[
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio", "perf_event",
        "hugetlb", "pids", "rdma", "misc",
    ];
    CONTROLLERS.contains(&option)
}

/// The v1 hierarchies the engine manages: those mounted under `/sys/fs/cgroup` (`mounts`) in
/// which `container`'s cgroup exists (`exists(mount point + container)`), by what they carry.
pub fn managed_v1(mounts: &[(String, Vec<String>)], container: &str, exists: impl Fn(&str) -> bool) -> Vec<Vec<String>> {
    mounts
        .iter()
        .filter(|(point, _)| exists(&format!("{point}{}", container.trim_end_matches('/'))))
        .map(|(_, carried)| carried.clone())
        .collect()
}

/// Whether a `/proc/PID/cgroup` line is of one of the `managed` v1 hierarchies.
fn is_managed(line: &CgroupLine, managed: &[Vec<String>]) -> bool {
    let wanted: Vec<&str> = line.controllers.split(',').filter(|c| !c.is_empty()).collect();
    !wanted.is_empty() && managed.iter().any(|carried| wanted.iter().all(|c| carried.iter().any(|m| m == c)))
}

/// [`judged`], on a v1 stack only the `managed` hierarchies (all of them when `None`).
pub fn judged_managed(lines: &[CgroupLine], cgroup_version: &str, managed: Option<&[Vec<String>]>) -> Vec<CgroupLine> {
    judged(lines, cgroup_version)
        .into_iter()
        .filter(|l| cgroup_version == "v2" || managed.is_none_or(|m| is_managed(l, m)))
        .collect()
}

/// Whether `path` is `container` or a cgroup below it.
pub fn is_inside(path: &str, container: &str) -> bool {
    let container = container.trim_end_matches('/');
    container.is_empty() || path == container || path.strip_prefix(container).is_some_and(|rest| rest.starts_with('/'))
}

/// Judges one process's cgroup lines against the container's cgroup.
pub fn process_inside(lines: &[CgroupLine], cgroup_version: &str, container: &str) -> bool {
    process_inside_managed(lines, cgroup_version, container, None)
}

/// [`process_inside`], judging only the `managed` v1 hierarchies.
pub fn process_inside_managed(
    lines: &[CgroupLine],
    cgroup_version: &str,
    container: &str,
    managed: Option<&[Vec<String>]>,
) -> bool {
    let judged = judged_managed(lines, cgroup_version, managed);
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
        // On v1, the hierarchies the engine manages: mounted in the stack, holding the
        // container's cgroup. Unknown (the stack's mounts unreadable): every v1 hierarchy.
        let managed = match cgroup_version {
            "v2" => None,
            _ => std::fs::read_to_string(self.session.host_path("/proc/1/mountinfo")).ok().map(|text| {
                managed_v1(&v1_mounts(&text), &container_cgroup, |path| self.session.host_path(path).is_dir())
            }),
        };
        let judged_text = match &managed {
            Some(m) if !m.is_empty() => {
                format!("{cgroup_version}: {}", m.iter().map(|c| c.join(",")).collect::<Vec<_>>().join(" "))
            }
            _ => cgroup_version.to_string(),
        };
        let managed = managed.filter(|m| !m.is_empty());
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
                inside: process_inside_managed(&lines, cgroup_version, &container_cgroup, managed.as_deref()),
                cgroups: text.lines().map(String::from).collect(),
            });
        }
        Ok(Placement { container_cgroup, source: source.to_string(), judged: judged_text, processes })
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

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/cmtest rw,relatime - cgroup cgroup rw,name=cmtest
42 23 0:39 / /mnt/zdtm rw,relatime - cgroup cgroup rw,name=zdtmtst
43 23 0:40 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A host with extra named hierarchies (one mounted where no engine makes cgroups, one not
    /// under /sys/fs/cgroup at all), in which the container's process sits at `/`: only the
    /// hierarchies holding the container's cgroup are judged, and the process is inside.
    #[test]
    fn named_hierarchies_the_engine_does_not_manage_are_not_judged() {
        let mounts = v1_mounts(MOUNTINFO);
        let points: Vec<&str> = mounts.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(points, ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/freezer", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/cmtest"]);
        assert_eq!(mounts[2].1, ["name=systemd"]);
        let container = "/libpod_parent/libpod-abc";
        // The engine made the container's cgroup in every mounted hierarchy but cmtest.
        let exists = |path: &str| path.ends_with(container) && !path.contains("cmtest");
        let managed = managed_v1(&mounts, container, exists);
        assert_eq!(managed.len(), 3);
        let lines = parse_cgroup_file(
            "13:name=zdtmtst:/\n12:name=cmtest:/\n9:name=systemd:/libpod_parent/libpod-abc\n\
             6:freezer:/libpod_parent/libpod-abc\n2:cpu,cpuacct:/libpod_parent/libpod-abc\n0::/\n",
        );
        assert!(process_inside_managed(&lines, "v1", container, Some(&managed)));
        assert_eq!(judged_managed(&lines, "v1", Some(&managed)).len(), 3);
        // Every v1 hierarchy counted, as before: the named ones put it outside.
        assert!(!process_inside(&lines, "v1", container));
        // A process restored outside the container in a managed hierarchy is still outside.
        let moved = parse_cgroup_file("12:name=cmtest:/\n6:freezer:/libpod_parent/libpod-old\n2:cpu,cpuacct:/libpod_parent/libpod-abc\n");
        assert!(!process_inside_managed(&moved, "v1", container, Some(&managed)));
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
