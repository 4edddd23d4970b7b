//! podman, driven through its CLI (its Docker-compatible API has no checkpoint endpoints), with
//! JSON output where it has it.

use super::interface::{numeric_fields, CheckpointMode, CriuOptions, Engine, Remover, RunRequest, StepReport};
use crate::process::{shell_join, Output, Transcript};
use crate::stack::exec::{self, Entry};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct Podman {
    entry: Entry,
    /// Where the host sees the stack's `/`.
    host_root: PathBuf,
    transcript: Arc<Transcript>,
}

const INSPECT_LIMIT: Duration = Duration::from_secs(60);

impl Podman {
    pub fn new(entry: Entry, host_root: PathBuf, transcript: Arc<Transcript>) -> Podman {
        Podman { entry, host_root, transcript }
    }

    /// `--ulimit NAME=H:H` for each limit podman raises by default (nofile to 1048576, nproc to
    /// 4194304) where this process's hard limit is lower: without CAP_SYS_RESOURCE the runtime
    /// cannot raise it, and every container fails with `setrlimit RLIMIT_...: Operation not permitted`.
    fn ulimit_args() -> Vec<String> {
        use rustix::process::{getrlimit, Resource};
        let limits = [("nofile", Resource::Nofile, 1_048_576), ("nproc", Resource::Nproc, 4_194_304)];
        let mut args = Vec::new();
        for (name, resource, podman_default) in limits {
            // `None` is unlimited: nothing to lower.
            if let Some(hard) = getrlimit(resource).maximum.filter(|hard| *hard < podman_default) {
                args.extend(["--ulimit".to_string(), format!("{name}={hard}:{hard}")]);
            }
        }
        args
    }

    async fn podman_owned(&self, purpose: &str, args: &[String], limit: Duration) -> anyhow::Result<Output> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.podman(purpose, &args, limit).await
    }

    async fn podman(&self, purpose: &str, args: &[&str], limit: Duration) -> anyhow::Result<Output> {
        let argv: Vec<String> = std::iter::once("podman").chain(args.iter().copied()).map(String::from).collect();
        let out = exec::run(&self.entry, &argv, limit, None).await?;
        self.transcript.push(purpose, &out);
        Ok(out)
    }

    /// Inside-the-stack path -> host path.
    fn on_host(&self, inner: &str) -> PathBuf {
        self.host_root.join(inner.trim_start_matches('/'))
    }

    /// CRIU's log of the last checkpoint/restore of a container, if podman kept it.
    async fn criu_log(&self, name: &str, file: &str, stderr: &str) -> Option<String> {
        // On failure podman names the log it kept: "Please check CRIU logfile /path/dump.log".
        let named = stderr
            .split_whitespace()
            .find(|w| w.ends_with(&format!("/{file}")))
            .map(|w| w.trim_matches(|c| c == '"' || c == '\'' || c == ',').to_string());
        let path = match named {
            Some(p) => p,
            None => {
                let out = exec::run(
                    &self.entry,
                    &["podman", "container", "inspect", "--format", "{{.StaticDir}}", name].map(String::from),
                    INSPECT_LIMIT,
                    None,
                )
                .await
                .ok()?;
                format!("{}/{file}", out.stdout.trim())
            }
        };
        std::fs::read_to_string(self.on_host(&path)).ok()
    }
}

impl Podman {
    /// `podman container VERB --print-stats [options] REST...`; on failure, fetches the CRIU log
    /// (`log_file`) of `container` as evidence.
    async fn criu_step(
        &self,
        verb: &str,
        flags: &[String],
        rest: &[&str],
        options: CriuOptions,
        container: &str,
        log_file: &str,
        limit: Duration,
    ) -> anyhow::Result<StepReport> {
        let mut args = vec!["container", verb, "--print-stats"];
        args.extend(flags.iter().map(String::as_str));
        if options.keep_log {
            // Without it podman deletes CRIU's log of a successful step.
            args.push("--keep");
        }
        args.extend_from_slice(rest);
        let output = self.podman(verb, &args, limit).await?;
        let criu_log = if output.success() && !options.keep_log {
            None
        } else {
            self.criu_log(container, log_file, &output.stderr).await
        };
        if criu_log.is_some() && !output.success() {
            // The harness read it through /proc; a person (and `bugreport --verify`) reads it
            // before the container, and the log with it, is removed.
            let dir = shell_join(
                &["podman", "container", "inspect", "--format", "{{.StaticDir}}", container].map(String::from),
            );
            self.transcript
                .push_equivalent(&format!("CRIU's log of the failed {verb}"), &format!("cat \"$({dir})/{log_file}\""));
        }
        Ok(StepReport { stats: stats_of(&output), criu_log, daemon_log: None, output })
    }
}

/// `podman container checkpoint`'s options for a scenario's request.
fn checkpoint_flags(o: &CriuOptions, export: bool) -> Vec<String> {
    let mut flags: Vec<String> = [
        (o.tcp_established, "--tcp-established"),
        (o.file_locks, "--file-locks"),
        (o.leave_running, "--leave-running"),
        (o.with_previous, "--with-previous"),
        (o.ignore_volumes && export, "--ignore-volumes"),
        (o.ignore_rootfs && export, "--ignore-rootfs"),
    ]
    .into_iter()
    .filter_map(|(on, flag)| on.then(|| flag.to_string()))
    .collect();
    if let (Some(c), true) = (o.compress, export) {
        flags.extend(["--compress".to_string(), c.name().to_string()]);
    }
    flags
}

/// `podman container restore`'s options for a scenario's request.
fn restore_flags(o: &CriuOptions, archive: Option<&str>) -> Vec<String> {
    let mut flags: Vec<String> = [
        (o.tcp_established, "--tcp-established"),
        (o.file_locks, "--file-locks"),
        (o.ignore_volumes && archive.is_some(), "--ignore-volumes"),
        (o.ignore_rootfs && archive.is_some(), "--ignore-rootfs"),
    ]
    .into_iter()
    .filter_map(|(on, flag)| on.then(|| flag.to_string()))
    .collect();
    if let (true, Some(archive)) = (o.with_previous, archive) {
        flags.extend(["--import-previous".to_string(), super::interface::previous_archive(archive)]);
    }
    flags
}

#[async_trait::async_trait]
impl Engine for Podman {
    fn name(&self) -> &'static str {
        "podman"
    }

    fn lacks(&self, _option: crate::scenario::CheckpointOption) -> Option<String> {
        None
    }

    async fn pre_checkpoint(&self, name: &str, archive: Option<&str>, limit: Duration) -> anyhow::Result<StepReport> {
        let mut rest = vec!["--pre-checkpoint"];
        if let Some(archive) = archive {
            rest.extend(["--export", archive]);
        }
        rest.push(name);
        let options = CriuOptions::default();
        self.criu_step("checkpoint", &[], &rest, options, name, "dump.log", limit).await
    }

    async fn image_exists(&self, tag: &str) -> anyhow::Result<bool> {
        let out =
            exec::run(&self.entry, &["podman", "image", "exists", tag].map(String::from), INSPECT_LIMIT, None).await?;
        Ok(out.success())
    }

    async fn image_id(&self, tag: &str) -> anyhow::Result<String> {
        // A lookup for the image cache, not a step of the cell: kept out of the transcript.
        let argv = ["podman", "image", "inspect", "--format", "{{.Id}}", tag].map(String::from);
        let out = exec::run(&self.entry, &argv, INSPECT_LIMIT, None).await?.checked()?;
        Ok(out.stdout.trim().to_string())
    }

    async fn import_image(&self, tarball: &Path, tag: &str) -> anyhow::Result<()> {
        let file = std::fs::File::open(tarball)?;
        let argv: Vec<String> = ["podman", "import", "-", tag].map(String::from).to_vec();
        let out = exec::run(&self.entry, &argv, Duration::from_secs(600), Some(file)).await?;
        self.transcript.push_equivalent("import the base image", &format!("podman import {} {tag}", tarball.display()));
        out.checked()?;
        Ok(())
    }

    async fn build_image(&self, context: &str, tag: &str, base: &str) -> anyhow::Result<Output> {
        let arg = format!("BASE={base}");
        let build = |ulimit: Vec<String>| {
            let mut args: Vec<String> = ["build", "--build-arg", &arg, "--tag", tag].map(String::from).to_vec();
            args.extend(ulimit);
            args.push(context.to_string());
            args
        };
        let args = build(Self::ulimit_args());
        let out = self.podman_owned("build the scenario image", &args, Duration::from_secs(1800)).await?;
        // Podman 4.3's build (bookworm) cannot set RLIMIT_NPROC to our hard limit without
        // CAP_SYS_RESOURCE, while its own default is below it; podman 5 needs the limit given.
        if !out.success() && out.stderr.contains("RLIMIT_NPROC") {
            let nofile_only: Vec<String> =
                Self::ulimit_args().chunks(2).filter(|a| a[1].starts_with("nofile")).flatten().cloned().collect();
            let args = build(nofile_only);
            return self.podman_owned("build the scenario image", &args, Duration::from_secs(1800)).await?.checked();
        }
        out.checked()
    }

    async fn run(&self, r: &RunRequest, limit: Duration) -> anyhow::Result<Output> {
        let mut args: Vec<String> = vec!["run".into(), "--detach".into()];
        args.extend(r.cli_words(&Self::ulimit_args()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.podman("start the workload", &refs, limit).await
    }

    async fn pid(&self, name: &str) -> anyhow::Result<Option<u32>> {
        let out = exec::run(
            &self.entry,
            &["podman", "container", "inspect", "--format", "{{.State.Pid}}", name].map(String::from),
            INSPECT_LIMIT,
            None,
        )
        .await?
        .checked()?;
        Ok(out.stdout.trim().parse::<u32>().ok().filter(|p| *p > 0))
    }

    async fn checkpoint(
        &self,
        name: &str,
        mode: CheckpointMode<'_>,
        options: CriuOptions,
        limit: Duration,
    ) -> anyhow::Result<StepReport> {
        let rest = match mode {
            CheckpointMode::InPlace => vec![name],
            CheckpointMode::Export { archive } => vec!["--export", archive, name],
        };
        let flags = checkpoint_flags(&options, matches!(mode, CheckpointMode::Export { .. }));
        self.criu_step("checkpoint", &flags, &rest, options, name, "dump.log", limit).await
    }

    async fn restore(
        &self,
        name: &str,
        new_name: &str,
        mode: CheckpointMode<'_>,
        options: CriuOptions,
        limit: Duration,
    ) -> anyhow::Result<StepReport> {
        match mode {
            CheckpointMode::InPlace => {
                let flags = restore_flags(&options, None);
                self.criu_step("restore", &flags, &[name], options, name, "restore.log", limit).await
            }
            CheckpointMode::Export { archive } => {
                let flags = restore_flags(&options, Some(archive));
                let rest = ["--import", archive, "--name", new_name];
                self.criu_step("restore", &flags, &rest, options, new_name, "restore.log", limit).await
            }
        }
    }

    async fn exec(&self, name: &str, args: &[String], limit: Duration) -> anyhow::Result<Output> {
        let mut argv = vec!["exec", name];
        argv.extend(args.iter().map(String::as_str));
        self.podman("check the restored workload", &argv, limit).await
    }

    async fn logs(&self, name: &str, limit: Duration) -> anyhow::Result<Output> {
        self.podman("the workload's output", &["logs", name], limit).await
    }

    async fn cgroup_path(&self, name: &str) -> anyhow::Result<Option<String>> {
        // The OCI config podman handed to the runtime says which cgroup it asked for.
        let argv = ["podman", "container", "inspect", "--format", "{{.OCIConfigPath}}", name].map(String::from);
        let out = exec::run(&self.entry, &argv, INSPECT_LIMIT, None).await?.checked()?;
        let config = self.on_host(out.stdout.trim());
        let text = std::fs::read_to_string(&config)
            .map_err(|e| anyhow::anyhow!("failed to read the OCI config {}: {e}", config.display()))?;
        let spec: serde_json::Value = serde_json::from_str(&text)?;
        Ok(spec["linux"]["cgroupsPath"]
            .as_str()
            .filter(|p| !p.is_empty())
            .map(crate::stack::cgroups::cgroups_path_on_disk))
    }

    fn process_cgroups_command(&self, name: &str) -> String {
        // `hpid`: the PIDs as the host sees them, where /proc/PID/cgroup is read.
        let top = shell_join(&["podman", "top", name, "hpid"].map(String::from));
        format!("for pid in $({top} | tail -n +2); do echo \"== $pid\"; cat /proc/$pid/cgroup; done")
    }

    fn read_file_command(&self, name: &str, path: &str) -> String {
        shell_join(&["podman", "exec", name, "cat", path].map(String::from))
    }

    fn remove_command(&self, names: &[String]) -> String {
        shell_join(
            &[["podman", "rm", "--force", "--volumes", "--time", "0"].map(String::from).as_slice(), names].concat(),
        )
    }

    fn remove_blocking(&self, names: &[String]) {
        crate::stack::containers::remove_podman(&self.entry, names)
    }

    fn remover(&self) -> Remover {
        let entry = self.entry.clone();
        std::sync::Arc::new(move |names: &[String]| crate::stack::containers::remove_podman(&entry, names))
    }
}

/// `--print-stats` prints one JSON document on stdout.
fn stats_of(output: &Output) -> std::collections::BTreeMap<String, f64> {
    let mut stats = std::collections::BTreeMap::new();
    let text = output.stdout.trim();
    let json_start = text.find('{');
    if let Some(at) = json_start {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text[at..]) {
            numeric_fields(&value, &mut stats);
        }
    }
    stats
}
