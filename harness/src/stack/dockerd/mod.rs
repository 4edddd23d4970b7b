//! A stack's dockerd: its lifecycle (`daemon`: started and stopped by the harness, never a
//! system one) kept apart from the API client the harness's housekeeping uses (`api`).

pub mod api;
pub mod daemon;

pub use api::DockerFacts;
pub use daemon::{start, Daemon, DaemonPaths};
