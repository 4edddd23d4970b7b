//! One stream of events about a run, fanned out to reporters (terminal progress, plain lines).
//! Results are not events: they are records (see `record`), written as each cell finishes.

mod lines;
mod stream;
mod terminal;

pub use lines::LineReporter;
pub use stream::{Event, Events, Reporter};
pub use terminal::ProgressReporter;
