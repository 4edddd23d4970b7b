//! `CRIU_MATRIX_REQUIRE`: axis values whose cells must not be skipped (so CI cannot pass by
//! skipping everything). `trixie` names a value on any axis; `stack=trixie` names one axis.
//! `tool=chromium` names a tool a test needs besides the cells (the HTML page check): its test
//! then fails instead of skipping when the tool cannot be provisioned.

use super::key::CellKey;
use crate::axes::Axis;

const TOOL: &str = "tool";

#[derive(Debug, Clone, Default)]
pub struct Required {
    /// (axis, value), or a bare value that may be on any axis; `tool` items are kept apart.
    items: Vec<(Option<Axis>, String)>,
    tools: Vec<String>,
}

impl Required {
    /// Parses a comma-separated list such as `trixie` or `stack=trixie,engine=podman`.
    pub fn parse(text: &str) -> anyhow::Result<Required> {
        let mut required = Required::default();
        let axes = || Axis::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('=') {
                Some((TOOL, tool)) => required.tools.push(tool.to_string()),
                Some((name, value)) => {
                    let axis = Axis::from_name(name).ok_or_else(|| {
                        anyhow::anyhow!("unknown axis `{name}` in CRIU_MATRIX_REQUIRE (axes: {}, and `{TOOL}`)", axes())
                    })?;
                    axis.check(value).map_err(|e| anyhow::anyhow!("CRIU_MATRIX_REQUIRE: {e}"))?;
                    required.items.push((Some(axis), value.to_string()));
                }
                None => {
                    // A bare value must be a value of some axis, or it requires nothing at all.
                    let on_some_axis = Axis::ALL.iter().any(|a| *a != Axis::Scenario && a.check(item).is_ok());
                    anyhow::ensure!(
                        on_some_axis,
                        "`{item}` in CRIU_MATRIX_REQUIRE is no value of any axis (axes: {}); name a scenario as `scenario={item}`",
                        axes()
                    );
                    required.items.push((None, item.to_string()));
                }
            }
        }
        Ok(required)
    }

    pub fn from_env() -> anyhow::Result<Required> {
        match std::env::var("CRIU_MATRIX_REQUIRE") {
            Ok(text) => Required::parse(&text),
            Err(_) => Ok(Required::default()),
        }
    }

    /// Whether a test that needs `tool` must fail rather than skip without it.
    pub fn requires_tool(&self, tool: &str) -> bool {
        self.tools.iter().any(|t| t == tool)
    }

    /// Whether a skip of this cell must count as a failure.
    pub fn covers(&self, key: &CellKey) -> bool {
        self.items.iter().any(|(axis, value)| match axis {
            Some(axis) => key[*axis] == *value,
            None => Axis::ALL.iter().any(|a| key[*a] == *value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stack: &str, runtime: &str) -> CellKey {
        let values = ["baseline-counter", "podman", runtime, stack, "host", "v1", "host", "native"];
        CellKey::from_fn(|a| values[a as usize].to_string())
    }

    #[test]
    fn a_bare_value_matches_any_axis_and_a_pair_one_axis() {
        let r = Required::parse("trixie, runtime=crun").unwrap();
        assert!(r.covers(&key("trixie", "runc")));
        assert!(r.covers(&key("sid", "crun")));
        assert!(!r.covers(&key("sid", "runc")));
        assert!(!Required::default().covers(&key("trixie", "runc")));
    }

    #[test]
    fn a_tool_is_required_apart_from_cells() {
        let r = Required::parse("trixie,tool=chromium").unwrap();
        assert!(r.requires_tool("chromium"));
        assert!(!r.requires_tool("qemu"));
        assert!(Required::parse("chromium").is_err(), "a bare value is an axis value, and chromium is none");
        assert!(!r.covers(&key("sid", "runc")));
    }

    #[test]
    fn an_unknown_axis_or_value_is_an_error() {
        assert!(Required::parse("flavour=x").is_err());
        assert!(Required::parse("runtime=cruun").is_err());
        assert!(Required::parse("trixy").is_err(), "a typo would require nothing");
        assert!(Required::parse("scenario=baseline-counter").is_ok());
    }
}
