//! `CRIU_MATRIX_REQUIRE`: axis values whose cells must not be skipped (so CI cannot pass by
//! skipping everything). `trixie` names a value on any axis; `stack=trixie` names one axis.
//! `tool=chromium` names a tool a test needs besides the cells (the HTML page check): its test
//! then fails instead of skipping when the tool cannot be provisioned.

use super::CellKey;

const TOOL: &str = "tool";

#[derive(Debug, Clone, Default)]
pub struct Required {
    items: Vec<(Option<String>, String)>,
}

impl Required {
    /// Parses a comma-separated list such as `trixie` or `stack=trixie,engine=podman`.
    pub fn parse(text: &str) -> anyhow::Result<Required> {
        let mut items = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('=') {
                Some((axis, value)) => {
                    anyhow::ensure!(
                        super::AXES.contains(&axis) || axis == TOOL,
                        "unknown axis `{axis}` in CRIU_MATRIX_REQUIRE (axes: {}, and `{TOOL}`)",
                        super::AXES.join(", ")
                    );
                    items.push((Some(axis.to_string()), value.to_string()));
                }
                None => items.push((None, item.to_string())),
            }
        }
        Ok(Required { items })
    }

    pub fn from_env() -> anyhow::Result<Required> {
        match std::env::var("CRIU_MATRIX_REQUIRE") {
            Ok(text) => Required::parse(&text),
            Err(_) => Ok(Required::default()),
        }
    }

    /// Whether a test that needs `tool` must fail rather than skip without it.
    pub fn requires_tool(&self, tool: &str) -> bool {
        self.items.iter().any(|(axis, value)| axis.as_deref() == Some(TOOL) && value == tool)
    }

    /// Whether a skip of this cell must count as a failure.
    pub fn covers(&self, key: &CellKey) -> bool {
        self.items.iter().any(|(axis, value)| match axis {
            Some(axis) => key.axis(axis) == Some(value.as_str()),
            None => super::AXES.iter().any(|a| key.axis(a) == Some(value.as_str())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stack: &str, runtime: &str) -> CellKey {
        CellKey {
            scenario: "baseline-counter".into(),
            engine: "podman".into(),
            runtime: runtime.into(),
            stack: stack.into(),
            kernel: "host".into(),
            cgroup: "v1".into(),
            init: "host".into(),
            accel: "native".into(),
        }
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
        assert!(!Required::parse("chromium").unwrap().requires_tool("chromium"), "a bare value is an axis value");
        assert!(!r.covers(&key("sid", "runc")));
    }

    #[test]
    fn an_unknown_axis_is_an_error() {
        assert!(Required::parse("flavour=x").is_err());
    }
}
