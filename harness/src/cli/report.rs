//! `criu-matrix report`: a run's reports again from its records, and optionally the page
//! loaded in headless Chromium, checked, and a screenshot of it.

use super::paths::run_path;
use crate::events::{Events, LineReporter};
use crate::project::Project;
use crate::record::Verdict;
use crate::stack::Cache;
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct ReportArgs {
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

pub async fn report(project: &Project, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let run = run_path(project, args.run.as_deref())?;
    let records = crate::record::read_cells(&run)?;
    crate::report::write(&run, &records)?;
    let page = run.join("matrix.html");
    println!(
        "{} cells; wrote matrix.md, matrix.json, junit.xml and {} ({} bytes)",
        records.len(),
        page.display(),
        std::fs::metadata(&page)?.len()
    );
    let Some(png) = &args.screenshot else { return Ok(ExitCode::SUCCESS) };
    // A picture a browser can draw: each side from 16 to 8192 pixels.
    let side = |s: &str| s.parse::<u32>().ok().filter(|n| (16..=8192).contains(n));
    let size = args
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((side(w)?, side(h)?)))
        .ok_or_else(|| anyhow::anyhow!("--size must be WIDTHxHEIGHT, each from 16 to 8192, e.g. 1600x1000"))?;
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
    let browser = events.timed("chromium", "chromium tools rootfs", crate::report::browser::ensure(&cache)).await?;
    println!("{}", browser.version().await?);
    let rendered = browser.render(&page, &format!("cell={cell}"), Some((png, size))).await?;
    let check = crate::report::browser::check_dom(&rendered.dom, &records, &cell);
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
