//! Container engines. Each driver turns the harness's few operations into the engine's own
//! interface and records every action as the equivalent plain CLI command (the reproducer).
//! Drivers are trait objects (`Box<dyn Engine>`): each method is written once, in its driver.

mod docker;
mod for_stack;
mod interface;
mod podman;

pub use docker::Docker;
pub use for_stack::for_stack;
pub use interface::{
    numeric_fields, previous_archive, BindMount, CheckpointMode, CriuOptions, Engine, Remover, RunRequest, StepReport,
};
pub use podman::Podman;
