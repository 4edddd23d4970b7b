//! criu-matrix: reproduces container checkpoint/restore failures across engines, runtimes,
//! stacks and kernels. See ARCHITECTURE.md for the code map.

pub mod scenario;
pub mod version;
pub mod plan;
pub mod cleanup;
pub mod events;
pub mod record;
pub mod report;
pub mod verdict;
