//! The commands of one cell, kept as plain CLI commands (what a person would type inside the
//! stack), which become its reproducer.

use super::output::Output;
use serde::Serialize;
use std::sync::Mutex;

/// One entry of a transcript.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub command: String,
    pub status: Option<i32>,
    pub seconds: f64,
    pub timed_out: bool,
    /// Why the harness ran it (a step name), written as a comment in the reproducer.
    pub purpose: String,
}

/// The commands of one cell, in order.
#[derive(Debug, Default)]
pub struct Transcript {
    entries: Mutex<Vec<Recorded>>,
}

impl Transcript {
    pub fn push(&self, purpose: &str, output: &Output) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).push(Recorded {
            command: output.command_line(),
            status: output.status,
            seconds: output.seconds,
            timed_out: output.timed_out,
            purpose: purpose.to_string(),
        });
    }

    /// Records a command the harness did not run as such (it read a file through /proc instead),
    /// so the reproducer still shows how a person would do it.
    pub fn push_equivalent(&self, purpose: &str, command: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).push(Recorded {
            command: command.to_string(),
            status: Some(0),
            seconds: 0.0,
            timed_out: false,
            purpose: purpose.to_string(),
        });
    }

    pub fn entries(&self) -> Vec<Recorded> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
