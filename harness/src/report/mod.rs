//! Reports built from records: `matrix.md` and `matrix.json` (scenarios as rows,
//! engine/runtime/stack/kernel as columns, a verdict in every cell; the Markdown one also serves
//! as a CI job summary), `matrix.html` (the page, see `html`) and `junit.xml` (see `junit`).

pub mod browser;
mod chart;
pub mod html;
pub mod junit;
mod matrix;
pub mod merge;

pub use matrix::{build, markdown, Matrix, MatrixCell, MatrixRow};

use crate::record::CellRecord;
use std::path::Path;

/// Writes `matrix.md`, `matrix.json`, `matrix.html` and `junit.xml` into the run directory.
pub fn write(run_dir: &Path, records: &[CellRecord]) -> anyhow::Result<()> {
    let matrix = build(records);
    let id = run_dir.file_name().and_then(|n| n.to_str()).unwrap_or("run");
    std::fs::write(run_dir.join("matrix.md"), markdown(&matrix))?;
    std::fs::write(run_dir.join("matrix.json"), serde_json::to_string_pretty(&matrix)?)?;
    std::fs::write(run_dir.join("matrix.html"), html::html(run_dir, id, records)?)?;
    std::fs::write(run_dir.join("junit.xml"), junit::junit(id, records)?)?;
    Ok(())
}
