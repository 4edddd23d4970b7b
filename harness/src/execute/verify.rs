//! The checks after a restore, judging what the observers saw: the workload continued where it
//! was (its counter, its processes, its desktop), never merely "running".

use crate::observe::{Probe, WitnessReading, POLL};
use crate::process::Output;
use crate::record::{HostProcess, RoundRecord, RunningSeen};
use crate::scenario::{ExecCheck, Scenario, VerifyStep};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// A failed verification: the harness's one-line judgement, and the output of the engine that
/// it judged (an `exec` check's), where signatures are searched. The harness's own words are
/// never evidence: a signature must match what the engine, the runtime or CRIU said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    pub message: String,
    pub evidence: String,
}

impl From<String> for VerifyFailure {
    fn from(message: String) -> Self {
        VerifyFailure { message, evidence: String::new() }
    }
}

/// Runs a command in the container: it must exit 0 and print what `output` matches. What it
/// printed is kept on the round's record under `step`, whether it held or not.
pub(super) async fn exec(
    probe: &Probe<'_>,
    name: &str,
    check: &ExecCheck,
    limit: Duration,
    step: &str,
    record: &mut RoundRecord,
) -> Result<(), VerifyFailure> {
    let args = &check.args.value;
    let out = probe.engine.exec(name, args, limit).await.map_err(|e| format!("failed to run {args:?}: {e:#}"))?;
    record.execs.push(crate::record::ExecSeen {
        step: step.to_string(),
        command: out.command_line(),
        status: out.status,
        stdout: out.stdout.clone(),
        stderr: out.stderr.clone(),
    });
    exec_check_holds(&out, check.output.as_ref().map(|o| o.value.as_str()))
        .map_err(|message| VerifyFailure { message, evidence: format!("{}\n{}", out.stdout, out.stderr) })
}

/// The container's first process after the restore must be another host process than before
/// the checkpoint: a container left running (never checkpointed to exit, never restored) keeps
/// its own, and passes nothing.
pub fn init_replaced(before: Option<HostProcess>, after: HostProcess) -> Result<(), String> {
    match before {
        None => Err("witness: the container's first process was not read before the checkpoint".to_string()),
        Some(before) if before == after => Err(format!(
            "witness: the container's first process is the same host process as before the checkpoint \
             ({after}): the container was never restored"
        )),
        Some(_) => Ok(()),
    }
}

/// The witness right after the restore against its reading before the checkpoint: the same
/// identity, and a count not lower.
pub fn witness_holds(path: &str, before: &WitnessReading, after: &WitnessReading) -> Result<(), String> {
    if after.id != before.id {
        return Err(format!(
            "witness: {path} has identity {} after the restore, {} before the checkpoint: \
             the workload was started again, not restored",
            after.id, before.id
        ));
    }
    if after.count < before.count {
        return Err(format!(
            "witness: {path} went back from {} to {} under the same identity: the workload's memory was not restored",
            before.count, after.count
        ));
    }
    Ok(())
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

/// A check command held: it exited 0 and a line of its standard output matches `wanted`
/// (validated when the scenario was parsed), line by line as signatures are, so `^held$`
/// matches the line `held`.
fn exec_check_holds(out: &Output, wanted: Option<&str>) -> Result<(), String> {
    if !out.success() {
        return Err(format!("the check after the restore failed: {}", out.failure_text()));
    }
    if let Some(wanted) = wanted {
        let regex = regex::Regex::new(wanted).map_err(|e| e.to_string())?;
        if !out.stdout.lines().any(|line| regex.is_match(line)) {
            return Err(format!(
                "the check `{}` printed {:?}, which does not match /{wanted}/",
                out.command_line(),
                out.stdout.trim()
            ));
        }
    }
    Ok(())
}

/// After a restore: the workload continued where it was (never just "running"). The witness
/// comes first, whatever the order of the steps: the identity and count of `ID COUNT`, then the
/// container's first process, a new host process. Fills in what it observed on `record`, also
/// when a check fails: what was seen is evidence either way.
pub async fn after_restore(
    probe: &Probe<'_>,
    name: &str,
    scenario: &Scenario,
    record: &mut RoundRecord,
    cgroup_version: &str,
    log_dir: &Path,
    limit: Duration,
) -> Result<(), VerifyFailure> {
    if let Some(path) = &scenario.witness {
        let before = match (&record.witness_before, record.counter_before) {
            (Some(id), Some(count)) => WitnessReading { id: id.clone(), count },
            _ => return Err("witness: it was not read before the checkpoint".to_string().into()),
        };
        let after = probe.witness(name, path).await.map_err(|e| format!("witness: after the restore: {e}"))?;
        record.witness_after = Some(after.id.clone());
        record.counter_after = Some(after.count);
        witness_holds(path, &before, &after)?;
    }
    let init = probe.init_process(name).await.map_err(|e| format!("witness: after the restore: {e}"))?;
    record.init_after = Some(init);
    init_replaced(record.init_before, init)?;
    if let Some(path) = &scenario.witness {
        let before = WitnessReading {
            id: record.witness_before.clone().unwrap_or_default(),
            count: record.counter_after.unwrap_or_default(),
        };
        witness_continued(probe, name, path, &before, limit).await?;
    }
    for step in &scenario.verify {
        match step {
            VerifyStep::Counter(_) => {}
            VerifyStep::Exec(check) => exec(probe, name, check, limit, "verify", record).await?,
            VerifyStep::Processes(count) => {
                let found = probe.processes(name).await?;
                if (found.len() as u32) < count.at_least {
                    return Err(format!(
                        "{} processes in the container after the restore, expected at least {}",
                        found.len(),
                        count.at_least
                    )
                    .into());
                }
            }
            VerifyStep::CgroupPlacement(spec) => {
                let placement = probe.placement(name, cgroup_version).await?;
                let outside = placement.outside().count() > 0;
                let description = placement.describe_outside();
                record.cgroup_placement = Some(placement);
                if outside && spec.enforce {
                    return Err(description.into());
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
                    )
                    .into());
                }
            }
            VerifyStep::Mounts(spec) => {
                let after = probe.mounts(name).await?;
                let changed = crate::observe::mounts::changes(&record.mounts_before, &after);
                record.mounts_changed = Some(changed.clone());
                if spec.enforce && !changed.is_empty() {
                    let lines: Vec<String> = changed.iter().map(|c| format!("  {}", c.describe())).collect();
                    return Err(format!(
                        "{} change(s) in the container's mount table after the restore:\n{}",
                        changed.len(),
                        lines.join("\n")
                    )
                    .into());
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

/// The witness after a restore (or a failed checkpoint): the identity read `before`, a count not
/// lower, then growing within `limit`. Returns the count first read.
pub(super) async fn witness_continued(
    probe: &Probe<'_>,
    name: &str,
    path: &str,
    before: &WitnessReading,
    limit: Duration,
) -> Result<u64, String> {
    let after = probe.witness(name, path).await.map_err(|e| format!("witness: {e}"))?;
    witness_holds(path, before, &after)?;
    let started = Instant::now();
    loop {
        let now = probe.witness(name, path).await.map_err(|e| format!("witness: {e}"))?;
        witness_holds(path, before, &now)?;
        if now.count > after.count {
            return Ok(after.count);
        }
        if started.elapsed() > limit {
            return Err(format!(
                "witness: {path} stayed at {} for {:.0}s: the workload is not running",
                now.count,
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
    #[case::a_whole_line(output(Some(0), "held\n", false), Some(r"^held$"), true)]
    #[case::a_line_among_others(output(Some(0), "lock\nheld\nfree\n", false), Some(r"^held$"), true)]
    #[case::not_across_lines(output(Some(0), "he\nld\n", false), Some(r"he\s*ld"), false)]
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

    fn reading(id: &str, count: u64) -> WitnessReading {
        WitnessReading { id: id.into(), count }
    }

    /// A restart shows another identity (whatever its count), a lost memory a lower count; only
    /// the same identity with a count not lower holds.
    #[rstest]
    #[case::restored(reading("aaaa-1111", 40), reading("aaaa-1111", 41), None)]
    #[case::restored_at_once(reading("aaaa-1111", 40), reading("aaaa-1111", 40), None)]
    #[case::restarted_and_counted_past(
        reading("aaaa-1111", 40),
        reading("bbbb-2222", 900),
        Some("started again, not restored")
    )]
    #[case::restarted(reading("aaaa-1111", 40), reading("bbbb-2222", 1), Some("started again, not restored"))]
    #[case::went_back(reading("aaaa-1111", 40), reading("aaaa-1111", 3), Some("went back from 40 to 3"))]
    fn the_witness_holds_only_for_the_same_identity_and_no_lower_count(
        #[case] before: WitnessReading,
        #[case] after: WitnessReading,
        #[case] problem: Option<&str>,
    ) {
        let result = witness_holds("/tmp/counter", &before, &after);
        match problem {
            None => assert_eq!(result, Ok(())),
            Some(text) => {
                let message = result.unwrap_err();
                assert!(message.starts_with("witness: /tmp/counter") && message.contains(text), "{message}");
            }
        }
    }

    #[test]
    fn the_first_process_must_be_another_host_process_after_a_restore() {
        let p = |pid, start_time| HostProcess { pid, start_time };
        assert_eq!(init_replaced(Some(p(100, 5)), p(230, 9)), Ok(()));
        // A PID reused by another process is another process.
        assert_eq!(init_replaced(Some(p(100, 5)), p(100, 9)), Ok(()));
        let left_running = init_replaced(Some(p(100, 5)), p(100, 5)).unwrap_err();
        assert!(left_running.starts_with("witness: ") && left_running.contains("never restored"), "{left_running}");
        assert!(init_replaced(None, p(100, 5)).unwrap_err().starts_with("witness: "));
    }

    /// The witness's messages are words of the harness: no signature may match them, so each
    /// must be one `scenario::harness_text` knows (rendered here with its examples' values).
    #[test]
    fn the_witness_messages_are_known_harness_words() {
        let known = crate::scenario::harness_text::HARNESS_TEXTS;
        let (a, b) = ("3f6c1c2e-7a59-4c31-9d0e-1b2a3c4d5e6f", "0b9f3c2e-7a59-4c31-9d0e-1b2a3c4d5e6f");
        let messages = [
            witness_holds("/tmp/counter", &reading(a, 40), &reading(b, 1)).unwrap_err(),
            witness_holds("/tmp/counter", &reading(a, 40), &reading(a, 3)).unwrap_err(),
            init_replaced(
                Some(HostProcess { pid: 4242, start_time: 534199 }),
                HostProcess { pid: 4242, start_time: 534199 },
            )
            .unwrap_err(),
            init_replaced(None, HostProcess { pid: 1, start_time: 1 }).unwrap_err(),
        ];
        for message in messages {
            assert!(known.contains(&message.as_str()), "not in harness_text: {message}");
        }
    }
}
