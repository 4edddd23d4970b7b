//! The kernel axis: a cell whose kernel is not `host` runs inside a qemu VM that boots a Debian
//! kernel with the stack's rootfs. The guest runs the same cell code (`criu-matrix run` on its
//! own root); the host brings back the guest's record and logs, plus the console.
//!
//! Invariants: the cached stack disk is attached copy-on-write and never changes; a VM that does
//! not report ready or done in time is killed, and its cell is an `error` with the console tail;
//! no qemu process outlives its cell (it is tracked for Ctrl-C and killed on drop).

mod boot;
mod cell;
pub mod disk;
pub mod guest;
pub mod kernel;
mod machine;
mod runs;
pub mod tools;

pub use cell::{run_cell, VmCell, VmRun};
pub use machine::{probe_boot, BootProbe, Machine};
