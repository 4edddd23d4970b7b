//! A cell on the host kernel: its expectation and skip decided from the stack's facts, its
//! image built, then executed.

use super::to_record::Ran;
use crate::axes::Axis;
use crate::engine::Engine;
use crate::events::Events;
use crate::execute::{self, CellSpec, Outcome};
use crate::plan::Cell;
use crate::process::Transcript;
use crate::project::Project;
use crate::stack::{CellView, Session};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Runs a cell in its open stack (`session`, with its engines' base images `bases`).
pub async fn run(
    session: &Session,
    bases: &HashMap<String, String>,
    project: &Project,
    events: &Events,
    cell: &Cell,
    log_dir: &Path,
    transcript: &Arc<Transcript>,
) -> Ran {
    let (engine_name, runtime) = (&cell.key[Axis::Engine], &cell.key[Axis::Runtime]);
    let expectation = cell.scenario.expectation_for(&CellView { key: &cell.key, stack: &session.facts });
    let versions = versions_of(session, engine_name);
    if let Some(why) = session.facts.skip_reason(engine_name, runtime) {
        return Ran::before_container(Outcome::Skipped(why), expectation, versions);
    }
    if let Some(failure) = execute::criu_check_failure(&session.facts) {
        return Ran::before_container(Outcome::Failed(failure), expectation, versions);
    }
    let error = |step: &str, e: anyhow::Error| Outcome::Error { step: step.into(), message: format!("{e:#}") };
    let engine = match crate::engine::for_stack(session, engine_name, transcript.clone()) {
        Ok(engine) => engine,
        Err(e) => return Ran::before_container(error("engine", e), expectation, versions),
    };
    let image = match ensure_image(engine.as_ref(), session, bases, project, events, cell).await {
        Ok(image) => image,
        Err(e) => return Ran::before_container(error("image", e), expectation, versions),
    };
    let image_dir = project.images().join(&cell.scenario.image);
    let name = cell.name();
    let spec = CellSpec {
        name: &name,
        transcript,
        scenario: &cell.scenario,
        runtime,
        image: &image,
        image_dir: &image_dir,
        log_dir,
        verify_after_failure: expectation.verify_after,
    };
    let done = execute::execute(engine.as_ref(), session, &spec, events).await;
    Ran { outcome: done.outcome, rounds: done.rounds, expectation, versions, criu_config: Some(done.criu_config) }
}

/// Ensures the cell's scenario image in the stack, on the engine's base; returns its tag.
pub async fn ensure_image(
    engine: &dyn Engine,
    session: &Session,
    bases: &HashMap<String, String>,
    project: &Project,
    events: &Events,
    cell: &Cell,
) -> anyhow::Result<String> {
    let base = bases.get(&cell.key[Axis::Engine]).cloned().unwrap_or_default();
    crate::image::ensure_image(engine, session, &project.images(), &cell.scenario.image, &base, events).await
}

/// The versions a cell of `engine` records: the stack's, and for docker what its daemon says.
pub fn versions_of(session: &Session, engine: &str) -> BTreeMap<String, String> {
    let mut versions = session.facts.versions();
    if let Some(docker) = session.facts.docker.as_ref().filter(|_| engine == "docker") {
        versions.extend(docker.versions());
    }
    versions
}
