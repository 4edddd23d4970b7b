//! The checks after a restore, judging what the observers saw: the workload continued where it
//! was (its counter, its processes, its desktop), never merely "running".

use crate::observe::{Probe, POLL};
use crate::process::Output;
use crate::record::{RoundRecord, RunningSeen};
use crate::scenario::{ExecCheck, VerifyStep};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs a check command in the container: it must exit 0 and print what `output` matches.
async fn exec(probe: &Probe<'_>, name: &str, check: &ExecCheck, limit: Duration) -> Result<(), String> {
    let args = &check.args.value;
    let out = probe.engine.exec(name, args, limit).await.map_err(|e| format!("failed to run {args:?}: {e:#}"))?;
    exec_check_holds(&out, check.output.as_ref().map(|o| o.value.as_str()))
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
pub async fn after_restore(
    probe: &Probe<'_>,
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
            VerifyStep::Exec(check) => exec(probe, name, check, limit).await?,
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
pub(super) async fn counter_continued(
    probe: &Probe<'_>,
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
        tokio::time::sleep(POLL).await;
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
}
