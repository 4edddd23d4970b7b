//! The kill-everything case (issue 18), reproduced where it can do no harm: in a VM.
//!
//! On a cgroup v1 machine with a named hierarchy that no engine manages (CRIU's test suite
//! leaves `name=zdtmtst`), a podman restore with crun SIGKILLed every process of the machine.
//! This boots the stack's guest twice under cgroup v1, mounts such a hierarchy in the guest
//! (`name=cmtest`, outside /sys/fs/cgroup), starts a sentinel in a session of its own that logs
//! every catchable signal, runs one container through `podman run`, `checkpoint` and `restore`
//! with crun, and traces every `kill(2)` crun makes and every cgroup file it opens (ftrace,
//! printed on the console as they happen, so the trace survives the guest's own processes):
//!
//! - `unprotected`: the engine runs in the guest's own PID namespace, as a stack without one
//!   would. Expected: crun SIGKILLs the sentinel (the bug reproduced), and the trace names the
//!   cgroup it read.
//! - `protected`: the same, inside a PID namespace of its own, as the harness enters every stack
//!   now. Expected: the sentinel survives.
//!
//! The named hierarchy is mounted in the guest only: never on the host, where it would make
//! every crun restore of every run on the machine kill everything.
//!
//! Gated at runtime (it boots two VMs: minutes under TCG): `CRIU_MATRIX_VM_REPRO=1` runs it,
//! `CRIU_MATRIX_REPRO_STACK` picks the stack (default `trixie`: crun 1.21) and
//! `CRIU_MATRIX_REPRO_KERNEL` the kernel (default `bookworm`: 6.1, which has the v1 memory
//! controller crun reads PIDs from); the consoles and a summary go to
//! `results/runs/kill-everything-<stack>-<kernel>/`. `scripts/kill-everything-vm.sh` runs it.

use criu_matrix::events::{Events, LineReporter};
use criu_matrix::process::Transcript;
use criu_matrix::project::Project;
use criu_matrix::stack::Cache;
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::Path;
use std::sync::Arc;

/// Run by the guest's init: the named hierarchy, the sentinel, the tracing, then the cell.
const GUEST_SCRIPT: &str = r#"#!/bin/sh
mode=$(cat /work/mode)
T=/sys/kernel/tracing
mount -t tracefs tracefs $T 2>/dev/null
say() { echo "repro: $*" >/dev/console; }
mkdir -p /run/cmtest
mount -t cgroup -o none,name=cmtest cgroup /run/cmtest && say "mounted name=cmtest at /run/cmtest"
say "mode $mode; /proc/self/cgroup: $(tr '\n' ' ' </proc/self/cgroup)"
setsid sh -c 'for s in HUP INT QUIT USR1 USR2 PIPE ALRM TERM CONT TSTP TTIN TTOU; do
  trap "echo repro: sentinel got SIG$s >/dev/console" $s; done
  while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &
sentinel=$!
sleep 1
say "sentinel $sentinel session $(cut -d' ' -f6 /proc/$sentinel/stat), mine $(cut -d' ' -f6 /proc/$$/stat)"
# What crun does, as it happens: kill(2) calls and the cgroup files it opens.
echo 'p:crunopen do_sys_openat2 path=+0(%si):ustring' >>$T/kprobe_events
echo 'comm == "crun" && path ~ "*cgroup*"' >$T/events/kprobes/crunopen/filter
echo 1 >$T/events/kprobes/crunopen/enable
echo 'comm == "crun"' >$T/events/syscalls/sys_enter_kill/filter
echo 1 >$T/events/syscalls/sys_enter_kill/enable
echo 'sig == 9' >$T/events/signal/signal_generate/filter
echo 1 >$T/events/signal/signal_generate/enable
say "tracing on"
if [ "$mode" = protected ]; then
  unshare --mount --propagation private --pid --fork --kill-child sh /work/cell.sh
else
  sh /work/cell.sh
fi
say "cell exited $?"
sleep 3
if kill -0 "$sentinel" 2>/dev/null; then say "sentinel alive"; else say "sentinel gone"; fi
kill "$sentinel"
"#;

/// The cell: one container, checkpointed and restored in place, with crun.
const CELL_SCRIPT: &str = r#"#!/bin/sh
say() { echo "repro: $*" >/dev/console; }
[ $$ = 1 ] && mount -t proc proc /proc && say "cell in a PID namespace of its own"
export PODMAN_IGNORE_CGROUPSV1_WARNING=1
img=$(podman images --format '{{.Repository}}:{{.Tag}}' | grep '/counter:' | head -n 1)
say "image $img, $(crun --version | head -n 1)"
podman --runtime crun run -d --name repro --network none "$img" /usr/local/bin/counter.sh >/dev/null || say "run failed"
i=0; until [ -n "$(podman exec repro cat /tmp/counter 2>/dev/null)" ] || [ $i -ge 120 ]; do sleep 0.5; i=$((i + 1)); done
say "counter $(podman exec repro cat /tmp/counter 2>/dev/null)"
podman container checkpoint repro >/dev/null 2>&1 && say "checkpointed" || say "checkpoint failed"
podman container restore repro >/dev/null 2>&1 && say "restored" || say "restore failed"
sleep 2
say "counter after the restore $(podman exec repro cat /tmp/counter 2>/dev/null)"
podman rm -f -t 0 repro >/dev/null 2>&1
"#;

/// What one boot showed.
#[derive(Debug, Default)]
struct Seen {
    sentinel: Option<u32>,
    sentinel_alive: bool,
    /// PIDs crun sent SIGKILL to (`kill(2)` by crun), in order.
    crun_killed: Vec<u32>,
    /// The cgroup files crun opened, in order, without repeats.
    crun_opened: Vec<String>,
    /// What the guest said (`repro:` lines).
    said: Vec<String>,
}

fn read_console(text: &str) -> Seen {
    let kill = regex::Regex::new(r"sys_kill\(pid: (?:0x)?([0-9a-f]+), sig: (?:0x)?([0-9a-f]+)\)").unwrap();
    let open = regex::Regex::new(r#"crunopen: \([^)]*\) path="([^"]*)""#).unwrap();
    let mut seen = Seen::default();
    for line in text.lines() {
        if let Some((_, said)) = line.split_once("repro: ") {
            seen.said.push(said.to_string());
            if let Some(pid) = said.strip_prefix("sentinel ").and_then(|r| r.split_whitespace().next()?.parse().ok()) {
                seen.sentinel = Some(pid);
            }
            seen.sentinel_alive |= said == "sentinel alive";
        }
        if let Some(c) = kill.captures(line) {
            let (pid, sig) = (u32::from_str_radix(&c[1], 16), u32::from_str_radix(&c[2], 16));
            if let (Ok(pid), Ok(9)) = (pid, sig) {
                seen.crun_killed.push(pid);
            }
        }
        if let Some(c) = open.captures(line) {
            if !seen.crun_opened.iter().any(|p| p == &c[1]) {
                seen.crun_opened.push(c[1].to_string());
            }
        }
    }
    seen
}

fn boot(stack: &str, kernel: &str, mode: &str, out: &Path) -> Result<Seen, Failed> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let cache = Cache::from_env().map_err(|e| e.to_string())?;
        let events = Events::new(vec![Arc::new(LineReporter)]);
        let project = Project::locate().map_err(|e| e.to_string())?;
        // The counter image built in the stack on the host; it goes into the VM on the stack disk.
        {
            let session = criu_matrix::stack::open(stack, &cache, &events).await.map_err(|e| format!("{e:#}"))?;
            let engine = criu_matrix::engine::for_stack(&session, "podman", Arc::new(Transcript::default()))
                .map_err(|e| format!("{e:#}"))?;
            let base = criu_matrix::image::ensure_base(engine.as_ref(), &session, &cache, &events)
                .await
                .map_err(|e| format!("{e:#}"))?;
            criu_matrix::image::ensure_image(engine.as_ref(), &session, &project.images(), "counter", &base, &events)
                .await
                .map_err(|e| format!("{e:#}"))?;
        }
        let dir = cache.stack_dir(stack);
        let machine = criu_matrix::vm::Machine::prepare(
            &cache,
            &events,
            kernel,
            stack,
            &dir.join("rootfs"),
            &dir.join("storage"),
            &dir.join("docker"),
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
        let console = out.join(format!("console-{mode}.log"));
        let stage = |work: &Path| -> anyhow::Result<()> {
            std::fs::write(work.join("guest.sh"), GUEST_SCRIPT)?;
            std::fs::write(work.join("cell.sh"), CELL_SCRIPT)?;
            std::fs::write(work.join("mode"), mode)?;
            Ok(())
        };
        let name = format!("kill-everything-{mode}");
        // No cells of the harness's: the guest script is the whole boot, within `BETWEEN_CELLS`.
        let plan = criu_matrix::vm::BootPlan { name: &name, cgroup: "v1", init: "plain", cells: &[], console: &console };
        let staged = machine.stage(&plan, stage).await.map_err(|e| format!("{e:#}"))?;
        let booted = machine.boot(&plan, &staged, &events, &mut |_| {}).await.map_err(|e| format!("{e:#}"))?;
        if let Some(e) = &booted.error {
            return Err(format!("the {mode} VM failed: {e}").into());
        }
        Ok(read_console(&std::fs::read_to_string(&console).map_err(|e| e.to_string())?))
    })
}

fn summary(mode: &str, seen: &Seen) -> String {
    let mut text = format!("## {mode}\n\nsentinel {:?}: {}\n\nthe guest said:\n", seen.sentinel, if seen.sentinel_alive { "alive" } else { "gone" });
    for line in &seen.said {
        text.push_str(&format!("- {line}\n"));
    }
    let shown: Vec<String> = seen.crun_killed.iter().take(40).map(u32::to_string).collect();
    text.push_str(&format!("\ncrun's kill(SIGKILL) calls: {} ({}{})\n", seen.crun_killed.len(), shown.join(" "), if seen.crun_killed.len() > 40 { " ..." } else { "" }));
    text.push_str("\ncgroup files crun opened:\n");
    for path in &seen.crun_opened {
        text.push_str(&format!("- {path}\n"));
    }
    text
}

fn reproduce(stack: &str, kernel: &str) -> Result<(), Failed> {
    let out = Project::locate().map_err(|e| e.to_string())?.root.join("results/runs").join(format!("kill-everything-{stack}-{kernel}"));
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let unprotected = boot(stack, kernel, "unprotected", &out)?;
    let protected = boot(stack, kernel, "protected", &out)?;
    let text = format!(
        "# The kill-everything case in a VM ({stack} stack, {kernel} kernel, cgroup v1)\n\n{}\n{}",
        summary("unprotected", &unprotected),
        summary("protected", &protected)
    );
    std::fs::write(out.join("summary.md"), &text).map_err(|e| e.to_string())?;
    eprintln!("{text}");
    let sentinel = unprotected.sentinel.ok_or("the unprotected guest started no sentinel")?;
    if unprotected.sentinel_alive || !unprotected.crun_killed.contains(&sentinel) {
        return Err(format!(
            "the bug did not reproduce without a PID namespace: crun {} the sentinel (see {})",
            if unprotected.crun_killed.contains(&sentinel) { "killed" } else { "did not kill" },
            out.display()
        )
        .into());
    }
    let guarded = protected.sentinel.ok_or("the protected guest started no sentinel")?;
    if !protected.sentinel_alive || protected.crun_killed.contains(&guarded) {
        return Err(format!("the sentinel did not survive the cell in a PID namespace (see {})", out.display()).into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    criu_matrix::cleanup::install_interrupt_handler();
    let stack = std::env::var("CRIU_MATRIX_REPRO_STACK").unwrap_or_else(|_| "trixie".into());
    // A kernel with the v1 memory controller (6.12's Debian build has none): crun reads the
    // PIDs to kill from the memory hierarchy on v1.
    let kernel = std::env::var("CRIU_MATRIX_REPRO_KERNEL").unwrap_or_else(|_| "bookworm".into());
    let enabled = std::env::var_os("CRIU_MATRIX_VM_REPRO").is_some();
    let parse = Trial::test("the_console_trace_is_read", || {
        let text = "[ 1.0] repro: sentinel 412 session 412\n[ 2.0] sys_kill(pid: 19c, sig: 9)\n\
                    [ 2.0] sys_kill(pid: 1, sig: 9)\n[ 2.1] crunopen: (do_sys_openat2+0x0/0xe0) path=\"/sys/fs/cgroup/memory/cgroup.procs\"\n\
                    [ 2.2] sys_kill(pid: 1, sig: f)\n[ 3.0] repro: sentinel alive\n";
        let seen = read_console(text);
        let ok = seen.sentinel == Some(412)
            && seen.sentinel_alive
            && seen.crun_killed == [412, 1]
            && seen.crun_opened == ["/sys/fs/cgroup/memory/cgroup.procs"];
        if ok { Ok(()) } else { Err(format!("{seen:?}").into()) }
    });
    let repro = Trial::test(format!("kill_everything::{stack}::{kernel}::vm"), move || reproduce(&stack, &kernel))
        .with_ignored_flag(!enabled);
    if !enabled {
        eprintln!("kill_everything::vm is ignored: it boots two VMs (set CRIU_MATRIX_VM_REPRO=1, or run scripts/kill-everything-vm.sh)");
    }
    libtest_mimic::run(&args, vec![parse, repro]).exit();
}
