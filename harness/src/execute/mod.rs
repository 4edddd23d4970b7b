//! Running one cell: start the workload, wait until it is ready, check what the case needs,
//! then rounds of checkpoint -> restore -> verify. Every step has a time limit; whatever the
//! cell created is removed when it ends, however it ends.
//!
//! - `cell`: one cell from its stack setup to its teardown;
//! - `rounds`: the start, readiness and the rounds (a stress cell's go on after a failure);
//! - `precheck`: what must hold before the first checkpoint;
//! - `ready`: the wait for the workload's ready file;
//! - `round`: one round, step by step;
//! - `verify`: the judgement after a restore;
//! - `criu_check`: a failing `criu check` as the cell's failure (a result, never a skip);
//! - `stack_setup`, `criu_config`: what the cell needs in the stack around its container;
//! - `spec`: what a cell is given, and its containers' guard;
//! - `outcome`: what it came to, for `verdict`;
//! - `fault`: the harness's self-checks (`CRIU_MATRIX_FAULT`), restores replaced by what is not one.

mod cell;
mod criu_check;
mod criu_config;
mod fault;
mod outcome;
mod precheck;
mod ready;
mod round;
mod rounds;
mod spec;
mod stack_setup;
mod verify;

pub use cell::{execute, Execution};
pub use criu_check::criu_check_failure;
pub use fault::{Fault, FAULT_ENV};
pub use outcome::{Failure, Outcome, StressRun};
pub use spec::CellSpec;
