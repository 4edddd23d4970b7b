//! Running planned cells: each through its stack, image and execution (on the host kernel) or
//! through a VM, then classified and recorded as it finishes. Shared by `criu-matrix run` and
//! the `cargo test` entry point.
//!
//! - `runner`: the run, its jobs up to `--jobs N` at once, each record appended as its cell finishes;
//! - `shared`: what every job of a run shares (the run directory, the stacks, the events);
//! - `jobs`: the plan cut into jobs (a stack's host-kernel cells; a group of VM cells sharing a boot);
//! - `stacks`: each stack opened once per run and leased to one job at a time;
//! - `on_host`, `in_vm`: the two ways a cell runs;
//! - `guest`: the run inside a VM guest: its cells' records out through the channel, and what
//!   each cell left behind checked before the next;
//! - `to_record`: what a cell came to, classified into its record;
//! - `reproducer`: the cell's plain-CLI script.

mod guest;
mod in_vm;
mod jobs;
mod leftovers;
mod on_host;
mod reproducer;
mod runner;
mod shared;
mod stacks;
mod to_record;

pub use guest::run_in_guest;
pub use jobs::default_jobs;
pub use runner::Runner;
