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
    let cells = match args.plan.plan_or_exit(&project) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let reporter: Arc<dyn Reporter> = if args.no_progress || !std::io::stderr().is_terminal() {
        Arc::new(LineReporter)
    } else {
        Arc::new(ProgressReporter::new())
    };
    let events = Events::new(vec![reporter]);
    let mut runner = Runner::new(project, Cache::from_env()?, events.clone(), crate::host::facts())?;
    events.emit(Event::RunPlanned { cells: cells.len() * args.repeat as usize });
    for cell in &cells {
        for _ in 0..args.repeat {
            runner.run_cell(cell).await;
        }
    }
    let (run, records) = runner.finish()?;
    println!("{}", std::fs::read_to_string(run.dir.join("matrix.md"))?);
    println!("results: {}", run.dir.display());
    let bad = records.iter().filter(|r| matches!(r.verdict, Verdict::Fail | Verdict::Fixed | Verdict::Error)).count();
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
