//! The bounds of what a scenario may write: the size of its file, and every number in it that
//! is a duration, a port, a count or a size. A value outside its bound is a typo or a hostile
//! file, and is refused at its line with the bound it broke, before any cell runs; nothing
//! later in the harness then has to guard its arithmetic (a port that overflows, limits that
//! add up past `Duration::MAX`, a buffer sized on a count).
//!
//! Durations have their upper bound where they are read (`duration_text::MAX`, a day); the
//! lower bound of a step's time limit is here.

use super::error::ScenarioError;
use super::model::{PrecheckStep, ScenarioFile, VerifyStep};
use std::path::Path;
use std::time::Duration;

/// The largest scenario file read: the biggest committed one is a few KiB.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;
/// The most rounds a scenario (or `CRIU_MATRIX_STRESS_ROUNDS`) may ask for.
pub const MAX_ROUNDS: u32 = 1000;
/// The shortest time limit of a step (start, readiness, checkpoint, restore, verification, a
/// service's readiness): a shorter one can only time out.
pub const MIN_STEP_LIMIT: Duration = Duration::from_secs(1);
/// The highest X display of a `vnc:` check: its server listens on TCP port 5900 + display.
pub const MAX_DISPLAY: u16 = 99;
/// The most processes or pidfds an `at_least:` may ask for (Linux's default `pid_max` is 4M,
/// a container holds a few hundred).
pub const MAX_AT_LEAST: u32 = 100_000;
/// The most distinct colors a picture can have in 8-bit RGB.
pub const MAX_COLORS: u32 = 1 << 24;

/// Refuses a scenario file over [`MAX_FILE_BYTES`], naming its size.
pub fn check_size(file: &Path, bytes: u64) -> Result<(), ScenarioError> {
    if bytes > MAX_FILE_BYTES {
        return Err(whole_file(file, format!("the file is {bytes} bytes, over the limit of {MAX_FILE_BYTES} bytes")));
    }
    Ok(())
}

/// Reads a scenario file, refusing anything but a regular file within [`MAX_FILE_BYTES`]
/// (a link to `/dev/zero` or a FIFO would never end).
pub fn read(file: &Path) -> Result<String, ScenarioError> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| whole_file(file, format!("cannot read: {e}"));
    let meta = std::fs::metadata(file).map_err(cannot)?;
    if !meta.is_file() {
        return Err(whole_file(file, "expected a regular file"));
    }
    check_size(file, meta.len())?;
    let mut text = String::new();
    // It may grow between the two looks: never read more than the limit and one byte.
    std::fs::File::open(file).map_err(cannot)?.take(MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(cannot)?;
    check_size(file, text.len() as u64)?;
    Ok(text)
}

/// Checks every bounded value of a parsed scenario. `text` is the file, to locate values that
/// the model does not keep with their position.
pub(super) fn check(file: &Path, text: &str, raw: &ScenarioFile) -> Result<(), ScenarioError> {
    // Where `key: value` is written (the first `key:` when the value is not known as written).
    let at_value = |key: &str, value: Option<String>, message: String| {
        let (line, column) = match value.map(|v| locate(text, key, Some(&v))) {
            Some(found) if found != (0, 0) => found,
            _ => locate(text, key, None),
        };
        Err(ScenarioError { file: file.to_path_buf(), line, column, message })
    };
    let at = |key: &str, message: String| at_value(key, None, message);
    let image = &raw.image.value;
    let plain = !image.is_empty()
        && !image.starts_with('.')
        && image.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return Err(ScenarioError::at(
            file,
            &raw.image,
            format!("expected the name of a directory of images/ (letters, digits, `-`, `_`, `.`), got `{image}`"),
        ));
    }
    if !(1..=MAX_ROUNDS).contains(&raw.rounds) {
        return at_value("rounds", Some(raw.rounds.to_string()), format!("rounds must be between 1 and {MAX_ROUNDS}, got {}", raw.rounds));
    }
    let t = &raw.timeouts;
    let limits = [
        ("timeout", "ready.timeout", raw.ready.timeout),
        ("start", "timeouts.start", t.start),
        ("checkpoint", "timeouts.checkpoint", t.checkpoint),
        ("restore", "timeouts.restore", t.restore),
        ("verify", "timeouts.verify", t.verify),
    ];
    let services = raw.services.iter().map(|s| ("timeout", "a service's ready.timeout", s.ready.timeout));
    for (key, name, limit) in limits.into_iter().chain(services) {
        if limit < MIN_STEP_LIMIT {
            return at(key, format!("{name} must be at least {MIN_STEP_LIMIT:?}, got {limit:?}"));
        }
    }
    // A clause's `round:` is checked against the rounds where clauses are (`parse::check_clauses`).
    for step in &raw.precheck {
        let PrecheckStep::PidfdHolders(count) = step;
        if count.at_least > MAX_AT_LEAST {
            return at_value("at_least", Some(count.at_least.to_string()), format!("pidfd_holders.at_least must be at most {MAX_AT_LEAST}, got {}", count.at_least));
        }
    }
    for step in &raw.verify {
        match step {
            VerifyStep::Processes(count) if count.at_least > MAX_AT_LEAST => {
                return at_value("at_least", Some(count.at_least.to_string()), format!("processes.at_least must be at most {MAX_AT_LEAST}, got {}", count.at_least));
            }
            VerifyStep::Vnc(vnc) => {
                if vnc.display > MAX_DISPLAY {
                    let message = format!(
                        "a VNC display must be between 0 and {MAX_DISPLAY} (port 5900 + display), got {}",
                        vnc.display
                    );
                    return at_value("display", Some(vnc.display.to_string()), message);
                }
                if !(1..=MAX_COLORS).contains(&vnc.min_colors) {
                    return at_value("min_colors", Some(vnc.min_colors.to_string()), format!("min_colors must be between 1 and {MAX_COLORS}, got {}", vnc.min_colors));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn whole_file(file: &Path, message: impl Into<String>) -> ScenarioError {
    ScenarioError { file: file.to_path_buf(), line: 0, column: 0, message: message.into() }
}

/// The line and column of the first `key:` in `text` (a key at the start of a line, or after
/// `{`, `,` or `- ` in flow style) whose value starts with `value` when one is given; `(0, 0)`
/// when there is none.
fn locate(text: &str, key: &str, value: Option<&str>) -> (u64, u64) {
    for (n, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(found) = line[from..].find(key) {
            let start = from + found;
            let before = line[..start].trim_end();
            let after = line[start + key.len()..].trim_start();
            let starts_a_key = before.is_empty() || before.ends_with(['{', ',', '-']);
            let value_matches = |v: &str| after[1..].trim_start().trim_start_matches(['\'', '"']).starts_with(v);
            if starts_a_key && after.starts_with(':') && value.is_none_or(value_matches) {
                return (n as u64 + 1, line[..start].chars().count() as u64 + 1);
            }
            from = start + key.len();
        }
    }
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_located_in_block_and_flow_style() {
        let text = "id: x\nrounds: 3\nverify:\n  - vnc: { display: 100 }\n";
        assert_eq!(locate(text, "rounds", None), (2, 1));
        assert_eq!(locate(text, "display", None), (4, 12));
        assert_eq!(locate(text, "nowhere", None), (0, 0));
        // A word inside a value is not a key.
        assert_eq!(locate("summary: the rounds: go on\nrounds: 2\n", "rounds", None), (2, 1));
        // With its value, the key that has it.
        let two = "- { at_least: 1 }\n- { at_least: 70 }\n";
        assert_eq!((locate(two, "at_least", Some("70")), locate(two, "at_least", Some("9"))), ((2, 5), (0, 0)));
    }

    #[test]
    fn a_file_over_the_limit_is_refused_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let err = read(&big).unwrap_err().to_string();
        assert!(err.contains(&format!("{} bytes, over the limit of {MAX_FILE_BYTES}", MAX_FILE_BYTES + 1)), "{err}");
        std::fs::write(&big, "id: x\n").unwrap();
        assert_eq!(read(&big).unwrap(), "id: x\n");
    }

    #[test]
    fn a_link_to_a_device_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let zero = dir.path().join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = read(&zero).unwrap_err().to_string();
        assert!(err.contains("expected a regular file"), "{err}");
    }
}

#[cfg(test)]
mod scenario_tests {
    use rstest::rstest;
    use std::path::Path;

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
  - vnc: { display: 1, min_colors: 16 }
precheck:
  - pidfd_holders: { at_least: 2 }
timeouts: { start: 10s, checkpoint: 10s, restore: 10s, verify: 10s }
expect:
  - when: { runtime: crun }
    outcome: fails
    step: checkpoint
    round: 2
    signature: 'Unexpected rt vDSO area bounds'
";

    fn parse(text: &str) -> Result<crate::scenario::Scenario, crate::scenario::ScenarioError> {
        let images = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(images.path().join("demo")).unwrap();
        std::fs::write(images.path().join("demo/Containerfile"), "FROM scratch\n").unwrap();
        crate::scenario::parse_scenario(Path::new("scenarios/demo.yaml"), text, images.path())
    }

    #[test]
    fn the_good_scenario_is_within_every_bound() {
        parse(GOOD).unwrap();
    }

    /// Each value past its bound is refused at its line, with the bound.
    #[rstest]
    #[case::no_rounds("rounds: 2", "rounds: 0", 6, "between 1 and 1000, got 0")]
    #[case::too_many_rounds("rounds: 2", "rounds: 4294967295", 6, "between 1 and 1000, got 4294967295")]
    #[case::display("display: 1,", "display: 65000,", 10, "between 0 and 99 (port 5900 + display), got 65000")]
    #[case::display_u16_overflow("display: 1,", "display: 70000,", 10, "")]
    #[case::no_colors("min_colors: 16", "min_colors: 0", 10, "min_colors must be between 1 and 16777216")]
    #[case::processes("processes: { at_least: 1 }", "processes: { at_least: 4000000000 }", 9, "at most 100000")]
    #[case::pidfds("pidfd_holders: { at_least: 2 }", "pidfd_holders: { at_least: 100001 }", 12, "at most 100000")]
    #[case::zero_timeout("timeout: 30s", "timeout: 0s", 5, "ready.timeout must be at least 1s, got 0ns")]
    #[case::tiny_step("checkpoint: 10s", "checkpoint: 10ms", 13, "timeouts.checkpoint must be at least 1s")]
    #[case::huge_duration("timeout: 30s", "timeout: 99999999999999999999s", 5, "duration")]
    #[case::image_out_of_images("image: demo", "image: ../../etc", 3, "a directory of images/")]
    #[case::image_absolute("image: demo", "image: /etc", 3, "a directory of images/")]
    fn a_value_out_of_bounds_is_refused_where_it_is(
        #[case] from: &str,
        #[case] to: &str,
        #[case] line: u64,
        #[case] needle: &str,
    ) {
        let text = GOOD.replace(from, to);
        assert_ne!(text, GOOD, "{from} is in the scenario");
        let err = parse(&text).expect_err("must be refused");
        assert_eq!(err.line, line, "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }

    #[test]
    fn a_text_over_the_limit_is_refused_before_it_is_parsed() {
        let text = format!("{GOOD}# {}\n", "x".repeat(super::MAX_FILE_BYTES as usize));
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("over the limit of 262144 bytes"), "{err}");
    }
}
