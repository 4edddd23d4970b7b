//! Progress bars for `criu-matrix run` on a terminal: one bar for the cells, one spinner for the
//! long work under way (provisioning, image builds, the current step of a cell).

use super::stream::{Event, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::sync::Mutex;
use std::time::Duration;

pub struct ProgressReporter {
    multi: MultiProgress,
    cells: ProgressBar,
    activity: ProgressBar,
    current: Mutex<String>,
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
        activity.set_style(ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("static template"));
        activity.enable_steady_tick(Duration::from_millis(120));
        ProgressReporter { multi, cells, activity, current: Mutex::new(String::new()) }
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
            Event::CellStarted { name } => {
                *self.current.lock().unwrap_or_else(|p| p.into_inner()) = name.to_string();
                self.activity.reset_elapsed();
                self.activity.set_message(format!("{name}: starting"));
            }
            Event::Step { name, round, step, seconds } => {
                self.activity.set_message(format!("{name}: round {round} {step} done in {seconds:.2}s"));
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
        self.activity.finish_and_clear();
        self.cells.finish();
    }
}
