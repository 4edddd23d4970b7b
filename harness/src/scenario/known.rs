//! Known issues: one YAML file per upstream bug in `known-issues/` (as cockpit keeps one
//! "naughty" file per tracked bug), for the engine, runtime and CRIU-on-kernel bugs that stop
//! cells of any scenario: `crun#1741` stops every docker checkpoint with crun before 1.22,
//! whatever the workload. A scenario's own clauses say what its workload does; these are held
//! against every cell after them (see `verdict`), so no scenario copies them.
//!
//! ```yaml
//! id: crun#1741                      # the file is known-issues/crun-1741.yaml
//! upstream: https://github.com/containers/crun/pull/1741
//! summary: crun before 1.22 does not create the CRIU work directory containerd names
//! when: { engine: docker, runtime: crun, crun: "<1.22" }
//! flow: in-place                     # optional: only cells of this checkpoint flow
//! step: checkpoint
//! round: 1                           # optional
//! signature: "error opening CRIU work directory `[^`]*/criu-work`: No such file or directory"
//! every_cell: true                   # every cell where it applies meets it: a pass is `fixed`
//! intermittent: false                # a race: a cell where it did not happen is a pass
//! ```

use super::error::ScenarioError;
use super::model::{FailStep, When};
use super::validated::{ClauseSource, Expectation, Flow, KnownIssue};
use crate::scenario::model::ExpectedOutcome;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownIssueFile {
    id: Spanned<String>,
    upstream: Spanned<String>,
    summary: String,
    #[serde(default)]
    when: When,
    #[serde(default)]
    flow: Option<Flow>,
    step: FailStep,
    #[serde(default)]
    round: Option<u32>,
    signature: Spanned<String>,
    #[serde(default)]
    every_cell: bool,
    #[serde(default)]
    intermittent: bool,
}

/// The file name a known issue's id must have: `crun#1741` -> `crun-1741.yaml`.
pub fn file_name(id: &str) -> String {
    format!("{}.yaml", id.replace('#', "-"))
}

/// Parses and validates one known issue.
pub fn parse_known_issue(file: &Path, text: &str) -> Result<KnownIssue, ScenarioError> {
    let raw: KnownIssueFile = serde_saphyr::from_str(text).map_err(|e| super::check::yaml_error(file, &e))?;
    let id = &raw.id.value;
    let id_ok = id.split_once('#').is_some_and(|(repo, n)| {
        !repo.is_empty()
            && repo.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
    });
    if !id_ok {
        return Err(ScenarioError::at(
            file,
            &raw.id,
            format!("expected an id such as `crun#1741` (repository#number), got `{id}`"),
        ));
    }
    let expected_name = file_name(id);
    if file.file_name().and_then(|n| n.to_str()) != Some(expected_name.as_str()) {
        return Err(ScenarioError::at(
            file,
            &raw.id,
            format!("known issue `{id}` belongs in a file named {expected_name}"),
        ));
    }
    let number = id.split_once('#').map(|(_, n)| n).unwrap_or_default();
    let url = &raw.upstream.value;
    let url_ok = url.starts_with("https://") && url.trim_end_matches('/').rsplit('/').next() == Some(number);
    if !url_ok {
        return Err(ScenarioError::at(
            file,
            &raw.upstream,
            format!("expected the upstream issue's address, an https URL ending in /{number}, got `{url}`"),
        ));
    }
    if raw.every_cell && raw.intermittent {
        return Err(ScenarioError::at(
            file,
            &raw.id,
            "`every_cell` and `intermittent` contradict each other: a race does not stop every cell",
        ));
    }
    if raw.round == Some(0) {
        return Err(ScenarioError::at(file, &raw.id, "rounds count from 1"));
    }
    let signature = super::check::signature(file, &raw.signature)?;
    let when = super::check::conditions(file, raw.when)?;
    let expectation = Expectation {
        when,
        outcome: ExpectedOutcome::Fails,
        round: raw.round,
        step: Some(raw.step),
        signature: Some(signature),
        failure_rate: None,
        reason: Some(raw.summary.clone()),
        intermittent: raw.intermittent,
        verify_after: false,
        source: ClauseSource::KnownIssue { id: id.clone(), every_cell: raw.every_cell },
        known: Vec::new(),
    };
    Ok(KnownIssue {
        id: id.clone(),
        upstream: url.clone(),
        summary: raw.summary,
        flow: raw.flow,
        expectation,
        source: file.to_path_buf(),
    })
}

/// Every `*.yaml` of `dir` (none when it does not exist), sorted by file name; every error.
pub fn load_known_issues(dir: &Path) -> Result<Vec<KnownIssue>, Vec<ScenarioError>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let (mut issues, mut errors) = (Vec::new(), Vec::new());
    for file in files {
        let parsed = std::fs::read_to_string(&file)
            .map_err(|e| ScenarioError { file: file.clone(), line: 0, column: 0, message: format!("cannot read: {e}") })
            .and_then(|text| parse_known_issue(&file, &text));
        match parsed {
            Ok(issue) => issues.push(issue),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(issues)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const GOOD: &str = "\
id: crun#1741
upstream: https://github.com/containers/crun/pull/1741
summary: crun before 1.22 does not create the CRIU work directory
when: { engine: docker, runtime: crun, crun: '<1.22' }
step: checkpoint
signature: 'error opening CRIU work directory'
every_cell: true
";

    fn parse(name: &str, text: &str) -> Result<KnownIssue, ScenarioError> {
        parse_known_issue(Path::new(&format!("known-issues/{name}")), text)
    }

    #[test]
    fn a_known_issue_is_a_failing_clause_under_its_id() {
        let k = parse("crun-1741.yaml", GOOD).unwrap();
        let e = &k.expectation;
        assert_eq!(
            (k.id.as_str(), e.outcome, e.step, e.round),
            ("crun#1741", ExpectedOutcome::Fails, Some(FailStep::Checkpoint), None)
        );
        assert_eq!(e.source, ClauseSource::KnownIssue { id: "crun#1741".into(), every_cell: true });
        assert!(e.signature.as_ref().unwrap().is_match("Error: error opening CRIU work directory `/x/criu-work`"));
    }

    #[rstest]
    #[case::bad_id("crun-1741.yaml", GOOD.replace("id: crun#1741", "id: crun 1741"), "known-issues/crun-1741.yaml:1:5: expected an id such as `crun#1741` (repository#number), got `crun 1741`")]
    #[case::wrong_file("crun.yaml", GOOD.to_string(), "known-issues/crun.yaml:1:5: known issue `crun#1741` belongs in a file named crun-1741.yaml")]
    #[case::wrong_url("crun-1741.yaml", GOOD.replace("pull/1741", "pull/1742"), "known-issues/crun-1741.yaml:2:11: expected the upstream issue's address, an https URL ending in /1741, got `https://github.com/containers/crun/pull/1742`")]
    #[case::race_everywhere("crun-1741.yaml", format!("{GOOD}intermittent: true\n"), "known-issues/crun-1741.yaml:1:5: `every_cell` and `intermittent` contradict each other: a race does not stop every cell")]
    #[case::unknown_runtime("crun-1741.yaml", GOOD.replace("runtime: crun,", "runtime: cruun,"), "known-issues/crun-1741.yaml:4:34: unknown runtime `cruun` (known: runc, crun)")]
    #[case::harness_words("crun-1741.yaml", GOOD.replace("'error opening CRIU work directory'", "'not running'"), "known-issues/crun-1741.yaml:6:12: signature /not running/ matches what the harness itself writes (\"witness: /tmp/counter stayed at 41 for 30s: the workload is not running\"): signatures are searched only in engine and CRIU output, so write the line CRIU or the engine prints")]
    #[case::unknown_key("crun-1741.yaml", format!("{GOOD}scenarios: [x]\n"), "known-issues/crun-1741.yaml:8:1: unknown field `scenarios`, expected one of id, upstream, summary, when, flow, step, round, signature, every_cell, intermittent")]
    fn malformed_known_issues_are_refused_where_written(#[case] name: &str, #[case] text: String, #[case] error: &str) {
        assert_eq!(parse(name, &text).expect_err("must be refused").to_string(), error);
    }
}
