//! Running planned cells: each through its stack, image and execution (on the host kernel) or
//! through a VM, then classified and recorded as it finishes. Shared by `criu-matrix run` and
//! the `cargo test` entry point.
//!
//! - `runner`: the run, cell by cell, each record appended as the cell finishes;
//! - `stacks`: each stack opened once per run, with its daemon and base images;
//! - `on_host`, `in_vm`: the two ways a cell runs;
//! - `to_record`: what a cell came to, classified into its record;
//! - `reproducer`: the cell's plain-CLI script.

mod in_vm;
mod on_host;
mod reproducer;
mod runner;
mod stacks;
mod to_record;

pub use runner::Runner;
