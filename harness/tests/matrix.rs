//! `cargo test`: one test per cell of the `default` and `kernels-smoke` matrices (or the
//! comma-separated `CRIU_MATRIX_MATRIX`), named `scenario::engine::runtime::stack::kernel::cgroup::
//! init::accel`, so `cargo test -- ::crun::` filters work.
//!
//! `pass` and `reproduced` cells pass; `fixed`, `fail` and `error` cells fail; `skip` cells are
//! ignored with their reason, unless `CRIU_MATRIX_REQUIRE` names one of their axis values, which
//! turns the skip into a failure. Cells run one at a time unless `--test-threads` says otherwise:
//! checkpoint timings on a 2-core runner mean nothing when cells compete.
//!
//! The last test, `baseline::default`, holds the cells this run recorded against the committed
//! baseline (`results/baselines/default.jsonl`) and fails on a regression (a cell that passed or
//! reproduced its bug there and fails now), printing every change. Cells the baseline does not
//! have are new, not regressions, so new scenarios, engines and stacks never fail it.

use criu_matrix::events::{Events, LineReporter};
use criu_matrix::plan::{load_plan, Filter, PlanError, Required};
use criu_matrix::project::Project;
use criu_matrix::record::Verdict;
use criu_matrix::run::Runner;
use criu_matrix::stack::Cache;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::sync::{Arc, Mutex};

fn main() {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    criu_matrix::cleanup::install_interrupt_handler();
    // VM cells run the harness binary inside the guest.
    std::env::set_var("CRIU_MATRIX_BIN", env!("CARGO_BIN_EXE_criu-matrix"));
    let project = Project::locate().expect("run from the criu-matrix repository");
    let matrices = std::env::var("CRIU_MATRIX_MATRIX").unwrap_or_else(|_| "default,kernels-smoke".to_string());
    let mut cells: Vec<criu_matrix::plan::Cell> = Vec::new();
    for matrix in matrices.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        match load_plan(&project, matrix, &Filter::default(), criu_matrix::host::facts()) {
            Ok(more) => {
                for cell in more {
                    if !cells.iter().any(|c| c.key == cell.key) {
                        cells.push(cell);
                    }
                }
            }
            Err(PlanError::Scenarios(errors)) => {
                for e in &errors {
                    eprintln!("error: {e}");
                }
                std::process::exit(2);
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
    }
    let required = Required::from_env().unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        std::process::exit(2)
    });

    let runtime = Arc::new(tokio::runtime::Runtime::new().expect("a tokio runtime"));
    // The cells this invocation runs (its filters applied): VM cells of one group share a boot,
    // so the first of them runs the group and the others' tests read their records.
    let selected: Vec<criu_matrix::plan::Cell> = cells
        .iter()
        .filter(|c| !args.is_filtered_out(&Trial::test(c.name(), || Ok(()))) && !args.list)
        .cloned()
        .collect();
    // Made on the first cell that runs, so `--list` or a filter that runs nothing provisions nothing.
    let runner: Arc<Mutex<Option<Runner>>> = Arc::default();
    let selected = Arc::new(selected);
    let mut trials: Vec<Trial> = cells
        .into_iter()
        .map(|cell| {
            let (runtime, runner, project, required, selected) =
                (runtime.clone(), runner.clone(), project.clone(), required.clone(), selected.clone());
            Trial::ignorable_test(cell.name(), move || {
                let mut guard = runner.lock().unwrap_or_else(|p| p.into_inner());
                if guard.is_none() {
                    let cache = Cache::from_env().map_err(|e| Failed::from(format!("{e:#}")))?;
                    let events = Events::new(vec![Arc::new(LineReporter)]);
                    let host = criu_matrix::host::facts();
                    let made = Runner::new(project, cache, events, host).map_err(|e| Failed::from(format!("{e:#}")))?;
                    runtime.block_on(made.plan(&selected, 1));
                    *guard = Some(made);
                }
                let record = runtime.block_on(guard.as_ref().expect("made above").run_cell(&cell));
                let evidence = || {
                    let mut text = format!("{}: {}", record.verdict, record.reason);
                    if let Some(f) = &record.failure {
                        text.push_str(&format!("\n--- evidence (round {} {}) ---\n{}", f.round, f.step, f.excerpt));
                    }
                    if let Some(logs) = &record.logs {
                        text.push_str(&format!("\nlogs: {logs}"));
                    }
                    text
                };
                match record.verdict {
                    Verdict::Pass | Verdict::Reproduced => Ok(Completion::Completed),
                    Verdict::Skip if required.covers(&cell.key) => {
                        Err(Failed::from(format!("skipped, but CRIU_MATRIX_REQUIRE requires it: {}", record.reason)))
                    }
                    Verdict::Skip => Ok(Completion::ignored_with(record.reason)),
                    Verdict::Fixed | Verdict::Fail | Verdict::Error => Err(Failed::from(evidence())),
                }
            })
        })
        .collect();

    let sequential = args.test_threads == Some(1);
    // Every cell of the default matrix runs: one the baseline proved and this run lacks is lost.
    let whole_default =
        args.filter.is_none() && args.skip.is_empty() && matrices.split(',').any(|m| m.trim() == "default");
    let baseline = project.results().join("baselines/default.jsonl");
    let recorded = runner.clone();
    trials.push(Trial::ignorable_test("baseline::default", move || {
        if !sequential {
            return Ok(Completion::ignored_with(
                "cells run in parallel: compare after they all finish (`criu-matrix compare default`)",
            ));
        }
        let guard = recorded.lock().unwrap_or_else(|p| p.into_inner());
        let Some(runner) = guard.as_ref() else {
            return Ok(Completion::ignored_with("no cell ran in this test run"));
        };
        let load = |p: &std::path::Path| criu_matrix::compare::load(p).map_err(|e| Failed::from(format!("{e:#}")));
        let records = load(&runner.run.dir)?;
        // A run in which nothing ran proves nothing, whatever the baseline says.
        if !records.is_empty() && records.iter().all(|r| r.verdict == Verdict::Skip) {
            return Err(Failed::from(format!("all {} cells of this run were skipped", records.len())));
        }
        let comparison = criu_matrix::compare::compare(&load(&baseline)?, &records);
        eprintln!("against {}:\n{}", baseline.display(), comparison.text());
        // A filtered run lacks cells on purpose; a skip of a cell the baseline proved is lost.
        let lost = if whole_default { comparison.lost() } else { comparison.lost_to_skips() };
        match (comparison.regressions(), lost) {
            (0, 0) => Ok(Completion::Completed),
            (n, lost) => Err(Failed::from(format!(
                "{n} regression(s) and {lost} cell(s) of lost coverage against the baseline:\n{}",
                comparison.text()
            ))),
        }
    }));
    let conclusion = libtest_mimic::run(&args, trials);
    let finished = runner.lock().unwrap_or_else(|p| p.into_inner()).take();
    let mut leaked = Vec::new();
    if let Some(runner) = finished {
        let namespaces = runner.stack_namespaces();
        leaked.extend(runner.leaked_from_closed_stacks());
        match runner.finish() {
            Ok((run, _)) => eprintln!("matrix: {}", run.dir.join("matrix.md").display()),
            Err(e) => {
                // A record that could not be written is lost data: the run fails.
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
        }
        // The run's own invariant, checked after every cell test: leaving a stack leaves nothing.
        for ns in &namespaces {
            leaked.extend(criu_matrix::stack::namespace::namespace_processes(ns));
        }
        eprintln!(
            "stack namespaces checked after the run: {}, processes left in them: {}",
            namespaces.len(),
            leaked.len()
        );
    }
    // And nothing it started (qemu, unshare, podman) may outlive it.
    let children = children_of(std::process::id());
    eprintln!("processes this test binary started and left running: {}", children.len());
    if !leaked.is_empty() || !children.is_empty() {
        eprintln!("error: processes left behind: in stack namespaces {leaked:?}, children {children:?}");
        std::process::exit(1);
    }
    conclusion.exit();
}

/// Live (non-zombie) processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.flatten()
        .filter_map(|p| p.stat().ok())
        .filter(|s| s.ppid == pid as i32 && s.state != 'Z')
        .map(|s| s.pid as u32)
        .collect()
}
