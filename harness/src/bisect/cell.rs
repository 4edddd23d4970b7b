//! The steps of a real bisect: at each commit, the component built from it (`build`, cached by
//! the commit's tree) in the cell's derived stack, then the cell run there as `criu-matrix run`
//! runs it, in a run directory of its own.
//!
//! Every step uses one derived stack, `BASE+COMPONENT=bisect`: its directory, rootfs and image
//! storage are made once, and each step installs its own build over the last one.

use super::{Steps, Tried};
use crate::axes::{Axis, Component};
use crate::build::DoesNotBuild;
use crate::events::Events;
use crate::plan::{Cell, Derivation, Override, Source};
use crate::project::Project;
use crate::stack::Cache;
use std::path::PathBuf;
use std::sync::Arc;

pub struct CellSteps {
    pub project: Project,
    pub cache: Cache,
    pub events: Events,
    /// The cell on its Debian stack, as the plan has it.
    pub cell: Cell,
    pub component: &'static Component,
    /// The git checkout the commits come from.
    pub dir: PathBuf,
    pub patches: Vec<PathBuf>,
}

impl CellSteps {
    /// The derived stack's name every step uses.
    pub fn stack_name(&self) -> String {
        format!("{}+{}=bisect", self.cell.key[Axis::Stack], self.component.name)
    }

    fn derivation(&self, commit: &str) -> anyhow::Result<Derivation> {
        let o = Override {
            component: self.component,
            source: Source::Src { dir: self.dir.clone(), rev: Some(commit.to_string()) },
            patches: self.patches.clone(),
        };
        let base = &self.cell.key[Axis::Stack];
        let mut d = Derivation::of(base, &[o])
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| anyhow::anyhow!("{base} takes no overrides"))?;
        d.name = self.stack_name();
        Ok(d)
    }
}

#[async_trait::async_trait]
impl Steps for CellSteps {
    async fn try_commit(&mut self, commit: &str) -> anyhow::Result<Tried> {
        let derivation = self.derivation(commit)?;
        // Built first on its own: a commit that does not build is a skip, not a cell error.
        if let Err(e) = crate::build::prepare(&derivation, &self.cache, &self.events).await {
            return match e.chain().find_map(|c| c.downcast_ref::<DoesNotBuild>()) {
                Some(no) => Ok(Tried::DoesNotBuild(no.tail.lines().last().unwrap_or_default().to_string())),
                None => Err(e),
            };
        }
        let mut cell = self.cell.clone();
        cell.key.set(Axis::Stack, derivation.name.clone());
        cell.derivation = Some(Arc::new(derivation));
        let runner =
            crate::run::Runner::new(self.project.clone(), self.cache.clone(), self.events.clone(), crate::host::facts())?;
        let record = runner.run_cell(&cell).await;
        let (run, _) = runner.finish()?;
        Ok(Tried::Ran { record: Box::new(record), run: run.dir.clone() })
    }
}
