//! What every engine driver does: the trait and the requests and reports it speaks in.

use crate::process::Output;
use crate::scenario::Network;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A container to start.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub name: String,
    pub image: String,
    pub runtime: String,
    pub network: Network,
    pub env: Vec<String>,
    pub args: Vec<String>,
    /// `key=value` labels; the harness label is always added.
    pub labels: Vec<String>,
    /// OCI annotations, put in the runtime's `config.json` (where runc and crun read
    /// `org.criu.config`); a driver that cannot pass them must refuse, not drop them.
    pub annotations: BTreeMap<String, String>,
    /// Paths of the stack bind-mounted into the container.
    pub mounts: Vec<BindMount>,
    /// Anonymous volumes, by their path in the container.
    pub volumes: Vec<String>,
}

impl RunRequest {
    /// The options and command of `podman run` / `docker create` for this request (after the
    /// verb), with `extra` options after the harness label.
    pub fn cli_words(&self, extra: &[String]) -> Vec<String> {
        let mut args: Vec<String> = vec!["--name".into(), self.name.clone(), "--runtime".into(), self.runtime.clone()];
        args.extend(["--label".into(), crate::stack::containers::LABEL.to_string()]);
        args.extend(extra.iter().cloned());
        for l in &self.labels {
            args.extend(["--label".into(), l.clone()]);
        }
        for (key, value) in &self.annotations {
            args.extend(["--annotation".into(), format!("{key}={value}")]);
        }
        if self.network == Network::None {
            args.extend(["--network".into(), "none".into()]);
        }
        for e in &self.env {
            args.extend(["--env".into(), e.clone()]);
        }
        for m in &self.mounts {
            args.extend(["--mount".into(), format!("type=bind,source={},target={}", m.source, m.target)]);
        }
        for v in &self.volumes {
            args.extend(["--volume".into(), v.clone()]);
        }
        args.push(self.image.clone());
        args.extend(self.args.iter().cloned());
        args
    }
}

/// A bind mount: `source` in the stack, `target` in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: String,
    pub target: String,
}

/// A checkpoint or restore, with what it left as evidence.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub output: Output,
    /// Numeric figures of the engine's statistics (CRIU times in µs, durations).
    pub stats: BTreeMap<String, f64>,
    /// CRIU's log of this step (dump.log / restore.log) when the engine kept one.
    pub criu_log: Option<String>,
    /// What the engine's daemon logged during a failed step (dockerd), when it has one.
    pub daemon_log: Option<String>,
}

impl StepReport {
    /// Everything a signature may be searched in: the engine's stderr and CRIU's log.
    pub fn evidence(&self) -> String {
        let mut text = format!("{}\n{}", self.output.stderr, self.output.stdout);
        if let Some(log) = &self.criu_log {
            text.push_str("\n--- CRIU log ---\n");
            text.push_str(log);
        }
        if let Some(log) = &self.daemon_log {
            text.push_str("\n--- daemon log ---\n");
            text.push_str(log);
        }
        text
    }
}

/// Where to take a checkpoint and what to restore from.
#[derive(Debug, Clone, Copy)]
pub enum CheckpointMode<'a> {
    /// Restore the same container.
    InPlace,
    /// Export to an archive (a path inside the stack), restore into a new container.
    Export { archive: &'a str },
}

/// Where an exported pre-checkpoint goes, beside the checkpoint's archive.
pub fn previous_archive(archive: &str) -> String {
    format!("{}-pre.tar.gz", archive.trim_end_matches(".tar.gz"))
}

/// CRIU options a scenario asks for, passed the way each engine passes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct CriuOptions {
    pub tcp_established: bool,
    /// Leave the container running after the checkpoint (`--leave-running`).
    pub leave_running: bool,
    pub file_locks: bool,
    /// This checkpoint has a pre-checkpoint as its parent (`--with-previous`, `--import-previous`).
    pub with_previous: bool,
    pub ignore_volumes: bool,
    pub ignore_rootfs: bool,
    pub compress: Option<crate::scenario::Compression>,
    /// Fetch CRIU's log after a successful step too (stress cells read how long the freezer
    /// took from it); a failed step always brings its log.
    pub keep_log: bool,
}

#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    fn name(&self) -> &'static str;
    /// Why this engine cannot take a checkpoint with `option`, if it cannot (a cell that asks
    /// for it is refused with that reason).
    fn lacks(&self, option: crate::scenario::CheckpointOption) -> Option<String>;
    /// A pre-checkpoint (memory only; the container keeps running), the parent of the next
    /// checkpoint; with an export, into `archive`.
    async fn pre_checkpoint(&self, name: &str, archive: Option<&str>, limit: Duration) -> anyhow::Result<StepReport>;
    async fn image_exists(&self, tag: &str) -> anyhow::Result<bool>;
    async fn image_id(&self, tag: &str) -> anyhow::Result<String>;
    /// Imports a rootfs tarball (a host path) as an image.
    async fn import_image(&self, tarball: &Path, tag: &str) -> anyhow::Result<()>;
    /// Builds `context` (a path inside the stack) with `--build-arg BASE=<base>`.
    async fn build_image(&self, context: &str, tag: &str, base: &str) -> anyhow::Result<Output>;
    async fn run(&self, request: &RunRequest, limit: Duration) -> anyhow::Result<Output>;
    /// The host PID of the container's first process, if it runs.
    async fn pid(&self, name: &str) -> anyhow::Result<Option<u32>>;
    async fn checkpoint(
        &self,
        name: &str,
        mode: CheckpointMode<'_>,
        options: CriuOptions,
        limit: Duration,
    ) -> anyhow::Result<StepReport>;
    /// Restores `name`; with an export, into the new container `new_name`.
    async fn restore(
        &self,
        name: &str,
        new_name: &str,
        mode: CheckpointMode<'_>,
        options: CriuOptions,
        limit: Duration,
    ) -> anyhow::Result<StepReport>;
    /// Runs a command in the running container (a check after a restore), recorded as it is.
    async fn exec(&self, name: &str, args: &[String], limit: Duration) -> anyhow::Result<Output>;
    /// What the container printed (evidence when it never got ready).
    async fn logs(&self, name: &str, limit: Duration) -> anyhow::Result<Output>;
    /// The cgroup the engine asked the runtime to put the container in (OCI `linux.cgroupsPath`),
    /// as a path under the cgroup root; `None` when the driver cannot tell.
    async fn cgroup_path(&self, _name: &str) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
    /// The equivalent CLI command to print the cgroups of every process of the container, as the
    /// host sees them (for the reproducer).
    fn process_cgroups_command(&self, name: &str) -> String {
        format!(
            "for pid in $({} top {name} -eo pid | tail -n +2); do echo \"== $pid\"; cat /proc/$pid/cgroup; done",
            self.name()
        )
    }
    /// The equivalent CLI command to read a file in the container (for the reproducer).
    fn read_file_command(&self, name: &str, path: &str) -> String;
    /// The equivalent CLI command to remove containers (for the reproducer).
    fn remove_command(&self, names: &[String]) -> String;
    /// Removes containers now (blocking: also used from cleanup paths).
    fn remove_blocking(&self, names: &[String]);
    /// A remover that outlives the driver, for cleanup guards.
    fn remover(&self) -> Remover;
}

/// Removes containers by name, blocking; usable from `Drop` and the interrupt handler.
pub type Remover = std::sync::Arc<dyn Fn(&[String]) + Send + Sync>;

/// Collects every number in a JSON document, keyed by its field name (the statistics engines
/// print are small objects of uniquely named figures).
pub fn numeric_fields(value: &serde_json::Value, into: &mut BTreeMap<String, f64>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match v {
                    serde_json::Value::Number(n) => {
                        if let Some(f) = n.as_f64() {
                            into.insert(key.clone(), f);
                        }
                    }
                    other => numeric_fields(other, into),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| numeric_fields(v, into)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_nested_statistics() {
        let json = serde_json::json!({
            "podman_checkpoint_duration": 1200,
            "container_statistics": [{"Id": "abc", "runtime_checkpoint_duration": 900,
                "criu_statistics": {"freezing_time": 300, "frozen_time": 5000, "memdump_time": 800}}]
        });
        let mut stats = BTreeMap::new();
        numeric_fields(&json, &mut stats);
        assert_eq!(stats.get("freezing_time"), Some(&300.0));
        assert_eq!(stats.get("podman_checkpoint_duration"), Some(&1200.0));
        assert_eq!(stats.len(), 5);
    }
}
