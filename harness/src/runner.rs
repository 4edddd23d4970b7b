//! The runner: drives planned cells through stacks, images and execution, classifies each, and
//! records it as it finishes. Shared by `criu-matrix run` and the `cargo test` entry point.

use crate::engine::{Docker, Driver, Podman};
use crate::events::{Event, Events};
use crate::execute::{self, CellSpec};
use crate::plan::{Cell, CellKey};
use crate::record::{CellRecord, FailureRecord, RunDir, StressRecord};
use crate::scenario::{CellFacts, Expectation, ExpectedOutcome};
use crate::stack::{self, Cache, Session, StackFacts, Transcript};
use crate::verdict::{self, Outcome};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Where the project's inputs are.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
}

impl Project {
    /// The directory holding `scenarios/`, `images/` and `matrices/`: `CRIU_MATRIX_PROJECT`, else
    /// the current directory or one of its parents.
    pub fn locate() -> anyhow::Result<Project> {
        if let Some(dir) = std::env::var_os("CRIU_MATRIX_PROJECT") {
            return Ok(Project { root: PathBuf::from(dir) });
        }
        let cwd = std::env::current_dir()?;
        cwd.ancestors()
            .find(|d| d.join("scenarios").is_dir() && d.join("matrices").is_dir())
            .map(|d| Project { root: d.to_path_buf() })
            .ok_or_else(|| {
                anyhow::anyhow!("failed to find scenarios/ and matrices/ here or above (set CRIU_MATRIX_PROJECT)")
            })
    }

    pub fn scenarios(&self) -> PathBuf {
        self.root.join("scenarios")
    }
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn results(&self) -> PathBuf {
        self.root.join("results")
    }
}

/// What running a cell came to, with what the classification and the record need.
struct Ran {
    outcome: Outcome,
    rounds: Vec<crate::record::RoundRecord>,
    expectation: Expectation,
    versions: std::collections::BTreeMap<String, String>,
    criu_config: Option<crate::record::CriuConfigRecord>,
}

impl Ran {
    /// A cell that ended before its stack was known: no expectation applies but "passes".
    fn before_stack(outcome: Outcome) -> Ran {
        Ran::before_container(outcome, Expectation::passes(), Default::default())
    }

    /// A cell that ended before its container was set up (skipped, or its image failed).
    fn before_container(
        outcome: Outcome,
        expectation: Expectation,
        versions: std::collections::BTreeMap<String, String>,
    ) -> Ran {
        Ran { outcome, rounds: Vec::new(), expectation, versions, criu_config: None }
    }
}

enum StackState {
    Open {
        session: Box<Session>,
        /// Engine -> the tag of its base image in this stack.
        bases: HashMap<String, String>,
    },
    /// Opening failed: every cell of the stack is an error with this message.
    Broken(String),
}

pub struct Runner {
    project: Project,
    cache: Cache,
    events: Events,
    pub run: RunDir,
    stacks: HashMap<String, StackState>,
}

/// A cell as a `when:` clause sees it: its axes, the stack's cgroup manager and tool versions.
pub struct Facts<'a> {
    pub key: &'a CellKey,
    pub stack: &'a StackFacts,
}

impl CellFacts for Facts<'_> {
    fn axis(&self, name: &str) -> Option<String> {
        match name {
            // Each engine has its own: podman's as `podman info` says, docker's cgroup driver.
            "cgroup_manager" => match (&self.stack.docker, self.key.engine.as_str()) {
                (Some(docker), "docker") => Some(docker.cgroup_driver.clone()),
                _ => Some(self.stack.cgroup_manager.clone()),
            },
            other => self.key.axis(other).map(String::from),
        }
    }
    fn tool_version(&self, tool: &str) -> Option<semver::Version> {
        self.stack.version(tool)
    }
}

impl Runner {
    pub fn new(project: Project, cache: Cache, events: Events) -> anyhow::Result<Runner> {
        let run = RunDir::create(&project.results())?;
        if let Some(message) = cache.low_space_warning() {
            events.emit(Event::Warning { message: &message });
        }
        Ok(Runner { project, cache, events, run, stacks: HashMap::new() })
    }

    /// Runs one cell to its record (already appended to `cells.jsonl`).
    pub async fn run_cell(&mut self, cell: &Cell) -> CellRecord {
        let name = cell.name();
        self.events.emit(Event::CellStarted { name: &name });
        let started = Instant::now();
        let started_at = now_text();
        let log_dir = self.run.cell_dir(&name).unwrap_or_else(|_| self.run.dir.clone());
        let transcript = Arc::new(Transcript::default());

        if cell.key.in_vm() {
            let mut record = self.run_vm_cell(cell, &name, &log_dir).await;
            record.started = started_at;
            record.seconds = started.elapsed().as_secs_f64();
            crate::cleanup::hold_if_interrupted();
            if let Err(e) = self.run.append(&record) {
                tracing::error!("failed to record {name}: {e:#}");
            }
            self.events.emit(Event::CellFinished { record: &record });
            return record;
        }
        let ran = match self.ensure_stack(&cell.key.stack, &cell.key.engine, false, &log_dir).await {
            Err(message) => Ran::before_stack(Outcome::Error { step: "stack".into(), message }),
            Ok(()) => self.execute_cell(cell, &name, &log_dir, &transcript).await,
        };
        let Ran { outcome, rounds, expectation, versions, criu_config } = ran;

        if let Outcome::Error { step, message } = &outcome {
            // The verdict keeps one line; the whole message is evidence too.
            let _ = std::fs::write(log_dir.join("error.txt"), format!("{step}: {message}\n"));
        }
        let class = verdict::classify(&expectation, &outcome);
        let first_failure = match &outcome {
            Outcome::Failed(f) => Some(f),
            // A stress cell keeps its first failed round here; every one is in `rounds`.
            Outcome::Stress(run) => run.failures.first(),
            _ => None,
        };
        let failure = first_failure.map(|f| FailureRecord {
            round: f.round,
            step: f.step.to_string(),
            message: f.message.clone(),
            signature_matched: class.matched.clone(),
            excerpt: excerpt(&f.evidence, &class.matched),
        });
        let stress = match &outcome {
            Outcome::Stress(run) => Some(StressRecord::new(run, &rounds, expectation.rate_bound().to_string())),
            _ => None,
        };
        let reproducer = self.write_reproducer(cell, &transcript, &log_dir, &class.reason);
        let record = CellRecord {
            name: name.clone(),
            key: cell.key.clone(),
            verdict: class.verdict,
            reason: class.reason,
            expected: describe(&expectation),
            failure,
            rounds,
            versions,
            started: started_at,
            seconds: started.elapsed().as_secs_f64(),
            logs: Some(self.run.relative(&log_dir)),
            reproducer,
            criu_config,
            stress,
        };
        // A cell cut short by Ctrl-C is not a finished cell: record nothing, let the handler end it.
        crate::cleanup::hold_if_interrupted();
        if let Err(e) = self.run.append(&record) {
            tracing::error!("failed to record {name}: {e:#}");
        }
        self.events.emit(Event::CellFinished { record: &record });
        record
    }

    /// Opens the stack (once per run), starts the engine's daemon if it has one (docker), and
    /// ensures the engine's base image, unless nothing can run on it here and `for_vm` is false;
    /// a failure to open the stack is remembered. `log_dir` is the cell's.
    async fn ensure_stack(&mut self, stack: &str, engine: &str, for_vm: bool, log_dir: &Path) -> Result<(), String> {
        if !self.stacks.contains_key(stack) {
            let state = match stack::open(stack, &self.cache, &self.events).await {
                Err(e) => StackState::Broken(format!("failed to open the {stack} stack: {e:#}")),
                Ok(session) => StackState::Open { session: Box::new(session), bases: HashMap::new() },
            };
            self.stacks.insert(stack.to_string(), state);
        }
        // dockerd's log: one per stack in the run; in a VM guest (one cell) with the cell's logs.
        let daemon_log = match crate::vm::guest::identity() {
            Some(_) => log_dir.join("dockerd.log"),
            None => self.run.dir.join(format!("dockerd-{stack}.log")),
        };
        match self.stacks.get_mut(stack).expect("inserted above") {
            StackState::Broken(message) => Err(message.clone()),
            StackState::Open { session, bases } => {
                // A stack where nothing can run needs no daemon and no base image: its cells are skipped.
                let program = if engine == "docker" { "dockerd" } else { "podman" };
                let runnable = session.facts.tools.contains_key(program)
                    && (for_vm || session.facts.criu_check.as_ref().is_some_and(|c| c.ok));
                if bases.contains_key(engine) || !runnable || !matches!(engine, "podman" | "docker") {
                    return Ok(());
                }
                if engine == "docker" {
                    let started = self.events.timed(stack, "dockerd", async {
                        let was_running = session.docker().is_some();
                        session.ensure_docker(&daemon_log).await.map(|_| ((), was_running))
                    });
                    if let Err(e) = started.await {
                        return Err(format!("failed to start dockerd: {e:#}"));
                    }
                }
                let driver = match driver(session, engine, Arc::new(Transcript::default())) {
                    Ok(d) => d,
                    Err(e) => return Err(format!("{e:#}")),
                };
                match crate::image::ensure_base(&driver, session, &self.cache, &self.events).await {
                    Ok(tag) => {
                        bases.insert(engine.to_string(), tag);
                    }
                    Err(e) => return Err(format!("failed to make the {engine} base image: {e:#}")),
                }
                Ok(())
            }
        }
    }

    /// Decides the cell's expectation and skip, builds its image, and runs it.
    async fn execute_cell(
        &self,
        cell: &Cell,
        name: &str,
        log_dir: &std::path::Path,
        transcript: &Arc<Transcript>,
    ) -> Ran {
        let Some(StackState::Open { session, bases }) = self.stacks.get(&cell.key.stack) else {
            unreachable!("ensure_stack opened it");
        };
        let facts = Facts { key: &cell.key, stack: &session.facts };
        let expectation = cell.scenario.expectation_for(&facts);
        let versions = versions_of(session, &cell.key.engine);
        if let Some(why) = session.facts.skip_reason(&cell.key.engine, &cell.key.runtime) {
            return Ran::before_container(Outcome::Skipped(why), expectation, versions);
        }
        let engine = match driver(session, &cell.key.engine, transcript.clone()) {
            Ok(engine) => engine,
            Err(e) => {
                let outcome = Outcome::Error { step: "engine".into(), message: format!("{e:#}") };
                return Ran::before_container(outcome, expectation, versions);
            }
        };
        let image = self.cell_image(&engine, session, bases.get(&cell.key.engine), cell).await;
        let image = match image {
            Ok(image) => image,
            Err(e) => {
                let outcome = Outcome::Error { step: "image".into(), message: format!("{e:#}") };
                return Ran::before_container(outcome, expectation, versions);
            }
        };
        let image_dir = self.project.images().join(&cell.scenario.image);
        let spec = CellSpec {
            name,
            transcript,
            scenario: &cell.scenario,
            runtime: &cell.key.runtime,
            image: &image,
            image_dir: &image_dir,
            log_dir,
        };
        let done = execute::execute(&engine, session, &spec, &self.events).await;
        let criu_config = Some(done.criu_config);
        Ran { outcome: done.outcome, rounds: done.rounds, expectation, versions, criu_config }
    }

    /// Ensures the cell's scenario image in the stack; returns its tag.
    async fn cell_image(
        &self,
        engine: &Driver,
        session: &Session,
        base: Option<&String>,
        cell: &Cell,
    ) -> anyhow::Result<String> {
        let base = base.cloned().unwrap_or_default();
        crate::image::ensure_image(engine, session, &self.project.images(), &cell.scenario.image, &base, &self.events)
            .await
    }

    /// Runs a cell in a VM: its images are built in the stack on the host first (they go into
    /// the VM on the stack disk), then the guest runs the cell and its record comes back.
    async fn run_vm_cell(&mut self, cell: &Cell, name: &str, log_dir: &std::path::Path) -> CellRecord {
        let mut record = CellRecord {
            name: name.to_string(),
            key: cell.key.clone(),
            verdict: crate::verdict::Verdict::Error,
            reason: String::new(),
            expected: String::new(),
            failure: None,
            rounds: Vec::new(),
            versions: Default::default(),
            started: String::new(),
            seconds: 0.0,
            logs: Some(self.run.relative(log_dir)),
            reproducer: None,
            criu_config: None,
            stress: None,
        };
        let fail = |record: &mut CellRecord, step: &str, message: String| {
            let _ = std::fs::write(log_dir.join("error.txt"), format!("{step}: {message}\n"));
            let outcome = Outcome::Error { step: step.into(), message };
            let class = verdict::classify(&Expectation::passes(), &outcome);
            record.verdict = class.verdict;
            record.reason = class.reason;
        };
        if let Err(message) = self.ensure_stack(&cell.key.stack, &cell.key.engine, true, log_dir).await {
            fail(&mut record, "stack", message);
            return record;
        }
        let Some(StackState::Open { session, bases }) = self.stacks.get(&cell.key.stack) else {
            unreachable!("ensure_stack opened it");
        };
        let engine = match driver(session, &cell.key.engine, Arc::new(Transcript::default())) {
            Ok(engine) => engine,
            Err(e) => {
                fail(&mut record, "engine", format!("{e:#}"));
                return record;
            }
        };
        if let Err(e) = self.cell_image(&engine, session, bases.get(&cell.key.engine), cell).await {
            fail(&mut record, "image", format!("{e:#}"));
            return record;
        }
        let stack_dir = self.cache.stack_dir(&cell.key.stack);
        let vm_cell = crate::vm::VmCell {
            key: &cell.key,
            name,
            project_root: &self.project.root,
            cache: &self.cache,
            events: &self.events,
            stack_rootfs: stack_dir.join("rootfs"),
            stack_storage: stack_dir.join("storage"),
            stack_docker: stack_dir.join("docker"),
            log_dir,
            work_limit: cell.scenario.work_limit(),
        };
        match crate::vm::run_cell(&vm_cell).await {
            Err(e) => fail(&mut record, "vm", format!("{e:#}")),
            Ok(run) => {
                match (run.record, run.error) {
                    (Some(guest), _) => {
                        record.verdict = guest.verdict;
                        record.reason = guest.reason;
                        record.expected = guest.expected;
                        record.failure = guest.failure;
                        record.rounds = guest.rounds;
                        record.versions = guest.versions;
                        record.reproducer = guest.reproducer;
                        record.criu_config = guest.criu_config;
                        record.stress = guest.stress;
                    }
                    (None, error) => {
                        fail(&mut record, "vm", error.unwrap_or_else(|| "the guest recorded nothing".into()))
                    }
                }
                record.versions.extend(run.facts);
            }
        }
        record
    }

    fn write_reproducer(
        &self,
        cell: &Cell,
        transcript: &Transcript,
        dir: &std::path::Path,
        outcome: &str,
    ) -> Option<String> {
        let entries = transcript.entries();
        if entries.is_empty() {
            return None;
        }
        let session = match self.stacks.get(&cell.key.stack) {
            Some(StackState::Open { session, .. }) => session,
            _ => return None,
        };
        let mut script = format!(
            "#!/bin/sh\n# Reproducer for {name}\n# Scenario: {summary}\n# Upstream: {upstream}\n# What the harness saw: {outcome}\n#\n",
            name = cell.name(),
            summary = cell.scenario.summary,
            upstream = if cell.scenario.upstream.is_empty() { "-".to_string() } else { cell.scenario.upstream.join(", ") },
        );
        for (k, v) in versions_of(session, &cell.key.engine) {
            script.push_str(&format!("# {k}: {v}\n"));
        }
        let build = match cell.key.engine.as_str() {
            "docker" => "DOCKER_BUILDKIT=0 docker build --network host --file images/{image}/Containerfile",
            _ => "podman build",
        }
        .replace("{image}", &cell.scenario.image);
        script.push_str(&format!("#\n{}\n#\n# The image is built from images/{}/ in the criu-matrix repository:\n#   {build} --build-arg BASE=<a local {} base image> --tag <tag> images/{}\n", session.how_to_enter(&self.cache), cell.scenario.image, session.suite, cell.scenario.image));
        if let Some(daemon) = session.docker().filter(|_| cell.key.engine == "docker") {
            script.push_str(&format!(
                "#\n# dockerd, as the harness starts it in the stack (and stops it by its PID afterwards):\n#   {} &\n",
                crate::stack::exec::shell_join(&daemon.argv)
            ));
        }
        script.push_str("set -x\n");
        for e in entries {
            let status = match (e.timed_out, e.status) {
                (true, _) => format!("timed out after {:.0}s", e.seconds),
                (false, Some(c)) => format!("exit {c}, {:.2}s", e.seconds),
                (false, None) => "killed".to_string(),
            };
            script.push_str(&format!("\n# {} ({status})\n{}\n", e.purpose, e.command));
        }
        let path = dir.join("reproduce.sh");
        std::fs::write(&path, script).ok()?;
        Some(self.run.relative(&path))
    }

    /// The private mount namespaces of the stacks opened so far: after `finish`, no process may
    /// be left in any of them.
    pub fn stack_namespaces(&self) -> Vec<String> {
        self.stacks
            .values()
            .filter_map(|s| match s {
                StackState::Open { session, .. } => session.mount_namespace(),
                StackState::Broken(_) => None,
            })
            .collect()
    }

    /// Closes every stack (removing what the run made there) and writes the matrix reports.
    pub fn finish(mut self) -> anyhow::Result<(RunDir, Vec<CellRecord>)> {
        self.stacks.clear();
        self.events.finish();
        let records = crate::record::read_cells(&self.run.dir)?;
        crate::report::write(&self.run.dir, &records)?;
        Ok((self.run, records))
    }
}

/// The driver of `engine` in this stack (docker's needs the stack's dockerd started).
fn driver(session: &Session, engine: &str, transcript: Arc<Transcript>) -> anyhow::Result<Driver> {
    match engine {
        "podman" => Ok(Driver::Podman(Podman::new(session.entry(), session.host_path("/"), transcript))),
        "docker" => {
            let daemon = session
                .docker()
                .ok_or_else(|| anyhow::anyhow!("the {} stack's dockerd is not running", session.name))?;
            let (client, root, log) = (daemon.client.clone(), session.host_path("/"), daemon.log.clone());
            Ok(Driver::Docker(Box::new(Docker::new(client, root, daemon.paths.exec_root.clone(), log, transcript))))
        }
        other => anyhow::bail!("engine `{other}` has no driver"),
    }
}

/// The versions a cell of `engine` records: the stack's, and for docker what its daemon says.
fn versions_of(session: &Session, engine: &str) -> std::collections::BTreeMap<String, String> {
    let mut versions = session.facts.versions();
    if let Some(docker) = session.facts.docker.as_ref().filter(|_| engine == "docker") {
        versions.extend(docker.versions());
    }
    versions
}

fn describe(e: &Expectation) -> String {
    match e.outcome {
        ExpectedOutcome::Passes => match &e.failure_rate {
            Some(rate) => format!("passes, with failures in {rate} of the rounds"),
            None => "passes".to_string(),
        },
        ExpectedOutcome::Fails => {
            let mut s = if e.intermittent { "may fail" } else { "fails" }.to_string();
            if let Some(r) = e.round {
                s.push_str(&format!(" at round {r}"));
            }
            if let Some(step) = e.step {
                s.push_str(&format!(" {step}"));
            }
            if let Some(sig) = &e.signature {
                s.push_str(&format!(" with /{}/", sig.as_str()));
            }
            if let Some(rate) = &e.failure_rate {
                s.push_str(&format!(" in {rate} of the rounds"));
            }
            s
        }
    }
}

/// The last lines of the evidence, and the matched line with its neighbours when there is one.
fn excerpt(evidence: &str, matched: &Option<String>) -> String {
    let lines: Vec<&str> = evidence.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::new();
    if let Some(m) = matched {
        if let Some(at) = lines.iter().position(|l| l.trim() == m) {
            out.extend_from_slice(&lines[at.saturating_sub(5)..(at + 3).min(lines.len())]);
            out.push("...");
        }
    }
    out.extend_from_slice(&lines[lines.len().saturating_sub(20)..]);
    out.join("\n")
}

fn now_text() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Scenario files are malformed: nothing may run (exit code 2).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Scenarios(Vec<crate::scenario::ScenarioError>),
    #[error("{0:#}")]
    Other(anyhow::Error),
}

/// Loads and validates every scenario, then expands the named matrix under `filter`.
pub fn load_plan(project: &Project, matrix: &str, filter: &crate::plan::Filter) -> Result<Vec<Cell>, PlanError> {
    let scenarios = crate::scenario::load_all(&project.scenarios(), &project.images()).map_err(PlanError::Scenarios)?;
    let rounds = crate::scenario::stress_rounds_override().map_err(PlanError::Other)?;
    let scenarios: Vec<_> = scenarios.into_iter().map(|s| s.with_stress_rounds(rounds)).collect();
    let matrix = crate::plan::load_matrix(&project.root, matrix).map_err(PlanError::Other)?;
    crate::plan::expand(&matrix, &scenarios, filter).map_err(PlanError::Other)
}
