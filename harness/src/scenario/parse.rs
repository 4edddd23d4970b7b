//! YAML -> validated [`Scenario`], with `file:line:col` on every error.

use super::error::ScenarioError;
use super::model::{ExpectClause, ExpectedOutcome, ScenarioFile, StressSpec, VerifyStep, When};
use super::validated::{Conditions, Expectation, Scenario, Stress, CGROUP_MANAGERS, VERSIONED_TOOLS};
use crate::axes::Axis;
use crate::rate::RateBound;
use crate::version::Range;
use regex::Regex;
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};

/// Parses and validates one scenario. `images_dir` is where its image directory must exist.
pub fn parse_scenario(file: &Path, text: &str, images_dir: &Path) -> Result<Scenario, ScenarioError> {
    super::bounds::check_size(file, text.len() as u64)?;
    let raw: ScenarioFile = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e))?;
    super::bounds::check(file, text, &raw)?;
    validate(file, raw, images_dir)
}

/// Loads every `*.yaml` in `dir`, sorted by file name. All errors are returned, not just the first.
pub fn load_all(dir: &Path, images_dir: &Path) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect(),
        Err(e) => {
            return Err(vec![ScenarioError {
                file: dir.to_path_buf(),
                line: 0,
                column: 0,
                message: format!("cannot read the scenario directory: {e}"),
            }])
        }
    };
    files.sort();
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let parsed = super::bounds::read(&file).and_then(|text| parse_scenario(&file, &text, images_dir));
        match parsed {
            Ok(s) => scenarios.push(s),
            Err(e) => errors.push(e),
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for s in &scenarios {
        if let Some(first) = seen.insert(s.id.clone(), s.source.clone()) {
            errors.push(ScenarioError {
                file: s.source.clone(),
                line: 1,
                column: 1,
                message: format!("scenario id `{}` is already used by {}", s.id, first.display()),
            });
        }
    }
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(errors)
    }
}

fn yaml_error(file: &Path, error: &serde_saphyr::Error) -> ScenarioError {
    let (line, column) = error.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    // The rendered error repeats the position and quotes the source; the first line is the message.
    let rendered = error.to_string();
    let message = rendered.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("invalid YAML");
    // It may repeat the position ("error: line 12 column 1: unknown field ..."): keep one.
    let position = regex::Regex::new(r"^(error: )?line \d+ column \d+: ").expect("static regex");
    let message = position.replace(message, "").into_owned();
    ScenarioError { file: file.to_path_buf(), line, column, message }
}

fn validate(file: &Path, raw: ScenarioFile, images_dir: &Path) -> Result<Scenario, ScenarioError> {
    let id_ok = !raw.id.value.is_empty()
        && raw.id.value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !id_ok {
        return Err(ScenarioError::at(
            file,
            &raw.id,
            format!(
                "expected an id of lowercase letters, digits and dashes (it names cells and tests), got `{}`",
                raw.id.value
            ),
        ));
    }
    let containerfile = images_dir.join(&raw.image.value).join("Containerfile");
    if !containerfile.is_file() {
        return Err(ScenarioError::at(
            file,
            &raw.image,
            format!("expected an image directory with a Containerfile, but {} does not exist", containerfile.display()),
        ));
    }
    if raw.rounds == 0 {
        return Err(ScenarioError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: "rounds must be at least 1".into(),
        });
    }
    let stress = raw.stress.as_ref().map(|spec| stress(file, spec)).transpose()?;
    let expect = raw
        .expect
        .into_iter()
        .map(|clause| expectation(file, clause, stress.is_some()))
        .collect::<Result<Vec<_>, _>>()?;
    for step in &raw.verify {
        check_verify_step(file, step)?;
    }
    let image_dir = images_dir.join(&raw.image.value);
    super::stack_needs::validate(file, &raw.services, &raw.mounts, &raw.criu_config, &raw.run.annotations, &image_dir)?;
    Ok(Scenario {
        id: raw.id.value,
        summary: raw.summary,
        upstream: raw.upstream,
        image: raw.image.value,
        run: raw.run,
        ready: raw.ready,
        rounds: raw.rounds,
        checkpoint: raw.checkpoint,
        precheck: raw.precheck,
        verify: raw.verify,
        timeouts: raw.timeouts,
        expect,
        services: raw.services,
        mounts: raw.mounts,
        criu_config: raw.criu_config,
        stress,
        source: file.to_path_buf(),
    })
}

fn check_verify_step(file: &Path, step: &VerifyStep) -> Result<(), ScenarioError> {
    match step {
        VerifyStep::Exec(check) => {
            if check.args.value.is_empty() {
                return Err(ScenarioError::at(file, &check.args, "expected a command to run in the container"));
            }
            if let Some(output) = &check.output {
                compile(file, output, "output")?;
            }
        }
        VerifyStep::Running(names) => {
            if names.value.is_empty() {
                return Err(ScenarioError::at(file, names, "expected the command names of processes that must run"));
            }
            // The kernel keeps 15 bytes of a command name (`/proc/PID/comm`): a longer one never matches.
            if let Some(long) = names.value.iter().find(|n| n.is_empty() || n.len() > 15) {
                return Err(ScenarioError::at(
                    file,
                    names,
                    format!("expected command names of 1 to 15 bytes as /proc/PID/comm has them, got `{long}`"),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Compiles a regular expression written in a scenario; `field` names it in the error.
fn compile(file: &Path, text: &Spanned<String>, field: &str) -> Result<Regex, ScenarioError> {
    Regex::new(&text.value).map_err(|e| {
        let first_line =
            e.to_string().lines().last().unwrap_or_default().trim().trim_start_matches("error: ").to_string();
        ScenarioError::at(file, text, format!("expected a regular expression for `{field}`: {first_line}"))
    })
}

fn stress(file: &Path, spec: &StressSpec) -> Result<Stress, ScenarioError> {
    let mut signatures = Vec::new();
    for named in &spec.signatures {
        let name = &named.name.value;
        let name_ok =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            return Err(ScenarioError::at(
                file,
                &named.name,
                format!("expected a signature name of lowercase letters, digits and dashes, got `{name}`"),
            ));
        }
        if signatures.iter().any(|(n, _)| n == name) {
            return Err(ScenarioError::at(file, &named.name, format!("signature name `{name}` is used twice")));
        }
        signatures.push((name.clone(), compile(file, &named.pattern, "pattern")?));
    }
    Ok(Stress { signatures })
}

fn expectation(file: &Path, clause: ExpectClause, stress: bool) -> Result<Expectation, ScenarioError> {
    let failure_rate =
        match &clause.failure_rate {
            None => None,
            Some(text) if !stress => return Err(ScenarioError::at(
                file,
                text,
                "`failure_rate` needs a stress scenario (a `stress:` section): other cells stop at their first failure",
            )),
            Some(text) => Some(RateBound::parse(&text.value).map_err(|m| ScenarioError::at(file, text, m))?),
        };
    let signature = match &clause.signature {
        None => None,
        Some(text) => Some(compile(file, text, "signature")?),
    };
    if clause.outcome.value == ExpectedOutcome::Fails && signature.is_none() {
        return Err(ScenarioError::at(
            file,
            &clause.outcome,
            "an expected failure needs a `signature`: the log line that proves it is the upstream bug",
        ));
    }
    Ok(Expectation {
        when: conditions(file, clause.when)?,
        outcome: clause.outcome.value,
        round: clause.round,
        step: clause.step,
        signature,
        failure_rate,
        reason: clause.reason,
        intermittent: clause.intermittent,
    })
}

/// A `when:` clause's conditions, each key and value checked: an axis value against the axes
/// table, a cgroup manager against the known ones, a version range parsed. A condition that can
/// never hold (`runtime: cruun`) is an error here, not a clause that silently never matches.
fn conditions(file: &Path, when: When) -> Result<Conditions, ScenarioError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const GOOD: &str = "\
id: demo
summary: a counter
image: demo
run: { args: [/counter.sh] }
ready: { file: /tmp/counter, timeout: 30s }
rounds: 2
verify:
  - counter: /tmp/counter
  - processes: { at_least: 1 }
expect:
  - when: { runtime: crun, crun: '<1.21' }
    outcome: fails
    step: checkpoint
    round: 2
    signature: 'Unseizable non-zombie \\d+ found'
  - outcome: passes
";

    fn images() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("demo")).unwrap();
        std::fs::write(dir.path().join("demo/Containerfile"), "FROM scratch\n").unwrap();
        dir
    }

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let images = images();
        parse_scenario(Path::new("scenarios/demo.yaml"), text, images.path())
    }

    #[test]
    fn prechecks_and_desktop_checks_parse() {
        let text = GOOD.replace("rounds: 2", "rounds: 2\nprecheck:\n  - pidfd_holders: { at_least: 2 }").replace(
            "  - processes: { at_least: 1 }",
            "  - vnc: { display: 1, password: secret }\n  - running: [ibus-daemon, xfwm4]",
        );
        let s = parse(&text).unwrap();
        assert!(matches!(&s.precheck[..], [crate::scenario::PrecheckStep::PidfdHolders(c)] if c.at_least == 2));
        let VerifyStep::Vnc(vnc) = &s.verify[1] else { panic!("{:?}", s.verify) };
        assert_eq!(
            (vnc.port(), vnc.password.as_deref(), vnc.screenshot, vnc.min_colors),
            (5901, Some("secret"), true, 16)
        );
        assert!(matches!(&s.verify[2], VerifyStep::Running(n) if n.value == ["ibus-daemon", "xfwm4"]));
    }

    #[test]
    fn a_complete_scenario_parses() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.id, "demo");
        assert_eq!(s.rounds, 2);
        assert_eq!(s.ready.timeout, std::time::Duration::from_secs(30));
        assert_eq!(s.verify.len(), 2);
        assert_eq!(s.expect.len(), 2);
        assert!(s.expect[0].signature.as_ref().unwrap().is_match("Unseizable non-zombie 42 found"));
    }

    const STRESS: &str = "\
id: demo
summary: churn
image: demo
run: { args: [/churn] }
ready: { file: /tmp/counter }
rounds: 20
stress:
  signatures:
    - { name: timeout, pattern: 'Timeout reached' }
expect:
  - when: { criu: '<4.1' }
    outcome: fails
    failure_rate: '<=100%'
    signature: 'Timeout reached'
  - outcome: passes
";

    #[test]
    fn a_stress_scenario_parses_with_its_signatures_and_rates() {
        let s = parse(STRESS).unwrap();
        let stress = s.stress.as_ref().expect("a stress scenario");
        assert_eq!(stress.signatures[0].0, "timeout");
        assert!(s.expect[0].rate_bound().admits_none());
        assert_eq!(s.expect[1].rate_bound().to_string(), "0%");
        assert_eq!(s.clone().with_stress_rounds(Some(5)).rounds, 5);
        assert_eq!(parse(GOOD).unwrap().with_stress_rounds(Some(5)).rounds, 2, "only stress scenarios take it");
    }

    #[rstest]
    #[case::rate_without_stress(GOOD.replace("    round: 2\n", "    round: 2\n    failure_rate: '<=5%'\n"), 15, "stress scenario")]
    #[case::bad_rate(STRESS.replace("'<=100%'", "'often'"), 13, "failure rate bound")]
    #[case::bad_signature_name(STRESS.replace("name: timeout", "name: Time Out"), 9, "signature name")]
    #[case::bad_pattern(STRESS.replace("pattern: 'Timeout reached'", "pattern: '(x'"), 9, "regular expression")]
    #[case::unknown_stress_key(STRESS.replace("  signatures:", "  signaturez:"), 8, "signaturez")]
    fn malformed_stress_parts_are_located(#[case] text: String, #[case] line: u64, #[case] needle: &str) {
        let err = parse(&text).expect_err("must be rejected");
        assert_eq!(err.line, line, "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }

    /// Each malformed file names the line and column of the fault and what was expected.
    #[rstest]
    #[case::unknown_key(GOOD.replace("rounds: 2", "roundz: 2"), 6, "roundz")]
    #[case::duplicate_key(GOOD.replace("rounds: 2", "rounds: 2\nrounds: 3"), 7, "uplicate")]
    #[case::missing_image(GOOD.replace("image: demo", "image: nowhere"), 3, "Containerfile")]
    #[case::bad_regex(GOOD.replace("\\d+ found", "(unclosed"), 15, "regular expression")]
    #[case::bad_range(GOOD.replace("'<1.21'", "'before 1.21'"), 11, "version range")]
    #[case::bad_duration(GOOD.replace("30s", "30 parsecs"), 5, "duration")]
    #[case::fails_without_signature(GOOD.replace("    signature: 'Unseizable non-zombie \\d+ found'\n", ""), 12, "signature")]
    #[case::unknown_precheck(GOOD.replace("rounds: 2", "rounds: 2\nprecheck:\n  - pidfds: { at_least: 1 }"), 8, "pidfds")]
    #[case::precheck_typo(GOOD.replace("rounds: 2", "rounds: 2\nprecheck:\n  - pidfd_holders: { atleast: 1 }"), 8, "atleast")]
    #[case::vnc_typo(GOOD.replace("  - processes: { at_least: 1 }", "  - vnc: { display: 1, screenshots: true }"), 9, "screenshots")]
    #[case::long_comm(GOOD.replace("  - processes: { at_least: 1 }", "  - running: [xfce4-terminal-long]"), 9, "15 bytes")]
    #[case::unknown_runtime(GOOD.replace("runtime: crun,", "runtime: cruun,"), 11, "unknown runtime `cruun` (known: runc, crun)")]
    #[case::unknown_condition(GOOD.replace("runtime: crun,", "runtim: crun,"), 11, "unknown condition `runtim`")]
    #[case::unknown_cgroup_manager(GOOD.replace("runtime: crun,", "cgroup_manager: sytemd,"), 11, "unknown cgroup_manager `sytemd`")]
    #[case::huge_duration(GOOD.replace("30s", "99999999999999999999s"), 5, "duration")]
    fn malformed_files_are_located(#[case] text: String, #[case] line: u64, #[case] needle: &str) {
        let err = parse(&text).expect_err("must be rejected");
        assert_eq!(err.line, line, "{err}");
        assert!(err.column > 0, "{err}");
        assert!(err.to_string().contains(needle), "{err}");
        assert!(err.to_string().starts_with("scenarios/demo.yaml:"), "{err}");
    }
}
