//! dockerd's lifecycle, owned by the harness: one per stack per run, started when the stack's
//! first docker cell runs, with `--experimental` (checkpoints need it), no bridge and no iptables
//! (the host's firewall stays untouched; containers run with `--network none`), runc and crun
//! registered. It is stopped by its PID when the stack closes, and so is the containerd it
//! spawned; an interrupt does the same through the cleanup registry. Its output goes to the
//! run's logs.
//!
//! Order when it stops: the harness's containers are removed through the API (so no shim or
//! container outlives the daemon), then SIGTERM to dockerd (which stops its containerd), SIGKILL
//! to its group after a grace period, then containerd by its PID and start time if it is still
//! there, then any shim of that containerd.

use super::api::{self, DockerFacts};
use crate::cleanup::{self, Guard};
use crate::process::ProcessId;
use crate::stack::exec::Entry;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long dockerd gets to answer on its socket after it was started (a VM under TCG is slow).
const READY_LIMIT: Duration = Duration::from_secs(180);
/// How long dockerd (and then its containerd) gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Where a stack's dockerd keeps things, as paths inside the stack.
#[derive(Debug, Clone)]
pub struct DaemonPaths {
    pub socket: String,
    pub data_root: String,
    pub exec_root: String,
}

impl DaemonPaths {
    /// A Debian stack (or a VM guest, whose root is the stack): docker's own default places;
    /// `/var/lib/docker` is the cache's (namespace) or the stack disk's (VM).
    pub fn standard() -> DaemonPaths {
        DaemonPaths {
            socket: "/run/docker.sock".into(),
            data_root: "/var/lib/docker".into(),
            exec_root: "/run/docker".into(),
        }
    }

    /// The host stack: places of the harness's own, so a system dockerd (if any) is never touched.
    pub fn on_host(data_root: &Path) -> DaemonPaths {
        DaemonPaths {
            socket: "/run/criu-matrix-docker/docker.sock".into(),
            data_root: data_root.display().to_string(),
            exec_root: "/run/criu-matrix-docker".into(),
        }
    }

    /// The dockerd command line. `crun` is registered beside the built-in `runc`.
    pub fn argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = ["dockerd", "--experimental", "--host"].map(String::from).to_vec();
        argv.push(format!("unix://{}", self.socket));
        argv.extend(["--data-root".into(), self.data_root.clone(), "--exec-root".into(), self.exec_root.clone()]);
        argv.extend(["--pidfile".into(), format!("{}/dockerd.pid", self.exec_root)]);
        // No bridge and no firewall rules: cells use `--network none`, builds the host network.
        argv.extend(["--bridge=none", "--iptables=false", "--ip6tables=false"].map(String::from));
        argv.extend(["--add-runtime".into(), "crun=/usr/bin/crun".into()]);
        argv
    }
}

/// A running dockerd of a stack. Dropping it stops it (and everything it ran).
pub struct Daemon {
    pub pid: u32,
    pub client: bollard::Docker,
    pub paths: DaemonPaths,
    pub facts: DockerFacts,
    pub log: PathBuf,
    /// The command line it was started with, for reproducers.
    pub argv: Vec<String>,
    _stop: Guard,
}

/// Starts dockerd in a stack and waits until it answers. `host_root` is where the host sees the
/// stack's `/`.
pub async fn start(
    stack: &str,
    entry: &Entry,
    host_root: &Path,
    paths: DaemonPaths,
    log: &Path,
) -> anyhow::Result<Daemon> {
    let on_host = |inner: &str| host_root.join(inner.trim_start_matches('/'));
    std::fs::create_dir_all(on_host(&paths.data_root))?;
    // A socket left by a dockerd of a killed run would answer nothing; dockerd replaces it anyway.
    let _ = std::fs::remove_file(on_host(&paths.socket));
    let argv = paths.argv();
    let file = std::fs::File::create(log).with_context(|| format!("failed to create {}", log.display()))?;
    let service = entry.spawn(&argv, file).context("failed to start dockerd")?;
    // dockerd itself (in a stack, `nsenter`'s child).
    let pid = service.main_pid();
    let child = Arc::new(Mutex::new(service));
    let containerd: Arc<Mutex<Option<ProcessId>>> = Arc::default();
    let socket = on_host(&paths.socket);
    // dockerd's mount namespace, known once it answers (until then the PID may still be nsenter's).
    let mnt_ns: Arc<Mutex<Option<String>>> = Arc::default();
    let address = format!("{}/containerd/containerd.sock", paths.exec_root);
    let stop = {
        let (child, containerd, socket, mnt_ns) = (child.clone(), containerd.clone(), socket.clone(), mnt_ns.clone());
        cleanup::on_cleanup(format!("stop the {stack} stack's dockerd (pid {pid})"), move || {
            if let Ok(client) = api::connect(&socket) {
                api::remove_labelled_blocking(&client);
            }
            child.lock().unwrap_or_else(|p| p.into_inner()).stop("dockerd", STOP_GRACE);
            if let Some(c) = containerd.lock().unwrap_or_else(|p| p.into_inner()).take() {
                crate::process::stop_foreign(&c, "containerd", STOP_GRACE);
            }
            // A shim whose task containerd could not delete (a failed restore) outlives both.
            let mnt_ns = mnt_ns.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
            for shim in shims_of(&mnt_ns, &address) {
                tracing::warn!("ending containerd shim {} left by the stack's dockerd", shim.pid);
                crate::process::stop_foreign(&shim, "containerd-shim", STOP_GRACE);
            }
            crate::stack::cgroups::remove_empty_named(Path::new("/sys/fs/cgroup"), "docker");
        })
    };
    let client = api::wait_ready(&socket, &child, log, READY_LIMIT).await?;
    *mnt_ns.lock().unwrap_or_else(|p| p.into_inner()) =
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok().map(|l| l.display().to_string());
    *containerd.lock().unwrap_or_else(|p| p.into_inner()) = child_named(pid, "containerd");
    let facts = api::probe(&client).await?;
    Ok(Daemon { pid, client, paths, facts, log: log.to_path_buf(), argv, _stop: stop })
}

/// The child of `parent` whose command name is `comm` (dockerd's supervised containerd).
fn child_named(parent: u32, comm: &str) -> Option<ProcessId> {
    procfs::process::all_processes().ok()?.flatten().find_map(|p| {
        let stat = p.stat().ok()?;
        (stat.ppid == parent as i32 && stat.comm == comm).then(|| ProcessId::of(p.pid() as u32)).flatten()
    })
}

/// The containerd shims serving the containerd at `address` in mount namespace `mnt_ns`: only
/// the harness's dockerd started that containerd, so they are the harness's.
fn shims_of(mnt_ns: &str, address: &str) -> Vec<ProcessId> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.flatten()
        .filter(|p| {
            let comm = p.stat().map(|s| s.comm).unwrap_or_default();
            let ns = std::fs::read_link(format!("/proc/{}/ns/mnt", p.pid())).map(|l| l.display().to_string());
            let args = p.cmdline().unwrap_or_default();
            comm.starts_with("containerd-shim")
                && ns.is_ok_and(|n| n == mnt_ns)
                && args.windows(2).any(|w| w[0] == "-address" && w[1] == address)
        })
        .filter_map(|p| ProcessId::of(p.pid() as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_is_experimental_without_firewall_and_knows_crun() {
        let argv = DaemonPaths::standard().argv();
        for wanted in ["--experimental", "--bridge=none", "--iptables=false", "crun=/usr/bin/crun"] {
            assert!(argv.iter().any(|a| a == wanted), "{wanted} missing from {argv:?}");
        }
        assert!(argv.windows(2).any(|w| w[0] == "--host" && w[1] == "unix:///run/docker.sock"), "{argv:?}");
    }

    #[test]
    fn the_host_daemon_keeps_to_places_of_its_own() {
        let paths = DaemonPaths::on_host(Path::new("/cache/stacks/host/docker"));
        assert_ne!(paths.socket, DaemonPaths::standard().socket);
        assert_ne!(paths.exec_root, DaemonPaths::standard().exec_root);
        assert!(paths.argv().windows(2).any(|w| w[0] == "--data-root" && w[1] == "/cache/stacks/host/docker"));
    }

    #[test]
    fn a_stopped_service_is_reaped_and_a_gone_process_is_not_alive() {
        let mut service = crate::process::Command::new(["sleep", "30"], Duration::ZERO).spawn(None).unwrap();
        let id = ProcessId::of(service.pid).unwrap();
        assert!(id.alive());
        service.stop("sleep", STOP_GRACE);
        assert!(!id.alive());
        assert!(!Path::new(&format!("/proc/{}", id.pid)).exists());
    }
}
