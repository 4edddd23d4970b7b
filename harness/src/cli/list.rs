//! `criu-matrix list`: the cells of a plan and, for each, whether it runs here and what it
//! expects (from the last probe of its stack), or why it is skipped.

use super::args::PlanArgs;
use crate::axes::Axis;
use crate::plan::Cell;
use crate::project::Project;
use crate::stack::{self, Cache, CellView, StackFacts};
use std::process::ExitCode;

pub async fn list(project: &Project, args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let cells = match args.plan_or_exit(project) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let cache = Cache::from_env()?;
    // The host is probed now (it is cheap); Debian stacks report their last probe.
    let host = stack::probe_host().await.ok();
    for cell in &cells {
        let stack = &cell.key[Axis::Stack];
        let facts = if stack == "host" { host.clone() } else { stack::cached_facts(stack, &cache) };
        println!("{}  {}", cell.name(), status(cell, facts.as_ref()));
    }
    println!("{} cells", cells.len());
    Ok(ExitCode::SUCCESS)
}

fn status(cell: &Cell, facts: Option<&StackFacts>) -> String {
    if cell.in_vm {
        return "runs in a VM (its stack is probed there)".to_string();
    }
    match facts {
        None => "runs (stack not probed yet: provisioned on first run)".to_string(),
        Some(f) => match f.skip_reason(&cell.key[Axis::Engine], &cell.key[Axis::Runtime]) {
            Some(why) => format!("skip: {why}"),
            None => {
                let e = cell.scenario.expectation_for(&CellView { key: &cell.key, stack: f });
                format!("runs, expects: {}", format!("{:?}", e.outcome).to_lowercase())
            }
        },
    }
}
