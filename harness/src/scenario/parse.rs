//! YAML -> validated [`Scenario`], with `file:line:col` on every error.

use super::check::{compile, conditions, signature, yaml_error};
use super::error::ScenarioError;
use super::model::{ExpectClause, ExpectedOutcome, ScenarioFile, StressSpec, VerifyStep};
use super::validated::{ClauseSource, Expectation, Scenario, Stress};
use crate::rate::RateBound;
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};

/// Parses and validates one scenario. `images_dir` is where its image directory must exist.
pub fn parse_scenario(file: &Path, text: &str, images_dir: &Path) -> Result<Scenario, ScenarioError> {
    super::bounds::check_size(file, text.len() as u64)?;
    let raw: ScenarioFile = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e))?;
    super::bounds::check(file, text, &raw)?;
    validate(file, raw, images_dir)
}

/// Loads every `*.yaml` in `dir`, sorted by file name, with the known issues of
/// `known-issues/` beside it. All errors are returned, not just the first.
pub fn load_all(dir: &Path, images_dir: &Path) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    let known_dir = dir.parent().map(|p| p.join("known-issues")).unwrap_or_else(|| PathBuf::from("known-issues"));
    let known = super::known::load_known_issues(&known_dir);
    let scenarios = load_scenarios(dir, images_dir);
    match (known, scenarios) {
        (Ok(known), Ok(scenarios)) => {
            let known = std::sync::Arc::new(known);
            Ok(scenarios.into_iter().map(|s| Scenario { known_issues: known.clone(), ..s }).collect())
        }
        (known, scenarios) => {
            Err(known.err().into_iter().flatten().chain(scenarios.err().into_iter().flatten()).collect())
        }
    }
}

fn load_scenarios(dir: &Path, images_dir: &Path) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
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
    check_witness(file, &raw)?;
    check_checkpoint(file, &raw)?;
    let stress = raw.stress.as_ref().map(|spec| stress(file, spec)).transpose()?;
    check_clauses(file, &raw.expect, raw.rounds, stress.is_some())?;
    let expect = raw
        .expect
        .into_iter()
        .map(|clause| expectation(file, clause, stress.is_some()))
        .collect::<Result<Vec<_>, _>>()?;
    for step in &raw.verify {
        check_verify_step(file, step)?;
    }
    for check in &raw.before_checkpoint {
        check_verify_step(file, &VerifyStep::Exec(check.clone()))?;
    }
    for volume in &raw.run.volumes {
        if !volume.value.starts_with('/') || volume.value.contains(':') {
            return Err(ScenarioError::at(
                file,
                volume,
                format!("expected a volume's absolute path in the container, got `{}`", volume.value),
            ));
        }
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
        witness: raw.verify.iter().find_map(|v| match v {
            VerifyStep::Counter(path) => Some(path.value.clone()),
            _ => None,
        }),
        no_witness: raw.no_witness.map(|w| w.value),
        verify: raw.verify,
        before_checkpoint: raw.before_checkpoint,
        timeouts: raw.timeouts,
        expect,
        services: raw.services,
        mounts: raw.mounts,
        criu_config: raw.criu_config,
        stress,
        source: file.to_path_buf(),
        known_issues: Default::default(),
    })
}

/// Options that only mean something with an exported checkpoint.
fn check_checkpoint(file: &Path, raw: &ScenarioFile) -> Result<(), ScenarioError> {
    let c = &raw.checkpoint;
    let export_only = [
        (c.leave_running, "leave_running (a container left running cannot be restored in place)"),
        (c.ignore_volumes, "ignore_volumes (it leaves the volumes out of the archive)"),
        (c.ignore_rootfs, "ignore_rootfs (it leaves the root filesystem's changes out of the archive)"),
        (c.compress.is_some(), "compress (it compresses the archive)"),
    ];
    match export_only.iter().find(|(on, _)| *on && !c.export) {
        Some((_, what)) => Err(ScenarioError::at(file, &raw.id, format!("checkpoint: {what} needs `export: true`"))),
        None => Ok(()),
    }
}

/// Every scenario has one witness (a `counter:` step), or says why it has none: without one, a
/// workload started again instead of restored could pass its checks.
fn check_witness(file: &Path, raw: &ScenarioFile) -> Result<(), ScenarioError> {
    let witnesses: Vec<&Spanned<String>> = raw
        .verify
        .iter()
        .filter_map(|v| match v {
            VerifyStep::Counter(path) => Some(path),
            _ => None,
        })
        .collect();
    match (witnesses.as_slice(), &raw.no_witness) {
        ([], None) => Err(ScenarioError::at(
            file,
            &raw.id,
            "a scenario needs a witness: a `counter:` verify step naming the file where the workload writes \
             `ID COUNT` (a random identity it keeps in memory, and its count), or `no_witness: <why>`",
        )),
        ([], Some(why)) if why.value.split_whitespace().count() < 3 => Err(ScenarioError::at(
            file,
            why,
            "`no_witness` needs a reason (a few words): why a restart of this workload cannot be told from a restore",
        )),
        ([_], Some(why)) => {
            Err(ScenarioError::at(file, why, "`no_witness` with a `counter:` step: the scenario has a witness"))
        }
        ([_, second, ..], _) => {
            Err(ScenarioError::at(file, second, "a scenario has one witness (`counter:`), not two"))
        }
        ([path], None) if !path.value.starts_with('/') => Err(ScenarioError::at(
            file,
            path,
            format!("expected an absolute path in the container, got `{}`", path.value),
        )),
        _ => Ok(()),
    }
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
        let pattern = compile(file, &named.pattern, "pattern")?;
        if let Some(own) = super::harness_text::matched_by(&pattern) {
            return Err(ScenarioError::at(
                file,
                &named.pattern,
                format!(
                    "pattern /{}/ matches what the harness itself writes (\"{}\"): patterns are searched only in \
                     engine and CRIU output",
                    named.pattern.value,
                    crate::text::one_line(own)
                ),
            ));
        }
        signatures.push((name.clone(), pattern));
    }
    Ok(Stress { signatures })
}

/// What would make a clause silently never match, or match what it should not: a round the
/// scenario never reaches, a clause after the catch-all (which always matches first), a `fails`
/// whose failure rate admits no failure at all (it would be a pass), an intermittent failure
/// without a reason.
fn check_clauses(file: &Path, clauses: &[ExpectClause], rounds: u32, stress: bool) -> Result<(), ScenarioError> {
    let mut catch_all: Option<u64> = None;
    for clause in clauses {
        if let Some(line) = catch_all {
            return Err(ScenarioError::at(
                file,
                &clause.outcome,
                format!("this clause follows the catch-all at line {line} (a clause without `when:`), which always matches first: it can never apply"),
            ));
        }
        if clause.when.0.is_empty() {
            catch_all = Some(clause.outcome.referenced.line());
        }
        if let Some(round) = &clause.round {
            if round.value == 0 || round.value > rounds {
                return Err(ScenarioError::at(
                    file,
                    round,
                    format!(
                        "round {} is not a round of this scenario (rounds: {rounds}): the clause could never match",
                        round.value
                    ),
                ));
            }
            if stress {
                return Err(ScenarioError::at(
                    file,
                    round,
                    "a stress scenario's failures are a rate over its rounds: name no `round`",
                ));
            }
        }
        let at_checkpoint = clause.step.is_none_or(|s| s == super::model::FailStep::Checkpoint);
        if clause.verify_after && (clause.outcome.value != ExpectedOutcome::Fails || !at_checkpoint || stress) {
            return Err(ScenarioError::at(
                file,
                &clause.outcome,
                "`verify_after` is for a `fails` clause at the checkpoint (of a scenario that is not a stress one): the workload is checked after the refused checkpoint",
            ));
        }
        if clause.intermittent && clause.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(ScenarioError::at(
                file,
                &clause.outcome,
                "an intermittent failure needs a `reason`: why it shows only sometimes",
            ));
        }
        if stress && clause.outcome.value == ExpectedOutcome::Fails && !clause.intermittent {
            if let Some(rate) = &clause.failure_rate {
                if RateBound::parse(&rate.value).is_ok_and(|b| b.admits_none()) {
                    return Err(ScenarioError::at(
                        file,
                        rate,
                        format!(
                            "failure_rate `{}` admits 0%, so this `fails` clause would pass where the bug never shows: \
                             give a lower bound (`>0%`), or say `intermittent: true` with a `reason`",
                            rate.value
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
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
        Some(text) => Some(signature(file, text)?),
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
        round: clause.round.map(|r| r.value),
        step: clause.step,
        signature,
        failure_rate,
        reason: clause.reason,
        intermittent: clause.intermittent,
        verify_after: clause.verify_after,
        source: ClauseSource::Scenario { line: clause.outcome.referenced.line() },
        known: Vec::new(),
    })
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
    fn a_scenario_may_opt_out_of_the_witness_with_a_reason() {
        let text = GOOD
            .replace("  - counter: /tmp/counter\n", "")
            .replace("rounds: 2", "rounds: 2\nno_witness: the workload has no memory of its own to count in");
        let s = parse(&text).unwrap();
        assert_eq!(
            (s.witness, s.no_witness.as_deref()),
            (None, Some("the workload has no memory of its own to count in"))
        );
        assert_eq!(parse(GOOD).unwrap().witness.as_deref(), Some("/tmp/counter"));
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
    intermittent: true
    reason: it shows only under load
  - outcome: passes
verify: [counter: /tmp/counter]
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
    #[case::no_witness(GOOD.replace("  - counter: /tmp/counter\n", ""), 1, "a scenario needs a witness")]
    #[case::verify_after_a_pass(GOOD.replace("  - outcome: passes", "  - outcome: passes\n    verify_after: true"), 16, "`verify_after` is for a `fails` clause")]
    #[case::two_witnesses(GOOD.replace("  - counter: /tmp/counter\n", "  - counter: /tmp/counter\n  - counter: /tmp/other\n"), 9, "one witness")]
    #[case::witness_and_opt_out(GOOD.replace("rounds: 2", "rounds: 2\nno_witness: a desktop without any counter"), 7, "the scenario has a witness")]
    #[case::opt_out_without_reason(GOOD.replace("  - counter: /tmp/counter\n", "").replace("rounds: 2", "rounds: 2\nno_witness: none"), 7, "needs a reason")]
    #[case::relative_witness(GOOD.replace("counter: /tmp/counter", "counter: tmp/counter"), 8, "absolute path")]
    fn malformed_files_are_located(#[case] text: String, #[case] line: u64, #[case] needle: &str) {
        let err = parse(&text).expect_err("must be rejected");
        assert_eq!(err.line, line, "{err}");
        assert!(err.column > 0, "{err}");
        assert!(err.to_string().contains(needle), "{err}");
        assert!(err.to_string().starts_with("scenarios/demo.yaml:"), "{err}");
    }

    /// One malformed scenario per rule of the strict checks, each with the exact error
    /// `validate` prints (and exits 2 with): a clause that could never match, or could match
    /// what it must not, is refused where it is written.
    #[rstest]
    #[case::unknown_engine(GOOD.replace("runtime: crun,", "engine: dockr,"), "scenarios/demo.yaml:11:21: unknown engine `dockr` (known: podman, docker)")]
    #[case::unknown_runtime(GOOD.replace("runtime: crun,", "runtime: cruun,"), "scenarios/demo.yaml:11:22: unknown runtime `cruun` (known: runc, crun)")]
    #[case::unknown_stack(GOOD.replace("runtime: crun,", "stack: trixy,"), "scenarios/demo.yaml:11:20: unknown stack `trixy` (known: host, bookworm, trixie, sid, bullseye, bookworm-crun-criu)")]
    #[case::unknown_kernel(GOOD.replace("runtime: crun,", "kernel: '6.1',"), "scenarios/demo.yaml:11:21: unknown kernel `6.1` (known: host, bookworm, bookworm-backports, trixie, trixie-backports, sid, bullseye, next)")]
    #[case::unknown_cgroup(GOOD.replace("runtime: crun,", "cgroup: v3,"), "scenarios/demo.yaml:11:21: unknown cgroup `v3` (known: v1, v2)")]
    #[case::unknown_init(GOOD.replace("runtime: crun,", "init: sytemd,"), "scenarios/demo.yaml:11:19: unknown init `sytemd` (known: host, plain, systemd)")]
    #[case::round_past_rounds(GOOD.replace("round: 2", "round: 7"), "scenarios/demo.yaml:14:12: round 7 is not a round of this scenario (rounds: 2): the clause could never match")]
    #[case::after_catch_all(format!("{GOOD}  - when: {{ runtime: runc }}\n    outcome: passes\n"), "scenarios/demo.yaml:18:14: this clause follows the catch-all at line 16 (a clause without `when:`), which always matches first: it can never apply")]
    #[case::rate_admits_none(STRESS.replace("    intermittent: true\n    reason: it shows only under load\n", ""), "scenarios/demo.yaml:13:19: failure_rate `<=100%` admits 0%, so this `fails` clause would pass where the bug never shows: give a lower bound (`>0%`), or say `intermittent: true` with a `reason`")]
    #[case::intermittent_without_reason(STRESS.replace("    reason: it shows only under load\n", ""), "scenarios/demo.yaml:12:14: an intermittent failure needs a `reason`: why it shows only sometimes")]
    #[case::signature_matches_the_harness(GOOD.replace("'Unseizable non-zombie \\d+ found'", "'the workload was started again'"), "scenarios/demo.yaml:15:16: signature /the workload was started again/ matches what the harness itself writes (\"witness: /tmp/counter has identity 0b9f3c2e-7a59-4c31-9d0e-1b2a3c4d5e6f after the restore, 3f6c1c2e-7a59-4c31-9d0e-1b2a3c4d5e6f before the checkpoint: the workload was started again, not restored\"): signatures are searched only in engine and CRIU output, so write the line CRIU or the engine prints")]
    #[case::signature_too_broad(GOOD.replace("'Unseizable non-zombie \\d+ found'", "'failed'"), "scenarios/demo.yaml:15:16: signature /failed/ matches what the harness itself writes (\"witness: before the checkpoint: failed to read /tmp/counter in container cm-demo-1: No such file or directory (os error 2)\"): signatures are searched only in engine and CRIU output, so write the line CRIU or the engine prints")]
    #[case::bad_debian_range(GOOD.replace("'<1.21'", "'<1.21 or so'"), "scenarios/demo.yaml:11:34: expected a version range such as `<1.21`, `>=4.1, <4.2` or `<3.17.1-2+deb12u1`, got `<1.21 or so`: Invalid version string: 1.21 or so")]
    #[case::no_witness(GOOD.replace("  - counter: /tmp/counter\n", ""), "scenarios/demo.yaml:1:5: a scenario needs a witness: a `counter:` verify step naming the file where the workload writes `ID COUNT` (a random identity it keeps in memory, and its count), or `no_witness: <why>`")]
    fn strict_checks_print_exactly(#[case] text: String, #[case] error: &str) {
        assert_eq!(parse(&text).expect_err("must be refused").to_string(), error);
    }
}
