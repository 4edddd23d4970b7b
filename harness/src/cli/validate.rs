//! `criu-matrix validate`: every scenario and every matrix, checked before anything runs.

use crate::plan::Filter;
use crate::project::Project;
use std::process::ExitCode;

pub fn validate(project: &Project) -> anyhow::Result<ExitCode> {
    let scenarios = match crate::scenario::load_all(&project.scenarios(), &project.images()) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let names = crate::plan::known_matrices(&project.matrices());
    for name in &names {
        let matrix = crate::plan::load_matrix(&project.matrices(), name);
        let expanded =
            matrix.and_then(|m| crate::plan::expand(&m, &scenarios, &Filter::default(), crate::host::facts()));
        if let Err(e) = expanded {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    }
    println!("{} scenarios and {} matrices are valid", scenarios.len(), names.len());
    Ok(ExitCode::SUCCESS)
}
