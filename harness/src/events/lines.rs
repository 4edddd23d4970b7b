//! Plain lines on stderr.

use super::stream::{Event, Reporter};

/// Plain lines on stderr: for `cargo test`, CI logs and `--no-progress`.
pub struct LineReporter;

impl Reporter for LineReporter {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::WorkStarted { stack, what } => eprintln!("[{stack}] {what} ..."),
            Event::WorkDone { stack, what, seconds, cached } => {
                let how = if *cached { "cached".to_string() } else { format!("{seconds:.1}s") };
                eprintln!("[{stack}] {what}: done ({how})");
            }
            Event::RunPlanned { cells } => eprintln!("{cells} cells planned"),
            Event::JobStarted { job, cells } => eprintln!("[{job}] started: {} cells", cells.len()),
            Event::JobFinished { job } => eprintln!("[{job}] done"),
            Event::CellStarted { name } => eprintln!("{name}: started"),
            Event::Step { name, round, step, seconds } => eprintln!("{name}: round {round} {step} {seconds:.2}s"),
            Event::CellFinished { record } => eprintln!("{}: {}", record.name, record.summary_line()),
            Event::Warning { message } => eprintln!("warning: {message}"),
        }
    }
}
