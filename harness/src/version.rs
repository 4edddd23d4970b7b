//! Versions of the tools in a stack, and the ranges scenarios write against them.
//!
//! A version is a Debian version (`epoch:upstream-revision`), compared as dpkg compares them
//! (with the `debversion` crate): the revision counts, so a fix shipped as `3.17.1-2+deb12u1` is
//! after `3.17.1-2`, and `1.21-1` is after `1.21`. A stack's tool has its package's version when
//! that package's upstream version is the one the tool prints (else the tool's own numbers).

use std::cmp::Ordering;

/// A tool's version: a Debian version.
pub type ToolVersion = debversion::Version;

/// Reads the first `N[.N]...` in `text` as a version (no revision), e.g. `crun version 1.21` ->
/// `1.21`, `Version: 4.1.1` -> `4.1.1`, `26.1.5+dfsg1` -> `26.1.5`.
pub fn parse_lenient(text: &str) -> Option<ToolVersion> {
    let numbers = leading_numbers(text)?;
    numbers.parse().ok()
}

/// The first `N[.N]...` in `text`, as written.
fn leading_numbers(text: &str) -> Option<&str> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let rest = &text[start..];
    let end = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches('.')).filter(|n| !n.is_empty())
}

/// A Debian package version (`1.21-1`, `2:26.1.5+dfsg1-9`), exactly.
pub fn parse_debian(text: &str) -> Option<ToolVersion> {
    text.trim().parse().ok()
}

/// A tool's version from what it printed and its package's version: the package's (with its
/// revision) when its upstream part starts with the numbers the tool printed, so a binary that
/// is not the package's (rebuilt, overridden) keeps its own numbers.
pub fn of_tool(printed: &str, package: Option<&str>) -> Option<ToolVersion> {
    let own = leading_numbers(printed)?;
    let from_package = package.and_then(parse_debian).filter(|p| {
        let upstream = leading_numbers(&p.upstream_version).unwrap_or_default();
        same_numbers(upstream, own)
    });
    from_package.or_else(|| own.parse().ok())
}

/// `1.21` and `1.21.0` are the same numbers.
fn same_numbers(a: &str, b: &str) -> bool {
    let parts = |s: &str| -> Vec<u64> {
        let mut v: Vec<u64> = s.split('.').filter_map(|p| p.parse().ok()).collect();
        while v.last() == Some(&0) {
            v.pop();
        }
        v
    };
    parts(a) == parts(b)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    /// A bare version: that version or any of its later parts (`1.1` holds `1.1.15` and
    /// `1.1-2`, not `1.10`).
    Prefix,
}

/// A version range as written in a scenario: `<1.21`, `>=4.1, <4.2`, `<3.17.1-2+deb12u1`,
/// `=1.1.15+ds1-1`, or a bare `1.1` (that version and its later parts).
#[derive(Debug, Clone)]
pub struct Range {
    text: String,
    bounds: Vec<(Op, ToolVersion)>,
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, String> {
        let fail = |why: String| {
            format!(
                "expected a version range such as `<1.21`, `>=4.1, <4.2` or `<3.17.1-2+deb12u1`, got `{text}`: {why}"
            )
        };
        let mut bounds = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (op, rest) = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt), ("=", Op::Eq)]
                .iter()
                .find_map(|(s, op)| part.strip_prefix(s).map(|rest| (*op, rest.trim())))
                .unwrap_or((Op::Prefix, part));
            if !rest.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(fail(format!("`{part}` is not a comparison with a version")));
            }
            let version: ToolVersion = rest.parse().map_err(|e| fail(format!("{e}")))?;
            bounds.push((op, version));
        }
        if bounds.len() > 2 {
            return Err(fail("one or two comparisons, comma-separated".into()));
        }
        Ok(Range { text: text.to_string(), bounds })
    }

    pub fn matches(&self, version: &ToolVersion) -> bool {
        self.bounds.iter().all(|(op, bound)| {
            let order = version.cmp(bound);
            match op {
                Op::Lt => order == Ordering::Less,
                Op::Le => order != Ordering::Greater,
                Op::Gt => order == Ordering::Greater,
                Op::Ge => order != Ordering::Less,
                Op::Eq => order == Ordering::Equal,
                Op::Prefix => {
                    let (v, b) = (version.to_string(), bound.to_string());
                    order == Ordering::Equal
                        || v.strip_prefix(&b).is_some_and(|rest| rest.starts_with(['.', '-', '+', '~']))
                }
            }
        })
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("crun version 1.21", "1.21")]
    #[case("Version: 4.1.1", "4.1.1")]
    #[case("26.1.5+dfsg1", "26.1.5")]
    #[case("runc version 1.1.15+ds1", "1.1.15")]
    #[case("podman version 5.4.2", "5.4.2")]
    #[case("7", "7")]
    #[case("6.18.44-fc-v657", "6.18.44")]
    fn reads_distribution_versions(#[case] text: &str, #[case] expected: &str) {
        assert_eq!(parse_lenient(text).unwrap().to_string(), expected);
    }

    /// A package's version stands for the tool when it is the same upstream release.
    #[rstest]
    #[case("Version: 3.17.1", Some("3.17.1-2+deb12u1"), "3.17.1-2+deb12u1")]
    #[case("crun version 1.21", Some("1.21-1"), "1.21-1")]
    #[case("runc version 1.1.15+ds1", Some("1.1.15+ds1-2"), "1.1.15+ds1-2")]
    #[case("Docker version 26.1.5+dfsg1", Some("26.1.5+dfsg1-9+b1"), "26.1.5+dfsg1-9+b1")]
    #[case("crun version 1.23.1", Some("1.21-1"), "1.23.1")]
    #[case("criu 4.2", None, "4.2")]
    fn tools_take_their_package_version_when_it_is_theirs(
        #[case] printed: &str,
        #[case] package: Option<&str>,
        #[case] expected: &str,
    ) {
        assert_eq!(of_tool(printed, package).unwrap().to_string(), expected);
    }

    #[rstest]
    #[case("<1.21", "1.8.1-1+deb12u1", true)]
    #[case("<1.21", "1.21-1", false)]
    #[case("<1.21", "1.21", false)]
    #[case(">=4.1, <4.2", "4.1.1-2", true)]
    #[case(">=4.1, <4.2", "4.2.1-1", false)]
    #[case("<4.2", "4.2~rc1-1", true)]
    #[case("=1.1.15", "1.1.15", true)]
    #[case("1.1", "1.1.15", true)]
    #[case("1.1", "1.1-2", true)]
    #[case("1.1", "1.10", false)]
    #[case("1.1", "1.2.0", false)]
    // A fix shipped as a Debian revision counts.
    #[case("<3.17.1-2+deb12u1", "3.17.1-2", true)]
    #[case("<3.17.1-2+deb12u1", "3.17.1-2+deb12u1", false)]
    #[case("<3.17.1-2+deb12u1", "3.17.1-2+deb12u2", false)]
    #[case(">=6.16", "6.18.44-fc-v657", true)]
    #[case(">=6.13", "6.1.0-50-cloud-amd64", false)]
    #[case(">=28", "28.5.2", true)]
    #[case("<1.2", "1.1.15+ds1-2", true)]
    fn ranges_compare_debian_versions(#[case] range: &str, #[case] version: &str, #[case] expected: bool) {
        let range = Range::parse(range).unwrap();
        assert_eq!(range.matches(&parse_debian(version).unwrap()), expected, "{range} {version}");
    }

    #[rstest]
    #[case("newer than 1.2")]
    #[case("<")]
    #[case(">1, <2, <3")]
    #[case("~1.2")]
    fn rejects_a_range_that_does_not_parse(#[case] text: &str) {
        let err = Range::parse(text).unwrap_err();
        assert!(err.contains("expected a version range"), "{err}");
    }
}
