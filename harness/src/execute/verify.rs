//! Checks on a running container, read from the host through `/proc/<pid>/root` (no `exec` into
//! the container, which would add a process to what CRIU dumps). Each read is also recorded as the
//! equivalent engine command for the reproducer.

use super::POLL;
use crate::engine::Engine;
use crate::record::{RoundRecord, RunningSeen, VncSeen};
use crate::scenario::{ExecCheck, VerifyStep, VncCheck};
use crate::stack::{Output, Session};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Probe<'a, E: Engine> {
    pub(super) engine: &'a E,
    pub(super) session: &'a Session,
}

/// Reads a counter file: a decimal number, possibly followed by a newline.
pub fn read_counter(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|_| format!("expected a number in the counter file, found {:?}", text.trim()))
}

impl<'a, E: Engine> Probe<'a, E> {
    pub fn new(engine: &'a E, session: &'a Session) -> Self {
        Probe { engine, session }
    }

    pub(super) async fn pid(&self, name: &str) -> Result<u32, String> {
        match self.engine.pid(name).await {
            Ok(Some(pid)) => Ok(pid),
            Ok(None) => Err(format!("container {name} is not running")),
            Err(e) => Err(format!("failed to inspect container {name}: {e:#}")),
        }
    }

    /// A file inside the container, as the host sees it.
    async fn read(&self, name: &str, path: &str) -> Result<String, String> {
        let pid = self.pid(name).await?;
        let host = self.session.host_path(&format!("/proc/{pid}/root{path}"));
        std::fs::read_to_string(&host).map_err(|e| format!("failed to read {path} in container {name}: {e}"))
    }

    /// Waits until `file` exists and is not empty in the container.
    pub async fn wait_ready(&self, name: &str, file: &str, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < limit {
            match self.read(name, file).await {
                Ok(text) if !text.trim().is_empty() => return Ok(()),
                Ok(_) => last = format!("{file} is empty"),
                Err(e) => last = e,
            }
            tokio::time::sleep(POLL).await;
        }
        Err(format!("the workload was not ready within {:.0}s ({last})", limit.as_secs_f64()))
    }

    /// Reads the counter. The workload rewrites the file in place, so a read may land between the
    /// truncation and the write, and a checkpoint taken there restores an empty file that stays
    /// empty until the restored workload is scheduled again (seconds under software emulation):
    /// an empty or partial read is retried until a number is there, for up to 20 seconds.
    pub async fn counter(&self, name: &str, path: &str) -> Result<u64, String> {
        let started = Instant::now();
        loop {
            match read_counter(&self.read(name, path).await?) {
                Ok(n) => return Ok(n),
                Err(e) if started.elapsed() > Duration::from_secs(20) => return Err(e),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Runs a check command in the container: it must exit 0 and print what `output` matches.
    async fn exec(&self, name: &str, check: &ExecCheck, limit: Duration) -> Result<(), String> {
        let args = &check.args.value;
        let out = self.engine.exec(name, args, limit).await.map_err(|e| format!("failed to run {args:?}: {e:#}"))?;
        exec_check_holds(&out, check.output.as_ref().map(|o| o.value.as_str()))
    }

    /// The freezer of the container's cgroup (that of its first process).
    pub(super) async fn freezer(&self, name: &str) -> Result<super::freezer::Control, String> {
        let pid = self.pid(name).await?;
        let text = std::fs::read_to_string(self.session.host_path(&format!("/proc/{pid}/cgroup")))
            .map_err(|e| format!("failed to read the cgroups of {name}: {e}"))?;
        super::freezer::control(&self.session.host_path("/sys/fs/cgroup"), &text)
            .ok_or_else(|| format!("no freezer found for {name} in {text:?}"))
    }

    /// The state of every task of the container, read right before a checkpoint.
    pub(super) async fn task_states(&self, name: &str) -> Result<super::tasks::TaskStates, String> {
        let pids = self.processes(name).await?;
        Ok(super::tasks::read(&self.session.host_path("/proc"), &pids))
    }

    /// Processes in the container's PID namespace.
    pub(super) async fn processes(&self, name: &str) -> Result<Vec<u32>, String> {
        let pid = self.pid(name).await?;
        let proc_root = self.session.host_path("/proc");
        let ns = std::fs::read_link(proc_root.join(format!("{pid}/ns/pid"))).map_err(|e| e.to_string())?;
        let entries = std::fs::read_dir(&proc_root).map_err(|e| e.to_string())?;
        Ok(entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| std::fs::read_link(proc_root.join(format!("{p}/ns/pid"))).is_ok_and(|l| l == ns))
            .collect())
    }

    /// The pidfds the container's processes hold now.
    pub(super) async fn pidfds(&self, name: &str) -> Result<Vec<super::pidfds::PidfdHolder>, String> {
        let pids = self.processes(name).await?;
        Ok(super::pidfds::scan(&self.session.host_path("/proc"), &pids))
    }

    /// The PIDs inside the container of its processes named `names` (by `/proc/PID/comm`).
    pub(super) async fn pids_named(&self, name: &str, names: &[String]) -> Result<BTreeMap<String, Vec<u32>>, String> {
        let proc_root = self.session.host_path("/proc");
        let mut found: BTreeMap<String, Vec<u32>> = names.iter().map(|n| (n.clone(), Vec::new())).collect();
        for pid in self.processes(name).await? {
            let Some(comm) = super::pidfds::comm(&proc_root, pid) else { continue };
            if let (Some(pids), Some(inner)) = (found.get_mut(&comm), super::pidfds::innermost_pid(&proc_root, pid)) {
                pids.push(inner);
            }
        }
        found.values_mut().for_each(|p| p.sort_unstable());
        Ok(found)
    }

    /// Connects to the container's VNC server as a viewer; keeps the picture in `log_dir`.
    pub(super) async fn vnc(
        &self,
        name: &str,
        check: &VncCheck,
        round: u32,
        log_dir: &Path,
        limit: Duration,
    ) -> Result<VncSeen, String> {
        let pid = self.pid(name).await?;
        let netns = self.session.host_path(&format!("/proc/{pid}/ns/net"));
        let started = Instant::now();
        let fb = super::vnc::capture_in_netns(&netns, check.port(), check.password.clone(), limit).await?;
        let seconds = started.elapsed().as_secs_f64();
        let screenshot = if check.screenshot {
            let file = format!("screenshot-round{round}.png");
            fb.write_png(&log_dir.join(&file)).map_err(|e| format!("failed to write {file}: {e:#}"))?;
            Some(file)
        } else {
            None
        };
        Ok(VncSeen {
            protocol: format!("{} {}", fb.version, fb.security),
            desktop: fb.name.clone(),
            width: fb.width,
            height: fb.height,
            distinct_colors: fb.distinct_colors(),
            screenshot,
            seconds,
        })
    }
}

/// Each named process still runs after the restore with a PID it had before the checkpoint
/// (CRIU restores PIDs inside the container's namespace): restored, not started again.
pub fn running_continued(seen: &BTreeMap<String, RunningSeen>) -> Result<(), String> {
    let mut problems = Vec::new();
    for (comm, RunningSeen { before, after }) in seen {
        if before.is_empty() {
            problems.push(format!("{comm} was not running before the checkpoint"));
        } else if after.is_empty() {
            problems.push(format!("{comm} (pid {before:?} before the checkpoint) is gone after the restore"));
        } else if !before.iter().any(|p| after.contains(p)) {
            problems
                .push(format!("{comm} runs as pid {after:?}, not {before:?} as before the checkpoint: started again"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// A check command held: it exited 0 and its standard output matches `wanted` (validated when
/// the scenario was parsed).
fn exec_check_holds(out: &Output, wanted: Option<&str>) -> Result<(), String> {
    if !out.success() {
        return Err(format!("the check after the restore failed: {}", out.failure_text()));
    }
    if let Some(wanted) = wanted {
        let regex = regex::Regex::new(wanted).map_err(|e| e.to_string())?;
        if !regex.is_match(&out.stdout) {
            return Err(format!(
                "the check `{}` printed {:?}, which does not match /{wanted}/",
                out.command_line(),
                out.stdout.trim()
            ));
        }
    }
    Ok(())
}

/// After a restore: the workload continued where it was (never just "running"). Fills in what
/// it observed (the counter right after the restore, where the processes are) on `record`, also
/// when a check fails: what was seen is evidence either way.
pub async fn after_restore<E: Engine>(
    probe: &Probe<'_, E>,
    name: &str,
    steps: &[VerifyStep],
    record: &mut RoundRecord,
    cgroup_version: &str,
    log_dir: &Path,
    limit: Duration,
) -> Result<(), String> {
    for step in steps {
        match step {
            VerifyStep::Counter(path) => {
                record.counter_after = Some(counter_continued(probe, name, path, record.counter_before, limit).await?);
            }
            VerifyStep::Exec(check) => probe.exec(name, check, limit).await?,
            VerifyStep::Processes(count) => {
                let found = probe.processes(name).await?;
                if (found.len() as u32) < count.at_least {
                    return Err(format!(
                        "{} processes in the container after the restore, expected at least {}",
                        found.len(),
                        count.at_least
                    ));
                }
            }
            VerifyStep::CgroupPlacement(spec) => {
                let placement = probe.placement(name, cgroup_version).await?;
                let outside = placement.outside().count() > 0;
                let description = placement.describe_outside();
                record.cgroup_placement = Some(placement);
                if outside && spec.enforce {
                    return Err(description);
                }
            }
            VerifyStep::Vnc(check) => {
                let seen = probe.vnc(name, check, record.round, log_dir, limit).await?;
                let colors = seen.distinct_colors;
                record.vnc = Some(seen);
                if colors < check.min_colors as usize {
                    let before = record
                        .vnc_before
                        .as_ref()
                        .map(|b| format!(" (before the first checkpoint: {} colors)", b.distinct_colors))
                        .unwrap_or_default();
                    return Err(format!(
                        "the VNC framebuffer after the restore has {colors} distinct colors, fewer than {}: \
                         no desktop is drawn{before}",
                        check.min_colors
                    ));
                }
            }
            VerifyStep::Running(names) => {
                let now = probe.pids_named(name, &names.value).await?;
                for (comm, pids) in now {
                    record.running.entry(comm).or_default().after = pids;
                }
                running_continued(&record.running)?;
            }
        }
    }
    Ok(())
}

/// The counter right after the restore: not lower than before the checkpoint, then growing.
pub(super) async fn counter_continued<E: Engine>(
    probe: &Probe<'_, E>,
    name: &str,
    path: &str,
    before: Option<u64>,
    limit: Duration,
) -> Result<u64, String> {
    let after = probe.counter(name, path).await?;
    if let Some(before) = before {
        if after < before {
            return Err(format!(
                "counter {path} went back from {before} to {after}: the workload restarted instead of continuing"
            ));
        }
    }
    let started = Instant::now();
    loop {
        let now = probe.counter(name, path).await?;
        if now > after {
            return Ok(after);
        }
        if started.elapsed() > limit {
            return Err(format!(
                "counter {path} stayed at {now} for {:.0}s after the restore: the workload is not running",
                limit.as_secs_f64()
            ));
        }
        tokio::time::sleep(super::POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn output(status: Option<i32>, stdout: &str, timed_out: bool) -> Output {
        Output {
            argv: vec!["podman".into(), "exec".into(), "c".into(), "dbus-send".into()],
            status,
            stdout: stdout.into(),
            stderr: "Error org.freedesktop.DBus.Error.ServiceUnknown".into(),
            seconds: 0.1,
            timed_out,
        }
    }

    #[rstest]
    #[case::answered(output(Some(0), "method return\n   uint64 42\n", false), Some(r"uint64 \d+"), true)]
    #[case::any_output_will_do(output(Some(0), "", false), None, true)]
    #[case::wrong_answer(output(Some(0), "   string \"x\"\n", false), Some(r"uint64 \d+"), false)]
    #[case::failed(output(Some(1), "uint64 42", false), Some(r"uint64 \d+"), false)]
    #[case::timed_out(output(None, "", true), None, false)]
    fn an_exec_check_holds_only_on_success_with_matching_output(
        #[case] out: Output,
        #[case] wanted: Option<&str>,
        #[case] holds: bool,
    ) {
        let result = exec_check_holds(&out, wanted);
        assert_eq!(result.is_ok(), holds, "{result:?}");
        if let Err(message) = result {
            assert!(message.contains("podman exec c dbus-send"), "{message}");
        }
    }

    fn seen(before: &[u32], after: &[u32]) -> RunningSeen {
        RunningSeen { before: before.to_vec(), after: after.to_vec() }
    }

    #[rstest]
    #[case::restored(seen(&[41], &[41]), None)]
    #[case::one_of_several_kept(seen(&[40, 41], &[41, 77]), None)]
    #[case::gone(seen(&[41], &[]), Some("is gone after the restore"))]
    #[case::started_again(seen(&[41], &[12]), Some("started again"))]
    #[case::never_ran(seen(&[], &[12]), Some("was not running before the checkpoint"))]
    fn named_processes_must_keep_their_pids(#[case] s: RunningSeen, #[case] problem: Option<&str>) {
        let result = running_continued(&BTreeMap::from([("ibus-daemon".to_string(), s)]));
        match problem {
            None => assert_eq!(result, Ok(())),
            Some(text) => {
                let message = result.unwrap_err();
                assert!(message.starts_with("ibus-daemon") && message.contains(text), "{message}");
            }
        }
    }

    #[test]
    fn reads_counters_and_rejects_garbage() {
        assert_eq!(read_counter("42\n"), Ok(42));
        assert!(read_counter("").is_err());
        assert!(read_counter("4x2").is_err());
    }
}
