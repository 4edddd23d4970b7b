//! One cell, from what it needs in the stack to the removal of everything it made.

use super::outcome::Outcome;
use super::spec::{CellContainers, CellSpec};
use super::{criu_config, rounds, stack_setup};
use crate::engine::Engine;
use crate::events::Events;
use crate::record::{CriuConfigRecord, RoundRecord};
use crate::scenario::stack_needs::CRIU_CONFIG_ANNOTATION;
use crate::stack::Session;

/// What a cell did: its outcome and the figures of each round that ran.
pub struct Execution {
    pub outcome: Outcome,
    pub rounds: Vec<RoundRecord>,
    /// The CRIU configuration in force while the container ran (or when setting it up failed).
    pub criu_config: CriuConfigRecord,
}

pub async fn execute(engine: &dyn Engine, session: &Session, spec: &CellSpec<'_>, events: &Events) -> Execution {
    // An option the engine does not have: the cell is refused, with why (nothing ran).
    let refused = spec.scenario.checkpoint.options().into_iter().find_map(|o| engine.lacks(o));
    if let Some(why) = refused {
        let outcome = Outcome::Skipped(why);
        return Execution { outcome, rounds: Vec::new(), criu_config: CriuConfigRecord::default() };
    }
    // Services and configuration first: the containers are removed before they go.
    let prepared = stack_setup::prepare(session, spec.scenario, spec.image_dir, spec.log_dir, spec.transcript).await;
    let annotation = spec.scenario.run.annotations.get(CRIU_CONFIG_ANNOTATION).map(|v| v.value.as_str());
    let criu_config = criu_config::in_force(&session.host_path("/"), annotation);
    let setup = match prepared {
        Ok(setup) => setup,
        Err(message) => {
            let outcome = Outcome::Error { step: "services".into(), message };
            return Execution { outcome, rounds: Vec::new(), criu_config };
        }
    };
    let containers = CellContainers::new(spec.name, engine.remover());
    let mut rounds = Vec::new();
    let ran = rounds::run(engine, session, spec, events, &containers, &setup.mounts, &mut rounds).await;
    let outcome = ran.unwrap_or_else(|e| Outcome::Error { step: "harness".to_string(), message: format!("{e:#}") });
    spec.transcript.push_equivalent("remove the containers", &engine.remove_command(&containers.names()));
    drop(containers);
    for (purpose, command) in setup.teardown.iter().rev() {
        spec.transcript.push_equivalent(purpose, command);
    }
    drop(setup);
    Execution { outcome, rounds, criu_config }
}
