//! The `criu-matrix` command line.

use clap::{Args, Parser, Subcommand};
use criu_matrix::events::{Events, LineReporter, ProgressReporter, Reporter};
use criu_matrix::plan::{Filter, Shard};
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
    /// Write a run's reports again from its cells.jsonl: matrix.md, matrix.json, matrix.html, junit.xml.
    Report(ReportArgs),
    /// Classify each cell's change from BASE to RUN (regression, fixed, still failing, newly
    /// skipped, flaky, new, gone...); exit 1 when anything regressed, 2 when it cannot compare.
    Compare {
        /// A run directory, a cells.jsonl file, or the name of a baseline in results/baselines/.
        base: String,
        /// A run directory or cells.jsonl file (default: results/runs/latest).
        run: Option<String>,
        /// Also write the comparison as Markdown (for a CI job summary) to this file.
        #[arg(long)]
        markdown: Option<std::path::PathBuf>,
    },
    /// Write a run's records as the baseline `results/baselines/NAME.jsonl` that `compare NAME` reads.
    Baseline {
        /// A run directory (default: results/runs/latest).
        run: Option<String>,
        /// The baseline's name, e.g. `default` for the default matrix.
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// Join the records of several runs (the shards of a matrix) into one new run, with every report.
    Merge {
        /// Run directories, in order.
        #[arg(required = true)]
        runs: Vec<String>,
    },
    /// Write a Markdown bug report for one cell of a run, ready to paste into an upstream issue.
    Bugreport(BugreportArgs),
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
    /// Only the I-th of N deterministic slices of the (filtered) plan, e.g. `2/3`.
    #[arg(long, value_parser = Shard::parse, default_value = "1/1")]
    shard: Shard,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Run each cell this many times in a row (repeats that disagree are flaky in `compare`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Plain lines instead of progress bars (the default when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args)]
struct ReportArgs {
    /// A run directory (default: results/runs/latest).
    run: Option<String>,
    /// Load the page in headless Chromium (from a tools rootfs in the cache, provisioned on
    /// first use), check it rendered, and save a screenshot here.
    #[arg(long)]
    screenshot: Option<std::path::PathBuf>,
    /// The cell whose evidence is open in the screenshot (default: the first non-passing one).
    #[arg(long)]
    cell: Option<String>,
    /// Screenshot size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1600x1000")]
    size: String,
}

#[derive(Args)]
struct BugreportArgs {
    /// A cell name, or a part of one that names exactly one cell of the run.
    cell: String,
    /// The run directory (default: results/runs/latest).
    #[arg(long)]
    run: Option<String>,
    /// Run the cell's reproducer in its stack first and check the failure signature appears;
    /// exit 1 when it does not.
    #[arg(long)]
    verify: bool,
    /// The regex to look for with --verify (default: the expected signature the cell matched).
    #[arg(long)]
    signature: Option<String>,
    /// Write the report here (default: cells/<cell>/bugreport.md in the run, and stdout).
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
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
        Ok(cells) => Ok(args.shard.select(cells)),
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
            events.emit(criu_matrix::events::Event::RunPlanned { cells: cells.len() * args.repeat as usize });
            for cell in &cells {
                for _ in 0..args.repeat {
                    runner.run_cell(cell).await;
                }
            }
            let (run, records) = runner.finish()?;
            println!("{}", std::fs::read_to_string(run.dir.join("matrix.md"))?);
            println!("results: {}", run.dir.display());
            let bad =
                records.iter().filter(|r| matches!(r.verdict, Verdict::Fail | Verdict::Fixed | Verdict::Error)).count();
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Report(args) => report(&project, &args).await,
        Command::Compare { base, run, markdown } => {
            // Exit 1 means "regressed": a comparison that cannot be made is 2.
            let loaded = baseline_path(&project, &base).and_then(|base| {
                let run = run_path(&project, run.as_deref())?;
                let records = (criu_matrix::compare::load(&base)?, criu_matrix::compare::load(&run)?);
                Ok((base, run, records))
            });
            let (base, run, (base_records, run_records)) = match loaded {
                Ok(loaded) => loaded,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            let comparison = criu_matrix::compare::compare(&base_records, &run_records);
            println!("{} -> {}", base.display(), run.display());
            print!("{}", comparison.text());
            if let Some(path) = markdown {
                std::fs::write(&path, comparison.markdown())
                    .map_err(|e| anyhow::anyhow!("failed to write {}: {e}", path.display()))?;
            }
            Ok(if comparison.regressions() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Baseline { run, name } => {
            let run = run_path(&project, run.as_deref())?;
            let records = criu_matrix::compare::load(&run)?;
            let dir = project.results().join("baselines");
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{name}.jsonl"));
            std::fs::write(&path, criu_matrix::compare::baseline(&records))?;
            println!("{} records of {} -> {}", records.len(), run.display(), path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge { runs } => {
            let runs: Vec<std::path::PathBuf> =
                runs.iter().map(|r| run_path(&project, Some(r))).collect::<anyhow::Result<_>>()?;
            let (run, records) = criu_matrix::record::merge::merge(&project.results(), &runs)?;
            println!("{}", std::fs::read_to_string(run.dir.join("matrix.md"))?);
            println!("merged {} records from {} runs: {}", records.len(), runs.len(), run.dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bugreport(args) => bugreport(&project, &args).await,
    }
}

/// A run directory given on the command line: a path, a run id under results/runs/, or the latest run.
fn run_path(project: &Project, run: Option<&str>) -> anyhow::Result<std::path::PathBuf> {
    let runs = project.results().join("runs");
    let candidates = match run {
        None => vec![runs.join("latest")],
        Some(r) => vec![std::path::PathBuf::from(r), runs.join(r)],
    };
    candidates
        .into_iter()
        .find(|p| p.join("cells.jsonl").is_file() || p.is_file())
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "failed to find the run `{}` (no cells.jsonl there or under {})",
                run.unwrap_or("latest"),
                runs.display()
            )
        })
}

/// A baseline: a path, or a name in results/baselines/ (`default` is `default.jsonl`).
fn baseline_path(project: &Project, base: &str) -> anyhow::Result<std::path::PathBuf> {
    let named = project.results().join("baselines").join(format!("{base}.jsonl"));
    if !std::path::Path::new(base).exists() && named.is_file() {
        return Ok(named);
    }
    run_path(project, Some(base))
}

async fn report(project: &Project, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let run = run_path(project, args.run.as_deref())?;
    let records = criu_matrix::record::read_cells(&run)?;
    criu_matrix::report::write(&run, &records)?;
    let page = run.join("matrix.html");
    println!(
        "{} cells; wrote matrix.md, matrix.json, junit.xml and {} ({} bytes)",
        records.len(),
        page.display(),
        std::fs::metadata(&page)?.len()
    );
    let Some(png) = &args.screenshot else { return Ok(ExitCode::SUCCESS) };
    let size = args
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("--size must be WIDTHxHEIGHT, e.g. 1600x1000"))?;
    let cell = match &args.cell {
        Some(c) => c.clone(),
        None => records
            .iter()
            .find(|r| r.verdict != Verdict::Pass && r.verdict != Verdict::Skip)
            .or(records.first())
            .map(|r| r.name.clone())
            .unwrap_or_default(),
    };
    let cache = Cache::from_env()?;
    let events = Events::new(vec![Arc::new(LineReporter)]);
    let browser =
        events.timed("chromium", "chromium tools rootfs", criu_matrix::report::browser::ensure(&cache)).await?;
    println!("{}", browser.version().await?);
    let rendered = browser.render(&page, &format!("cell={cell}"), Some((png, size))).await?;
    let check = criu_matrix::report::browser::check_dom(&rendered.dom, &records, &cell);
    println!("screenshot: {} (evidence of {cell} open)", png.display());
    match check {
        Ok(summary) => {
            println!("rendered: {summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!(
                "error: the page did not render as it should: {e}
chromium said:
{}",
                rendered.log
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn bugreport(project: &Project, args: &BugreportArgs) -> anyhow::Result<ExitCode> {
    let run = run_path(project, args.run.as_deref())?;
    let records = criu_matrix::record::read_cells(&run)?;
    let exact: Vec<&criu_matrix::record::CellRecord> = records.iter().filter(|r| r.name == args.cell).collect();
    let matching: Vec<&criu_matrix::record::CellRecord> =
        if exact.is_empty() { records.iter().filter(|r| r.name.contains(&args.cell)).collect() } else { exact };
    let mut names: Vec<&str> = matching.iter().map(|r| r.name.as_str()).collect();
    names.dedup();
    let record = match names.len() {
        0 => anyhow::bail!("no cell of {} matches `{}`", run.display(), args.cell),
        1 => *matching.last().expect("one"),
        _ => anyhow::bail!("`{}` matches {} cells; name one:\n  {}", args.cell, names.len(), names.join("\n  ")),
    };
    let scenarios = criu_matrix::scenario::load_all(&project.scenarios(), &project.images())
        .map_err(|errors| anyhow::anyhow!("{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")))?;
    let scenario = scenarios
        .iter()
        .find(|s| s.id == record.key.scenario)
        .ok_or_else(|| anyhow::anyhow!("no scenario `{}` in scenarios/", record.key.scenario))?;
    let script = record.reproducer.as_ref().map(|p| run.join(p));
    let reproducer = script.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
    let mut verified = None;
    if args.verify {
        let signature = match &args.signature {
            Some(s) => regex::Regex::new(s).map_err(|e| anyhow::anyhow!("--signature is not a valid regex: {e}"))?,
            None => {
                criu_matrix::bugreport::matched_clause(scenario, record).and_then(|c| c.signature.clone()).ok_or_else(
                    || anyhow::anyhow!("the cell matched no expected signature: give one with --signature REGEX"),
                )?
            }
        };
        let script = script.as_ref().ok_or_else(|| anyhow::anyhow!("the cell has no reproducer to verify"))?;
        let events = Events::new(vec![Arc::new(LineReporter)]);
        let cache = Cache::from_env()?;
        let v =
            criu_matrix::bugreport::verify::run(project, &cache, &events, record, scenario, script, &signature).await?;
        let dir = run.join(record.logs.as_deref().unwrap_or("."));
        std::fs::write(dir.join("reproduce.verify.log"), &v.output)?;
        eprintln!("{}", v.summary());
        verified = Some(v);
    }
    let markdown = criu_matrix::bugreport::render(scenario, record, reproducer.as_deref(), verified.as_ref());
    let path = match &args.output {
        Some(p) => p.clone(),
        None => run.join(record.logs.as_deref().unwrap_or(".")).join("bugreport.md"),
    };
    std::fs::write(&path, &markdown).map_err(|e| anyhow::anyhow!("failed to write {}: {e}", path.display()))?;
    if args.output.is_none() {
        println!("{markdown}");
    }
    eprintln!("bug report: {}", path.display());
    Ok(match verified {
        Some(v) if !v.reproduced() => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
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
