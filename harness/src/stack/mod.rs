//! Stacks: where the engine, runtimes and CRIU come from. `host` is what is installed; a Debian
//! suite (`bookworm`, `trixie`, `sid`) is provisioned into the cache and entered through a
//! private mount namespace. A derived stack (components replaced, `trixie+criu=sid`) is entered
//! and probed the same way, from a rootfs `build` provisions (`open_derived`).

pub mod apt;
pub mod cache;
pub mod cgroups;
pub mod containers;
pub mod debian;
pub mod dockerd;
pub mod exec;
pub mod facts;
pub mod namespace;
pub mod toolroot;
pub mod variant;

pub use cache::Cache;
pub use exec::Entry;
pub use facts::{CellView, StackFacts};

use crate::axes::{StackSource, STACKS};
use crate::events::Events;
use anyhow::Context as _;
use std::path::PathBuf;

/// An entered stack: commands run in it, files are read from it, and leaving it removes
/// everything the harness made there.
pub struct Session {
    pub name: String,
    pub facts: StackFacts,
    /// The Debian suite the stack's own userland is (the base image of its containers).
    pub suite: String,
    /// Where each component came from (Debian's package, or an override), for every record.
    pub components: std::collections::BTreeMap<String, crate::record::ComponentOrigin>,
    /// Whether this stack is the root of the criu-matrix VM this process runs in.
    in_guest: bool,
    /// Whether the stack's root is this machine's own `/` (the `host` stack, a VM guest's).
    own_root: bool,
    /// The stack's dockerd, once a docker cell asked for it. Declared before `place`: it is
    /// stopped before the namespace it runs in goes.
    docker: Option<dockerd::Daemon>,
    /// Where docker's data root is kept for this stack (the cache), for a dockerd on the host.
    docker_root: PathBuf,
    /// `facts.json` in the cache, rewritten when dockerd adds its facts.
    facts_file: Option<PathBuf>,
    place: Place,
}

enum Place {
    /// A VM guest's own root: the VM is the stack's boundary.
    Host,
    /// A holder's mount and PID namespaces (every Debian stack, and the `host` stack).
    Namespace {
        holder: namespace::Holder,
        /// Held for the session: one run at a time per stack.
        _lock: std::fs::File,
    },
}

impl Session {
    /// A stack that is a VM guest's own root.
    fn in_guest(name: &str, facts: StackFacts, suite: String, docker_root: PathBuf) -> Session {
        Session {
            name: name.to_string(),
            facts,
            suite,
            components: variant::components(std::path::Path::new("/"), false),
            in_guest: true,
            own_root: true,
            docker: None,
            docker_root,
            facts_file: None,
            place: Place::Host,
        }
    }

    pub fn entry(&self) -> Entry {
        match &self.place {
            Place::Host => Entry::host(),
            Place::Namespace { holder, .. } => holder.entry(),
        }
    }

    /// The stack's private mount namespace (`mnt:[N]`), if it has one.
    pub fn mount_namespace(&self) -> Option<String> {
        match &self.place {
            Place::Host => None,
            Place::Namespace { holder, .. } => Some(holder.mnt_ns.clone()),
        }
    }

    /// Where the host sees a path of the stack.
    pub fn host_path(&self, inner: &str) -> PathBuf {
        match &self.place {
            Place::Host => PathBuf::from(inner),
            Place::Namespace { holder, .. } => holder.host_path(inner),
        }
    }

    /// The stack's dockerd, started now (logging to `log`) unless it runs already. Its facts join
    /// the stack's.
    pub async fn ensure_docker(&mut self, log: &std::path::Path) -> anyhow::Result<&dockerd::Daemon> {
        if self.docker.is_none() {
            let paths = match &self.place {
                // The host's own stack keeps clear of a system dockerd; a VM guest's root is the stack.
                _ if self.own_root && !self.in_guest => dockerd::DaemonPaths::on_host(&self.docker_root),
                _ => dockerd::DaemonPaths::standard(),
            };
            let daemon = dockerd::start(&self.name, &self.entry(), &self.host_path("/"), paths, log).await?;
            self.facts.docker = Some(daemon.facts.clone());
            if let Some(file) = &self.facts_file {
                let _ = std::fs::write(file, serde_json::to_string_pretty(&self.facts)?);
            }
            self.docker = Some(daemon);
        }
        Ok(self.docker.as_ref().expect("started above"))
    }

    /// The stack's dockerd, if it was started.
    pub fn docker(&self) -> Option<&dockerd::Daemon> {
        self.docker.as_ref()
    }

    /// How a person enters this stack by hand, for reproducers.
    pub fn how_to_enter(&self, cache: &Cache) -> String {
        let unshare = namespace::UNSHARE.join(" ");
        match &self.place {
            Place::Host => "# Run on the VM guest's own root.".to_string(),
            Place::Namespace { .. } if self.own_root => format!(
                "# Run on the host (stack `host`), as criu-matrix does in a PID namespace of its own:\n\
                 #   {unshare} -- sh -c \"$ENTER_SCRIPT\" enter\n# where ENTER_SCRIPT is:\n{}",
                namespace::HOST_ENTER_SCRIPT.lines().map(|l| format!("#   {l}\n")).collect::<String>()
            ),
            Place::Namespace { .. } => {
                let dir = cache.stack_dir(&self.name);
                let overrides: Vec<String> = self
                    .components
                    .iter()
                    .filter(|(_, o)| o.source != "debian" && o.source != "host")
                    .map(|(c, o)| format!("#   {c}: {}\n", o.summary()))
                    .collect();
                let rebuilt = if overrides.is_empty() {
                    String::new()
                } else {
                    format!(
                        "# Then, over Debian's packages (each Debian file diverted to FILE.distrib), the components\n\
                         # criu-matrix built or was given (harness/src/build/; records list each origin):\n{}",
                        overrides.concat()
                    )
                };
                format!(
                    "# The {name} stack is a Debian {suite} rootfs (debootstrap --variant=minbase --include={pkgs}).\n\
                     {rebuilt}\
                     # Enter it as criu-matrix does (private mount and PID namespaces, then pivot_root), then run the rest inside:\n\
                     #   {unshare} -- sh -c \"$ENTER_SCRIPT\" enter {root} {storage} {docker}\n\
                     # where ENTER_SCRIPT is:\n{script}",
                    name = self.name,
                    suite = self.suite,
                    pkgs = debian::Suite::find(&self.suite).map(|s| s.all_packages().join(",")).unwrap_or_default(),
                    root = dir.join("rootfs").display(),
                    storage = dir.join("storage").display(),
                    docker = dir.join("docker").display(),
                    script = namespace::ENTER_SCRIPT.lines().map(|l| format!("#   {l}\n")).collect::<String>(),
                )
            }
        }
    }
}

/// Opens a stack, provisioning it first when it is a Debian suite not yet in the cache. A derived
/// stack is opened through `build` (which provisions it with `open_derived`), except inside a VM,
/// where it is the guest's own root.
pub async fn open(name: &str, cache: &Cache, events: &Events) -> anyhow::Result<Session> {
    if let Some(session) = open_guest(name).await? {
        return Ok(session);
    }
    let stack = STACKS.iter().find(|s| s.name == name).with_context(|| {
        let known: Vec<&str> = STACKS.iter().map(|s| s.name).collect();
        format!("unknown stack `{name}` (known: {})", known.join(", "))
    })?;
    let dir = cache.stack_dir(name);
    let Some(suite) = stack.suite() else {
        // The host's own programs, in a PID namespace of their own (one run at a time: a
        // killed run's holder is recovered through the state file).
        std::fs::create_dir_all(&dir)?;
        let lock = lock(&dir.join("lock"), name, events, stack_wait()).await?;
        let holder = namespace::enter_host(&dir.join("holder.json")).await?;
        let facts = facts::probe(name, &holder.entry(), &holder.host_path("/")).await?;
        let suite = host_codename().unwrap_or_else(|| "bookworm".to_string());
        return Ok(Session {
            name: name.to_string(),
            facts,
            suite,
            components: variant::components(std::path::Path::new("/"), true),
            in_guest: false,
            own_root: true,
            docker: None,
            docker_root: dir.join("docker"),
            facts_file: None,
            place: Place::Namespace { holder, _lock: lock },
        });
    };
    anyhow::ensure!(
        matches!(stack.source, StackSource::Debian { .. }),
        "the {name} stack is derived: it is provisioned by its builds (`build::open`)"
    );
    let suite_def = debian::Suite::find(suite).with_context(|| format!("unknown suite `{suite}`"))?;
    open_at(name, suite, cache, events, |_| async move {
        debian::ensure_rootfs(cache, suite_def).await
    })
    .await
}

/// Inside a criu-matrix VM, the cell's stack is the guest's own root (a derived one too).
async fn open_guest(name: &str) -> anyhow::Result<Option<Session>> {
    if !crate::host::facts().guest.as_ref().is_some_and(|id| id.stack == name) {
        return Ok(None);
    }
    let suite = crate::axes::Stack::suite_of(name).with_context(|| format!("unknown stack `{name}`"))?;
    let facts = probe_host().await?;
    Ok(Some(Session::in_guest(name, facts, suite.to_string(), PathBuf::from("/var/lib/docker"))))
}

/// Opens a derived stack: `provision` makes its rootfs in the stack's own directory (given to
/// it) while the stack's lock is held, then the stack is entered and probed like any other.
pub async fn open_derived<F, Fut>(
    name: &str,
    suite: &str,
    cache: &Cache,
    events: &Events,
    provision: F,
) -> anyhow::Result<Session>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(PathBuf, bool)>>,
{
    if let Some(session) = open_guest(name).await? {
        return Ok(session);
    }
    open_at(name, suite, cache, events, provision).await
}

/// The stack `name` of `suite`, its rootfs provisioned by `provision` under the stack's lock.
async fn open_at<F, Fut>(name: &str, suite: &str, cache: &Cache, events: &Events, provision: F) -> anyhow::Result<Session>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(PathBuf, bool)>>,
{
    let dir = cache.stack_dir(name);
    std::fs::create_dir_all(&dir)?;
    let lock = lock(&dir.join("lock"), name, events, stack_wait()).await?;
    let rootfs = events.timed(name, "provision stack rootfs", provision(dir.clone())).await?;
    let holder =
        namespace::enter(name, &rootfs, &dir.join("storage"), &dir.join("docker"), &dir.join("holder.json")).await?;
    // Containers an earlier, killed run left in this stack's storage.
    namespace::remove_containers(&holder.entry(), holder.pid);
    let facts = facts::probe(name, &holder.entry(), &holder.host_path("/")).await?;
    std::fs::write(dir.join("facts.json"), serde_json::to_string_pretty(&facts)?)?;
    Ok(Session {
        name: name.to_string(),
        facts,
        suite: suite.to_string(),
        components: variant::components(&rootfs, false),
        in_guest: false,
        own_root: false,
        docker: None,
        docker_root: dir.join("docker"),
        facts_file: Some(dir.join("facts.json")),
        place: Place::Namespace { holder, _lock: lock },
    })
}

/// The host stack's facts, probed now.
pub async fn probe_host() -> anyhow::Result<StackFacts> {
    facts::probe("host", &Entry::host(), std::path::Path::new("/")).await
}

/// The facts recorded the last time a stack was opened, without entering it.
pub fn cached_facts(name: &str, cache: &Cache) -> Option<StackFacts> {
    let text = std::fs::read_to_string(cache.stack_dir(name).join("facts.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn host_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|l| l.strip_prefix("VERSION_CODENAME=")).map(|s| s.trim_matches('"').to_string())
}

/// How long a run waits for a stack another run holds: `CRIU_MATRIX_STACK_WAIT` (`0` fails at
/// once), else two hours.
fn stack_wait() -> std::time::Duration {
    std::env::var("CRIU_MATRIX_STACK_WAIT")
        .ok()
        .and_then(|v| crate::scenario::duration_text::parse(&v).ok())
        .unwrap_or(std::time::Duration::from_secs(2 * 3600))
}

/// An exclusive lock on the stack's lock file, held as long as the file is open (std's
/// `File::try_lock`, an `flock(2)`: the kernel drops it when the process dies, however it dies).
/// A stack another run holds is waited for (its PID is in the file), up to `wait`.
async fn lock(
    path: &std::path::Path,
    stack: &str,
    events: &Events,
    wait: std::time::Duration,
) -> anyhow::Result<std::fs::File> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    let started = std::time::Instant::now();
    let mut announced = false;
    while file.try_lock().is_err() {
        let holder = std::fs::read_to_string(path).unwrap_or_default().trim().to_string();
        if started.elapsed() >= wait {
            anyhow::bail!("the {stack} stack is in use by another criu-matrix run (pid {holder}) and was not freed within {wait:?}");
        }
        if !announced {
            let message = format!("the {stack} stack is in use by another criu-matrix run (pid {holder}): waiting up to {wait:?} (CRIU_MATRIX_STACK_WAIT)");
            events.emit(crate::events::Event::Warning { message: &message });
            announced = true;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_stack_is_waited_for_and_named_by_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let events = Events::default();
        let held = lock(&path, "trixie", &events, std::time::Duration::ZERO).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), std::process::id().to_string());
        let err = lock(&path, "trixie", &events, std::time::Duration::from_millis(1500)).await.unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())) && err.contains("not freed"), "{err}");
        // Released while another waits: the waiter gets it.
        let waiter = tokio::spawn(async move {
            let events = Events::default();
            lock(&dir.path().join("lock"), "trixie", &events, std::time::Duration::from_secs(30)).await.map(|_| dir)
        });
        drop(held);
        assert!(waiter.await.unwrap().is_ok());
    }
}
