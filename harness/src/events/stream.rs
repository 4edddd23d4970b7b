//! The event stream of a run and the reporters it fans out to.

use crate::record::CellRecord;
use std::sync::Arc;

#[derive(Debug)]
pub enum Event<'a> {
    /// Long work started: provisioning a stack, importing a base image, building an image.
    WorkStarted {
        stack: &'a str,
        what: &'a str,
    },
    /// ... and ended; `cached` when it found the result already there and did nothing.
    WorkDone {
        stack: &'a str,
        what: &'a str,
        seconds: f64,
        cached: bool,
    },
    RunPlanned {
        cells: usize,
    },
    /// A job of the run started (`host trixie`: a stack's host-kernel cells; `vm
    /// trixie/trixie/v2/plain`: a group of VM cells sharing a boot), with its cells.
    JobStarted {
        job: &'a str,
        cells: &'a [String],
    },
    JobFinished {
        job: &'a str,
    },
    CellStarted {
        name: &'a str,
    },
    /// A step of a round: `checkpoint`, `restore`, `verify`.
    Step {
        name: &'a str,
        round: u32,
        step: &'a str,
        seconds: f64,
    },
    CellFinished {
        record: &'a CellRecord,
    },
    /// Something the user should know before it breaks a run (e.g. little free disk).
    Warning {
        message: &'a str,
    },
}

pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event<'_>);
    /// Called once when the run ends, to clear progress bars.
    fn finish(&self) {}
}

/// The fan-out. Cheap to clone; every part of a run gets one.
#[derive(Clone, Default)]
pub struct Events {
    reporters: Vec<Arc<dyn Reporter>>,
}

impl Events {
    pub fn new(reporters: Vec<Arc<dyn Reporter>>) -> Events {
        Events { reporters }
    }

    pub fn emit(&self, event: Event<'_>) {
        for r in &self.reporters {
            r.event(&event);
        }
    }

    pub fn finish(&self) {
        for r in &self.reporters {
            r.finish();
        }
    }

    /// Times `work`, announcing it before and after. `work` says whether it found a cached result.
    pub async fn timed<T>(
        &self,
        stack: &str,
        what: &str,
        work: impl std::future::Future<Output = anyhow::Result<(T, bool)>>,
    ) -> anyhow::Result<T> {
        self.emit(Event::WorkStarted { stack, what });
        let started = std::time::Instant::now();
        let (value, cached) = work.await?;
        self.emit(Event::WorkDone { stack, what, seconds: started.elapsed().as_secs_f64(), cached });
        Ok(value)
    }
}
