//! The plan: scenarios x engine x runtime x stack x kernel (x cgroup x init under a VM kernel),
//! expanded into cells and filtered. Planning is pure: what it needs of the machine (its cgroup
//! layout, how VMs run, whether this is a VM guest) comes in as `host::HostFacts`.

pub mod bounds;
mod expand;
mod filter;
mod key;
mod load;
mod matrix;
mod require;
pub mod shard;
pub mod target;
pub mod with;

pub use expand::{expand, expand_with, Cell};
pub use filter::Filter;
pub use key::CellKey;
pub use load::{load_plan, load_plan_with, load_scenarios, PlanError};
pub use matrix::{known_matrices, load_matrix, parse_matrix, MatrixFile, Part, ScenarioSelection};
pub use require::Required;
pub use shard::{Costs, Shard};
pub use with::{Derivation, Override, Source};
