//! The stacks of a run: each opened once (provisioned first when needed), with its dockerd
//! started when a docker cell needs it and each engine's base image ensured; a stack that
//! cannot be opened is remembered, so each of its cells says why.
//!
//! A stack is *leased*: a host-kernel cell holds its stack's lease while it runs, a VM group
//! while it builds its images and its stack disk (not while it boots: the VM runs on a pinned
//! copy-on-write disk). So the jobs of one run (`--jobs`) share a stack's session one at a time,
//! and a run that knows its plan closes a stack (its namespace, its lock in the cache) as soon as
//! the last of its users is done, so another run waiting for that stack gets it while this one
//! still boots VMs of it.

use crate::events::Events;
use crate::host::HostFacts;
use crate::process::Transcript;
use crate::stack::{Cache, Session};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub enum StackState {
    Open {
        session: Box<Session>,
        /// Engine -> the tag of its base image in this stack.
        bases: HashMap<String, String>,
    },
    /// Opening failed: every cell of the stack is an error with this message.
    Broken(String),
}

/// What opening a stack needs, shared by every slot.
struct Context {
    cache: Cache,
    events: Events,
    host: HostFacts,
    /// The run's directory, where each stack's dockerd logs.
    run_dir: PathBuf,
    /// The namespaces of the stacks open now, for the check that none keeps a process.
    namespaces: Mutex<Vec<String>>,
    /// Processes found in the namespace of a stack closed before the run ended, right after it closed.
    leaked: Mutex<Vec<u32>>,
}

/// One stack of the run, held by one job at a time (see [`Stacks::lease`]).
pub struct Slot {
    name: String,
    context: Arc<Context>,
    state: Option<StackState>,
    /// How many users (host-kernel cells, VM groups) of the plan are still to come; `None` when
    /// the plan is not known, and the stack stays open until the run ends.
    users: Option<usize>,
}

pub struct Stacks {
    context: Arc<Context>,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

/// A stack leased by one job: dropping it lets the next job have it.
pub type Lease = tokio::sync::OwnedMutexGuard<Slot>;

impl Stacks {
    pub fn new(cache: Cache, events: Events, host: HostFacts, run_dir: PathBuf) -> Stacks {
        let context = Context {
            cache,
            events,
            host,
            run_dir,
            namespaces: Mutex::new(Vec::new()),
            leaked: Mutex::new(Vec::new()),
        };
        Stacks { context: Arc::new(context), slots: Mutex::new(HashMap::new()) }
    }

    fn slot(&self, name: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Slot {
                    name: name.to_string(),
                    context: self.context.clone(),
                    state: None,
                    users: None,
                }))
            })
            .clone()
    }

    /// Waits until no other job of this run holds stack `name`, and takes it.
    pub async fn lease(&self, name: &str) -> Lease {
        self.slot(name).lock_owned().await
    }

    /// Says how many users of stack `name` the plan has: after the last one is done
    /// ([`Slot::done_with`]) the stack is closed.
    pub async fn expect_users(&self, name: &str, users: usize) {
        let mut slot = self.lease(name).await;
        slot.users = Some(slot.users.unwrap_or(0) + users);
    }

    /// The private mount namespaces of the stacks open now.
    pub fn namespaces(&self) -> Vec<String> {
        self.context.namespaces.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Processes left in the namespaces of stacks this run closed early (checked as each closed).
    pub fn leaked(&self) -> Vec<u32> {
        self.context.leaked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Closes every stack, removing what the run made there.
    pub fn close(&self) {
        let slots: Vec<_> = self.slots.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, s)| s).collect();
        for slot in slots {
            match slot.try_lock() {
                Ok(mut slot) => slot.state = None,
                Err(_) => tracing::warn!("a stack is still leased when the run ends; it closes with its holder"),
            }
        }
    }
}

impl Slot {
    /// The open stack, with the base image of each engine ensured so far.
    pub fn get(&self) -> Option<(&Session, &HashMap<String, String>)> {
        match &self.state {
            Some(StackState::Open { session, bases }) => Some((session, bases)),
            _ => None,
        }
    }

    /// One user of the plan is done with the stack; the last one closes it (its namespace and
    /// its lock in the cache), so another run can have it.
    pub fn done_with(&mut self) {
        if let Some(n) = self.users.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 && self.state.is_some() {
                tracing::info!("the {} stack has no more users in this run: closing it", self.name);
                self.close();
            }
        }
    }

    /// Closes the stack now and checks that its namespace kept no process.
    fn close(&mut self) {
        let namespace = self.get().and_then(|(session, _)| session.mount_namespace());
        self.state = None;
        if let Some(ns) = namespace {
            let leaked = crate::stack::namespace::namespace_processes(&ns);
            self.context.leaked.lock().unwrap_or_else(|p| p.into_inner()).extend(leaked);
            self.context.namespaces.lock().unwrap_or_else(|p| p.into_inner()).retain(|n| n != &ns);
        }
    }

    /// Opens the stack (once per run, or again after it was closed), starts the engine's daemon
    /// if it has one (docker), and ensures the engine's base image, unless nothing can run on it
    /// here and `for_vm` is false. `log_dir` is the cell's (dockerd's log goes there inside a VM
    /// guest). A derived stack (`derivation`) is built first when its components are not built yet.
    pub async fn ensure(
        &mut self,
        derivation: Option<&crate::plan::Derivation>,
        engine: &str,
        for_vm: bool,
        log_dir: &Path,
    ) -> Result<(), String> {
        let context = self.context.clone();
        let (cache, events) = (&context.cache, &context.events);
        let stack = self.name.clone();
        if self.state.is_none() {
            let state = match crate::build::open(&stack, derivation, cache, events).await {
                Err(e) => StackState::Broken(format!("failed to open the {stack} stack: {e:#}")),
                Ok(session) => {
                    if let Some(ns) = session.mount_namespace() {
                        context.namespaces.lock().unwrap_or_else(|p| p.into_inner()).push(ns);
                    }
                    StackState::Open { session: Box::new(session), bases: HashMap::new() }
                }
            };
            self.state = Some(state);
        }
        // dockerd's log: one per stack in the run; in a VM guest with the logs of the cell that started it.
        let daemon_log = match context.host.guest {
            Some(_) => log_dir.join("dockerd.log"),
            None => context.run_dir.join(format!("dockerd-{stack}.log")),
        };
        let (session, bases) = match self.state.as_mut().expect("set above") {
            StackState::Broken(message) => return Err(message.clone()),
            StackState::Open { session, bases } => (session, bases),
        };
        // A stack where nothing can run needs no daemon and no base image: its cells are skipped.
        let Some(program) = crate::axes::ENGINES.iter().find(|e| e.name == engine).map(|e| e.program) else {
            return Ok(());
        };
        let runnable = session.facts.tools.contains_key(program)
            && (for_vm || session.facts.criu_check.as_ref().is_some_and(|c| c.ok));
        if bases.contains_key(engine) || !runnable {
            return Ok(());
        }
        if engine == "docker" {
            let started = events.timed(&stack, "dockerd", async {
                let was_running = session.docker().is_some();
                session.ensure_docker(&daemon_log).await.map(|_| ((), was_running))
            });
            started.await.map_err(|e| format!("failed to start dockerd: {e:#}"))?;
        }
        let driver =
            crate::engine::for_stack(session, engine, Arc::new(Transcript::default())).map_err(|e| format!("{e:#}"))?;
        let tag = crate::image::ensure_base(driver.as_ref(), session, cache, events)
            .await
            .map_err(|e| format!("failed to make the {engine} base image: {e:#}"))?;
        bases.insert(engine.to_string(), tag);
        Ok(())
    }
}
