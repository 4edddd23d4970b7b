//! Versions of the tools in a stack, and the ranges scenarios write against them.
//!
//! Distribution versions are not semver (`1.21`, `26.1.5+dfsg1`, `3.17.1-2+deb12u1`), so they are
//! read leniently: the leading `major[.minor[.patch]]` numbers, missing parts as zero.

use semver::{Version, VersionReq};

/// Reads the first `N[.N[.N]]` in `text`, e.g. `crun version 1.21` -> 1.21.0.
pub fn parse_lenient(text: &str) -> Option<Version> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let numbers: Vec<u64> = text[start..]
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()?
        .split('.')
        .take(3)
        .map_while(|part| part.parse().ok())
        .collect();
    match numbers.as_slice() {
        [] => None,
        [major] => Some(Version::new(*major, 0, 0)),
        [major, minor] => Some(Version::new(*major, *minor, 0)),
        [major, minor, patch, ..] => Some(Version::new(*major, *minor, *patch)),
    }
}

/// A version range as written in a scenario: `<1.21`, `>=4.1, <4.2`, `=1.1.15`.
#[derive(Debug, Clone)]
pub struct Range {
    text: String,
    req: VersionReq,
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, String> {
        // semver reads a bare `1.21` as `^1.21`; a scenario author means "exactly this".
        let normalised = if text.trim_start().starts_with(|c: char| c.is_ascii_digit()) {
            format!("={}", text.trim())
        } else {
            text.trim().to_string()
        };
        VersionReq::parse(&normalised)
            .map(|req| Range { text: text.to_string(), req })
            .map_err(|e| format!("expected a version range such as `<1.21` or `>=4.1, <4.2`, got `{text}`: {e}"))
    }

    pub fn matches(&self, version: &Version) -> bool {
        // Compare as a release: a pre-release tag must not hide a version from `<1.21`.
        let release = Version::new(version.major, version.minor, version.patch);
        self.req.matches(&release)
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
    #[case("crun version 1.21", "1.21.0")]
    #[case("Version 4.1.1", "4.1.1")]
    #[case("26.1.5+dfsg1", "26.1.5")]
    #[case("runc version 1.1.15+ds1", "1.1.15")]
    #[case("podman version 5.4.2", "5.4.2")]
    #[case("7", "7.0.0")]
    fn reads_distribution_versions(#[case] text: &str, #[case] expected: &str) {
        assert_eq!(parse_lenient(text).unwrap().to_string(), expected);
    }

    #[rstest]
    #[case("<1.21", "1.8.1", true)]
    #[case("<1.21", "1.21.0", false)]
    #[case(">=4.1, <4.2", "4.1.1", true)]
    #[case(">=4.1, <4.2", "4.2.1", false)]
    #[case("1.1.15", "1.1.15", true)]
    #[case("1.1", "1.1.15", true)]
    #[case("1.1", "1.2.0", false)]
    fn ranges_match_as_written(#[case] range: &str, #[case] version: &str, #[case] expected: bool) {
        let range = Range::parse(range).unwrap();
        assert_eq!(range.matches(&Version::parse(version).unwrap()), expected);
    }

    #[test]
    fn rejects_a_range_that_does_not_parse() {
        assert!(Range::parse("newer than 1.2").is_err());
    }
}
