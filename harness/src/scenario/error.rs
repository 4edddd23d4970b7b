//! Where a scenario file is wrong: `file:line:col: message`.

use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};

/// A scenario file that cannot be used, and where.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl ScenarioError {
    pub fn at<T>(file: &Path, spanned: &Spanned<T>, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: file.to_path_buf(),
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            message: message.into(),
        }
    }
}
