//! What a cell left behind in a VM guest, checked before the guest runs the next cell of its
//! boot: containers, processes, container mounts, cgroups of containers, frozen cgroups. A cell
//! that left anything ends its boot, so no later cell runs beside it (the cells after it go on in
//! a fresh boot); what it left is recorded with it (`vm.left_behind`).

use crate::stack::Session;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The guest before a cell: what was there already is not the cell's.
pub struct Snapshot {
    processes: BTreeSet<(i32, u64)>,
    mounts: BTreeSet<String>,
    cgroups: BTreeSet<PathBuf>,
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl Snapshot {
    pub fn take() -> Snapshot {
        Snapshot {
            processes: processes().into_iter().map(|p| (p.pid, p.start)).collect(),
            mounts: container_mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()),
            cgroups: container_cgroups(Path::new(CGROUP_ROOT)),
        }
    }
}

/// How long processes of a cell may take to end after it (conmon runs `podman container cleanup`
/// when its container exits, and both end on their own).
const SETTLE: Duration = Duration::from_secs(15);

/// One line per kind of thing the cell left; empty when it left nothing. Processes still ending
/// get up to [`SETTLE`] to go.
pub async fn left_behind(before: &Snapshot, session: Option<&Session>) -> Vec<String> {
    let started = std::time::Instant::now();
    loop {
        let found = check(before, session).await;
        let only_processes = found.iter().all(|l| l.starts_with("processes: "));
        if found.is_empty() || !only_processes || started.elapsed() >= SETTLE {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn check(before: &Snapshot, session: Option<&Session>) -> Vec<String> {
    let mut found = Vec::new();
    let daemon = session.and_then(Session::docker).map(|d| d.pid as i32);
    let systemd = std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd");
    let left: Vec<String> = processes()
        .into_iter()
        .filter(|p| !before.processes.contains(&(p.pid, p.start)))
        .filter(|p| !p.kernel_thread && p.pid as u32 != std::process::id())
        // The stack's dockerd lives as long as the run, with its containerd.
        .filter(|p| daemon.is_none_or(|d| p.pid != d && p.ppid != d))
        // A service systemd started on its own (on a bus request) is systemd's, not the cell's.
        .filter(|p| !(systemd && p.ppid == 1 && systemd_service(&p.cgroup)))
        .map(|p| format!("{} {}", p.pid, p.comm))
        .collect();
    if !left.is_empty() {
        found.push(format!("processes: {}", left.join(", ")));
    }
    if let Some(session) = session {
        let containers = podman_containers(session).await;
        if !containers.is_empty() {
            found.push(format!("podman containers: {}", containers.join(", ")));
        }
    }
    let mounts: Vec<String> = container_mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
        .difference(&before.mounts)
        .cloned()
        .collect();
    if !mounts.is_empty() {
        found.push(format!("mounts: {}", mounts.join(", ")));
    }
    let cgroups: Vec<String> = container_cgroups(Path::new(CGROUP_ROOT))
        .difference(&before.cgroups)
        .map(|p| p.display().to_string())
        .collect();
    if !cgroups.is_empty() {
        found.push(format!("container cgroups: {}", cgroups.join(", ")));
    }
    let frozen = frozen_cgroups(Path::new(CGROUP_ROOT));
    if !frozen.is_empty() {
        let shown: Vec<String> = frozen.iter().map(|p| p.display().to_string()).collect();
        found.push(format!("frozen cgroups: {}", shown.join(", ")));
    }
    found
}

struct Proc {
    pid: i32,
    ppid: i32,
    start: u64,
    comm: String,
    kernel_thread: bool,
    cgroup: String,
}

/// The live processes (zombies are their parent's to reap, and gone when it does).
fn processes() -> Vec<Proc> {
    const PF_KTHREAD: u32 = 0x0020_0000;
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.flatten()
        .filter_map(|p| {
            let stat = p.stat().ok()?;
            if stat.state == 'Z' || stat.state == 'X' {
                return None;
            }
            let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", stat.pid)).unwrap_or_default();
            Some(Proc {
                pid: stat.pid,
                ppid: stat.ppid,
                start: stat.starttime,
                comm: stat.comm,
                kernel_thread: stat.flags & PF_KTHREAD != 0 || stat.pid == 2 || stat.ppid == 2,
                cgroup,
            })
        })
        .collect()
}

/// Whether a process's cgroup (`/proc/PID/cgroup`) is a systemd service other than the one that
/// runs the cells.
fn systemd_service(cgroup_file: &str) -> bool {
    cgroup_file.lines().filter_map(|l| l.rsplit(':').next()).any(|path| {
        let unit = path.rsplit('/').next().unwrap_or_default();
        unit.ends_with(".service") && unit != "criu-matrix.service"
    })
}

/// Mounts that only a container makes: its root (overlay, fuse-overlayfs), its namespaces
/// (nsfs), its `/dev/shm` (a tmpfs in the engine's storage). `TYPE MOUNTPOINT` each.
fn container_mounts(mountinfo: &str) -> BTreeSet<String> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (fields, after) = line.split_once(" - ")?;
            let point = fields.split(' ').nth(4)?;
            let fstype = after.split(' ').next()?;
            let container = matches!(fstype, "overlay" | "nsfs")
                || fstype.starts_with("fuse")
                || (fstype == "tmpfs" && point.contains("/userdata/shm"));
            container.then(|| format!("{fstype} {point}"))
        })
        .collect()
}

/// Cgroups of one container (`libpod-<id>…`, `docker-<id>.scope`, `docker/<id>`), anywhere in
/// the tree; the engines' parents (`libpod_parent`, `docker`) stay between containers.
fn container_cgroups(root: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    walk(root, 0, &mut |dir| {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parent = dir.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
        let id = name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit());
        if name.starts_with("libpod-") || name.starts_with("docker-") || (id && parent.as_deref() == Some("docker")) {
            found.insert(dir.to_path_buf());
        }
    });
    found
}

/// Cgroups frozen or freezing (v1 `freezer.state`, v2 `cgroup.freeze`): nothing may stay frozen
/// between cells.
fn frozen_cgroups(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    walk(root, 0, &mut |dir| {
        let v1 = std::fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
        let v2 = std::fs::read_to_string(dir.join("cgroup.freeze")).unwrap_or_default();
        if matches!(v1.trim(), "FROZEN" | "FREEZING") || v2.trim() == "1" {
            found.push(dir.to_path_buf());
        }
    });
    found
}

fn walk(dir: &Path, depth: usize, visit: &mut dyn FnMut(&Path)) {
    if depth > 12 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir() && !t.is_symlink()) {
            let path = entry.path();
            visit(&path);
            walk(&path, depth + 1, visit);
        }
    }
}

/// Every container podman knows in the stack (the harness removes each one it made).
async fn podman_containers(session: &Session) -> Vec<String> {
    if !session.facts.tools.contains_key("podman") {
        return Vec::new();
    }
    let argv: Vec<String> = ["podman", "ps", "--all", "--format", "{{.Names}}"].map(String::from).to_vec();
    match crate::stack::exec::run(&session.entry(), &argv, Duration::from_secs(60), None).await {
        Ok(out) if out.success() => out.stdout.split_whitespace().map(String::from).collect(),
        Ok(out) => vec![format!("(podman ps failed: {})", out.failure_text())],
        Err(e) => vec![format!("(podman ps failed: {e:#})")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_mounts_are_told_from_the_guests_own() {
        let mountinfo = "\
22 1 259:1 / / rw,relatime - ext4 /dev/nvme0n1p1 rw
30 22 0:5 / /dev/shm rw - tmpfs shm rw
41 22 0:40 / /var/lib/containers/storage/overlay/abc/merged rw - overlay overlay rw,lowerdir=x
42 22 0:41 / /var/lib/containers/storage/overlay-containers/abc/userdata/shm rw - tmpfs shm rw
43 22 0:4 net:[4026532300] /run/netns/netns-1 rw - nsfs nsfs rw
";
        let found: Vec<String> = container_mounts(mountinfo).into_iter().collect();
        assert_eq!(
            found,
            [
                "nsfs /run/netns/netns-1",
                "overlay /var/lib/containers/storage/overlay/abc/merged",
                "tmpfs /var/lib/containers/storage/overlay-containers/abc/userdata/shm",
            ]
        );
    }

    #[test]
    fn frozen_and_container_cgroups_are_found_in_a_tree() {
        let root = tempfile::tempdir().unwrap();
        let scope = root.path().join("machine.slice/libpod-abc.scope");
        let frozen = root.path().join("system.slice/x");
        let thawed = root.path().join("freezer/criu");
        let parent = root.path().join("libpod_parent");
        for d in [&scope, &frozen, &thawed, &parent] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(frozen.join("cgroup.freeze"), "1\n").unwrap();
        std::fs::write(scope.join("cgroup.freeze"), "0\n").unwrap();
        std::fs::write(thawed.join("freezer.state"), "THAWED\n").unwrap();
        assert_eq!(frozen_cgroups(root.path()), vec![frozen.clone()]);
        std::fs::write(thawed.join("freezer.state"), "FREEZING\n").unwrap();
        assert_eq!(frozen_cgroups(root.path()).len(), 2);
        assert_eq!(container_cgroups(root.path()).into_iter().collect::<Vec<_>>(), vec![scope]);
    }

    #[test]
    fn only_other_systemd_services_are_systemds() {
        assert!(systemd_service("0::/system.slice/systemd-hostnamed.service\n"));
        assert!(!systemd_service("0::/system.slice/criu-matrix.service\n"));
        assert!(!systemd_service("0::/machine.slice/libpod-conmon-abc.scope\n"));
        assert!(systemd_service("12:name=systemd:/system.slice/dbus.service\n"));
    }

    #[test]
    fn a_process_started_after_the_snapshot_is_found_and_one_before_is_not() {
        let before = Snapshot::take();
        // A child of this test, alive: new since the snapshot.
        let child = crate::process::Command::new(["sleep", "30"], Duration::ZERO).spawn(None).unwrap();
        let pid = child.pid;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let found = runtime.block_on(check(&before, None));
        drop(child);
        assert!(found.iter().any(|l| l.starts_with("processes: ") && l.contains(&format!("{pid} sleep"))), "{found:?}");
        let after = Snapshot::take();
        let found = runtime.block_on(check(&after, None));
        assert!(found.iter().all(|l| !l.contains(&format!("{pid} sleep"))), "{found:?}");
    }
}
