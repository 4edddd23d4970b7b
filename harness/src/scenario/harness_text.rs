//! The words the harness itself writes in its judgements (a verification's message, a reason,
//! a readiness error), one rendered example of each kind. A signature is searched only in what
//! the engine, the runtime and CRIU printed; one that matches any of these would also match the
//! harness's own words, so it proves nothing about the upstream bug and `validate` refuses it.
//!
//! `execute::verify`'s tests render the witness's messages and check that each is one of these
//! (the other kinds are examples written by hand: keep them in step with the code).

/// One example of every kind of text the harness writes about a cell.
pub const HARNESS_TEXTS: &[&str] = &[
    // The witness (execute::verify, execute::round).
    "witness: /tmp/counter has identity 0b9f3c2e-7a59-4c31-9d0e-1b2a3c4d5e6f after the restore, 3f6c1c2e-7a59-4c31-9d0e-1b2a3c4d5e6f before the checkpoint: the workload was started again, not restored",
    "witness: /tmp/counter went back from 40 to 3 under the same identity: the workload's memory was not restored",
    "witness: /tmp/counter stayed at 41 for 30s: the workload is not running",
    "witness: the container's first process is the same host process as before the checkpoint (pid 4242 started at tick 534199): the container was never restored",
    "witness: the container's first process was not read before the checkpoint",
    "witness: it was not read before the checkpoint",
    "witness: before the checkpoint: failed to read /tmp/counter in container cm-demo-1: No such file or directory (os error 2)",
    "witness: after the restore: /tmp/counter: expected `ID COUNT` (a random identity and a count) in the witness file, found \"42\"",
    "witness: before the checkpoint: failed to read the start time of the container's first process (pid 4242)",
    "witness: after the restore: container cm-demo-1 is not running",
    "witness: before the checkpoint: failed to inspect container cm-demo-1: Error: no such container",
    // The other verifications (execute::verify, observe).
    "2 change(s) in the container's mount table after the restore:",
    "  /proc/timer_list options: nosuid,ro -> rw",
    "the mount table before the checkpoint: failed to read /proc/4242/mountinfo of container cm-demo-1: No such file or directory (os error 2)",
    "the container did not keep running after a checkpoint with --leave-running: witness: /tmp/counter stayed at 41 for 30s: the workload is not running",
    "2 processes in the container after the restore, expected at least 4",
    "the check after the restore failed: `podman exec cm-demo-1 dbus-send --system --print-reply` exited with 1: Error org.freedesktop.DBus.Error.ServiceUnknown",
    "the check `podman exec cm-demo-1 cat /tmp/x` printed \"free\", which does not match /^held$/",
    "failed to run [\"cat\"]: the engine did not answer",
    "ibus-daemon (pid [41] before the checkpoint) is gone after the restore",
    "xfwm4 runs as pid [12], not [41] as before the checkpoint: started again",
    "xfce4-panel was not running before the checkpoint",
    "the VNC framebuffer after the restore has 1 distinct colors, fewer than 16: no desktop is drawn (before the first checkpoint: 1989 colors)",
    "failed to connect to the VNC server at 127.0.0.1:5901 in the container: Network is unreachable (os error 101)",
    "the VNC session at 127.0.0.1:5901 failed: the server closed the connection",
    "failed to enter the container's network namespace: Operation not permitted (os error 1)",
    "1 of 4 processes are outside the container's cgroup /libpod_parent/libpod-0123 (v1 hierarchies, from the engine):",
    "failed to find the cgroup of container cm-demo-1: no such container",
    "the first process of cm-demo-1 has no v2 cgroup",
    "failed to read /proc/4242/cgroup of container cm-demo-1: No such file or directory (os error 2)",
    // Readiness, prechecks, stress rounds (execute::rounds, execute::precheck, execute::round).
    "the workload was not ready within 60s (failed to read /tmp/counter in container cm-demo-1: No such file or directory (os error 2))",
    "the container's processes hold 0 pidfds, fewer than the 1 this case needs (waited 30s): nothing here exercises CRIU's pidfd support",
    "the workload did not survive the failed checkpoint: witness: /tmp/counter stayed at 41 for 60s: the workload is not running",
    "round 3 restore failed (`podman container restore --print-stats cm-demo-1` exited with 125): the container cannot go on",
    "stopped after round 3: round 3 restore failed (`podman container restore --print-stats cm-demo-1` exited with 125): the container cannot go on",
    "fault restart: the workload started again was not ready: the workload was not ready within 60s",
    // A command the harness ran, as it reports it (process::Output::failure_text).
    "`podman container checkpoint --print-stats cm-demo-1` timed out after 120s",
    "`podman container restore --print-stats cm-demo-1` was killed by a signal",
    "`podman container checkpoint --print-stats cm-demo-1` exited with 125",
    // `criu check` (execute::criu_check): the harness's words before CRIU's own.
    "criu 3.17.1 check fails on kernel 6.18.44:",
    // Verdict reasons (verdict::classify).
    "round 1 checkpoint: expected signature found",
    "round 1 checkpoint: failed without the expected signature: the check after the restore failed",
    "round 2 checkpoint: the expected signature appeared, but the bug is expected at round 1 checkpoint",
    "3 rounds checkpointed, restored and verified",
    "3 rounds checkpointed, restored and verified; the intermittent failure expected at restore did not occur",
    "expected to fail at round 2 checkpoint but all 3 rounds passed: the bug is fixed here or the expectation is stale",
    "3/20 rounds failed with the expected signature, within <=100%",
    "0/20 rounds failed: the bug may show here (<=100%) but did not",
    "round 1 checkpoint: known issue crun#1741: crun before 1.22 does not create the CRIU work directory",
    "expected known issue criu#2532 here but all 3 rounds passed: it is fixed here or the known issue is stale",
];

/// The first of the harness's own texts that `signature` matches (line by line, as signatures
/// are searched), if any.
pub fn matched_by(signature: &regex::Regex) -> Option<&'static str> {
    HARNESS_TEXTS.iter().copied().find(|text| text.lines().any(|line| signature.is_match(line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broad_signatures_match_the_harness_and_specific_ones_do_not() {
        for broad in [".*", "failed", "restore", r"\d+", "Network is unreachable", "witness", "not running"] {
            assert!(matched_by(&regex::Regex::new(broad).unwrap()).is_some(), "{broad}");
        }
        for specific in [
            r"Unseizable non-zombie \d+ found, state S, err -1/10",
            r"sockets: Can't get 1:16 opt: Operation not supported",
            r"Can't connect inet socket back: Network is unreachable",
            r"error opening CRIU work directory `[^`]*/criu-work`: No such file or directory",
            r"vdso: Unexpected rt vDSO area bounds",
        ] {
            assert_eq!(matched_by(&regex::Regex::new(specific).unwrap()), None, "{specific}");
        }
    }
}
