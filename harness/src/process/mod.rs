//! Every external program the harness runs goes through here: each runs in a process group of
//! its own, with a time limit, and is tracked until it is reaped, so that a timeout or an
//! interrupt ends the whole group (podman, and the runtime and CRIU that podman started), never
//! just its first process, and never a process of anyone else.
//!
//! - [`Command::run`] / [`Command::run_blocking`]: a command run to completion, killed with its
//!   group at its limit (the blocking form is for cleanup paths, where no async runtime exists).
//! - [`Command::spawn`]: a long-running program (a service, dockerd, a namespace holder, qemu)
//!   owned by the caller, whose [`Service`] stops it (SIGTERM to it, then SIGKILL to its group).
//!
//! The architecture test checks that no other module builds a `std::process::Command` or a
//! `tokio::process::Command`.

mod output;
mod transcript;

pub use output::{shell_join, Output};
pub use transcript::{Recorded, Transcript};

use crate::cleanup;
use anyhow::Context as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;

/// How often a blocking wait looks again (a child's exit is not an event there).
const POLL: Duration = Duration::from_millis(20);
/// The most of a blocking command's stdout or stderr that is kept.
const MAX_OUTPUT: u64 = 64 << 20;

/// A program to run.
#[derive(Debug)]
pub struct Command {
    argv: Vec<String>,
    /// The words recorded in the [`Output`] (without an `nsenter` prefix, say).
    shown: Option<Vec<String>>,
    /// `None`: this process's environment; `Some`: exactly these variables.
    env: Option<Vec<(String, String)>>,
    extra_env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    stdin: Option<std::fs::File>,
    limit: Duration,
}

impl Command {
    /// `argv[0]` with the rest as arguments, killed after `limit`.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>, limit: Duration) -> Command {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            shown: None,
            env: None,
            extra_env: Vec::new(),
            cwd: None,
            stdin: None,
            limit,
        }
    }

    /// Records these words as the command line instead of the argv actually run.
    pub fn shown_as(mut self, argv: &[String]) -> Command {
        self.shown = Some(argv.to_vec());
        self
    }

    /// Runs with exactly these environment variables.
    pub fn env_only(mut self, env: &[(String, String)]) -> Command {
        self.env = Some(env.to_vec());
        self
    }

    /// Adds a variable to the environment.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Command {
        self.extra_env.push((key.into(), value.into()));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Command {
        self.cwd = Some(dir.into());
        self
    }

    /// Feeds this file on standard input (else it is /dev/null).
    pub fn stdin(mut self, file: std::fs::File) -> Command {
        self.stdin = Some(file);
        self
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    fn program(&self) -> anyhow::Result<&str> {
        self.argv.first().map(String::as_str).context("an empty command line")
    }

    fn configure<C: Configurable>(&mut self, cmd: &mut C) {
        cmd.set_args(&self.argv[1..]);
        if let Some(env) = &self.env {
            cmd.set_env_only(env);
        }
        cmd.add_env(&self.extra_env);
        if let Some(dir) = &self.cwd {
            cmd.set_dir(dir);
        }
        cmd.set_stdin(self.stdin.take().map(Stdio::from).unwrap_or_else(Stdio::null));
    }

    fn output(&self, status: Option<i32>, stdout: &[u8], stderr: &[u8], started: Instant, timed_out: bool) -> Output {
        Output {
            argv: self.shown.clone().unwrap_or_else(|| self.argv.clone()),
            status,
            stdout: String::from_utf8_lossy(stdout).into_owned(),
            stderr: String::from_utf8_lossy(stderr).into_owned(),
            seconds: started.elapsed().as_secs_f64(),
            timed_out,
        }
    }

    /// Runs to completion or to the limit, when the whole process group is killed and reaped.
    pub async fn run(self) -> anyhow::Result<Output> {
        let (output, _) = self.run_raw().await?;
        Ok(output)
    }

    /// Runs to completion and returns what it wrote on standard output, as bytes (a tar
    /// stream); an error with its stderr when it did not succeed.
    pub async fn run_bytes(self) -> anyhow::Result<Vec<u8>> {
        let (output, stdout) = self.run_raw().await?;
        output.checked()?;
        Ok(stdout)
    }

    async fn run_raw(mut self) -> anyhow::Result<(Output, Vec<u8>)> {
        anyhow::ensure!(!cleanup::interrupted(), "interrupted");
        let program = self.program()?.to_string();
        let mut wrap = process_wrap::tokio::CommandWrap::with_new(&program, |cmd| self.configure(cmd));
        wrap.command_mut().stdout(Stdio::piped()).stderr(Stdio::piped());
        wrap.wrap(process_wrap::tokio::ProcessGroup::leader()).wrap(process_wrap::tokio::KillOnDrop);
        let started = Instant::now();
        let mut child = wrap.spawn().with_context(|| format!("failed to start `{program}`"))?;
        let _tracked = child.id().map(cleanup::ChildGuard::track_group);
        let (mut out, mut err) = (child.stdout().take(), child.stderr().take());
        let finished = tokio::time::timeout(self.limit, async {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let read_out = async {
                if let Some(o) = out.as_mut() {
                    let _ = o.read_to_end(&mut stdout).await;
                }
            };
            let read_err = async {
                if let Some(e) = err.as_mut() {
                    let _ = e.read_to_end(&mut stderr).await;
                }
            };
            let ((), (), status) = tokio::join!(read_out, read_err, child.wait());
            status.map(|s| (s, stdout, stderr))
        })
        .await;
        Ok(match finished {
            Ok(done) => {
                let (status, stdout, stderr) = done.context("failed to wait for a command")?;
                (self.output(status.code(), &stdout, &stderr, started, false), stdout)
            }
            Err(_) => {
                // The group, so that what the command started goes with it; then reaped.
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                (self.output(None, &[], &[], started, true), Vec::new())
            }
        })
    }

    /// [`Command::run`] without an async runtime: for `Drop` and the interrupt handler. Its
    /// output goes to anonymous files, read once it is reaped: no reader thread that a process
    /// which left the group (and kept the pipe) could hold past the limit.
    pub fn run_blocking(mut self) -> anyhow::Result<Output> {
        use std::io::Seek as _;
        let program = self.program()?.to_string();
        let (mut out, mut err) = (tempfile::tempfile()?, tempfile::tempfile()?);
        let mut wrap = process_wrap::std::CommandWrap::with_new(&program, |cmd| self.configure(cmd));
        wrap.command_mut().stdout(out.try_clone()?).stderr(err.try_clone()?);
        wrap.wrap(process_wrap::std::ProcessGroup::leader());
        let started = Instant::now();
        let mut child = wrap.spawn().with_context(|| format!("failed to start `{program}`"))?;
        let _tracked = cleanup::ChildGuard::track_cleanup_group(child.id());
        let status = loop {
            if let Some(status) = child.try_wait()? {
                let _ = child.wait(); // the rest of the group, if any
                break Some(status);
            }
            if started.elapsed() >= self.limit {
                let _ = child.start_kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(POLL);
        };
        let read = |file: &mut std::fs::File| {
            let mut bytes = Vec::new();
            let _ = file.seek(std::io::SeekFrom::Start(0)).map(|_| file.take(MAX_OUTPUT).read_to_end(&mut bytes));
            bytes
        };
        let (stdout, stderr) = (read(&mut out), read(&mut err));
        Ok(match status {
            Some(status) => self.output(status.code(), &stdout, &stderr, started, false),
            None => self.output(None, &stdout, &stderr, started, true),
        })
    }

    /// Starts a long-running program in a group of its own, its output going to `log` (or
    /// piped, for the caller to read, when `log` is `None`). Its limit is the caller's to keep.
    pub fn spawn(mut self, log: Option<std::fs::File>) -> anyhow::Result<Service> {
        let program = self.program()?.to_string();
        let mut wrap = process_wrap::std::CommandWrap::with_new(&program, |cmd| self.configure(cmd));
        match log {
            Some(file) => {
                let copy = file.try_clone()?;
                wrap.command_mut().stdout(file).stderr(copy);
            }
            None => {
                wrap.command_mut().stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        wrap.wrap(process_wrap::std::ProcessGroup::leader());
        anyhow::ensure!(!cleanup::interrupted(), "interrupted");
        let child = wrap.spawn().with_context(|| format!("failed to start `{program}`"))?;
        let tracked = cleanup::ChildGuard::track_service(child.id());
        Ok(Service { pid: child.id(), main: None, child: Some(child), _tracked: tracked })
    }

    /// Starts a program whose output the caller reads as it comes (qemu's console), killed with
    /// its group when the returned [`Piped`] is dropped; tracked for an interrupt meanwhile.
    pub fn spawn_piped(mut self) -> anyhow::Result<Piped> {
        let program = self.program()?.to_string();
        let mut wrap = process_wrap::tokio::CommandWrap::with_new(&program, |cmd| self.configure(cmd));
        wrap.command_mut().stdout(Stdio::piped()).stderr(Stdio::piped());
        wrap.wrap(process_wrap::tokio::ProcessGroup::leader()).wrap(process_wrap::tokio::KillOnDrop);
        anyhow::ensure!(!cleanup::interrupted(), "interrupted");
        let mut child = wrap.spawn().with_context(|| format!("failed to start `{program}`"))?;
        let pid = child.id().context("the program exited at once")?;
        let tracked = cleanup::ChildGuard::track_group(pid);
        let (stdout, stderr) = (child.stdout().take(), child.stderr().take());
        Ok(Piped { pid, child, stdout, stderr, _tracked: tracked })
    }
}

/// Polls `done` until it holds or `limit` passes; says whether it held. For conditions that are
/// no event (a process gone from /proc), never as a sleep in place of one.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

/// Ends a process that is not the harness's child (a containerd a dockerd started, a process
/// left in a stack's namespace), known by PID *and* start time, so a reused PID is never hit:
/// SIGTERM, then SIGKILL after `grace`.
pub fn stop_foreign(process: &ProcessId, what: &str, grace: Duration) {
    if !process.alive() {
        return;
    }
    process.signal(rustix::process::Signal::TERM);
    if !wait_until(grace, || !process.alive()) {
        tracing::warn!("{what} (pid {}) did not exit within {grace:?} of SIGTERM: killing it", process.pid);
        process.signal(rustix::process::Signal::KILL);
        wait_until(Duration::from_secs(5), || !process.alive());
    }
}

/// A process known by PID and start time (clock ticks after boot, from `/proc/PID/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: u32,
    pub start_time: u64,
}

impl ProcessId {
    /// The process with this PID now, if there is one.
    pub fn of(pid: u32) -> Option<ProcessId> {
        let stat = procfs::process::Process::new(pid as i32).ok()?.stat().ok()?;
        Some(ProcessId { pid, start_time: stat.starttime })
    }

    /// Still the same process, and not a zombie.
    pub fn alive(&self) -> bool {
        procfs::process::Process::new(self.pid as i32)
            .and_then(|p| p.stat())
            .is_ok_and(|s| s.starttime == self.start_time && s.state != 'Z')
    }

    /// Sends `signal` if it is still the same process.
    pub fn signal(&self, signal: rustix::process::Signal) {
        if let (true, Some(pid)) = (self.alive(), rustix::process::Pid::from_raw(self.pid as i32)) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }
}

/// What `process_wrap`'s std and tokio commands have in common, for [`Command::configure`].
trait Configurable {
    fn set_args(&mut self, args: &[String]);
    fn set_env_only(&mut self, env: &[(String, String)]);
    fn add_env(&mut self, env: &[(String, String)]);
    fn set_dir(&mut self, dir: &std::path::Path);
    fn set_stdin(&mut self, stdin: Stdio);
}

macro_rules! configurable {
    ($command:ty) => {
        impl Configurable for $command {
            fn set_args(&mut self, args: &[String]) {
                self.args(args);
            }
            fn set_env_only(&mut self, env: &[(String, String)]) {
                self.env_clear().envs(env.iter().cloned());
            }
            fn add_env(&mut self, env: &[(String, String)]) {
                self.envs(env.iter().cloned());
            }
            fn set_dir(&mut self, dir: &std::path::Path) {
                self.current_dir(dir);
            }
            fn set_stdin(&mut self, stdin: Stdio) {
                self.stdin(stdin);
            }
        }
    };
}
configurable!(std::process::Command);
configurable!(tokio::process::Command);

/// A long-running program the caller owns. Dropping it without [`Service::stop`] stops it.
pub struct Service {
    pub pid: u32,
    /// The program itself when `pid` is a launcher that forks it and waits (`nsenter --pid`):
    /// the one SIGTERM goes to.
    main: Option<ProcessId>,
    child: Option<Box<dyn process_wrap::std::ChildWrapper>>,
    /// Declared after `child`: untracked only once it is stopped.
    _tracked: cleanup::ChildGuard,
}

impl Service {
    /// The program's own PID: the launcher's child when it forks one (see
    /// [`Service::adopt_forked_child`]), else `pid`.
    pub fn main_pid(&self) -> u32 {
        self.main.map_or(self.pid, |m| m.pid)
    }

    /// Takes the launcher's only child, once it has forked it (within `limit`), as the program
    /// to stop with SIGTERM: `nsenter --pid` forks the command into the PID namespace, waits for
    /// it and forwards no signal.
    pub fn adopt_forked_child(&mut self, limit: Duration) -> anyhow::Result<()> {
        let children = format!("/proc/{0}/task/{0}/children", self.pid);
        let mut found = None;
        let forked = wait_until(limit, || {
            let text = std::fs::read_to_string(&children).unwrap_or_default();
            found = text.split_whitespace().next().and_then(|p| p.parse().ok()).and_then(ProcessId::of);
            found.is_some() || self.exited().is_some()
        });
        match found {
            Some(main) if forked => {
                self.main = Some(main);
                Ok(())
            }
            _ => anyhow::bail!("the program of launcher {} did not start within {limit:?}", self.pid),
        }
    }

    /// Whether it has exited (and then its status).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Its piped standard output and error, once (for a program spawned without a log).
    pub fn take_pipes(&mut self) -> (Option<std::process::ChildStdout>, Option<std::process::ChildStderr>) {
        match self.child.as_mut() {
            Some(c) => (c.stdout().take(), c.stderr().take()),
            None => (None, None),
        }
    }

    /// SIGTERM to the program itself (it stops what it runs its own way), SIGKILL to its whole
    /// group after `grace`; always reaped. Its PID stays ours until then, so it is never
    /// someone else's.
    pub fn stop(&mut self, what: &str, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        if matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.wait();
            return;
        }
        match self.main {
            Some(main) => main.signal(rustix::process::Signal::TERM),
            None => {
                if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
        }
        let started = Instant::now();
        while started.elapsed() < grace {
            if matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.wait();
                return;
            }
            std::thread::sleep(POLL);
        }
        tracing::warn!("{what} (pid {}) did not exit within {grace:?} of SIGTERM: killing its group", self.pid);
        let _ = child.start_kill();
        let _ = child.wait();
    }
}

impl Service {
    /// SIGKILL to its whole group at once, then reaped: for a program with nothing to clean up
    /// (a namespace holder's `sleep infinity`).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop("a service", Duration::from_secs(10));
    }
}

/// A running program whose output is read as it comes. Dropped, it is killed with its group.
pub struct Piped {
    pub pid: u32,
    child: Box<dyn process_wrap::tokio::ChildWrapper>,
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
    _tracked: cleanup::ChildGuard,
}

impl Piped {
    /// Waits for it to exit by itself, up to `limit`; `None` when it did not.
    pub async fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(limit, self.child.wait()).await.ok().and_then(Result::ok)
    }

    /// Kills its group and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// What it wrote on standard error (after it ended).
    pub async fn stderr_text(&mut self) -> String {
        let mut text = String::new();
        if let Some(e) = self.stderr.as_mut() {
            let _ = e.read_to_string(&mut text).await;
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        !stat.is_empty() && !stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
    }

    /// The PID a shell script printed on its first line.
    fn first_pid(text: &str) -> u32 {
        text.lines().next().and_then(|l| l.trim().parse().ok()).expect("a PID")
    }

    #[tokio::test]
    async fn a_command_over_its_limit_is_killed_with_what_it_started() {
        // The script starts a grandchild in its group and prints its PID on a file, then hangs.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}; wait", file.display());
        let out = Command::new(["sh", "-c", &script], Duration::from_millis(500)).run().await.unwrap();
        assert!(out.timed_out && !out.success());
        assert!(out.failure_text().contains("timed out"), "{}", out.failure_text());
        let grandchild = first_pid(&std::fs::read_to_string(&file).unwrap());
        // Killed at once; gone as soon as the kernel has delivered the signal.
        assert!(
            wait_until(Duration::from_secs(5), || !alive(grandchild)),
            "the sleep the script started outlived the timeout"
        );
    }

    #[test]
    fn a_blocking_command_over_its_limit_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}; wait", file.display());
        let started = Instant::now();
        let out = Command::new(["sh", "-c", &script], Duration::from_millis(500)).run_blocking().unwrap();
        assert!(out.timed_out);
        assert!(started.elapsed() < Duration::from_secs(10));
        let grandchild = first_pid(&std::fs::read_to_string(&file).unwrap());
        assert!(wait_until(Duration::from_secs(5), || !alive(grandchild)));
    }

    /// A process that left the group (its own session) and kept the command's stdout open does
    /// not keep a blocking command, nor any thread of the harness, past the command's end.
    #[test]
    fn a_blocking_command_is_not_held_by_a_process_that_kept_its_output() {
        let started = Instant::now();
        let out = Command::new(["sh", "-c", "setsid sleep 60 & echo $!"], Duration::from_secs(30)).run_blocking();
        let out = out.unwrap();
        let escaped = ProcessId::of(first_pid(&out.stdout)).expect("the setsid sleep runs");
        let took = started.elapsed();
        stop_foreign(&escaped, "the escaped sleep", Duration::from_secs(1));
        assert!(out.success() && !out.timed_out, "{out:?}");
        assert!(took < Duration::from_secs(10), "the command was held {took:?} by a process outside its group");
    }

    #[tokio::test]
    async fn output_and_status_are_kept() {
        let out = Command::new(["sh", "-c", "echo out; echo err >&2; exit 3"], Duration::from_secs(10)).run().await;
        let out = out.unwrap();
        assert_eq!((out.status, out.stdout.as_str(), out.stderr.as_str()), (Some(3), "out\n", "err\n"));
        assert!(out.checked().unwrap_err().to_string().contains("exited with 3: err"));
        let blocking = Command::new(["sh", "-c", "echo out; exit 0"], Duration::from_secs(10)).run_blocking().unwrap();
        assert_eq!((blocking.status, blocking.stdout.as_str()), (Some(0), "out\n"));
    }

    #[test]
    fn a_service_that_ignores_sigterm_is_killed_with_its_group() {
        let cmd = Command::new(["sh", "-c", "trap '' TERM; sleep 300 & echo $!; wait"], Duration::ZERO);
        let mut service = cmd.spawn(None).unwrap();
        let (stdout, _) = service.take_pipes();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout.unwrap()), &mut line).unwrap();
        let grandchild = first_pid(&line);
        service.stop("the test service", Duration::from_millis(300));
        assert!(!alive(service.pid));
        assert!(wait_until(Duration::from_secs(5), || !alive(grandchild)));
    }
}
