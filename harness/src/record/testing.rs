//! Records for unit tests of the stages that read them.

use super::{CellRecord, Verdict};
use crate::plan::CellKey;

/// A host-kernel podman cell of `scenario` with this runtime, stack and verdict.
pub(crate) fn record(scenario: &str, runtime: &str, stack: &str, verdict: Verdict) -> CellRecord {
    let values = [scenario, "podman", runtime, stack, "host", "v1", "host", "native"];
    let key = CellKey::from_fn(|a| values[a as usize].to_string());
    CellRecord {
        name: key.name(),
        key,
        verdict,
        reason: "why".into(),
        expected: "passes".into(),
        clause: None,
        failure: None,
        rounds: vec![],
        versions: Default::default(),
        started: String::new(),
        seconds: 1.0,
        logs: None,
        reproducer: None,
        criu_config: None,
        stress: None,
        fault: None,
        components: Default::default(),
    }
}
