//! Running commands inside a stack, each with a time limit, and keeping them as a transcript of
//! plain CLI commands (what a person would type inside the stack), which becomes the reproducer.

use crate::cleanup;
use anyhow::Context as _;
use serde::Serialize;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How to reach a stack's binaries: directly (the host) or through `nsenter` into its namespace.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Prepended to every command, e.g. `nsenter --target PID --mount --root --wd --`.
    prefix: Vec<String>,
    env: Vec<(String, String)>,
}

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Entry {
    pub fn host() -> Entry {
        let path = std::env::var("PATH").unwrap_or_else(|_| PATH.to_string());
        Entry { prefix: Vec::new(), env: base_env(path) }
    }

    pub fn namespace(holder_pid: u32) -> Entry {
        let prefix = ["nsenter", "--target", &holder_pid.to_string(), "--mount", "--root", "--wd", "--"]
            .map(String::from)
            .to_vec();
        Entry { prefix, env: base_env(PATH.to_string()) }
    }

    fn full_argv(&self, argv: &[String]) -> Vec<String> {
        self.prefix.iter().chain(argv).cloned().collect()
    }

    /// `argv` through this entry, with the entry's environment only and no stdin.
    fn command(&self, argv: &[String]) -> std::process::Command {
        let full = self.full_argv(argv);
        let mut cmd = std::process::Command::new(&full[0]);
        cmd.args(&full[1..]).env_clear().envs(self.env.iter().cloned()).stdin(Stdio::null());
        cmd
    }

    /// Starts a long-running command (a service) with stdout and stderr going to `log`. The caller
    /// owns the child and stops it by its PID: `nsenter` without `--pid` execs the command instead
    /// of forking, so the child's PID is the command's own.
    pub fn spawn(&self, argv: &[String], log: std::fs::File) -> std::io::Result<std::process::Child> {
        self.command(argv).stdout(log.try_clone()?).stderr(log).spawn()
    }

    /// A blocking run for cleanup paths (Drop, the interrupt handler), where no runtime exists.
    pub fn run_blocking(&self, argv: &[String]) -> std::io::Result<std::process::Output> {
        self.command(argv).output()
    }
}

/// Stops a child the harness spawned (a service, dockerd): SIGTERM, SIGKILL after `grace`; always
/// reaped. The PID stays ours until it is reaped, so it is never someone else's.
pub fn stop_child(child: &Mutex<Option<std::process::Child>>, what: &str, grace: Duration) {
    let Some(mut child) = child.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = child.id();
    // SAFETY: kill(2) on our own child, not yet reaped, so the PID cannot belong to anyone else.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let started = Instant::now();
    while started.elapsed() < grace {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::warn!("{what} (pid {pid}) did not exit within {grace:?} of SIGTERM: killing it");
    let _ = child.kill();
    let _ = child.wait();
}

/// The last lines of a log file (a service's, dockerd's), for an error message.
pub fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn base_env(path: String) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), path),
        ("HOME".into(), "/root".into()),
        ("LANG".into(), "C.UTF-8".into()),
        // podman >= 5 warns on every call under cgroup v1; the warning is noise in every log.
        ("PODMAN_IGNORE_CGROUPSV1_WARNING".into(), "1".into()),
    ]
}

/// What a finished (or timed-out) command did.
#[derive(Debug, Clone)]
pub struct Output {
    pub argv: Vec<String>,
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub seconds: f64,
    pub timed_out: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0) && !self.timed_out
    }

    /// The command line, shell-quoted.
    pub fn command_line(&self) -> String {
        shell_join(&self.argv)
    }

    /// Ok if it succeeded, else an error with its exit status and stderr.
    pub fn checked(self) -> anyhow::Result<Output> {
        if self.success() {
            Ok(self)
        } else {
            anyhow::bail!("{}", self.failure_text())
        }
    }

    pub fn failure_text(&self) -> String {
        let how = if self.timed_out {
            format!("timed out after {:.0}s", self.seconds)
        } else {
            match self.status {
                Some(code) => format!("exited with {code}"),
                None => "was killed by a signal".to_string(),
            }
        };
        let stderr = self.stderr.trim();
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
        format!("`{}` {how}{}{}", self.command_line(), if tail.is_empty() { "" } else { ": " }, tail.join("\n"))
    }
}

/// One entry of a transcript.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub command: String,
    pub status: Option<i32>,
    pub seconds: f64,
    pub timed_out: bool,
    /// Why the harness ran it (a step name), written as a comment in the reproducer.
    pub purpose: String,
}

/// The commands of one cell, in order.
#[derive(Debug, Default)]
pub struct Transcript {
    entries: Mutex<Vec<Recorded>>,
}

impl Transcript {
    pub fn push(&self, purpose: &str, output: &Output) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).push(Recorded {
            command: output.command_line(),
            status: output.status,
            seconds: output.seconds,
            timed_out: output.timed_out,
            purpose: purpose.to_string(),
        });
    }

    /// Records a command the harness did not run as such (it read a file through /proc instead),
    /// so the reproducer still shows how a person would do it.
    pub fn push_equivalent(&self, purpose: &str, command: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).push(Recorded {
            command: command.to_string(),
            status: Some(0),
            seconds: 0.0,
            timed_out: false,
            purpose: purpose.to_string(),
        });
    }

    pub fn entries(&self) -> Vec<Recorded> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Runs `argv` through `entry`, killing it after `limit`. `stdin` is written then closed.
pub async fn run(entry: &Entry, argv: &[String], limit: Duration, stdin: Option<Stdio>) -> anyhow::Result<Output> {
    if cleanup::interrupted() {
        anyhow::bail!("interrupted");
    }
    let full = entry.full_argv(argv);
    let mut cmd = tokio::process::Command::new(&full[0]);
    cmd.args(&full[1..])
        .env_clear()
        .envs(entry.env.iter().cloned())
        .stdin(stdin.unwrap_or_else(Stdio::null))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let child = cmd.spawn().with_context(|| format!("failed to start `{}`", full[0]))?;
    let _tracked = child.id().map(cleanup::ChildGuard::track);
    let result = tokio::time::timeout(limit, child.wait_with_output()).await;
    let seconds = started.elapsed().as_secs_f64();
    Ok(match result {
        Ok(out) => {
            let out = out.context("failed to wait for a command")?;
            Output {
                argv: argv.to_vec(),
                status: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                seconds,
                timed_out: false,
            }
        }
        // The child future was dropped with the timeout, and kill_on_drop killed the process.
        Err(_) => Output {
            argv: argv.to_vec(),
            status: None,
            stdout: String::new(),
            stderr: String::new(),
            seconds,
            timed_out: true,
        },
    })
}

/// Quotes words for a POSIX shell, leaving plain ones bare.
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%{}".contains(c)) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_quoting() {
        let argv: Vec<String> = ["podman", "run", "--label", "a=b c", "it's"].map(String::from).to_vec();
        assert_eq!(shell_join(&argv), r"podman run --label 'a=b c' 'it'\''s'");
    }

    #[tokio::test]
    async fn a_command_over_its_limit_is_killed_and_reported() {
        let argv: Vec<String> = ["sh", "-c", "echo started; exec sleep 30"].map(String::from).to_vec();
        let out = run(&Entry::host(), &argv, Duration::from_millis(300), None).await.unwrap();
        assert!(out.timed_out);
        assert!(!out.success());
        assert!(out.failure_text().contains("timed out"), "{}", out.failure_text());
    }

    #[tokio::test]
    async fn output_and_status_are_kept() {
        let argv: Vec<String> = ["sh", "-c", "echo out; echo err >&2; exit 3"].map(String::from).to_vec();
        let out = run(&Entry::host(), &argv, Duration::from_secs(10), None).await.unwrap();
        assert_eq!((out.status, out.stdout.as_str(), out.stderr.as_str()), (Some(3), "out\n", "err\n"));
        assert!(out.checked().unwrap_err().to_string().contains("exited with 3: err"));
    }
}
