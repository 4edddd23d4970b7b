//! The driver of a cell's engine in its stack.

use super::docker::Docker;
use super::interface::Engine;
use super::podman::Podman;
use crate::process::Transcript;
use crate::stack::Session;
use std::sync::Arc;

/// The driver of `engine` in this stack (docker's needs the stack's dockerd started). Its
/// actions go into `transcript`.
pub fn for_stack(session: &Session, engine: &str, transcript: Arc<Transcript>) -> anyhow::Result<Box<dyn Engine>> {
    match engine {
        "podman" => Ok(Box::new(Podman::new(session.entry(), session.host_path("/"), transcript))),
        "docker" => {
            let daemon = session
                .docker()
                .ok_or_else(|| anyhow::anyhow!("the {} stack's dockerd is not running", session.name))?;
            let (client, root, log) = (daemon.client.clone(), session.host_path("/"), daemon.log.clone());
            Ok(Box::new(Docker::new(client, root, daemon.paths.exec_root.clone(), log, transcript)))
        }
        other => anyhow::bail!("engine `{other}` has no driver"),
    }
}
