//! Running commands inside a stack: through `nsenter` into its namespace (or directly on the
//! host), with the stack's own environment, each with a time limit and in a process group of
//! its own (see `process`).

use crate::process::{self, Output, Service};
use std::time::Duration;

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

    /// Into a stack's mount and PID namespaces (see `namespace`).
    pub fn namespace(holder_pid: u32) -> Entry {
        let prefix = ["nsenter", "--target", &holder_pid.to_string(), "--mount", "--pid", "--root", "--wd", "--"]
            .map(String::from)
            .to_vec();
        Entry { prefix, env: base_env(PATH.to_string()) }
    }

    /// `argv` through this entry, with the entry's environment only and no stdin; its output
    /// shows `argv` as a person types it inside the stack.
    pub fn command(&self, argv: &[String], limit: Duration) -> process::Command {
        let full: Vec<String> = self.prefix.iter().chain(argv).cloned().collect();
        process::Command::new(full, limit).shown_as(argv).env_only(&self.env)
    }

    /// Starts a long-running command (a service, dockerd) with stdout and stderr going to `log`.
    /// `nsenter --pid` forks the command into the stack's PID namespace and waits for it; the
    /// service's main process (the one stopped with SIGTERM) is then that child.
    pub fn spawn(&self, argv: &[String], log: std::fs::File) -> anyhow::Result<Service> {
        let mut service = self.command(argv, Duration::ZERO).spawn(Some(log))?;
        if !self.prefix.is_empty() {
            service.adopt_forked_child(Duration::from_secs(10))?;
        }
        Ok(service)
    }

    /// A blocking run for cleanup paths (Drop, the interrupt handler), where no runtime exists.
    pub fn run_blocking(&self, argv: &[String], limit: Duration) -> anyhow::Result<Output> {
        self.command(argv, limit).run_blocking()
    }
}

/// Runs `argv` through `entry`, killed with its group after `limit`; `stdin` is fed from a file.
pub async fn run(
    entry: &Entry,
    argv: &[String],
    limit: Duration,
    stdin: Option<std::fs::File>,
) -> anyhow::Result<Output> {
    let mut command = entry.command(argv, limit);
    if let Some(file) = stdin {
        command = command.stdin(file);
    }
    command.run().await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_command_through_an_entry_shows_only_its_own_words() {
        let argv: Vec<String> = ["sh", "-c", "echo $LANG"].map(String::from).to_vec();
        let out = run(&Entry::host(), &argv, Duration::from_secs(10), None).await.unwrap();
        assert_eq!((out.stdout.as_str(), out.command_line()), ("C.UTF-8\n", "sh -c 'echo $LANG'".to_string()));
    }
}
