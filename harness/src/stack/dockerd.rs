//! dockerd, owned by the harness: one per stack per run, started when the stack's first docker
//! cell runs, with `--experimental` (checkpoints need it), no bridge and no iptables (the host's
//! firewall stays untouched; containers run with `--network none`), runc and crun registered.
//! It is stopped by its PID when the stack closes, and so is the containerd it spawned; an
//! interrupt does the same through the cleanup registry. Its output goes to the run's logs.
//!
//! Order when it stops: the harness's containers are removed through the API (so no shim or
//! container outlives the daemon), then SIGTERM to dockerd (which stops its containerd), SIGKILL
//! after a grace period, then containerd by its PID if it is still there.

use super::exec::Entry;
use crate::cleanup::{self, Guard};
use crate::stack::namespace::LABEL;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long dockerd gets to answer on its socket after it was started (a VM under TCG is slow).
const READY_LIMIT: Duration = Duration::from_secs(180);
/// How long dockerd (and then its containerd) gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Every API call of the harness's own housekeeping (listing, removing) has this limit.
const HOUSEKEEPING_LIMIT: Duration = Duration::from_secs(60);

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

/// What the running daemon says it is, for the stack's facts and the cell records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerFacts {
    /// The daemon's version (`/version`).
    pub version: String,
    pub api_version: String,
    /// containerd's version as the daemon reports it (a component of `/version`).
    pub containerd: String,
    pub experimental: bool,
    /// Registered runtimes (`/info`).
    pub runtimes: Vec<String>,
    pub default_runtime: String,
    /// `cgroupfs` or `systemd`.
    pub cgroup_driver: String,
    pub storage_driver: String,
}

impl DockerFacts {
    /// The record's `versions` entries for a docker cell.
    pub fn versions(&self) -> Vec<(String, String)> {
        vec![
            ("dockerd".into(), self.version.clone()),
            ("docker.api".into(), self.api_version.clone()),
            ("docker.containerd".into(), self.containerd.clone()),
            ("docker.experimental".into(), self.experimental.to_string()),
            ("docker.runtimes".into(), self.runtimes.join(", ")),
            ("docker.cgroup_driver".into(), self.cgroup_driver.clone()),
            ("docker.storage_driver".into(), self.storage_driver.clone()),
        ]
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
    let child = entry.spawn(&argv, file).context("failed to start dockerd")?;
    let pid = child.id();
    let child = Arc::new(Mutex::new(Some(child)));
    let containerd: Arc<Mutex<Option<ProcessId>>> = Arc::default();
    let socket = on_host(&paths.socket);
    // dockerd's mount namespace, known once it answers (until then the PID may still be nsenter's).
    let mnt_ns: Arc<Mutex<Option<String>>> = Arc::default();
    let address = format!("{}/containerd/containerd.sock", paths.exec_root);
    let stop = {
        let (child, containerd, socket, mnt_ns) = (child.clone(), containerd.clone(), socket.clone(), mnt_ns.clone());
        cleanup::on_cleanup(format!("stop the {stack} stack's dockerd (pid {pid})"), move || {
            if let Ok(client) = connect(&socket) {
                remove_labelled_blocking(&client);
            }
            super::exec::stop_child(&child, "dockerd", STOP_GRACE);
            if let Some(c) = containerd.lock().unwrap_or_else(|p| p.into_inner()).take() {
                c.stop("containerd");
            }
            // A shim whose task containerd could not delete (a failed restore) outlives both.
            let mnt_ns = mnt_ns.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
            for shim in shims_of(&mnt_ns, &address) {
                tracing::warn!("ending containerd shim {} left by the stack's dockerd", shim.pid);
                shim.stop("containerd-shim");
            }
            super::cgroups::remove_empty_named(Path::new("/sys/fs/cgroup"), "docker");
        })
    };
    let client = wait_ready(&socket, &child, log).await?;
    *mnt_ns.lock().unwrap_or_else(|p| p.into_inner()) =
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok().map(|l| l.display().to_string());
    *containerd.lock().unwrap_or_else(|p| p.into_inner()) = child_named(pid, "containerd");
    let facts = probe(&client).await?;
    Ok(Daemon { pid, client, paths, facts, log: log.to_path_buf(), argv, _stop: stop })
}

/// A client of the daemon behind `socket` (a host path), speaking the newest API both know.
fn connect(socket: &Path) -> anyhow::Result<bollard::Docker> {
    let path = socket.to_str().context("the docker socket path is not UTF-8")?;
    Ok(bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)?)
}

async fn wait_ready(socket: &Path, child: &Mutex<Option<Child>>, log: &Path) -> anyhow::Result<bollard::Docker> {
    let started = Instant::now();
    loop {
        if socket.exists() {
            if let Ok(client) = connect(socket) {
                if client.ping().await.is_ok() {
                    return Ok(client.negotiate_version().await?);
                }
            }
        }
        let exited = child.lock().unwrap_or_else(|p| p.into_inner()).as_mut().and_then(|c| c.try_wait().ok().flatten());
        if let Some(status) = exited {
            anyhow::bail!(
                "dockerd exited ({status}) before it answered; its log ({}):\n{}",
                log.display(),
                super::exec::log_tail(log)
            );
        }
        if started.elapsed() > READY_LIMIT {
            anyhow::bail!(
                "dockerd did not answer on {} within {}s; its log ({}):\n{}",
                socket.display(),
                READY_LIMIT.as_secs(),
                log.display(),
                super::exec::log_tail(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn probe(client: &bollard::Docker) -> anyhow::Result<DockerFacts> {
    let version = client.version().await.context("failed to ask dockerd its version")?;
    let info = client.info().await.context("failed to ask dockerd for its info")?;
    let containerd = version
        .components
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name.eq_ignore_ascii_case("containerd"))
        .map(|c| c.version)
        .unwrap_or_default();
    let mut runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
    runtimes.sort();
    let text = |v: Option<String>| v.unwrap_or_default();
    Ok(DockerFacts {
        version: text(version.version),
        api_version: text(version.api_version),
        containerd,
        experimental: info.experimental_build.unwrap_or(false),
        runtimes,
        default_runtime: text(info.default_runtime),
        cgroup_driver: info.cgroup_driver.map(|d| d.to_string()).unwrap_or_default(),
        storage_driver: text(info.driver),
    })
}

/// Runs an API future to completion from any thread, with or without an async runtime around
/// (cleanup paths run in `Drop` and in the interrupt handler): on a thread of its own.
pub fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> Option<T> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        Some(runtime.block_on(work()))
    })
    .join()
    .ok()
    .flatten()
}

/// Removes these containers (names or IDs), with their anonymous volumes; blocking.
pub fn remove_blocking(client: &bollard::Docker, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let (client, names) = (client.clone(), names.to_vec());
    blocking(move || {
        Box::pin(async move {
            for name in &names {
                let options = bollard::query_parameters::RemoveContainerOptions { force: true, v: true, link: false };
                match tokio::time::timeout(HOUSEKEEPING_LIMIT, client.remove_container(name, Some(options))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })) => {}
                    Ok(Err(e)) => tracing::warn!("failed to remove docker container {name}: {e}"),
                    Err(_) => tracing::warn!("failed to remove docker container {name}: no answer in time"),
                }
            }
        })
    });
}

/// Removes every container carrying the harness's label; blocking.
pub fn remove_labelled_blocking(client: &bollard::Docker) {
    let listing = client.clone();
    let ids = blocking(move || {
        Box::pin(async move {
            let filters = HashMap::from([("label".to_string(), vec![LABEL.to_string()])]);
            let options = bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            };
            match tokio::time::timeout(HOUSEKEEPING_LIMIT, listing.list_containers(Some(options))).await {
                Ok(Ok(list)) => list.into_iter().filter_map(|c| c.id).collect::<Vec<_>>(),
                _ => Vec::new(),
            }
        })
    })
    .unwrap_or_default();
    remove_blocking(client, &ids);
}

/// Removes the harness's containers through the dockerd of a stack whose socket the host sees at
/// `socket`, if one answers there (a run killed outright left it running).
pub fn remove_labelled_at(socket: &Path) {
    if !socket.exists() {
        return;
    }
    let Ok(client) = connect(socket) else { return };
    let alive = client.clone();
    let answers = blocking(move || Box::pin(async move { alive.ping().await.is_ok() })).unwrap_or(false);
    if answers {
        remove_labelled_blocking(&client);
    }
}

/// A process known by PID and start time, so a PID reused by someone else is never signalled.
#[derive(Debug, Clone, Copy)]
struct ProcessId {
    pid: u32,
    start_time: u64,
}

impl ProcessId {
    fn of(pid: u32) -> Option<ProcessId> {
        Some(ProcessId { pid, start_time: start_time(pid)? })
    }

    fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time) && !is_zombie(self.pid)
    }

    /// SIGTERM, then SIGKILL after the grace period.
    fn stop(&self, what: &str) {
        if !self.alive() {
            return;
        }
        // SAFETY: kill(2) on a PID whose start time says it is still the process we saw start.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        if !super::namespace::wait_until(STOP_GRACE, || !self.alive()) {
            tracing::warn!("{what} (pid {}) did not exit within {STOP_GRACE:?} of SIGTERM: killing it", self.pid);
            // SAFETY: as above.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
            super::namespace::wait_until(Duration::from_secs(5), || !self.alive());
        }
    }
}

/// The child of `parent` whose command name is `comm` (dockerd's supervised containerd).
fn child_named(parent: u32, comm: &str) -> Option<ProcessId> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).find_map(|pid| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && name == comm).then(|| ProcessId::of(pid)).flatten()
    })
}

/// The containerd shims serving the containerd at `address` in mount namespace `mnt_ns`: only
/// the harness's dockerd started that containerd, so they are the harness's.
fn shims_of(mnt_ns: &str, address: &str) -> Vec<ProcessId> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).map(|l| l.display().to_string());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            comm.starts_with("containerd-shim")
                && ns.is_ok_and(|n| n == mnt_ns)
                && args.windows(2).any(|w| w[0] == b"-address" && w[1] == address.as_bytes())
        })
        .filter_map(ProcessId::of)
        .collect()
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks after boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split_whitespace().nth(19)?.parse().ok()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(false)
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
    fn a_stopped_child_is_reaped_and_a_gone_process_is_not_alive() {
        let child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let id = ProcessId::of(pid).unwrap();
        assert!(id.alive());
        let slot = Mutex::new(Some(child));
        super::super::exec::stop_child(&slot, "sleep", STOP_GRACE);
        assert!(!id.alive());
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
