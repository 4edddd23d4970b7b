//! Checks shared by scenarios and known issues: YAML errors with their position, regular
//! expressions, signatures (never the harness's own words), `when:` conditions against the
//! axes table.

use super::error::ScenarioError;
use super::model::When;
use super::validated::{Conditions, CGROUP_MANAGERS, VERSIONED_TOOLS};
use crate::axes::Axis;
use crate::version::Range;
use regex::Regex;
use serde_saphyr::Spanned;
use std::path::Path;

pub(super) fn yaml_error(file: &Path, error: &serde_saphyr::Error) -> ScenarioError {
    let (line, column) = error.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    // The rendered error repeats the position and quotes the source; the first line is the message.
    let rendered = error.to_string();
    let message = rendered.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("invalid YAML");
    // It may repeat the position ("error: line 12 column 1: unknown field ..."): keep one.
    let position = regex::Regex::new(r"^(error: )?line \d+ column \d+: ").expect("static regex");
    let message = position.replace(message, "").into_owned();
    ScenarioError { file: file.to_path_buf(), line, column, message }
}

/// Compiles a regular expression written in a scenario; `field` names it in the error.
pub(super) fn compile(file: &Path, text: &Spanned<String>, field: &str) -> Result<Regex, ScenarioError> {
    Regex::new(&text.value).map_err(|e| {
        let first_line =
            e.to_string().lines().last().unwrap_or_default().trim().trim_start_matches("error: ").to_string();
        ScenarioError::at(file, text, format!("expected a regular expression for `{field}`: {first_line}"))
    })
}

/// A signature: a regular expression searched line by line in what the engine, the runtime and
/// CRIU printed. One that also matches the harness's own words is refused: it could be "found"
/// without the upstream bug (and it is never searched there).
pub(super) fn signature(file: &Path, text: &Spanned<String>) -> Result<Regex, ScenarioError> {
    let regex = compile(file, text, "signature")?;
    if let Some(own) = super::harness_text::matched_by(&regex) {
        return Err(ScenarioError::at(
            file,
            text,
            format!(
                "signature /{}/ matches what the harness itself writes (\"{}\"): signatures are searched only in \
                 engine and CRIU output, so write the line CRIU or the engine prints",
                text.value,
                crate::text::one_line(own)
            ),
        ));
    }
    Ok(regex)
}

/// A `when:` clause's conditions, each key and value checked: an axis value against the axes
/// table, a cgroup manager against the known ones, a version range parsed. A condition that can
/// never hold (`runtime: cruun`) is an error here, not a clause that silently never matches.
pub(super) fn conditions(file: &Path, when: When) -> Result<Conditions, ScenarioError> {
    let mut conditions = Conditions::default();
    for (key, value) in when.0 {
        let at = |message: String| ScenarioError::at(file, &value, message);
        if let Some(axis) = Axis::from_name(&key).filter(|a| *a != Axis::Scenario) {
            axis.check(&value.value).map_err(at)?;
            conditions.axes.push((axis, value.value.clone()));
        } else if key == "cgroup_manager" {
            if !CGROUP_MANAGERS.contains(&value.value.as_str()) {
                let known = CGROUP_MANAGERS.join(", ");
                return Err(at(format!("unknown cgroup_manager `{}` (known: {known})", value.value)));
            }
            conditions.cgroup_manager = Some(value.value.clone());
        } else if VERSIONED_TOOLS.contains(&key.as_str()) {
            let range = Range::parse(&value.value).map_err(at)?;
            conditions.versions.push((key, range));
        } else {
            let axes = Axis::ALL.iter().filter(|a| **a != Axis::Scenario).map(|a| a.name());
            let known: Vec<&str> = axes.chain(["cgroup_manager"]).chain(VERSIONED_TOOLS.iter().copied()).collect();
            return Err(at(format!("unknown condition `{key}` in `when:`, expected one of {}", known.join(", "))));
        }
    }
    Ok(conditions)
}
