//! The stacks of a run: each opened once (provisioned first when needed), with its dockerd
//! started when a docker cell needs it and each engine's base image ensured; a stack that
//! cannot be opened is remembered, so each of its cells says why.

use crate::events::Events;
use crate::host::HostFacts;
use crate::process::Transcript;
use crate::stack::{Cache, Session};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub enum StackState {
    Open {
        session: Box<Session>,
        /// Engine -> the tag of its base image in this stack.
        bases: HashMap<String, String>,
    },
    /// Opening failed: every cell of the stack is an error with this message.
    Broken(String),
}

pub struct Stacks {
    cache: Cache,
    events: Events,
    host: HostFacts,
    /// The run's directory, where each stack's dockerd logs.
    run_dir: PathBuf,
    states: HashMap<String, StackState>,
}

impl Stacks {
    pub fn new(cache: Cache, events: Events, host: HostFacts, run_dir: PathBuf) -> Stacks {
        Stacks { cache, events, host, run_dir, states: HashMap::new() }
    }

    /// The open stack `name`, with the base image of each engine ensured so far.
    pub fn get(&self, name: &str) -> Option<(&Session, &HashMap<String, String>)> {
        match self.states.get(name) {
            Some(StackState::Open { session, bases }) => Some((session, bases)),
            _ => None,
        }
    }

    /// Opens the stack (once per run), starts the engine's daemon if it has one (docker), and
    /// ensures the engine's base image, unless nothing can run on it here and `for_vm` is
    /// false. `log_dir` is the cell's (dockerd's log goes there inside a VM guest).
    /// A derived stack (`derivation`) is built first when its components are not built yet.
    pub async fn ensure(
        &mut self,
        stack: &str,
        derivation: Option<&crate::plan::Derivation>,
        engine: &str,
        for_vm: bool,
        log_dir: &Path,
    ) -> Result<(), String> {
        let (cache, events) = (&self.cache, &self.events);
        if !self.states.contains_key(stack) {
            let state = match crate::build::open(stack, derivation, cache, events).await {
                Err(e) => StackState::Broken(format!("failed to open the {stack} stack: {e:#}")),
                Ok(session) => StackState::Open { session: Box::new(session), bases: HashMap::new() },
            };
            self.states.insert(stack.to_string(), state);
        }
        // dockerd's log: one per stack in the run; in a VM guest (one cell) with the cell's logs.
        let daemon_log = match self.host.guest {
            Some(_) => log_dir.join("dockerd.log"),
            None => self.run_dir.join(format!("dockerd-{stack}.log")),
        };
        let (session, bases) = match self.states.get_mut(stack).expect("inserted above") {
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
            let started = events.timed(stack, "dockerd", async {
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

    /// The private mount namespaces of the stacks opened so far.
    pub fn namespaces(&self) -> Vec<String> {
        self.states
            .values()
            .filter_map(|s| match s {
                StackState::Open { session, .. } => session.mount_namespace(),
                StackState::Broken(_) => None,
            })
            .collect()
    }

    /// Closes every stack, removing what the run made there.
    pub fn close(&mut self) {
        self.states.clear();
    }
}
