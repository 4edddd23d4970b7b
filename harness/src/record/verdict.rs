//! A cell's verdict: what its outcome says about the stack under test, held against what its
//! scenario expects there (see `verdict::classify`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every round checkpointed, restored and verified, as expected.
    Pass,
    /// Failed where the scenario expects the upstream bug, with its signature in the logs.
    Reproduced,
    /// The scenario expects the bug here, but every round passed: the bug is fixed here, or the
    /// expectation is stale. A bad verdict: the expectation must be looked at.
    Fixed,
    /// An unexpected failure, or a failure without the expected signature.
    Fail,
    /// The harness or its environment broke; says nothing about CRIU.
    Error,
    /// A requirement is not met here.
    Skip,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Reproduced => "reproduced",
            Verdict::Fixed => "fixed",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
            Verdict::Skip => "skip",
        })
    }
}

impl Verdict {
    /// A good verdict: what the scenario expects happened (a pass, or the bug reproduced).
    pub fn is_good(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::Reproduced)
    }
}
