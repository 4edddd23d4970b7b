//! Running one cell: start the workload, wait until it is ready, then rounds of
//! checkpoint -> restore -> verify. Every step has a time limit; whatever the cell created is
//! removed when it ends, however it ends.

mod criu_config;
mod freezer;
pub mod pidfds;
pub mod placement;
mod rfb;
mod surroundings;
pub mod tasks;
mod verify;
mod vnc;

use crate::cleanup;
use crate::engine::{CheckpointMode, CriuOptions, Engine, RunRequest, StepReport};
use crate::events::{Event, Events};
use crate::record::{CriuConfigRecord, RoundFailure, RoundRecord, SignatureHit};
use crate::scenario::surroundings::CRIU_CONFIG_ANNOTATION;
use crate::scenario::{FailStep, PrecheckStep, Scenario, VerifyStep};
use crate::stack::Session;
use crate::verdict::{Failure, Outcome, StressRun};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use verify::{read_counter, Probe};

/// What a cell did: its outcome and the figures of each round that ran.
pub struct Execution {
    pub outcome: Outcome,
    pub rounds: Vec<RoundRecord>,
    /// The CRIU configuration in force while the container ran (or when setting it up failed).
    pub criu_config: CriuConfigRecord,
}

/// The containers of one cell. Dropping it removes them (also on panic, timeout or interrupt).
struct CellContainers {
    names: Arc<Mutex<Vec<String>>>,
    _guard: cleanup::Guard,
}

impl CellContainers {
    fn new(cell: &str, remover: crate::engine::Remover) -> CellContainers {
        let names: Arc<Mutex<Vec<String>>> = Arc::default();
        let owned = names.clone();
        let guard = cleanup::on_cleanup(format!("remove the containers of {cell}"), move || {
            let names = owned.lock().unwrap_or_else(|p| p.into_inner()).clone();
            remover(&names);
        });
        CellContainers { names, _guard: guard }
    }

    fn add(&self, name: &str) {
        self.names.lock().unwrap_or_else(|p| p.into_inner()).push(name.to_string());
    }
}

pub struct CellSpec<'a> {
    pub name: &'a str,
    /// The cell's commands, for the reproducer (shared with the engine driver).
    pub transcript: &'a crate::stack::Transcript,
    pub scenario: &'a Scenario,
    pub runtime: &'a str,
    pub image: &'a str,
    /// The scenario's image directory (services copy their files from it).
    pub image_dir: &'a Path,
    /// Where the cell's logs go.
    pub log_dir: &'a Path,
}

pub async fn execute<E: Engine>(engine: &E, session: &Session, spec: &CellSpec<'_>, events: &Events) -> Execution {
    // Services and configuration first: the containers are removed before they go.
    let prepared = surroundings::prepare(session, spec.scenario, spec.image_dir, spec.log_dir, spec.transcript).await;
    let annotation = spec.scenario.run.annotations.get(CRIU_CONFIG_ANNOTATION).map(|v| v.value.as_str());
    let criu_config = criu_config::in_force(&session.host_path("/"), annotation);
    let around = match prepared {
        Ok(around) => around,
        Err(message) => {
            let outcome = Outcome::Error { step: "services".into(), message };
            return Execution { outcome, rounds: Vec::new(), criu_config };
        }
    };
    let containers = CellContainers::new(spec.name, engine.remover());
    let mut rounds = Vec::new();
    let outcome = match run_rounds(engine, session, spec, events, &containers, &around.mounts, &mut rounds).await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Error { step: "harness".to_string(), message: format!("{e:#}") },
    };
    let names = containers.names.lock().unwrap_or_else(|p| p.into_inner()).clone();
    spec.transcript.push_equivalent("remove the containers", &engine.remove_command(&names));
    drop(containers);
    for (purpose, command) in around.teardown.iter().rev() {
        spec.transcript.push_equivalent(purpose, command);
    }
    drop(around);
    Execution { outcome, rounds, criu_config }
}

/// A unique, valid container name for round `n` of a cell.
fn container_name(cell: &str, n: u32) -> String {
    let slug: String = cell.replace("::", "-").chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    format!("cm-{slug}-{}-{n}", std::process::id())
}

async fn run_rounds<E: Engine>(
    engine: &E,
    session: &Session,
    spec: &CellSpec<'_>,
    events: &Events,
    containers: &CellContainers,
    mounts: &[crate::engine::BindMount],
    rounds: &mut Vec<RoundRecord>,
) -> anyhow::Result<Outcome> {
    let s = spec.scenario;
    let mut name = container_name(spec.name, 1);
    containers.add(&name);
    let request = RunRequest {
        name: name.clone(),
        image: spec.image.to_string(),
        runtime: spec.runtime.to_string(),
        network: s.run.network,
        env: s.run.env.clone(),
        args: s.run.args.clone(),
        labels: vec![format!("criu-matrix.cell={}", spec.name)],
        annotations: s.run.annotations.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect(),
        mounts: mounts.to_vec(),
    };
    let started = engine.run(&request, s.timeouts.start).await?;
    if !started.success() {
        return Ok(Outcome::Error { step: "start".into(), message: started.failure_text() });
    }
    let probe = Probe::new(engine, session);
    let ready_file = &s.ready.file;
    spec.transcript.push_equivalent(
        "wait until the workload is ready",
        &format!("until {} >/dev/null 2>&1; do sleep 0.1; done", engine.read_file_command(&name, ready_file)),
    );
    if let Err(message) = probe.wait_ready(&name, &s.ready.file, s.ready.timeout).await {
        // What the workload printed is the evidence of why it never got ready.
        let printed = engine.logs(&name, Duration::from_secs(30)).await.ok();
        let printed = printed.map(|o| format!("{}{}", o.stdout, o.stderr)).unwrap_or_default();
        let _ = std::fs::write(spec.log_dir.join("container.log"), &printed);
        let tail: Vec<&str> = printed.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
        let message =
            if tail.is_empty() { message } else { format!("{message}; the workload printed:\n{}", tail.join("\n")) };
        return Ok(Outcome::Error { step: "ready".into(), message });
    }
    if !s.precheck.is_empty() {
        spec.transcript.push_equivalent("which processes of the container hold pidfds", &pidfds_command(engine, &name));
    }
    if let Err(message) = precheck(&probe, &name, s, rounds, spec.log_dir).await {
        let _ = std::fs::write(spec.log_dir.join("precheck.txt"), &message);
        return Ok(Outcome::Error { step: "precheck".into(), message });
    }
    let round_ctx = RoundContext { engine, session, spec, events, containers, probe: &probe };
    let Some(stress) = &s.stress else {
        for round in 1..=s.rounds {
            if let Some(failure) = round_ctx.run(round, &mut name, rounds).await? {
                return Ok(Outcome::Failed(failure));
            }
        }
        return Ok(Outcome::Passed { rounds: s.rounds });
    };
    // A stress cell: a failed checkpoint is counted and the rounds go on, as long as the workload
    // still runs (CRIU thaws and leaves it running when a dump fails).
    let mut thaw = probe.freezer(&name).await.ok().map(freezer::thaw_on_cleanup);
    let mut run = StressRun { planned: s.rounds, ran: 0, failures: Vec::new(), ended_early: None };
    for round in 1..=s.rounds {
        run.ran = round;
        let before = name.clone();
        let failure = round_ctx.run(round, &mut name, rounds).await?;
        if name != before {
            // Restored into a new container: its freezer is another cgroup.
            drop(thaw.take());
            thaw = probe.freezer(&name).await.ok().map(freezer::thaw_on_cleanup);
        }
        let Some(failure) = failure else { continue };
        let record = rounds.last_mut().expect("the round was recorded");
        record.failure = Some(round_failure(stress, &failure));
        let survived = if failure.step == FailStep::Checkpoint {
            round_ctx.after_failed_checkpoint(&name, record).await
        } else {
            Err(format!("round {round} {} failed: the container cannot go on", failure.step))
        };
        run.failures.push(failure);
        if let Err(why) = survived {
            run.ended_early = Some(format!("stopped after round {round}: {why}"));
            break;
        }
    }
    drop(thaw);
    Ok(Outcome::Stress(run))
}

/// What every round of a cell shares.
struct RoundContext<'a, E: Engine> {
    engine: &'a E,
    session: &'a Session,
    spec: &'a CellSpec<'a>,
    events: &'a Events,
    containers: &'a CellContainers,
    probe: &'a Probe<'a, E>,
}

impl<E: Engine> RoundContext<'_, E> {
    /// One round: checkpoint, restore, verify. Records the round in `rounds`; returns its
    /// failure, if it failed. `name` becomes the restored container's name with an export.
    async fn run(
        &self,
        round: u32,
        name: &mut String,
        rounds: &mut Vec<RoundRecord>,
    ) -> anyhow::Result<Option<Failure>> {
        let (engine, spec, probe) = (self.engine, self.spec, self.probe);
        let s = spec.scenario;
        let counter = s.verify.iter().find_map(|v| match v {
            VerifyStep::Counter(path) => Some(path.as_str()),
            _ => None,
        });
        let criu = CriuOptions { tcp_established: s.checkpoint.tcp_established, keep_log: s.stress.is_some() };
        // A precheck began round 1's record with what it found.
        let begun = rounds.last().is_some_and(|r| r.round == round);
        let mut record =
            if begun { rounds.pop().expect("checked") } else { RoundRecord { round, ..RoundRecord::default() } };
        if let Some(path) = counter {
            spec.transcript.push_equivalent("the counter before the checkpoint", &engine.read_file_command(name, path));
            record.counter_before = probe.counter(name, path).await.ok();
        }
        if s.stress.is_some() {
            record.tasks_before = probe.task_states(name).await.ok();
        }
        let watch_pidfds = s.precheck.iter().any(|p| matches!(p, PrecheckStep::PidfdHolders(_)));
        if watch_pidfds && round > 1 {
            record.pidfds = probe.pidfds(name).await.unwrap_or_default();
        }
        for step in &s.verify {
            if let VerifyStep::Running(names) = step {
                let before = probe.pids_named(name, &names.value).await.unwrap_or_default();
                for (comm, pids) in before {
                    record.running.entry(comm).or_default().before = pids;
                }
            }
        }
        let archive = format!("/tmp/{name}.tar.gz");
        let mode =
            if s.checkpoint.export { CheckpointMode::Export { archive: &archive } } else { CheckpointMode::InPlace };

        let dumped = engine.checkpoint(name, mode, criu, s.timeouts.checkpoint).await?;
        record.checkpoint_seconds = Some(dumped.output.seconds);
        if s.checkpoint.export {
            record.checkpoint_bytes = std::fs::metadata(self.session.host_path(&archive)).ok().map(|m| m.len());
        }
        record.checkpoint_stats = dumped.stats.clone();
        self.events.emit(Event::Step { name: spec.name, round, step: "checkpoint", seconds: dumped.output.seconds });
        if !dumped.output.success() {
            rounds.push(record);
            return Ok(Some(failed(spec, round, FailStep::Checkpoint, &dumped)));
        }
        if let (Some(_), Some(log)) = (&s.stress, &dumped.criu_log) {
            // How long a successful dump saw the v1 freezer in FREEZING: a slow freeze keeps its log.
            let polls = freezer::freezing_polls(log);
            record.freezing_polls = Some(polls);
            if polls >= freezer::SLOW_FREEZE_POLLS {
                let _ = std::fs::write(spec.log_dir.join(format!("round{round}-dump.log")), log);
            }
        }

        let new_name = if s.checkpoint.export { container_name(spec.name, round + 1) } else { name.clone() };
        if s.checkpoint.export {
            self.containers.add(&new_name);
        }
        let restored = engine.restore(name, &new_name, mode, criu, s.timeouts.restore).await?;
        if s.checkpoint.export {
            let _ = std::fs::remove_file(self.session.host_path(&archive));
        }
        record.restore_seconds = Some(restored.output.seconds);
        record.restore_stats = restored.stats.clone();
        self.events.emit(Event::Step { name: spec.name, round, step: "restore", seconds: restored.output.seconds });
        if !restored.output.success() {
            rounds.push(record);
            return Ok(Some(failed(spec, round, FailStep::Restore, &restored)));
        }
        if s.checkpoint.export {
            // The checkpointed original stays behind as an exited container; the new one carries on.
            let original = std::slice::from_ref(&*name);
            spec.transcript.push_equivalent("remove the checkpointed original", &engine.remove_command(original));
            engine.remove_blocking(original);
            *name = new_name;
        }

        if let Some(path) = counter {
            spec.transcript.push_equivalent(
                "the counter after the restore: not lower, then growing",
                &engine.read_file_command(name, path),
            );
        }
        if s.verify.iter().any(|v| matches!(v, VerifyStep::CgroupPlacement(_))) {
            spec.transcript.push_equivalent(
                "where each process of the container is in the cgroup tree",
                &engine.process_cgroups_command(name),
            );
        }
        for step in &s.verify {
            if let VerifyStep::Vnc(vnc) = step {
                let viewer = format!(
                    "nsenter --net=/proc/{}/ns/net vncviewer 127.0.0.1::{}  # password: {}",
                    host_pid_command(engine, name),
                    vnc.port(),
                    vnc.password.as_deref().unwrap_or("(none)")
                );
                spec.transcript.push_equivalent("look at the desktop with a VNC viewer", &viewer);
            }
        }
        let cgroup = &self.session.facts.cgroup;
        let limit = s.timeouts.verify;
        let verified = verify::after_restore(probe, name, &s.verify, &mut record, cgroup, spec.log_dir, limit).await;
        keep_final_screenshot(spec.log_dir, &record);
        rounds.push(record);
        if let Err(message) = verified {
            let _ = std::fs::write(spec.log_dir.join(format!("round{round}-verify.txt")), &message);
            return Ok(Some(Failure { round, step: FailStep::Verify, evidence: message.clone(), message }));
        }
        Ok(None)
    }

    /// After a failed checkpoint of a stress cell: the freezer must be thawed (the harness thaws
    /// it if not, and records what it found) and the workload still running, its counter not
    /// lower than before and growing. `Err` says why the cell cannot go on.
    async fn after_failed_checkpoint(&self, name: &str, record: &mut RoundRecord) -> Result<(), String> {
        let s = self.spec.scenario;
        record.freezer_after = Some(match self.probe.freezer(name).await {
            Ok(control) => control.check_and_thaw(),
            Err(e) => e,
        });
        self.spec.transcript.push_equivalent(
            "after the failed checkpoint: is the workload still running?",
            &self.engine.read_file_command(name, &s.ready.file),
        );
        let counter = s.verify.iter().find_map(|v| match v {
            VerifyStep::Counter(path) => Some(path.as_str()),
            _ => None,
        });
        match counter {
            Some(path) => {
                let limit = s.timeouts.verify;
                verify::counter_continued(self.probe, name, path, record.counter_before, limit).await.map(|_| ())
            }
            None => self.probe.pid(name).await.map(|_| ()),
        }
        .map_err(|e| format!("the workload did not survive the failed checkpoint: {e}"))
    }
}

/// The stress scenario's signatures a failed round's evidence shows, with the first line of each.
fn round_failure(stress: &crate::scenario::Stress, failure: &Failure) -> RoundFailure {
    let signatures = stress
        .signatures
        .iter()
        .filter_map(|(name, pattern)| {
            let line = failure.evidence.lines().find(|l| pattern.is_match(l))?;
            Some(SignatureHit { name: name.clone(), line: crate::verdict::one_line(line) })
        })
        .collect();
    RoundFailure { step: failure.step.to_string(), message: crate::verdict::one_line(&failure.message), signatures }
}

/// The checks before the first checkpoint. What they find is recorded with round 1 (pushed on
/// `rounds`), also when they fail: a cell without what its case needs is an `error`. A scenario
/// with a `vnc` step also gets a viewer's picture here (`screenshot-round0.png`), recorded and
/// not judged: it tells a desktop that lost its picture in a restore from one never drawn.
async fn precheck<E: Engine>(
    probe: &Probe<'_, E>,
    name: &str,
    s: &Scenario,
    rounds: &mut Vec<RoundRecord>,
    log_dir: &Path,
) -> Result<(), String> {
    let mut record = RoundRecord { round: 1, ..RoundRecord::default() };
    let mut result = Ok(());
    for step in &s.precheck {
        match step {
            PrecheckStep::PidfdHolders(count) => {
                // A desktop is still starting helpers when it is ready: wait for them, bounded.
                let started = std::time::Instant::now();
                loop {
                    record.pidfds = probe.pidfds(name).await?;
                    if record.pidfds.len() >= count.at_least as usize {
                        break;
                    }
                    if started.elapsed() > s.timeouts.verify {
                        result = Err(format!(
                            "the container's processes hold {} pidfds, fewer than the {} this case needs \
                             (waited {:.0}s): nothing here exercises CRIU's pidfd support",
                            record.pidfds.len(),
                            count.at_least,
                            s.timeouts.verify.as_secs_f64()
                        ));
                        break;
                    }
                    tokio::time::sleep(POLL * 10).await;
                }
            }
        }
    }
    if result.is_ok() {
        for step in &s.verify {
            if let VerifyStep::Vnc(check) = step {
                match probe.vnc(name, check, 0, log_dir, s.timeouts.verify).await {
                    Ok(seen) => record.vnc_before = Some(seen),
                    Err(e) => tracing::info!("no VNC picture before the first checkpoint: {e}"),
                }
            }
        }
    }
    if !s.precheck.is_empty() || record.vnc_before.is_some() {
        rounds.push(record);
    }
    result
}

/// The container's first process as the host sees it, as a shell substitution (both engines
/// have `inspect --format '{{.State.Pid}}'`).
fn host_pid_command<E: Engine>(engine: &E, name: &str) -> String {
    format!("$({} inspect --format '{{{{.State.Pid}}}}' {name})", engine.name())
}

/// The shell equivalent of the `pidfd_holders` scan: every fd of the container's processes
/// whose link is a pidfd, with the `Pid:` line of its fdinfo.
fn pidfds_command<E: Engine>(engine: &E, name: &str) -> String {
    format!(
        "ns=$(readlink /proc/{}/ns/pid); for p in /proc/[0-9]*; do [ \"$(readlink $p/ns/pid)\" = \"$ns\" ] || continue; \
         for fd in $p/fd/*; do [ \"$(readlink $fd)\" = 'anon_inode:[pidfd]' ] && \
         echo \"$(cat $p/comm) ${{p#/proc/}} fd ${{fd##*/}} -> $(grep ^Pid: $p/fdinfo/${{fd##*/}})\"; done; done",
        host_pid_command(engine, name)
    )
}

/// The screenshot of the last round that took one is also `screenshot-final.png`.
fn keep_final_screenshot(log_dir: &Path, record: &RoundRecord) {
    if let Some(file) = record.vnc.as_ref().and_then(|v| v.screenshot.as_ref()) {
        let _ = std::fs::copy(log_dir.join(file), log_dir.join("screenshot-final.png"));
    }
}

/// A failed checkpoint or restore: keep its stderr and CRIU log as files and as evidence.
fn failed(spec: &CellSpec<'_>, round: u32, step: FailStep, report: &StepReport) -> Failure {
    let prefix = spec.log_dir.join(format!("round{round}-{step}"));
    let _ = std::fs::write(prefix.with_extension("stderr"), &report.output.stderr);
    if let Some(log) = &report.criu_log {
        let file = if step == FailStep::Checkpoint { "dump.log" } else { "restore.log" };
        let _ = std::fs::write(spec.log_dir.join(format!("round{round}-{file}")), log);
    }
    if let Some(log) = &report.daemon_log {
        let _ = std::fs::write(prefix.with_extension("daemon.log"), log);
    }
    Failure { round, step, message: report.output.failure_text(), evidence: report.evidence() }
}

/// How often readiness and progress are polled: short against every time limit in use.
pub(crate) const POLL: Duration = Duration::from_millis(100);
