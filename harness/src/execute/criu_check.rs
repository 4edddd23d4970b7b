//! `criu check` on the cell's stack and kernel, before any container: a check that fails is a
//! result about CRIU on this kernel (a `fail` with CRIU's own words, or `reproduced` where a
//! known issue names it), never a skip.

use super::outcome::Failure;
use crate::scenario::FailStep;
use crate::stack::StackFacts;

/// The failure a failing `criu check` is, when it fails (round 0: before the first round).
pub fn criu_check_failure(facts: &StackFacts) -> Option<Failure> {
    let check = facts.criu_check.as_ref().filter(|c| !c.ok)?;
    let criu = facts.tools.get("criu").and_then(|t| t.version.clone()).unwrap_or_default();
    Some(Failure {
        round: 0,
        step: FailStep::CriuCheck,
        message: format!("criu {criu} check fails on kernel {}: {}", facts.kernel, check.summary),
        evidence: check.output.clone(),
    })
}
