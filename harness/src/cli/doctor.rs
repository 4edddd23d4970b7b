//! `criu-matrix doctor`: what each stack is made of, and whether each kernel of the kernel
//! axis boots with the trixie stack.

use crate::events::{Events, LineReporter};
use crate::stack::{self, Cache};
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct DoctorArgs {
    /// Only these stacks (default: all known, unless kernels are named).
    #[arg(long = "stack")]
    stacks: Vec<String>,
    /// Only these kernels (default: all known, unless stacks are named).
    #[arg(long = "kernel")]
    kernels: Vec<String>,
}

pub async fn doctor(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let cache = Cache::from_env()?;
    let events = Events::new(vec![Arc::new(LineReporter)]);
    let (stacks, kernels) = (&args.stacks, &args.kernels);
    let kernels: Vec<String> = if !kernels.is_empty() {
        kernels.clone()
    } else if stacks.is_empty() {
        crate::axes::Kernel::bootable().map(|k| k.name.to_string()).collect()
    } else {
        Vec::new()
    };
    let names: Vec<String> = if stacks.is_empty() && args.kernels.is_empty() {
        crate::axes::STACKS.iter().map(|s| s.name.to_string()).collect()
    } else {
        stacks.clone()
    };
    for name in names {
        match crate::build::open(&name, None, &cache, &events).await {
            Ok(session) => print_facts(&session.facts),
            Err(e) => println!("{name}: cannot be opened: {e:#}\n"),
        }
    }
    if !kernels.is_empty() {
        doctor_kernels(&kernels, &cache, &events).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Boots each kernel with the trixie stack and prints what the guest saw.
async fn doctor_kernels(kernels: &[String], cache: &Cache, events: &Events) -> anyhow::Result<()> {
    let stack = "trixie";
    let session = stack::open(stack, cache, events).await?;
    let dir = cache.stack_dir(stack);
    let logs = tempfile::tempdir()?;
    println!("kernels (booted with the {stack} stack, cgroup v2, plain init; VMs use {:?}):", {
        let a = &crate::host::facts().accel;
        format!("{}: {}", a.name, a.why)
    });
    for kernel in kernels {
        let machine = crate::vm::Machine::prepare(
            cache,
            events,
            kernel,
            stack,
            &dir.join("rootfs"),
            &dir.join("storage"),
            &dir.join("docker"),
        )
        .await;
        let machine = match machine {
            Ok(m) => m,
            Err(e) => {
                println!("  {kernel}: cannot be prepared: {e:#}");
                continue;
            }
        };
        let console = logs.path().join(format!("{kernel}.console.log"));
        match crate::vm::probe_boot(&machine, &format!("doctor-{kernel}"), &console, events).await {
            Err(e) => println!("  {kernel}: cannot boot: {e:#}"),
            Ok(probe) => {
                let package = probe.facts.get("vm.kernel_package").cloned().unwrap_or_default();
                match (probe.seconds_to_ready, &probe.error) {
                    (Some(s), None) => println!("  {kernel}: boots ({package}), ready in {s:.1}s"),
                    (_, Some(e)) => {
                        println!("  {kernel}: does NOT boot ({package}): {}", e.lines().next().unwrap_or(""))
                    }
                    (None, None) => println!("  {kernel}: no ready mark ({package})"),
                }
                for line in &probe.guest_said {
                    println!("      {line}");
                }
            }
        }
    }
    drop(session);
    Ok(())
}

fn print_facts(f: &stack::StackFacts) {
    println!("{}: {}", f.stack, f.os);
    println!("  kernel   {}", f.kernel);
    println!("  cgroup   {} ({})", f.cgroup, f.cgroup_manager);
    for (name, tool) in &f.tools {
        println!("  {name:<8} {}", tool.banner);
    }
    match &f.criu_check {
        Some(c) => println!("  criu check: {} ({})", if c.ok { "ok" } else { "FAILS" }, c.summary),
        None => println!("  criu check: criu is missing"),
    }
    for (engine, runtime) in [("podman", "runc"), ("podman", "crun"), ("docker", "runc"), ("docker", "crun")] {
        match f.skip_reason(engine, runtime) {
            None => println!("  {engine}+{runtime}: can checkpoint"),
            Some(why) => println!("  {engine}+{runtime}: skipped: {why}"),
        }
    }
    println!();
}
