//! The workload's start, its readiness, the checks before the first checkpoint, then the
//! rounds: until the first failure, or (a stress cell) on after a failed checkpoint while the
//! workload still runs.

use super::outcome::{Outcome, StressRun};
use super::round::{round_failure, RoundContext};
use super::spec::{container_name, CellContainers, CellSpec};
use crate::engine::{BindMount, Engine, RunRequest};
use crate::events::Events;
use crate::observe::{freezer, Probe};
use crate::record::RoundRecord;
use crate::scenario::FailStep;
use crate::stack::Session;

pub async fn run(
    engine: &dyn Engine,
    session: &Session,
    spec: &CellSpec<'_>,
    events: &Events,
    containers: &CellContainers,
    mounts: &[BindMount],
    rounds: &mut Vec<RoundRecord>,
) -> anyhow::Result<Outcome> {
    let s = spec.scenario;
    let fault = match super::fault::Fault::from_env() {
        Ok(fault) => fault,
        Err(message) => return Ok(Outcome::Error { step: "harness".into(), message }),
    };
    let mut name = container_name(spec.name, 1);
    containers.add(&name);
    let request = run_request(spec, &name, mounts);
    let started = engine.run(&request, s.timeouts.start).await?;
    if !started.success() {
        return Ok(Outcome::Error { step: "start".into(), message: started.failure_text() });
    }
    let probe = Probe::new(engine, session);
    if let Err(message) = super::ready::wait_ready(&probe, spec, &name).await {
        return Ok(Outcome::Error { step: "ready".into(), message });
    }
    if let Err(message) = super::precheck::run(&probe, spec, &name, rounds).await {
        let _ = std::fs::write(spec.log_dir.join("precheck.txt"), &message);
        return Ok(Outcome::Error { step: "precheck".into(), message });
    }
    let round = RoundContext { engine, session, spec, events, containers, probe: &probe, request: &request, fault };
    match s.stress {
        None => {
            for n in 1..=s.rounds {
                if let Some(failure) = round.run(n, &mut name, rounds).await? {
                    if spec.verify_after_failure && failure.step == FailStep::Checkpoint {
                        let record = rounds.last_mut().expect("the round was recorded");
                        let checked = round.verify_after_failure(&name, record).await;
                        record.verified_after_failure = Some(checked.is_ok());
                        if let Err(why) = checked {
                            let message = format!("after the refused checkpoint: {}", why.message);
                            return Ok(Outcome::Failed(super::outcome::Failure {
                                round: n,
                                step: FailStep::Verify,
                                message,
                                evidence: why.evidence,
                            }));
                        }
                    }
                    return Ok(Outcome::Failed(failure));
                }
            }
            Ok(Outcome::Passed { rounds: s.rounds })
        }
        Some(_) => stress_rounds(&round, &probe, &mut name, rounds).await,
    }
}

/// The container's request: the scenario's workload, labelled with the cell.
fn run_request(spec: &CellSpec<'_>, name: &str, mounts: &[BindMount]) -> RunRequest {
    let s = spec.scenario;
    RunRequest {
        name: name.to_string(),
        image: spec.image.to_string(),
        runtime: spec.runtime.to_string(),
        network: s.run.network,
        env: s.run.env.clone(),
        args: s.run.args.clone(),
        labels: vec![format!("criu-matrix.cell={}", spec.name)],
        annotations: s.run.annotations.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect(),
        mounts: mounts.to_vec(),
        volumes: s.run.volumes.iter().map(|v| v.value.clone()).collect(),
    }
}

/// A stress cell: a failed checkpoint is counted and the rounds go on, as long as the workload
/// still runs (CRIU thaws and leaves it running when a dump fails).
async fn stress_rounds(
    round: &RoundContext<'_>,
    probe: &Probe<'_>,
    name: &mut String,
    rounds: &mut Vec<RoundRecord>,
) -> anyhow::Result<Outcome> {
    let s = round.spec.scenario;
    let stress = s.stress.as_ref().expect("a stress scenario");
    let mut thaw = probe.freezer(name).await.ok().map(freezer::thaw_on_cleanup);
    let mut run = StressRun { planned: s.rounds, ran: 0, failures: Vec::new(), ended_early: None };
    for n in 1..=s.rounds {
        run.ran = n;
        let before = name.clone();
        let failure = match round.run(n, name, rounds).await {
            Ok(failure) => failure,
            // The rounds recorded so far stay on the record (and in its `stress` figures).
            Err(e) => {
                let message =
                    format!("round {n}: {e:#} (after {} of {} rounds, {} failed)", n - 1, s.rounds, run.failures.len());
                drop(thaw);
                return Ok(Outcome::Error { step: "harness".into(), message });
            }
        };
        if *name != before {
            // Restored into a new container: its freezer is another cgroup.
            drop(thaw.take());
            thaw = probe.freezer(name).await.ok().map(freezer::thaw_on_cleanup);
        }
        let Some(failure) = failure else { continue };
        let record = rounds.last_mut().expect("the round was recorded");
        record.failure = Some(round_failure(stress, &failure));
        let survived = if failure.step == FailStep::Checkpoint {
            round.after_failed_checkpoint(name, record).await
        } else {
            Err(format!(
                "round {n} {} failed ({}): the container cannot go on",
                failure.step,
                crate::text::one_line(&failure.message)
            ))
        };
        run.failures.push(failure);
        if let Err(why) = survived {
            run.ended_early = Some(format!("stopped after round {n}: {why}"));
            break;
        }
    }
    drop(thaw);
    Ok(Outcome::Stress(run))
}
