//! The observers of a running container, seen from the host: where its processes are in the
//! cgroup tree (`placement`), which pidfds they hold (`pidfds`), the state of every task
//! (`tasks`), its freezer (`freezer`), and its desktop as a VNC viewer sees it (`vnc`, over the
//! RFB client in `rfb`). They observe and record; whether what they saw proves a restore is
//! `execute::verify`'s to judge.

pub mod freezer;
pub mod mounts;
pub mod pidfds;
pub mod placement;
mod probe;
pub mod proc;
pub mod rfb;
pub mod tasks;
pub mod vnc;

pub use probe::{read_witness, Probe, WitnessReading, POLL};
