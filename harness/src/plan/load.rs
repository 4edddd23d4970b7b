//! A plan from the project's files: every scenario validated, then a named matrix expanded.

use super::expand::{expand_with, Cell};
use super::with::Override;
use super::filter::Filter;
use super::matrix::load_matrix;
use crate::host::HostFacts;
use crate::project::Project;
use crate::scenario::{Scenario, ScenarioError};

/// Why a plan could not be made. Either way nothing may run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Scenario files are malformed.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Scenarios(Vec<ScenarioError>),
    #[error("{0:#}")]
    Other(anyhow::Error),
}

/// Every scenario of the project, validated, with `CRIU_MATRIX_STRESS_ROUNDS` applied.
pub fn load_scenarios(project: &Project) -> Result<Vec<Scenario>, PlanError> {
    let scenarios = crate::scenario::load_all(&project.scenarios(), &project.images()).map_err(PlanError::Scenarios)?;
    let rounds = crate::scenario::stress_rounds_override().map_err(PlanError::Other)?;
    Ok(scenarios.into_iter().map(|s| s.with_stress_rounds(rounds)).collect())
}

/// Loads and validates every scenario, then expands the named matrix under `filter`.
pub fn load_plan(project: &Project, matrix: &str, filter: &Filter, host: &HostFacts) -> Result<Vec<Cell>, PlanError> {
    load_plan_with(project, matrix, filter, &[], host)
}

/// As [`load_plan`], with components replaced in every Debian stack (`--with`).
pub fn load_plan_with(
    project: &Project,
    matrix: &str,
    filter: &Filter,
    with: &[Override],
    host: &HostFacts,
) -> Result<Vec<Cell>, PlanError> {
    filter.check().map_err(|e| PlanError::Other(anyhow::anyhow!("{e}")))?;
    super::bounds::check_environment().map_err(|e| PlanError::Other(anyhow::anyhow!("{e}")))?;
    let scenarios = load_scenarios(project)?;
    let matrix = load_matrix(&project.matrices(), matrix).map_err(PlanError::Other)?;
    expand_with(&matrix, &scenarios, filter, with, host).map_err(PlanError::Other)
}
