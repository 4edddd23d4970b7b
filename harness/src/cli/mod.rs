//! The `criu-matrix` command line: one file per command, `main.rs` only starts it.

mod args;
mod bisect;
mod bugreport;
mod doctor;
mod list;
mod paths;
mod report;
mod results;
mod run;
mod validate;

use args::PlanArgs;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Reproduces container checkpoint/restore failures across engines, runtimes, stacks and kernels.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a matrix (the `default` one when no option is given) and record its results.
    Run(run::RunArgs),
    /// Print the cells a matrix has and, for each skipped one, why (from the last probe of its stack).
    List(PlanArgs),
    /// Check every scenario and matrix file; exit 2 on the first malformed one.
    Validate,
    /// Write a run's reports again from its cells.jsonl: matrix.md, matrix.json, matrix.html, junit.xml.
    Report(report::ReportArgs),
    /// Classify each cell's change from BASE to RUN (regression, recovered, still failing, newly
    /// skipped, flaky, new, gone...); exit 1 when anything regressed, 2 when it cannot compare.
    Compare(results::CompareArgs),
    /// Write a run's records as the baseline `results/baselines/NAME.jsonl` that `compare NAME` reads.
    Baseline(results::BaselineArgs),
    /// Join the records of several runs (the shards of a matrix) into one new run, with every report.
    Merge(results::MergeArgs),
    /// Write a Markdown bug report for one cell of a run, ready to paste into an upstream issue.
    Bugreport(bugreport::BugreportArgs),
    /// Find the first commit of a component's git history at which a cell's result changes
    /// (`--with COMPONENT=src:DIR --good REV --bad REV`), building and running each step.
    Bisect(bisect::BisectArgs),
    /// Open every stack (provisioning it if needed) and print what it is made of; boot every
    /// kernel of the kernel axis in a VM with the trixie stack and print whether it boots.
    Doctor(doctor::DoctorArgs),
}

/// Parses the command line and runs the command; what `main` returns.
pub fn main() -> ExitCode {
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

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    let project = crate::project::Project::locate()?;
    match command {
        Command::Run(args) => run::run(project, &args).await,
        Command::List(args) => list::list(&project, &args).await,
        Command::Validate => validate::validate(&project),
        Command::Report(args) => report::report(&project, &args).await,
        Command::Compare(args) => results::compare(&project, &args),
        Command::Baseline(args) => results::baseline(&project, &args),
        Command::Merge(args) => results::merge(&project, &args),
        Command::Bugreport(args) => bugreport::bugreport(&project, &args).await,
        Command::Doctor(args) => doctor::doctor(&args).await,
        Command::Bisect(args) => bisect::bisect(project, &args).await,
    }
}
