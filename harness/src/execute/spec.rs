//! What a cell is given to run, and the guard of its containers.

use crate::cleanup;
use crate::engine::Remover;
use crate::process::Transcript;
use crate::scenario::Scenario;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub struct CellSpec<'a> {
    pub name: &'a str,
    /// The cell's commands, for the reproducer (shared with the engine driver).
    pub transcript: &'a Transcript,
    pub scenario: &'a Scenario,
    pub runtime: &'a str,
    pub image: &'a str,
    /// The scenario's image directory (services copy their files from it).
    pub image_dir: &'a Path,
    /// Where the cell's logs go.
    pub log_dir: &'a Path,
    /// The cell's clause asks that the workload is verified after a refused checkpoint.
    pub verify_after_failure: bool,
}

/// The containers of one cell. Dropping it removes them (also on panic, timeout or interrupt).
pub struct CellContainers {
    names: Arc<Mutex<Vec<String>>>,
    _guard: cleanup::Guard,
}

impl CellContainers {
    pub fn new(cell: &str, remover: Remover) -> CellContainers {
        let names: Arc<Mutex<Vec<String>>> = Arc::default();
        let owned = names.clone();
        let guard = cleanup::on_cleanup(format!("remove the containers of {cell}"), move || {
            let names = owned.lock().unwrap_or_else(|p| p.into_inner()).clone();
            remover(&names);
        });
        CellContainers { names, _guard: guard }
    }

    pub fn add(&self, name: &str) {
        self.names.lock().unwrap_or_else(|p| p.into_inner()).push(name.to_string());
    }

    pub fn names(&self) -> Vec<String> {
        self.names.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A unique, valid container name for round `n` of a cell.
pub fn container_name(cell: &str, n: u32) -> String {
    let slug: String = cell.replace("::", "-").chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    format!("cm-{slug}-{}-{n}", std::process::id())
}
