//! The checks before the first checkpoint. What they find is recorded with round 1 (pushed on
//! `rounds`), also when they fail: a cell without what its case needs is an `error`. A scenario
//! with a `vnc` step also gets a viewer's picture here (`screenshot-round0.png`), recorded and
//! not judged: it tells a desktop that lost its picture in a restore from one never drawn.

use super::round::host_pid_command;
use super::spec::CellSpec;
use crate::engine::Engine;
use crate::observe::{Probe, POLL};
use crate::record::RoundRecord;
use crate::scenario::{PidfdCount, PrecheckStep, VerifyStep};
use std::time::{Duration, Instant};

pub async fn run(
    probe: &Probe<'_>,
    spec: &CellSpec<'_>,
    name: &str,
    rounds: &mut Vec<RoundRecord>,
) -> Result<(), String> {
    let s = spec.scenario;
    if !s.precheck.is_empty() {
        spec.transcript
            .push_equivalent("which processes of the container hold pidfds", &pidfds_command(probe.engine, name));
    }
    let mut record = RoundRecord { round: 1, ..RoundRecord::default() };
    let mut result = Ok(());
    for step in &s.precheck {
        match step {
            PrecheckStep::PidfdHolders(count) => {
                if let Err(e) = wait_for_pidfds(probe, name, count, s.timeouts.verify, &mut record).await {
                    result = Err(e);
                    break;
                }
            }
        }
    }
    if result.is_ok() {
        for step in &s.verify {
            if let VerifyStep::Vnc(check) = step {
                match probe.vnc(name, check, 0, spec.log_dir, s.timeouts.verify).await {
                    Ok(seen) => record.vnc_before = Some(seen),
                    Err(e) => tracing::info!("no VNC picture before the first checkpoint: {e}"),
                }
            }
        }
    }
    if !s.precheck.is_empty() || record.vnc_before.is_some() {
        rounds.push(record);
    }
    result
}

/// A desktop is still starting helpers when it is ready: the pidfds are waited for, bounded.
async fn wait_for_pidfds(
    probe: &Probe<'_>,
    name: &str,
    count: &PidfdCount,
    limit: Duration,
    record: &mut RoundRecord,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        record.pidfds = probe.pidfds(name).await?;
        if record.pidfds.len() >= count.at_least as usize {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "the container's processes hold {} pidfds, fewer than the {} this case needs \
                 (waited {:.0}s): nothing here exercises CRIU's pidfd support",
                record.pidfds.len(),
                count.at_least,
                limit.as_secs_f64()
            ));
        }
        tokio::time::sleep(POLL * 10).await;
    }
}

/// The shell equivalent of the `pidfd_holders` scan: every fd of the container's processes
/// whose link is a pidfd, with the `Pid:` line of its fdinfo.
fn pidfds_command(engine: &dyn Engine, name: &str) -> String {
    format!(
        "ns=$(readlink /proc/{}/ns/pid); for p in /proc/[0-9]*; do [ \"$(readlink $p/ns/pid)\" = \"$ns\" ] || continue; \
         for fd in $p/fd/*; do [ \"$(readlink $fd)\" = 'anon_inode:[pidfd]' ] && \
         echo \"$(cat $p/comm) ${{p#/proc/}} fd ${{fd##*/}} -> $(grep ^Pid: $p/fdinfo/${{fd##*/}})\"; done; done",
        host_pid_command(engine, name)
    )
}
