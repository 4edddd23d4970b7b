//! Progress bars for `criu-matrix run` on a terminal: one bar for the cells, one spinner per
//! running job (a stack's host-kernel cells, a VM group) showing its current cell and step, and
//! one for other long work (provisioning, image builds).

use super::stream::{Event, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub struct ProgressReporter {
    multi: MultiProgress,
    cells: ProgressBar,
    activity: ProgressBar,
    jobs: Mutex<Jobs>,
}

#[derive(Default)]
struct Jobs {
    /// Job -> its spinner.
    bars: HashMap<String, ProgressBar>,
    /// Cell -> the job it belongs to.
    of_cell: HashMap<String, String>,
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix} {msg}").expect("static template")
}

impl ProgressReporter {
    pub fn new() -> ProgressReporter {
        let multi = MultiProgress::new();
        let cells = multi.add(ProgressBar::new(0));
        cells.set_style(
            ProgressStyle::with_template("{prefix:>6} [{bar:30}] {pos}/{len} cells {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        cells.set_prefix("matrix");
        let activity = multi.add(ProgressBar::new_spinner());
        activity.set_style(spinner_style());
        activity.enable_steady_tick(Duration::from_millis(120));
        ProgressReporter { multi, cells, activity, jobs: Mutex::default() }
    }

    /// The spinner showing `cell`: its job's, else the general one.
    fn bar_of(&self, cell: &str) -> ProgressBar {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.of_cell.get(cell).and_then(|job| jobs.bars.get(job)).cloned().unwrap_or_else(|| self.activity.clone())
    }
}

impl Default for ProgressReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for ProgressReporter {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::WorkStarted { stack, what } => {
                self.activity.reset_elapsed();
                self.activity.set_message(format!("[{stack}] {what}"));
            }
            Event::WorkDone { stack, what, seconds, cached } => {
                let how = if *cached { "cached".to_string() } else { format!("{seconds:.1}s") };
                let _ = self.multi.println(format!("[{stack}] {what}: {how}"));
            }
            Event::RunPlanned { cells } => self.cells.set_length(*cells as u64),
            Event::JobStarted { job, cells } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(spinner_style());
                bar.set_prefix(format!("[{job}]"));
                bar.set_message(format!("{} cells", cells.len()));
                bar.enable_steady_tick(Duration::from_millis(120));
                let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
                for cell in cells.iter() {
                    jobs.of_cell.insert(cell.clone(), job.to_string());
                }
                jobs.bars.insert(job.to_string(), bar);
            }
            Event::JobFinished { job } => {
                let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(bar) = jobs.bars.remove(*job) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                jobs.of_cell.retain(|_, j| j != job);
            }
            Event::CellStarted { name } => {
                let bar = self.bar_of(name);
                bar.reset_elapsed();
                bar.set_message(format!("{name}: starting"));
            }
            Event::Step { name, round, step, seconds } => {
                self.bar_of(name).set_message(format!("{name}: round {round} {step} done in {seconds:.2}s"));
            }
            Event::CellFinished { record } => {
                self.cells.inc(1);
                let _ = self.multi.println(format!(
                    "{:<10} {}  {}",
                    record.verdict.to_string(),
                    record.name,
                    record.reason
                ));
            }
            Event::Warning { message } => {
                let _ = self.multi.println(format!("warning: {message}"));
            }
        }
    }

    fn finish(&self) {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        for bar in jobs.bars.values() {
            bar.finish_and_clear();
        }
        self.activity.finish_and_clear();
        self.cells.finish();
    }
}
