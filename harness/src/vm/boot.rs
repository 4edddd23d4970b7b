//! One boot of a VM: qemu started, its console followed into a log and the guest's channel
//! (`channel`) read as it grows, until the guest says it is done, within the time limits; killed
//! (with its process group) otherwise.
//!
//! The limits run by phase: the boot until the guest is ready (`CRIU_MATRIX_VM_READY_TIMEOUT`,
//! 300 s); then each cell its own limit from the moment the guest starts it; between cells (and
//! before the first) [`BETWEEN_CELLS`]. A cell's console lines, from its `NAME: started` line to
//! the next cell's, also go to that cell's own console file.

use super::channel::{Follower, Message};
use super::guest;
use super::tools::Tools;
use crate::events::Events;
use anyhow::Context as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt as _;

/// The longest the guest may take between two cells (checking what a cell left, starting the
/// next), before its first cell, and from its last one to `done`.
pub const BETWEEN_CELLS: Duration = Duration::from_secs(300);

/// How often the channel's file is read for new frames.
const CHANNEL_POLL: Duration = Duration::from_millis(500);

/// Time limits of a VM, overridable for slow hosts and for tests of the timeout path (a number
/// of seconds or `5m`, at most a day; `plan::bounds::check_environment` refuses other values
/// before a run starts).
pub fn limit(var: &str, default_secs: u64) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| crate::scenario::duration_text::parse(&v).ok())
        .unwrap_or(Duration::from_secs(default_secs))
}

/// How long one cell may run in a VM, from the moment the guest starts it: `CRIU_MATRIX_VM_TIMEOUT`
/// when set; else 1800 s, or the boot limit plus the cell's own step limits when those add up to
/// more (a desktop under TCG).
pub fn cell_limit(work: Duration) -> Duration {
    if std::env::var_os("CRIU_MATRIX_VM_TIMEOUT").is_some() {
        return limit("CRIU_MATRIX_VM_TIMEOUT", 1800);
    }
    Duration::from_secs(1800).max(limit("CRIU_MATRIX_VM_READY_TIMEOUT", 300).saturating_add(work))
}

/// A cell the boot may run: its limit and its own console file.
pub struct BootCell {
    pub name: String,
    pub limit: Duration,
    pub console: PathBuf,
}

pub struct Boot {
    pub ready_seconds: Option<f64>,
    pub done: bool,
    pub seconds: f64,
    pub console_tail: String,
    pub error: Option<String>,
    /// The cell the guest had started and not finished when the boot ended.
    pub unfinished: Option<String>,
    /// Bytes of a frame the guest did not finish writing.
    pub cut_short: usize,
}

/// What the boot is waiting for, and until when.
enum Phase {
    Booting,
    Between(Instant),
    Cell { name: String, since: Instant, limit: Duration },
}

impl Phase {
    fn deadline(&self, started: Instant, ready_limit: Duration) -> (Instant, String) {
        match self {
            Phase::Booting => {
                (started + ready_limit, format!("did not report ready within {}s", ready_limit.as_secs()))
            }
            Phase::Between(since) => {
                (*since + BETWEEN_CELLS, format!("did not go on within {}s between cells", BETWEEN_CELLS.as_secs()))
            }
            Phase::Cell { name, since, limit } => {
                (*since + *limit, format!("did not finish {name} within its limit of {}s", limit.as_secs()))
            }
        }
    }
}

/// What a boot sees as it goes: the guest ready (seconds after qemu started), a channel message.
pub enum Seen {
    Ready(f64),
    Channel(Message),
}

/// Boots the VM and follows its console and channel until the guest is done or a limit passes;
/// the guest's readiness and every message of the channel go to `on_seen` as they arrive.
#[allow(clippy::too_many_arguments)] // one boot's inputs, each used once
pub async fn boot(
    tools: &Tools,
    argv: &[String],
    console: &Path,
    channel: &Path,
    cells: &[BootCell],
    events: &Events,
    label: &str,
    on_seen: &mut (dyn FnMut(Seen) + Send),
) -> anyhow::Result<Boot> {
    let ready_limit = limit("CRIU_MATRIX_VM_READY_TIMEOUT", 300);
    let started = Instant::now();
    // The longest this boot could take; the phases below end it sooner.
    let whole = ready_limit + cells.iter().map(|c| c.limit + BETWEEN_CELLS).sum::<Duration>() + BETWEEN_CELLS;
    let mut qemu = tools.command(argv, whole).spawn_piped().context("failed to start qemu")?;
    let mut log = std::fs::File::create(console)?;
    let mut lines = tokio::io::BufReader::new(qemu.stdout.take().context("qemu's console is not piped")?).lines();
    let mut follower = Follower::new(channel);
    let mut tick = tokio::time::interval(CHANNEL_POLL);
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let mut segment: Option<std::fs::File> = None;
    let (mut ready, mut done, mut error) = (None, false, None);
    let mut phase = Phase::Booting;
    let mut on_messages = |messages: Vec<Message>, phase: &mut Phase, ready: Option<f64>| {
        if let Some(s) = ready {
            on_seen(Seen::Ready(s));
        }
        for m in messages {
            match &m {
                Message::Started { cell } => {
                    let limit = cells.iter().find(|c| &c.name == cell).map_or(BETWEEN_CELLS, |c| c.limit);
                    *phase = Phase::Cell { name: cell.clone(), since: Instant::now(), limit };
                }
                Message::Record { .. } => *phase = Phase::Between(Instant::now()),
                _ => {}
            }
            on_seen(Seen::Channel(m));
        }
    };
    loop {
        let (deadline, what) = phase.deadline(started, ready_limit);
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    let line = line.replace('\r', "");
                    let stamped = format!("[{:7.2}] {line}", started.elapsed().as_secs_f64());
                    let _ = writeln!(log, "{stamped}");
                    if let Some(cell) = cells.iter().find(|c| line == format!("{}: started", c.name)) {
                        segment = std::fs::File::create(&cell.console).ok();
                    }
                    if let Some(file) = segment.as_mut() {
                        let _ = writeln!(file, "{stamped}");
                    }
                    if ready.is_none() && line.contains(guest::READY_MARK) {
                        let s = started.elapsed().as_secs_f64();
                        ready = Some(s);
                        if matches!(phase, Phase::Booting) {
                            phase = Phase::Between(Instant::now());
                        }
                        on_messages(Vec::new(), &mut phase, ready);
                        // Shown with the boot's first cell (its job's line in the progress display).
                        let name = cells.first().map_or(label, |c| c.name.as_str());
                        events.emit(crate::events::Event::Step { name, round: 0, step: "vm boot", seconds: s });
                    }
                    if line.contains(guest::DONE_MARK) {
                        done = true;
                    }
                    tail.push_back(line);
                    if tail.len() > 40 {
                        tail.pop_front();
                    }
                }
                Ok(None) | Err(_) => break, // qemu closed the console: it exited
            },
            _ = tick.tick() => on_messages(follower.poll(), &mut phase, None),
            _ = tokio::time::sleep_until(deadline.into()) => {
                // What came on the channel meanwhile may have moved the phase on.
                on_messages(follower.poll(), &mut phase, None);
                if phase.deadline(started, ready_limit).0 <= Instant::now() {
                    error = Some(format!("the VM {what}; killed"));
                    break;
                }
            }
        }
    }
    // After `done` the guest powers off by itself; anything else is killed now, with its group.
    let exited = if done { qemu.wait_for(Duration::from_secs(60)).await } else { None };
    if exited.is_none() {
        qemu.kill().await;
    }
    // What the guest wrote before the end is in the file: the last frames.
    on_messages(follower.poll(), &mut phase, None);
    let err_text = qemu.stderr_text().await;
    if !err_text.trim().is_empty() {
        let _ = writeln!(log, "--- qemu stderr ---\n{}", err_text.trim());
    }
    let console_tail = tail.into_iter().collect::<Vec<_>>().join("\n");
    if !done && error.is_none() {
        error = Some(format!("the VM stopped before the guest was done (qemu: {})", err_text.trim()));
    }
    if let Some(e) = &mut error {
        e.push_str(&format!("\n--- console tail ---\n{console_tail}"));
    }
    let unfinished = match phase {
        Phase::Cell { name, .. } => Some(name),
        _ => None,
    };
    Ok(Boot {
        ready_seconds: ready,
        done,
        seconds: started.elapsed().as_secs_f64(),
        console_tail,
        error,
        unfinished,
        cut_short: follower.pending(),
    })
}
