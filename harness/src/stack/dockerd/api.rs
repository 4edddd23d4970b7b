//! dockerd's API client, as the harness's own housekeeping uses it: connecting to a stack's
//! socket, waiting until the daemon answers, asking what it is, and removing the harness's
//! containers (also blocking, for cleanup paths and a killed run's leftovers). Cells drive
//! dockerd through `engine::docker`.

use crate::process::Service;
use crate::stack::containers::LABEL;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Every API call of the harness's own housekeeping (listing, removing) has this limit.
const HOUSEKEEPING_LIMIT: Duration = Duration::from_secs(60);

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

/// A client of the daemon behind `socket` (a host path), speaking the newest API both know.
pub fn connect(socket: &Path) -> anyhow::Result<bollard::Docker> {
    let path = socket.to_str().context("the docker socket path is not UTF-8")?;
    Ok(bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)?)
}

/// Waits until the daemon behind `socket` answers, up to `limit`; fails early when it exited.
pub async fn wait_ready(
    socket: &Path,
    daemon: &Mutex<Service>,
    log: &Path,
    limit: Duration,
) -> anyhow::Result<bollard::Docker> {
    let started = Instant::now();
    loop {
        if socket.exists() {
            if let Ok(client) = connect(socket) {
                if client.ping().await.is_ok() {
                    return Ok(client.negotiate_version().await?);
                }
            }
        }
        let exited = daemon.lock().unwrap_or_else(|p| p.into_inner()).exited();
        if let Some(status) = exited {
            anyhow::bail!(
                "dockerd exited ({status}) before it answered; its log ({}):\n{}",
                log.display(),
                crate::stack::exec::log_tail(log)
            );
        }
        if started.elapsed() > limit {
            anyhow::bail!(
                "dockerd did not answer on {} within {}s; its log ({}):\n{}",
                socket.display(),
                limit.as_secs(),
                log.display(),
                crate::stack::exec::log_tail(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the daemon says of itself (`/version`, `/info`).
pub async fn probe(client: &bollard::Docker) -> anyhow::Result<DockerFacts> {
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
