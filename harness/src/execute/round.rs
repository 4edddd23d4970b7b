//! One round of a cell, step by step: what is read before the checkpoint, the checkpoint, the
//! restore, and the verification after it. Each step records what it saw on the round's record.

use super::fault::Fault;
use super::outcome::Failure;
use super::spec::{container_name, CellContainers, CellSpec};
use super::verify;
use crate::engine::{CheckpointMode, CriuOptions, Engine, RunRequest, StepReport};
use crate::events::{Event, Events};
use crate::observe::{freezer, Probe};
use crate::record::{RoundFailure, RoundRecord, SignatureHit};
use crate::scenario::{FailStep, PrecheckStep, Stress, VerifyStep};
use crate::stack::Session;
use crate::text::one_line;
use std::path::Path;

/// What every round of a cell shares.
pub struct RoundContext<'a> {
    pub engine: &'a dyn Engine,
    pub session: &'a Session,
    pub spec: &'a CellSpec<'a>,
    pub events: &'a Events,
    pub containers: &'a CellContainers,
    pub probe: &'a Probe<'a>,
    /// The request the workload was started with (a `restart` fault starts it again).
    pub request: &'a RunRequest,
    /// `CRIU_MATRIX_FAULT`: the harness's self-check, when this run is one.
    pub fault: Option<Fault>,
}

impl RoundContext<'_> {
    /// One round: checkpoint, restore, verify. Records the round in `rounds`; returns its
    /// failure, if it failed. `name` becomes the restored container's name with an export.
    pub async fn run(
        &self,
        round: u32,
        name: &mut String,
        rounds: &mut Vec<RoundRecord>,
    ) -> anyhow::Result<Option<Failure>> {
        // A precheck began round 1's record with what it found.
        let begun = rounds.last().is_some_and(|r| r.round == round);
        let mut record =
            if begun { rounds.pop().expect("checked") } else { RoundRecord { round, ..RoundRecord::default() } };
        if let Err(message) = self.before_checkpoint(round, name, &mut record).await {
            let _ = std::fs::write(self.spec.log_dir.join(format!("round{round}-before-checkpoint.txt")), &message);
            rounds.push(record);
            return Ok(Some(Failure { round, step: FailStep::BeforeCheckpoint, message, evidence: String::new() }));
        }
        let archive = format!("/tmp/{name}.tar.gz");
        let mode = if self.spec.scenario.checkpoint.export {
            CheckpointMode::Export { archive: &archive }
        } else {
            CheckpointMode::InPlace
        };
        let failure = match self.checkpoint(round, name, mode, &mut record).await? {
            Some(failure) => Some(failure),
            None => match self.restore(round, name, mode, &mut record).await? {
                Some(failure) => Some(failure),
                None => self.verify(round, name, &mut record).await,
            },
        };
        rounds.push(record);
        Ok(failure)
    }

    fn counter_path(&self) -> Option<&str> {
        self.spec.scenario.witness.as_deref()
    }

    fn criu_options(&self) -> CriuOptions {
        let s = self.spec.scenario;
        let c = &s.checkpoint;
        CriuOptions {
            tcp_established: c.tcp_established,
            leave_running: c.leave_running || self.fault == Some(Fault::NoRestore),
            file_locks: c.file_locks,
            with_previous: c.pre_checkpoint,
            ignore_volumes: c.ignore_volumes,
            ignore_rootfs: c.ignore_rootfs,
            compress: c.compress,
            keep_log: s.stress.is_some(),
        }
    }

    /// What is read before the checkpoint: the witness and the container's first process (a
    /// failed reading fails the round: a restore could not be judged without it), the tasks'
    /// states (stress cells), the pidfds held (after round 1, whose precheck read them), the
    /// PIDs of named processes.
    async fn before_checkpoint(&self, round: u32, name: &str, record: &mut RoundRecord) -> Result<(), String> {
        let (s, probe) = (self.spec.scenario, self.probe);
        let init = probe.init_process(name).await.map_err(|e| format!("witness: before the checkpoint: {e}"))?;
        record.init_before = Some(init);
        if let Some(path) = self.counter_path() {
            let command = self.engine.read_file_command(name, path);
            self.spec.transcript.push_equivalent("the witness before the checkpoint: `ID COUNT`", &command);
            let seen = probe.witness(name, path).await.map_err(|e| format!("witness: before the checkpoint: {e}"))?;
            record.counter_before = Some(seen.count);
            record.witness_before = Some(seen.id);
        }
        if s.verify.iter().any(|v| matches!(v, VerifyStep::Mounts(_))) {
            record.mounts_before =
                probe.mounts(name).await.map_err(|e| format!("the mount table before the checkpoint: {e}"))?;
        }
        for check in &s.before_checkpoint {
            let limit = s.timeouts.verify;
            verify::exec(probe, name, check, limit, "before-checkpoint", record).await.map_err(|f| f.message)?;
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
        Ok(())
    }

    /// The checkpoint, its figures, and for a stress cell how long its freezer took.
    async fn checkpoint(
        &self,
        round: u32,
        name: &str,
        mode: CheckpointMode<'_>,
        record: &mut RoundRecord,
    ) -> anyhow::Result<Option<Failure>> {
        let s = self.spec.scenario;
        if s.checkpoint.pre_checkpoint {
            let archive = match mode {
                CheckpointMode::Export { archive } => Some(crate::engine::previous_archive(archive)),
                CheckpointMode::InPlace => None,
            };
            let pre = self.engine.pre_checkpoint(name, archive.as_deref(), s.timeouts.checkpoint).await?;
            record.pre_checkpoint_seconds = Some(pre.output.seconds);
            if !pre.output.success() {
                return Ok(Some(failed(self.spec, round, FailStep::Checkpoint, &pre)));
            }
        }
        let dumped = self.engine.checkpoint(name, mode, self.criu_options(), s.timeouts.checkpoint).await?;
        record.checkpoint_seconds = Some(dumped.output.seconds);
        if let CheckpointMode::Export { archive } = mode {
            record.checkpoint_bytes = std::fs::metadata(self.session.host_path(archive)).ok().map(|m| m.len());
        }
        record.checkpoint_stats = dumped.stats.clone();
        let seconds = dumped.output.seconds;
        self.events.emit(Event::Step { name: self.spec.name, round, step: "checkpoint", seconds });
        if !dumped.output.success() {
            return Ok(Some(failed(self.spec, round, FailStep::Checkpoint, &dumped)));
        }
        if s.checkpoint.leave_running {
            // `--leave-running`: the checkpointed container must still run, its witness going on.
            if let (Some(path), Some(id), Some(count)) =
                (self.counter_path(), &record.witness_before, record.counter_before)
            {
                let before = crate::observe::WitnessReading { id: id.clone(), count };
                let kept = verify::witness_continued(self.probe, name, path, &before, s.timeouts.verify).await;
                if let Err(e) = kept {
                    let message =
                        format!("the container did not keep running after a checkpoint with --leave-running: {e}");
                    return Ok(Some(Failure { round, step: FailStep::Checkpoint, message, evidence: String::new() }));
                }
                record.left_running = Some(true);
            }
        }
        if let (Some(_), Some(log)) = (&s.stress, &dumped.criu_log) {
            // How long a successful dump saw the v1 freezer in FREEZING: a slow freeze keeps its log.
            let polls = freezer::freezing_polls(log);
            record.freezing_polls = Some(polls);
            if polls >= freezer::SLOW_FREEZE_POLLS {
                let _ = std::fs::write(self.spec.log_dir.join(format!("round{round}-dump.log")), log);
            }
        }
        Ok(None)
    }

    /// The restore: in place, or into a new container from the exported archive (the
    /// checkpointed original is removed then, and `name` becomes the new container's).
    async fn restore(
        &self,
        round: u32,
        name: &mut String,
        mode: CheckpointMode<'_>,
        record: &mut RoundRecord,
    ) -> anyhow::Result<Option<Failure>> {
        let (s, engine) = (self.spec.scenario, self.engine);
        let export = matches!(mode, CheckpointMode::Export { .. });
        if self.fault == Some(Fault::NoRestore) {
            // The container was left running: nothing is restored, and the verification must
            // see that.
            self.spec.transcript.push_equivalent("fault no-restore: the restore is skipped", "true");
            if let CheckpointMode::Export { archive } = mode {
                let _ = std::fs::remove_file(self.session.host_path(archive));
            }
            return Ok(None);
        }
        let new_name = if export { container_name(self.spec.name, round + 1) } else { name.clone() };
        if export {
            self.containers.add(&new_name);
        }
        let restored = match self.fault {
            Some(Fault::Restart) => self.start_again(name, &new_name, export).await?,
            _ => engine.restore(name, &new_name, mode, self.criu_options(), s.timeouts.restore).await?,
        };
        if let CheckpointMode::Export { archive } = mode {
            let _ = std::fs::remove_file(self.session.host_path(archive));
            let _ = std::fs::remove_file(self.session.host_path(&crate::engine::previous_archive(archive)));
        }
        record.restore_seconds = Some(restored.output.seconds);
        record.restore_stats = restored.stats.clone();
        let seconds = restored.output.seconds;
        self.events.emit(Event::Step { name: self.spec.name, round, step: "restore", seconds });
        if !restored.output.success() {
            return Ok(Some(failed(self.spec, round, FailStep::Restore, &restored)));
        }
        if export {
            // The checkpointed original stays behind as an exited container; the new one carries on.
            let original = std::slice::from_ref(&*name);
            self.spec.transcript.push_equivalent("remove the checkpointed original", &engine.remove_command(original));
            engine.remove_blocking(original);
            *name = new_name;
        }
        Ok(None)
    }

    /// Fault `restart`: instead of a restore, the same image started again with the same name and
    /// arguments (in place, the checkpointed container is removed first), and waited for as a
    /// first start is. Reported as the restore step.
    async fn start_again(&self, name: &str, new_name: &str, export: bool) -> anyhow::Result<StepReport> {
        let engine = self.engine;
        if !export {
            let this = std::slice::from_ref(&name.to_string()).to_vec();
            self.spec
                .transcript
                .push_equivalent("fault restart: remove the checkpointed container", &engine.remove_command(&this));
            engine.remove_blocking(&this);
        }
        let request = RunRequest { name: new_name.to_string(), ..self.request.clone() };
        let output = engine.run(&request, self.spec.scenario.timeouts.start).await?;
        if output.success() {
            if let Err(message) = super::ready::wait_ready(self.probe, self.spec, new_name).await {
                anyhow::bail!("fault restart: the workload started again was not ready: {message}");
            }
        }
        Ok(StepReport { output, stats: Default::default(), criu_log: None, daemon_log: None })
    }

    /// The checks after the restore (see `verify`); a failed one keeps its message as a file.
    async fn verify(&self, round: u32, name: &str, record: &mut RoundRecord) -> Option<Failure> {
        let s = self.spec.scenario;
        self.record_verify_commands(name);
        let cgroup = &self.session.facts.cgroup;
        let (log_dir, limit) = (self.spec.log_dir, s.timeouts.verify);
        let verified = verify::after_restore(self.probe, name, s, record, cgroup, log_dir, limit).await;
        keep_final_screenshot(log_dir, record);
        let failed = verified.err()?;
        let _ = std::fs::write(log_dir.join(format!("round{round}-verify.txt")), &failed.message);
        Some(Failure { round, step: FailStep::Verify, message: failed.message, evidence: failed.evidence })
    }

    /// The plain commands a person would run for the checks the harness makes through /proc.
    fn record_verify_commands(&self, name: &str) {
        let (s, engine, transcript) = (self.spec.scenario, self.engine, self.spec.transcript);
        let init = host_pid_command(engine, name);
        transcript.push_equivalent(
            "the container's first process after the restore: another host process than before the checkpoint",
            &format!("echo {init}; cut -d' ' -f22 /proc/{init}/stat"),
        );
        if let Some(path) = self.counter_path() {
            let command = engine.read_file_command(name, path);
            transcript.push_equivalent(
                "the witness after the restore: the same ID, the COUNT not lower, then growing",
                &command,
            );
        }
        if s.verify.iter().any(|v| matches!(v, VerifyStep::CgroupPlacement(_))) {
            let command = engine.process_cgroups_command(name);
            transcript.push_equivalent("where each process of the container is in the cgroup tree", &command);
        }
        for step in &s.verify {
            if let VerifyStep::Vnc(vnc) = step {
                let viewer = format!(
                    "nsenter --net=/proc/{}/ns/net vncviewer 127.0.0.1::{}  # password: {}",
                    host_pid_command(engine, name),
                    vnc.port(),
                    vnc.password.as_deref().unwrap_or("(none)")
                );
                transcript.push_equivalent("look at the desktop with a VNC viewer", &viewer);
            }
        }
    }

    /// After a refused checkpoint the clause expected (`verify_after`): the workload still runs
    /// as it was, its witness going on under the same identity (no restore happened, so its
    /// first process is the same) and the scenario's `exec` checks holding.
    pub async fn verify_after_failure(
        &self,
        name: &str,
        record: &mut RoundRecord,
    ) -> Result<(), verify::VerifyFailure> {
        let s = self.spec.scenario;
        let limit = s.timeouts.verify;
        if let (Some(path), Some(id), Some(count)) =
            (self.counter_path(), record.witness_before.clone(), record.counter_before)
        {
            let before = crate::observe::WitnessReading { id, count };
            verify::witness_continued(self.probe, name, path, &before, limit).await?;
        }
        for step in &s.verify {
            if let VerifyStep::Exec(check) = step {
                verify::exec(self.probe, name, check, limit, "verify", record).await?;
            }
        }
        Ok(())
    }

    /// After a failed checkpoint of a stress cell: the freezer must be thawed (the harness thaws
    /// it if not, and records what it found) and the workload still running, its counter not
    /// lower than before and growing. `Err` says why the cell cannot go on.
    pub async fn after_failed_checkpoint(&self, name: &str, record: &mut RoundRecord) -> Result<(), String> {
        let s = self.spec.scenario;
        record.freezer_after = Some(match self.probe.freezer(name).await {
            Ok(control) => control.check_and_thaw(),
            Err(e) => e,
        });
        self.spec.transcript.push_equivalent(
            "after the failed checkpoint: is the workload still running?",
            &self.engine.read_file_command(name, &s.ready.file),
        );
        match (self.counter_path(), record.witness_before.clone(), record.counter_before) {
            (Some(path), Some(id), Some(count)) => {
                let before = crate::observe::WitnessReading { id, count };
                let limit = s.timeouts.verify;
                verify::witness_continued(self.probe, name, path, &before, limit).await.map(|_| ())
            }
            _ => self.probe.pid(name).await.map(|_| ()),
        }
        .map_err(|e| format!("the workload did not survive the failed checkpoint: {e}"))
    }
}

/// The stress scenario's signatures a failed round's evidence shows, with the first line of each.
pub fn round_failure(stress: &Stress, failure: &Failure) -> RoundFailure {
    let signatures = stress
        .signatures
        .iter()
        .filter_map(|(name, pattern)| {
            let line = failure.evidence.lines().find(|l| pattern.is_match(l))?;
            Some(SignatureHit { name: name.clone(), line: one_line(line) })
        })
        .collect();
    RoundFailure { step: failure.step.to_string(), message: one_line(&failure.message), signatures }
}

/// The container's first process as the host sees it, as a shell substitution (both engines
/// have `inspect --format '{{.State.Pid}}'`).
pub fn host_pid_command(engine: &dyn Engine, name: &str) -> String {
    format!("$({} inspect --format '{{{{.State.Pid}}}}' {name})", engine.name())
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
