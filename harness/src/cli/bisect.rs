//! `criu-matrix bisect CELL --with COMPONENT=src:DIR --good REV --bad REV`: the first commit of
//! DIR between REV and REV at which the cell's result changes (a regression or a fix).

use super::args::PlanArgs;
use crate::axes::Axis;
use crate::events::{Events, LineReporter};
use crate::plan::Source;
use crate::project::Project;
use crate::stack::Cache;
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct BisectArgs {
    /// The cell: its name, or a part of it naming one cell of the plan (on its Debian stack).
    cell: String,
    /// The revision whose result is git bisect's "good" (e.g. the release with the bug).
    #[arg(long)]
    good: String,
    /// The revision whose result differs (e.g. the release with the fix).
    #[arg(long)]
    bad: String,
    /// The plan the cell comes from, and the one `--with COMPONENT=src:DIR` (a git checkout)
    /// whose history is bisected, with `--patch` applied at every step.
    #[command(flatten)]
    plan: PlanArgs,
}

pub async fn bisect(project: Project, args: &BisectArgs) -> anyhow::Result<ExitCode> {
    let overrides = args.plan.with.overrides()?;
    let [o] = &overrides[..] else {
        anyhow::bail!("bisect takes one --with COMPONENT=src:DIR (the git checkout whose history it bisects)");
    };
    let Source::Src { dir, rev: None } = &o.source else {
        anyhow::bail!("bisect needs --with {}=src:DIR without @REV: --good and --bad name the revisions", o.component.name);
    };
    let mut plain = args.plan.clone();
    plain.with = Default::default();
    let cells = match plain.plan_or_exit(&project) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let exact: Vec<&crate::plan::Cell> = cells.iter().filter(|c| c.name() == args.cell).collect();
    let matching: Vec<&crate::plan::Cell> =
        if exact.is_empty() { cells.iter().filter(|c| c.name().contains(&args.cell)).collect() } else { exact };
    let cell = match &matching[..] {
        [one] => (*one).clone(),
        [] => anyhow::bail!("no cell of the `{}` matrix matches `{}`", args.plan.matrix, args.cell),
        many => anyhow::bail!(
            "`{}` matches {} cells; name one:\n  {}",
            args.cell,
            many.len(),
            many.iter().map(|c| c.name()).collect::<Vec<_>>().join("\n  ")
        ),
    };
    anyhow::ensure!(
        crate::axes::Stack::find(&cell.key[Axis::Stack]).and_then(|s| s.suite()).is_some(),
        "the cell's stack {} is not a Debian stack to build for",
        cell.key[Axis::Stack]
    );
    let events = Events::new(vec![Arc::new(LineReporter)]);
    let stamp = time::OffsetDateTime::now_utc()
        .format(&time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
        .expect("static format");
    let log_dir = project.results().join("bisect").join(format!("{stamp}-{}", std::process::id()));
    let mut steps = crate::bisect::cell::CellSteps {
        project: project.clone(),
        cache: Cache::from_env()?,
        events,
        cell,
        component: o.component,
        dir: dir.clone(),
        patches: o.patches.clone(),
    };
    eprintln!(
        "bisect: {} in {} ({}), {} from {} to {}; log {}",
        steps.cell.name(),
        steps.stack_name(),
        o.component.name,
        dir.display(),
        args.good,
        args.bad,
        log_dir.display()
    );
    let found = crate::bisect::bisect(dir, &args.good, &args.bad, &mut steps, &log_dir).await?;
    println!("{}", found.summary());
    println!("log: {}", log_dir.join("bisect.log").display());
    Ok(if found.first.is_some() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
