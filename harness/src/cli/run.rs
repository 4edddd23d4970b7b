//! `criu-matrix run`: a matrix's cells, each recorded as it finishes, then the reports.

use super::args::PlanArgs;
use crate::events::{Event, Events, LineReporter, ProgressReporter, Reporter};
use crate::project::Project;
use crate::record::Verdict;
use crate::run::Runner;
use crate::stack::Cache;
use clap::Args;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Run each cell this many times in a row (repeats that disagree are flaky in `compare`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::plan::bounds::MAX_REPEAT)))]
    repeat: u32,
    /// Run up to N jobs at once: VM groups (the cells of one stack, kernel, cgroup and init,
    /// which share a boot), and the host-kernel cells of different stacks. Default: from the
    /// cores, memory and acceleration of this machine (printed when the run starts).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: Option<u32>,
    /// Run the plan in reverse order (the cells of each VM boot too): the same verdicts as in
    /// plan order show that cells sharing a boot do not depend on each other.
    #[arg(long)]
    reverse: bool,
    /// Plain lines instead of progress bars (the default when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
}

pub async fn run(project: Project, args: &RunArgs) -> anyhow::Result<ExitCode> {
    // An unknown fault mode stops the run before any cell, as a malformed scenario does.
    if let Err(message) = crate::execute::Fault::from_env() {
        eprintln!("error: {message}");
        return Ok(ExitCode::from(2));
    }
    let mut cells = match args.plan.plan_or_exit(&project) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if args.reverse {
        cells.reverse();
    }
    let reporter: Arc<dyn Reporter> = if args.no_progress || !std::io::stderr().is_terminal() {
        Arc::new(LineReporter)
    } else {
        Arc::new(ProgressReporter::new())
    };
    let events = Events::new(vec![reporter]);
    let host = crate::host::facts();
    let runner = Runner::new(project, Cache::from_env()?, events.clone(), host)?;
    events.emit(Event::RunPlanned { cells: cells.len() * args.repeat as usize });
    // Inside a VM, the host reads the records from the channel as each cell finishes.
    if host.guest.is_some() {
        let channel = std::env::var_os(crate::vm::channel::ENV).ok_or_else(|| {
            anyhow::anyhow!("failed to find the channel to the host ({} is not set)", crate::vm::channel::ENV)
        })?;
        crate::run::run_in_guest(&runner, &cells, std::path::Path::new(&channel)).await?;
    } else {
        let jobs = match args.jobs {
            Some(n) => n as usize,
            None => {
                let (n, why) = crate::run::default_jobs(host);
                eprintln!("jobs: {n} ({why}; --jobs N to choose)");
                n
            }
        };
        runner.run_all(&cells, jobs, args.repeat).await;
    }
    let (run, records) = runner.finish()?;
    println!("{}", std::fs::read_to_string(run.dir.join("matrix.md"))?);
    println!("results: {}", run.dir.display());
    let bad = records.iter().filter(|r| matches!(r.verdict, Verdict::Fail | Verdict::Fixed | Verdict::Error)).count();
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
