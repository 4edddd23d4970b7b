//! `criu-matrix bugreport CELL`: one recorded cell as a Markdown report for upstream, its
//! reproducer optionally run again first.

use super::paths::run_path;
use crate::axes::Axis;
use crate::events::{Events, LineReporter};
use crate::project::Project;
use crate::stack::Cache;
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct BugreportArgs {
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
    /// The overrides of the cell's derived stack, as `run` had them (for --verify, which opens it).
    #[command(flatten)]
    with: super::args::WithArgs,
}

pub async fn bugreport(project: &Project, args: &BugreportArgs) -> anyhow::Result<ExitCode> {
    let run = run_path(project, args.run.as_deref())?;
    let records = crate::record::read_cells(&run)?;
    let exact: Vec<&crate::record::CellRecord> = records.iter().filter(|r| r.name == args.cell).collect();
    let matching: Vec<&crate::record::CellRecord> =
        if exact.is_empty() { records.iter().filter(|r| r.name.contains(&args.cell)).collect() } else { exact };
    let mut names: Vec<&str> = matching.iter().map(|r| r.name.as_str()).collect();
    names.dedup();
    let record = match names.len() {
        0 => anyhow::bail!("no cell of {} matches `{}`", run.display(), args.cell),
        1 => *matching.last().expect("one"),
        _ => anyhow::bail!("`{}` matches {} cells; name one:\n  {}", args.cell, names.len(), names.join("\n  ")),
    };
    let scenarios = crate::scenario::load_all(&project.scenarios(), &project.images())
        .map_err(|errors| anyhow::anyhow!("{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")))?;
    let scenario = scenarios
        .iter()
        .find(|s| s.id == record.key[Axis::Scenario])
        .ok_or_else(|| anyhow::anyhow!("no scenario `{}` in scenarios/", record.key[Axis::Scenario]))?;
    // The record's paths, kept inside its run.
    let script = record.reproducer.as_ref().map(|p| crate::record::inside(&run, p)).transpose()?;
    let logs = crate::record::inside(&run, record.logs.as_deref().unwrap_or("."))?;
    let reproducer = script.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
    let mut verified = None;
    if args.verify {
        let signature = match &args.signature {
            Some(s) => regex::Regex::new(s).map_err(|e| anyhow::anyhow!("--signature is not a valid regex: {e}"))?,
            None => crate::bugreport::matched_clause(scenario, record).and_then(|c| c.signature.clone()).ok_or_else(
                || anyhow::anyhow!("the cell matched no expected signature: give one with --signature REGEX"),
            )?,
        };
        let script = script.as_ref().ok_or_else(|| anyhow::anyhow!("the cell has no reproducer to verify"))?;
        let events = Events::new(vec![Arc::new(LineReporter)]);
        let cache = Cache::from_env()?;
        let derivation = derivation_of(record, &args.with)?;
        let v = crate::bugreport::verify::run(project, &cache, &events, record, scenario, script, &signature, derivation.as_ref())
            .await?;
        std::fs::write(logs.join("reproduce.verify.log"), &v.output)?;
        eprintln!("{}", v.summary());
        verified = Some(v);
    }
    let markdown = crate::bugreport::render(scenario, record, reproducer.as_deref(), verified.as_ref());
    let path = match &args.output {
        Some(p) => p.clone(),
        None => logs.join("bugreport.md"),
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

/// The derivation of the record's stack: `--with` on its base, which must make the record's
/// stack again; the table's derived stacks need none.
fn derivation_of(
    record: &crate::record::CellRecord,
    with: &super::args::WithArgs,
) -> anyhow::Result<Option<crate::plan::Derivation>> {
    let stack = &record.key[Axis::Stack];
    let overrides = with.overrides()?;
    if overrides.is_empty() {
        anyhow::ensure!(
            !stack.contains('+'),
            "the cell's stack {stack} is derived: give its overrides with --with (the record's components say what they were)"
        );
        return Ok(crate::plan::Derivation::of_table(stack));
    }
    let base = crate::axes::Stack::base_of(stack).unwrap_or(stack.as_str());
    let derivation = crate::plan::Derivation::of(base, &overrides)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .ok_or_else(|| anyhow::anyhow!("--with makes nothing of {base}"))?;
    anyhow::ensure!(
        &derivation.name == stack,
        "--with makes the stack {} of {base}, not the cell's {stack}",
        derivation.name
    );
    Ok(Some(derivation))
}
