//! docker, driven through the Docker Engine API (bollard) on the socket of the stack's dockerd
//! (see `stack::dockerd`). Every action is recorded as the docker CLI command a person would type
//! for the same effect, so the reproducer needs nothing but the docker CLI.
//!
//! Checkpoints: `POST /containers/{id}/checkpoints` (the container exits, as with `docker
//! checkpoint create`); a restore is `POST /containers/{id}/start?checkpoint=NAME` (with
//! `checkpoint-dir` for a checkpoint taken into a directory and restored into a new container).
//! Docker passes no CRIU options: what a scenario asks for beyond that (`--tcp-established`)
//! cannot reach CRIU from here, except through a CRIU configuration file the runtime reads.

mod call;

use crate::engine::interface::{CheckpointMode, CriuOptions, Engine, Remover, RunRequest, StepReport};
use crate::process::{shell_join, Output, Transcript};
use crate::scenario::Network;
use crate::stack::containers::LABEL;
use anyhow::Context as _;
use bollard::errors::Error as ApiError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use call::{error_text, log_paths, not_found, query_value, split_tag, unless_daemon_gone, Call};
use futures_util::StreamExt as _;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const INSPECT_LIMIT: Duration = Duration::from_secs(60);

pub struct Docker {
    client: bollard::Docker,
    /// Where the host sees the stack's `/`.
    host_root: PathBuf,
    /// dockerd's `--exec-root` inside the stack (containerd's bundles, with each OCI config).
    exec_root: String,
    transcript: Arc<Transcript>,
    /// What each container of this cell was made from, to make its successor for an import.
    requests: Mutex<HashMap<String, RunRequest>>,
    /// The last checkpoint of each container: its name and directory (for an export).
    checkpoints: Mutex<HashMap<String, (String, Option<String>)>>,
    /// dockerd's log, whose lines written during a failed step are part of its evidence.
    daemon_log: PathBuf,
    /// Checkpoints taken so far: each gets a new name (`cp1`, `cp2`, ...), as a person would.
    taken: AtomicU32,
}

impl Docker {
    pub fn new(
        client: bollard::Docker,
        host_root: PathBuf,
        exec_root: String,
        daemon_log: PathBuf,
        transcript: Arc<Transcript>,
    ) -> Docker {
        Docker {
            client,
            daemon_log,
            host_root,
            exec_root,
            transcript,
            requests: Mutex::default(),
            checkpoints: Mutex::default(),
            taken: AtomicU32::new(0),
        }
    }

    fn on_host(&self, inner: &str) -> PathBuf {
        self.host_root.join(inner.trim_start_matches('/'))
    }

    /// Records the call in the transcript under `purpose`.
    fn record(&self, purpose: &str, out: Output) -> Output {
        self.transcript.push(purpose, &out);
        out
    }

    async fn create(&self, r: &RunRequest) -> Result<String, ApiError> {
        let mut labels = HashMap::from([(LABEL.to_string(), String::new())]);
        for l in &r.labels {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            labels.insert(k.to_string(), v.to_string());
        }
        let mounts: Vec<Mount> = r
            .mounts
            .iter()
            .map(|m| Mount {
                typ: Some(MountType::BIND),
                source: Some(m.source.clone()),
                target: Some(m.target.clone()),
                ..Default::default()
            })
            .collect();
        let host_config = HostConfig {
            runtime: Some(r.runtime.clone()),
            network_mode: (r.network == Network::None).then(|| "none".to_string()),
            mounts: (!mounts.is_empty()).then_some(mounts),
            // Docker puts these in the OCI spec it hands the runtime (API 1.43+).
            annotations: (!r.annotations.is_empty())
                .then(|| r.annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(r.image.clone()),
            cmd: (!r.args.is_empty()).then(|| r.args.clone()),
            env: (!r.env.is_empty()).then(|| r.env.clone()),
            labels: Some(labels),
            volumes: (!r.volumes.is_empty()).then(|| r.volumes.clone()),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options =
            bollard::query_parameters::CreateContainerOptions { name: Some(r.name.clone()), platform: String::new() };
        let created = self.client.create_container(Some(options), body).await?;
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).insert(r.name.clone(), r.clone());
        Ok(created.id)
    }

    /// A client whose `POST .../start` carries `checkpoint` (and `checkpoint-dir`): bollard's
    /// start options have no such fields, so the query is added to that one request.
    fn restoring_client(&self, checkpoint: &str, dir: Option<&str>) -> bollard::Docker {
        let mut query = format!("checkpoint={}", query_value(checkpoint));
        if let Some(dir) = dir {
            query.push_str(&format!("&checkpoint-dir={}", query_value(dir)));
        }
        self.client.clone().with_request_modifier(move |mut request| {
            if request.method() == http::Method::POST && request.uri().path().ends_with("/start") {
                let mut parts = request.uri().clone().into_parts();
                let path = request.uri().path().to_string();
                let joined = match request.uri().query() {
                    Some(q) if !q.is_empty() => format!("{path}?{q}&{query}"),
                    _ => format!("{path}?{query}"),
                };
                if let Ok(pq) = joined.parse() {
                    parts.path_and_query = Some(pq);
                    if let Ok(uri) = http::Uri::from_parts(parts) {
                        *request.uri_mut() = uri;
                    }
                }
            }
            request
        })
    }

    /// CRIU's log of a failed checkpoint or restore: the one the error names, read from the host.
    fn criu_log(&self, stderr: &str) -> Option<String> {
        log_paths(stderr).iter().find_map(|p| std::fs::read_to_string(self.on_host(p)).ok())
    }

    /// The checkpoint directory of an export: beside the archive path podman would write.
    fn export_dir(archive: &str) -> String {
        format!("{}.checkpoints", archive.trim_end_matches(".tar.gz"))
    }

    /// How far dockerd's log is written now.
    fn daemon_log_mark(&self) -> u64 {
        std::fs::metadata(&self.daemon_log).map(|m| m.len()).unwrap_or(0)
    }

    /// A checkpoint or restore; when it failed, with CRIU's log (when the error names it) and
    /// what dockerd logged since `mark`.
    fn step_report(&self, output: Output, mark: u64) -> StepReport {
        if output.success() {
            return StepReport { output, stats: BTreeMap::new(), criu_log: None, daemon_log: None };
        }
        let criu_log = self.criu_log(&output.stderr);
        let daemon_log = std::fs::read(&self.daemon_log)
            .ok()
            .map(|bytes| String::from_utf8_lossy(bytes.get(mark as usize..).unwrap_or_default()).into_owned())
            .filter(|text| !text.trim().is_empty());
        StepReport { output, stats: BTreeMap::new(), criu_log, daemon_log }
    }
}

#[async_trait::async_trait]
impl Engine for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn lacks(&self, option: crate::scenario::CheckpointOption) -> Option<String> {
        use crate::scenario::CheckpointOption::*;
        // The Engine API's checkpoint takes a name, a directory and whether the container exits.
        match option {
            LeaveRunning => None,
            // Scenarios ask for it through CRIU configuration where docker cannot; measured so.
            TcpEstablished => None,
            other => Some(format!(
                "docker has no {} for checkpoints: the Engine API's checkpoint takes only a name, a \
                 directory and `exit` (`--leave-running`)",
                other.flag()
            )),
        }
    }

    async fn pre_checkpoint(
        &self,
        _name: &str,
        _archive: Option<&str>,
        _limit: Duration,
    ) -> anyhow::Result<StepReport> {
        anyhow::bail!("docker has no pre-checkpoint")
    }

    async fn image_exists(&self, tag: &str) -> anyhow::Result<bool> {
        match self.client.inspect_image(tag).await {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(anyhow::anyhow!("failed to inspect image {tag}: {}", error_text(&e))),
        }
    }

    async fn image_id(&self, tag: &str) -> anyhow::Result<String> {
        let image = self.client.inspect_image(tag).await.map_err(|e| anyhow::anyhow!("{}", error_text(&e)))?;
        image.id.ok_or_else(|| anyhow::anyhow!("dockerd reported no id for image {tag}"))
    }

    async fn import_image(&self, tarball: &Path, tag: &str) -> anyhow::Result<()> {
        let call = Call::owned(vec!["docker".into(), "import".into(), tarball.display().to_string(), tag.into()]);
        // Streamed a MiB at a time: a base tarball is hundreds of MB.
        let file = tokio::fs::File::open(tarball).await?;
        let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
            let mut chunk = vec![0u8; 1 << 20];
            let n = tokio::io::AsyncReadExt::read(&mut file, &mut chunk).await?;
            chunk.truncate(n);
            Ok::<_, std::io::Error>((n > 0).then(|| (bytes::Bytes::from(chunk), file)))
        });
        let (repo, version) = split_tag(tag);
        let options = bollard::query_parameters::CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(version.into()),
            ..Default::default()
        };
        let work = async {
            let mut stream = self.client.create_image(Some(options), Some(bollard::body_try_stream(chunks)), None);
            let mut said = String::new();
            while let Some(item) = stream.next().await {
                let info = item?;
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    return Err(ApiError::DockerStreamError { error });
                }
                said.push_str(&info.status.unwrap_or_default());
            }
            Ok(said)
        };
        let out = call.finish(tokio::time::timeout(Duration::from_secs(600), work).await);
        self.record("import the base image", out).checked()?;
        Ok(())
    }

    async fn build_image(&self, context: &str, tag: &str, base: &str) -> anyhow::Result<Output> {
        let arg = format!("BASE={base}");
        // The legacy builder, as the API's default; builds use the host network (no bridge here).
        let argv = ["env", "DOCKER_BUILDKIT=0", "docker", "build", "--network", "host", "--build-arg", &arg, "--file"]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("{context}/Containerfile"), "--tag".into(), tag.into(), context.into()])
            .collect();
        let call = Call::owned(argv);
        let pack = [
            "tar".to_string(),
            "-C".into(),
            self.on_host(context).display().to_string(),
            "-cf".into(),
            "-".into(),
            ".".into(),
        ];
        let tar = crate::process::Command::new(pack, Duration::from_secs(600))
            .run_bytes()
            .await
            .context("failed to pack the build context")?;
        let options = bollard::query_parameters::BuildImageOptions {
            dockerfile: "Containerfile".into(),
            t: Some(tag.into()),
            buildargs: Some(HashMap::from([("BASE".to_string(), base.to_string())])),
            networkmode: Some("host".into()),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let work = async {
            let mut stream = self.client.build_image(options, None, Some(bollard::body_full(tar.into())));
            let mut said = String::new();
            while let Some(item) = stream.next().await {
                let info = item?;
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    return Err(ApiError::DockerStreamError { error: format!("{said}{error}") });
                }
                said.push_str(&info.stream.unwrap_or_default());
            }
            Ok(said)
        };
        let out = call.finish(tokio::time::timeout(Duration::from_secs(1800), work).await);
        self.record("build the scenario image", out).checked()
    }

    async fn run(&self, r: &RunRequest, limit: Duration) -> anyhow::Result<Output> {
        let mut argv: Vec<String> = ["docker", "run", "--detach"].map(String::from).to_vec();
        argv.extend(r.cli_words(&[]));
        let call = Call::owned(argv);
        let work = async {
            let id = self.create(r).await?;
            self.client.start_container(&r.name, None).await?;
            Ok(id)
        };
        Ok(self.record("start the workload", call.finish(tokio::time::timeout(limit, work).await)))
    }

    async fn pid(&self, name: &str) -> anyhow::Result<Option<u32>> {
        let inspect = tokio::time::timeout(INSPECT_LIMIT, self.client.inspect_container(name, None))
            .await
            .map_err(|_| anyhow::anyhow!("dockerd did not answer an inspect of {name} in time"))?
            .map_err(|e| anyhow::anyhow!("{}", error_text(&e)))?;
        let state = inspect.state.unwrap_or_default();
        let pid = state.pid.unwrap_or(0);
        Ok((state.running == Some(true) && pid > 0).then_some(pid as u32))
    }

    async fn checkpoint(
        &self,
        name: &str,
        mode: CheckpointMode<'_>,
        options: CriuOptions,
        limit: Duration,
    ) -> anyhow::Result<StepReport> {
        if options.tcp_established {
            tracing::info!("docker has no option for --tcp-established: CRIU gets none from the engine");
        }
        let checkpoint = format!("cp{}", self.taken.fetch_add(1, Ordering::SeqCst) + 1);
        let dir = match mode {
            CheckpointMode::InPlace => None,
            CheckpointMode::Export { archive } => Some(Self::export_dir(archive)),
        };
        let mut argv: Vec<String> = ["docker", "checkpoint", "create"].map(String::from).to_vec();
        if let Some(d) = &dir {
            argv.extend(["--checkpoint-dir".into(), d.clone()]);
        }
        if options.leave_running {
            argv.push("--leave-running".into());
        }
        argv.extend([name.to_string(), checkpoint.clone()]);
        let call = Call::owned(argv);
        let mark = self.daemon_log_mark();
        let request = bollard::container::CreateCheckpointOptions {
            checkpoint_id: checkpoint.clone(),
            checkpoint_dir: dir.clone(),
            exit: !options.leave_running,
        };
        let work = async { self.client.create_checkpoint(name, request).await.map(|()| String::new()) };
        let answered = unless_daemon_gone(tokio::time::timeout(limit, work).await, "docker checkpoint create")?;
        let out = self.record("checkpoint", call.finish(answered));
        if out.success() {
            self.checkpoints
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_string(), (checkpoint, dir.clone()));
            // Evidence that the checkpoint is there (the list is what `docker start --checkpoint` finds).
            let mut argv: Vec<String> = ["docker", "checkpoint", "ls"].map(String::from).to_vec();
            if let Some(d) = &dir {
                argv.extend(["--checkpoint-dir".into(), d.clone()]);
            }
            argv.push(name.to_string());
            let call = Call::owned(argv);
            let options = bollard::container::ListCheckpointsOptions { checkpoint_dir: dir };
            let work = async {
                let list = self.client.list_checkpoints(name, Some(options)).await?;
                Ok(list.into_iter().map(|c| c.name).collect::<Vec<_>>().join("\n"))
            };
            self.record("the container's checkpoints", call.finish(tokio::time::timeout(INSPECT_LIMIT, work).await));
        }
        Ok(self.step_report(out, mark))
    }

    async fn restore(
        &self,
        name: &str,
        new_name: &str,
        mode: CheckpointMode<'_>,
        _options: CriuOptions,
        limit: Duration,
    ) -> anyhow::Result<StepReport> {
        let (checkpoint, dir) = self
            .checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no checkpoint of {name} to restore"))?;
        let mark = self.daemon_log_mark();
        let target = match mode {
            CheckpointMode::InPlace => name.to_string(),
            CheckpointMode::Export { .. } => {
                // A new container from the same request, then started from the checkpoint.
                let mut request = self
                    .requests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(name)
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("the harness did not create {name}"))?;
                request.name = new_name.to_string();
                let mut argv: Vec<String> = ["docker", "create"].map(String::from).to_vec();
                argv.extend(request.cli_words(&[]));
                let call = Call::owned(argv);
                let created = call.finish(unless_daemon_gone(tokio::time::timeout(limit, self.create(&request)).await, "docker create")?);
                let created = self.record("a new container for the imported checkpoint", created);
                if !created.success() {
                    return Ok(self.step_report(created, mark));
                }
                new_name.to_string()
            }
        };
        let mut argv: Vec<String> = ["docker", "start", "--checkpoint", &checkpoint].map(String::from).to_vec();
        if let Some(d) = &dir {
            argv.extend(["--checkpoint-dir".into(), d.clone()]);
        }
        argv.push(target.clone());
        let call = Call::owned(argv);
        let client = self.restoring_client(&checkpoint, dir.as_deref());
        let work = async { client.start_container(&target, None).await.map(|()| String::new()) };
        let answered = unless_daemon_gone(tokio::time::timeout(limit, work).await, "docker start --checkpoint")?;
        let out = self.record("restore", call.finish(answered));
        if let Some(d) = &dir {
            // The checkpoint directory was this restore's input only.
            let _ = std::fs::remove_dir_all(self.on_host(d));
        }
        Ok(self.step_report(out, mark))
    }

    async fn exec(&self, name: &str, args: &[String], limit: Duration) -> anyhow::Result<Output> {
        let mut argv: Vec<String> = ["docker", "exec", name].map(String::from).to_vec();
        argv.extend(args.iter().cloned());
        let call = Call::owned(argv);
        let mut stdout = String::new();
        let mut stderr = String::new();
        let work = async {
            let config = bollard::models::ExecConfig {
                cmd: Some(args.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            };
            let exec = self.client.create_exec(name, config).await?;
            if let bollard::exec::StartExecResults::Attached { mut output, .. } =
                self.client.start_exec(&exec.id, None).await?
            {
                while let Some(chunk) = output.next().await {
                    match chunk? {
                        bollard::container::LogOutput::StdErr { message } => {
                            stderr.push_str(&String::from_utf8_lossy(&message))
                        }
                        other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
                    }
                }
            }
            Ok(self.client.inspect_exec(&exec.id).await?.exit_code.unwrap_or(-1))
        };
        let finished = tokio::time::timeout(limit, work).await;
        let code = match &finished {
            Ok(Ok(code)) => Some(*code),
            _ => None,
        };
        let mut out = call.finish(finished.map(|r| r.map(|_| String::new())));
        if let Some(code) = code {
            out.status = Some(code as i32);
            out.stdout = stdout;
            out.stderr = stderr;
        }
        Ok(self.record("check the restored workload", out))
    }

    async fn logs(&self, name: &str, limit: Duration) -> anyhow::Result<Output> {
        let call = Call::new(&["docker", "logs", name]);
        let options = bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            tail: "200".into(),
            ..Default::default()
        };
        let work = async {
            let mut stream = self.client.logs(name, Some(options));
            let mut text = String::new();
            while let Some(chunk) = stream.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk?.into_bytes()));
            }
            Ok(text)
        };
        Ok(self.record("the workload's output", call.finish(tokio::time::timeout(limit, work).await)))
    }

    async fn cgroup_path(&self, name: &str) -> anyhow::Result<Option<String>> {
        // The OCI config dockerd's containerd handed to the runtime, in the container's bundle.
        let inspect =
            self.client.inspect_container(name, None).await.map_err(|e| anyhow::anyhow!("{}", error_text(&e)))?;
        let Some(id) = inspect.id else { return Ok(None) };
        let config = self.on_host(&format!(
            "{}/containerd/daemon/io.containerd.runtime.v2.task/moby/{id}/config.json",
            self.exec_root
        ));
        let Ok(text) = std::fs::read_to_string(&config) else { return Ok(None) };
        let spec: serde_json::Value = serde_json::from_str(&text)?;
        Ok(spec["linux"]["cgroupsPath"]
            .as_str()
            .filter(|p| !p.is_empty())
            .map(crate::stack::cgroups::cgroups_path_on_disk))
    }

    fn read_file_command(&self, name: &str, path: &str) -> String {
        shell_join(&["docker", "exec", name, "cat", path].map(String::from))
    }

    fn remove_command(&self, names: &[String]) -> String {
        shell_join(&[["docker", "rm", "--force", "--volumes"].map(String::from).as_slice(), names].concat())
    }

    fn remove_blocking(&self, names: &[String]) {
        crate::stack::dockerd::api::remove_blocking(&self.client, names)
    }

    fn remover(&self) -> Remover {
        let client = self.client.clone();
        Arc::new(move |names: &[String]| crate::stack::dockerd::api::remove_blocking(&client, names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_tags_after_the_last_slash() {
        assert_eq!(split_tag("localhost/criu-matrix/base:trixie"), ("localhost/criu-matrix/base", "trixie"));
        assert_eq!(split_tag("localhost:5000/x"), ("localhost:5000/x", "latest"));
    }

    #[test]
    fn finds_the_criu_log_an_error_names() {
        let message = "Error response from daemon: failed to create checkpoint: criu failed: type NOTIFY errno 0\n\
                       log file: /var/lib/docker/containers/abc/checkpoints/cp1/criu.work/dump.log: unknown";
        assert_eq!(log_paths(message), vec!["/var/lib/docker/containers/abc/checkpoints/cp1/criu.work/dump.log"]);
        assert!(log_paths("path= /run/x/criu-dump.log: unknown").contains(&"/run/x/criu-dump.log".to_string()));
    }

    #[test]
    fn query_values_keep_paths_readable_and_encode_the_rest() {
        assert_eq!(query_value("/tmp/cm-a.checkpoints"), "/tmp/cm-a.checkpoints");
        assert_eq!(query_value("a b&c"), "a%20b%26c");
    }

    #[test]
    fn the_run_command_line_says_what_the_api_call_does() {
        let r = RunRequest {
            name: "c1".into(),
            image: "img:1".into(),
            runtime: "crun".into(),
            network: Network::None,
            env: vec!["A=1".into()],
            args: vec!["/bin/sh".into(), "-c".into(), "x".into()],
            labels: vec!["criu-matrix.cell=x".into()],
            annotations: [("org.criu.config".to_string(), "/etc/criu/x.conf".to_string())].into(),
            mounts: vec![crate::engine::interface::BindMount { source: "/s".into(), target: "/t".into() }],
            volumes: Vec::new(),
        };
        let line = shell_join(&r.cli_words(&[]));
        assert_eq!(
            line,
            "--name c1 --runtime crun --label criu-matrix --label criu-matrix.cell=x \
             --annotation org.criu.config=/etc/criu/x.conf --network none --env A=1 \
             --mount type=bind,source=/s,target=/t img:1 /bin/sh -c x"
        );
    }
}
