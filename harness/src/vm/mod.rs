//! The kernel axis: a cell whose kernel is not `host` runs inside a qemu VM that boots a Debian
//! kernel with the stack's rootfs. The guest runs the same cell code (`criu-matrix run` on its
//! own root); cells of one stack, kernel, cgroup layout and init share a boot (`group`), and each
//! one's record and logs come back over a channel out of the guest as it finishes (`channel`),
//! beside the console.
//!
//! Invariants: the cached stack disk is attached copy-on-write and never changes; a VM whose
//! guest does not report ready, or whose cell does not finish within its own limit, is killed,
//! and that cell is an `error` with the console tail; no qemu process outlives its boot (it is
//! tracked for Ctrl-C and killed on drop).

mod boot;
pub mod channel;
pub mod disk;
mod group;
pub mod guest;
pub mod kernel;
mod machine;
mod runs;
pub mod tools;

pub use group::{label as group_label, run_group, Done, Ended, GroupCell, VmGroup};
pub use machine::{probe_boot, BootPlan, BootProbe, Machine};
