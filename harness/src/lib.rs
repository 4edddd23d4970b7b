//! criu-matrix: reproduces container checkpoint/restore failures across engines, runtimes,
//! stacks and kernels. See ARCHITECTURE.md for the code map and the direction of imports.
//!
//! The modules, in pipeline order (a module imports only from those above it; the
//! architecture test checks it):

#![forbid(unsafe_code)]

// Foundations: the axes table and what every stage uses.
pub mod axes;
pub mod cleanup;
pub mod files;
pub mod process;
pub mod project;
pub mod rate;
pub mod text;
pub mod version;
// This machine, probed once.
pub mod host;
// scenario -> plan -> the record every later stage fills in.
pub mod events;
pub mod plan;
pub mod record;
pub mod scenario;
// Where cells run and what they run.
pub mod engine;
pub mod execute;
pub mod image;
pub mod observe;
pub mod stack;
// Components built for a stack, and the derived stacks they make.
pub mod build;
pub mod verdict;
pub mod vm;
// After the cells: reports, the run that drives everything, comparisons, bug reports.
pub mod bisect;
pub mod bugreport;
pub mod cli;
pub mod compare;
pub mod report;
pub mod run;
