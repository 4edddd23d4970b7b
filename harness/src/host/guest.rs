//! Whether this process is the harness inside a criu-matrix VM, and which cell it runs there.
//!
//! The guest runs the same `criu-matrix run` as the host, on the guest's own root (the stack's
//! rootfs), with `CRIU_MATRIX_GUEST` naming the stack and the kernel-side axes, so its cells carry
//! the host's cell names and its `when:` clauses see the real axes.

use serde::{Deserialize, Serialize};

pub const ENV: &str = "CRIU_MATRIX_GUEST";

/// What the guest's cells are, seen from the host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub stack: String,
    pub kernel: String,
    pub cgroup: String,
    pub init: String,
    pub accel: String,
}

/// The identity `CRIU_MATRIX_GUEST` gives, when it is set.
pub(super) fn from_env() -> Option<Identity> {
    serde_json::from_str(&std::env::var(ENV).ok()?).ok()
}
