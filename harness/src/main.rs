//! The `criu-matrix` command line.

use clap::{Args, Parser, Subcommand};
use criu_matrix::events::{Events, LineReporter, ProgressReporter, Reporter};
use criu_matrix::plan::Filter;
use criu_matrix::runner::{load_plan, PlanError, Project, Runner};
use criu_matrix::stack::{self, Cache};
use criu_matrix::verdict::Verdict;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

/// Reproduces container checkpoint/restore failures across engines, runtimes, stacks and kernels.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a matrix (the `default` one when no option is given) and record its results.
    Run(RunArgs),
    /// Print the cells a matrix has and, for each skipped one, why (from the last probe of its stack).
    List(PlanArgs),
    /// Check every scenario and matrix file; exit 2 on the first malformed one.
    Validate,
    /// Open every stack (provisioning it if needed) and print what it is made of; boot every
    /// kernel of the kernel axis in a VM with the trixie stack and print whether it boots.
    Doctor {
        /// Only these stacks (default: all known, unless kernels are named).
        #[arg(long = "stack")]
        stacks: Vec<String>,
        /// Only these kernels (default: all known, unless stacks are named).
        #[arg(long = "kernel")]
        kernels: Vec<String>,
    },
}

#[derive(Args, Clone)]
struct PlanArgs {
    /// A named matrix, `matrices/<NAME>.yaml`.
    #[arg(long, default_value = "default", env = "CRIU_MATRIX_MATRIX")]
    matrix: String,
    #[arg(long = "scenario")]
    scenarios: Vec<String>,
    #[arg(long = "engine")]
    engines: Vec<String>,
    #[arg(long = "runtime")]
    runtimes: Vec<String>,
    #[arg(long = "stack")]
    stacks: Vec<String>,
    #[arg(long = "kernel")]
    kernels: Vec<String>,
    /// Only VM cells with this cgroup layout (`v1`, `v2`).
    #[arg(long = "cgroup")]
    cgroups: Vec<String>,
    /// Only VM cells with this PID 1 (`plain`, `systemd`).
    #[arg(long = "init")]
    inits: Vec<String>,
    /// Only cells whose name contains this text, e.g. `::crun::trixie`.
    filter: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Plain lines instead of progress bars (the default when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
}

impl PlanArgs {
    fn filter(&self) -> Filter {
        Filter {
            scenarios: self.scenarios.clone(),
            engines: self.engines.clone(),
            runtimes: self.runtimes.clone(),
            stacks: self.stacks.clone(),
            kernels: self.kernels.clone(),
            cgroups: self.cgroups.clone(),
            inits: self.inits.clone(),
            name: self.filter.clone(),
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CRIU_MATRIX_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    criu_matrix::cleanup::install_interrupt_handler();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    // No subcommand means `run` with every default: the default matrix.
    let command = match cli.command {
        Some(c) => c,
        None => Cli::parse_from(["criu-matrix", "run"]).command.expect("run was given"),
    };
    match runtime.block_on(dispatch(command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Plan, or print the scenario errors and say exit 2.
fn plan_or_exit(project: &Project, args: &PlanArgs) -> Result<Vec<criu_matrix::plan::Cell>, ExitCode> {
    match load_plan(project, &args.matrix, &args.filter()) {
        Ok(cells) => Ok(cells),
        Err(PlanError::Scenarios(errors)) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} malformed scenario file(s); nothing was run", errors.len());
            Err(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    let project = Project::locate()?;
    match command {
        Command::Validate => {
            let scenarios = match criu_matrix::scenario::load_all(&project.scenarios(), &project.images()) {
                Ok(s) => s,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("error: {e}");
                    }
                    return Ok(ExitCode::from(2));
                }
            };
            let mut names: Vec<String> = std::fs::read_dir(project.root.join("matrices"))?
                .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(String::from))
                .collect();
            names.sort();
            for name in &names {
                let matrix = criu_matrix::plan::load_matrix(&project.root, name);
                if let Err(e) = matrix.and_then(|m| criu_matrix::plan::expand(&m, &scenarios, &Filter::default())) {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            }
            println!("{} scenarios and {} matrices are valid", scenarios.len(), names.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::List(args) => {
            let cells = match plan_or_exit(&project, &args) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let cache = Cache::from_env()?;
            // The host is probed now (it is cheap); Debian stacks report their last probe.
            let host = stack::probe_host().await.ok();
            for cell in &cells {
                let facts =
                    if cell.key.stack == "host" { host.clone() } else { stack::cached_facts(&cell.key.stack, &cache) };
                let status = if cell.key.in_vm() {
                    "runs in a VM (its stack is probed there)".to_string()
                } else {
                    match facts {
                        None => "runs (stack not probed yet: provisioned on first run)".to_string(),
                        Some(f) => match f.skip_reason(&cell.key.engine, &cell.key.runtime) {
                            Some(why) => format!("skip: {why}"),
                            None => format!("runs, expects: {}", expectation_text(cell, &f)),
                        },
                    }
                };
                println!("{}  {status}", cell.name());
            }
            println!("{} cells", cells.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { stacks, kernels } => {
            let cache = Cache::from_env()?;
            let events = Events::new(vec![Arc::new(LineReporter)]);
            let (all_stacks, all_kernels) = (stacks.is_empty() && kernels.is_empty(), kernels.is_empty());
            let kernels: Vec<String> = if !all_kernels {
                kernels
            } else if stacks.is_empty() {
                criu_matrix::vm::kernel::KERNELS.iter().map(|k| k.to_string()).collect()
            } else {
                Vec::new()
            };
            let names: Vec<String> =
                if all_stacks { stack::known_stacks().into_iter().map(String::from).collect() } else { stacks };
            for name in names {
                match stack::open(&name, &cache, &events).await {
                    Ok(session) => print_facts(&session.facts),
                    Err(e) => println!("{name}: cannot be opened: {e:#}\n"),
                }
            }
            if !kernels.is_empty() {
                doctor_kernels(&kernels, &cache, &events).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let cells = match plan_or_exit(&project, &args.plan) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let reporter: Arc<dyn Reporter> = if args.no_progress || !std::io::stderr().is_terminal() {
                Arc::new(LineReporter)
            } else {
                Arc::new(ProgressReporter::new())
            };
            let events = Events::new(vec![reporter]);
            let mut runner = Runner::new(project, Cache::from_env()?, events.clone())?;
            events.emit(criu_matrix::events::Event::RunPlanned { cells: cells.len() });
            for cell in &cells {
                runner.run_cell(cell).await;
            }
            let (run, records) = runner.finish()?;
            println!("{}", std::fs::read_to_string(run.dir.join("matrix.md"))?);
            println!("results: {}", run.dir.display());
            let bad =
                records.iter().filter(|r| matches!(r.verdict, Verdict::Fail | Verdict::Fixed | Verdict::Error)).count();
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// Boots each kernel with the trixie stack and prints what the guest saw.
async fn doctor_kernels(kernels: &[String], cache: &Cache, events: &Events) -> anyhow::Result<()> {
    let stack = "trixie";
    let session = stack::open(stack, cache, events).await?;
    let dir = cache.stack_dir(stack);
    let logs = tempfile::tempdir()?;
    println!("kernels (booted with the {stack} stack, cgroup v2, plain init; VMs use {:?}):", {
        let a = criu_matrix::vm::accel::decide();
        format!("{}: {}", a.name, a.why)
    });
    for kernel in kernels {
        let machine = criu_matrix::vm::Machine::prepare(
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
        match criu_matrix::vm::probe_boot(&machine, &format!("doctor-{kernel}"), &console, events).await {
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

fn expectation_text(cell: &criu_matrix::plan::Cell, facts: &stack::StackFacts) -> String {
    let e = cell.scenario.expectation_for(&criu_matrix::runner::Facts { key: &cell.key, stack: facts });
    format!("{:?}", e.outcome).to_lowercase()
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
