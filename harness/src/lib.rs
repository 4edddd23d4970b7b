//! criu-matrix: reproduces container checkpoint/restore failures across engines, runtimes,
//! stacks and kernels. See ARCHITECTURE.md for the code map.

pub mod bugreport;
pub mod cleanup;
pub mod compare;
pub mod engine;
pub mod events;
pub mod execute;
pub mod image;
pub mod plan;
pub mod rate;
pub mod record;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stack;
pub mod verdict;
pub mod version;
pub mod vm;
