//! Where the project's inputs are: `scenarios/`, `images/`, `matrices/` and
//! `results/`, found from the current directory (or `CRIU_MATRIX_PROJECT`).

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
}

impl Project {
    /// The directory holding `scenarios/` and `matrices/`: `CRIU_MATRIX_PROJECT`, else the
    /// current directory or one of its parents.
    pub fn locate() -> anyhow::Result<Project> {
        if let Some(dir) = std::env::var_os("CRIU_MATRIX_PROJECT") {
            return Ok(Project { root: PathBuf::from(dir) });
        }
        let cwd = std::env::current_dir()?;
        cwd.ancestors()
            .find(|d| d.join("scenarios").is_dir() && d.join("matrices").is_dir())
            .map(|d| Project { root: d.to_path_buf() })
            .ok_or_else(|| {
                anyhow::anyhow!("failed to find scenarios/ and matrices/ here or above (set CRIU_MATRIX_PROJECT)")
            })
    }

    pub fn scenarios(&self) -> PathBuf {
        self.root.join("scenarios")
    }
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn matrices(&self) -> PathBuf {
        self.root.join("matrices")
    }
    pub fn results(&self) -> PathBuf {
        self.root.join("results")
    }
}
