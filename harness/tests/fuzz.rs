//! Property-based fuzzing of everything a person writes that the harness reads before a cell
//! runs: scenario files, matrix files and the plan's option values. Fed random bytes and
//! mutations of the committed files, none of them may panic: every input is either accepted
//! (and then its values are within their bounds, so the arithmetic on them cannot overflow) or
//! refused with a message.
//!
//! `cargo test` runs a bounded number of cases (`PROPTEST_CASES`, 256 by default per property);
//! `scripts/fuzz.sh [CASES]` runs the same properties longer, in release mode.

use criu_matrix::host::{Accel, HostFacts};
use criu_matrix::plan::{expand, parse_matrix, Filter, Shard};
use criu_matrix::scenario::{duration_text, parse_scenario, Scenario, VerifyStep};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

/// The committed scenario and matrix files, as (path, text).
fn committed(dir: &str) -> &'static [(PathBuf, String)] {
    static SCENARIOS: OnceLock<Vec<(PathBuf, String)>> = OnceLock::new();
    static MATRICES: OnceLock<Vec<(PathBuf, String)>> = OnceLock::new();
    let cell = if dir == "scenarios" { &SCENARIOS } else { &MATRICES };
    cell.get_or_init(|| {
        let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(project().join(dir))
            .expect("the committed files")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p, text)
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no files in {dir}/");
        files
    })
}

/// The committed scenarios, parsed: what a mutated matrix is expanded over.
fn scenarios() -> &'static [Scenario] {
    static ALL: OnceLock<Vec<Scenario>> = OnceLock::new();
    ALL.get_or_init(|| {
        committed("scenarios")
            .iter()
            .map(|(path, text)| parse_scenario(path, text, &project().join("images")).expect("a committed scenario"))
            .collect()
    })
}

fn host(cgroup: &str, guest: bool) -> HostFacts {
    let guest = guest.then(|| criu_matrix::host::Identity {
        stack: "trixie".into(),
        kernel: "trixie".into(),
        cgroup: "v2".into(),
        init: "plain".into(),
        accel: "tcg".into(),
    });
    HostFacts { cgroup: cgroup.into(), accel: Accel { name: "tcg".into(), why: "fuzz".into() }, guest }
}

/// The default matrix's plan: what a shard of a huge count is cut from.
fn default_plan() -> &'static [criu_matrix::plan::Cell] {
    static PLAN: OnceLock<Vec<criu_matrix::plan::Cell>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let (path, text) = committed("matrices").iter().find(|(p, _)| p.ends_with("default.yaml")).expect("default.yaml");
        expand(&parse_matrix(path, text).unwrap(), scenarios(), &Filter::default(), &host("v1", false)).unwrap()
    })
}

/// What the harness does with a scenario it accepted: nothing of it may overflow or panic.
fn use_scenario(s: &Scenario) {
    let _ = s.work_limit();
    for step in &s.verify {
        if let VerifyStep::Vnc(vnc) = step {
            assert!(vnc.port() >= 5900, "port {} of display {}", vnc.port(), vnc.display);
        }
    }
    let _ = s.clone().with_stress_rounds(Some(criu_matrix::scenario::bounds::MAX_ROUNDS));
}

fn use_scenario_text(text: &str) {
    let path = Path::new("scenarios/fuzz.yaml");
    if let Ok(s) = parse_scenario(path, text, &project().join("images")) {
        use_scenario(&s);
    }
}

fn use_matrix_text(text: &str) {
    if let Ok(matrix) = parse_matrix(Path::new("matrices/fuzz.yaml"), text) {
        for host in [host("v1", false), host("v2", false), host("v2", true)] {
            if let Ok(cells) = expand(&matrix, scenarios(), &Filter::default(), &host) {
                let len = cells.len();
                let total: usize = (1..=3).map(|index| Shard { index, count: 3 }.select(cells.clone()).len()).sum();
                assert_eq!(total, len, "the shards of a plan cover it");
                let _ = Shard { index: 1000, count: 1000 }.select(cells);
            }
        }
    }
}

/// Words that break YAML, numbers at and past every bound, and what a hostile file writes.
const TOKENS: &[&str] = &[
    "99999999999999999999", "18446744073709551616", "4294967296", "65536", "65000", "59636", "-1", "0", "1e309",
    "NaN", ".nan", ".inf", "-.inf", "0x10", "1_000", "~", "null", "true", "&a", "*a", "<<: *a", "!!binary", "!!str",
    "{", "}", "[", "]", ",", ":", ": ", "- ", "\n", "\n  - ", "\n    ", "'", "\"", "\t", "#", "|", ">", "%YAML 1.2",
    "---", "...", "\u{0}", "\u{feff}", "é", "::", "../", "/etc/shadow", "{dir}", "99999999999999999999s", "0s", "1ns",
    "25h", "1h 30m", "<1.21", ">=99999999999999999999", "100.1%", ">0%, <0%", "rounds: 0", "display: 65535",
    "at_least: 4294967295", "round: 0",
];

/// One change to a text.
#[derive(Debug, Clone)]
enum Mutation {
    /// Inserts a token at a position (as a fraction of the length).
    Insert(f64, &'static str),
    /// Replaces the chars of a range by a token.
    Replace(f64, usize, &'static str),
    Delete(f64, usize),
    /// Repeats a line.
    DuplicateLine(f64),
    /// Replaces one of the numbers of the text by another.
    Number(f64, u64),
}

/// A number for a value: at and around the bounds of what the harness reads (u16, u32 and u64
/// limits, a port past 65535 when added to 5900), small ones, or any.
fn number() -> impl Strategy<Value = u64> {
    const EDGES: &[u64] = &[0, 1, 2, 99, 100, 1000, 1001, 59635, 59636, 65000, 65535, 65536, 86400, 86401, 100_000,
        100_001, 4_294_967_295, 4_294_967_296, u64::MAX];
    prop_oneof![proptest::sample::select(EDGES), 0..200u64, any::<u64>()]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = proptest::sample::select(TOKENS);
    prop_oneof![
        (0.0..1.0f64, token.clone()).prop_map(|(at, t)| Mutation::Insert(at, t)),
        (0.0..1.0f64, 0..12usize, token).prop_map(|(at, n, t)| Mutation::Replace(at, n, t)),
        (0.0..1.0f64, 0..40usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (0.0..1.0f64).prop_map(Mutation::DuplicateLine),
        (0.0..1.0f64, number()).prop_map(|(at, n)| Mutation::Number(at, n)),
    ]
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = |f: f64| ((chars.len() as f64 * f) as usize).min(chars.len());
    let joined = |a: &[char], mid: &str, b: &[char]| a.iter().collect::<String>() + mid + &b.iter().collect::<String>();
    match mutation {
        Mutation::Insert(f, t) => joined(&chars[..at(*f)], t, &chars[at(*f)..]),
        Mutation::Replace(f, n, t) => {
            let start = at(*f);
            joined(&chars[..start], t, &chars[(start + n).min(chars.len())..])
        }
        Mutation::Delete(f, n) => {
            let start = at(*f);
            joined(&chars[..start], "", &chars[(start + n).min(chars.len())..])
        }
        Mutation::DuplicateLine(f) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let i = ((lines.len() as f64 * f) as usize).min(lines.len() - 1);
                lines.insert(i, lines[i]);
            }
            lines.join("\n") + "\n"
        }
        Mutation::Number(f, n) => {
            // One number of the text (a value, a count, a line's digits), replaced.
            let number = regex::Regex::new(r"\d+").unwrap();
            let found: Vec<regex::Match> = number.find_iter(text).collect();
            match found.get(((found.len() as f64 * f) as usize).min(found.len().saturating_sub(1))) {
                Some(m) => format!("{}{n}{}", &text[..m.start()], &text[m.end()..]),
                None => text.to_string(),
            }
        }
    }
}

/// A committed file with up to eight mutations applied.
fn mutated(dir: &'static str) -> impl Strategy<Value = String> {
    let files = committed(dir).len();
    (0..files, proptest::collection::vec(mutation(), 1..8)).prop_map(move |(i, mutations)| {
        mutations.iter().fold(committed(dir)[i].1.clone(), |text, m| apply(&text, m))
    })
}

proptest! {
    #[test]
    fn random_bytes_never_panic_the_scenario_or_matrix_parser(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        use_scenario_text(&text);
        use_matrix_text(&text);
    }

    #[test]
    fn mutated_scenarios_never_panic(text in mutated("scenarios")) {
        use_scenario_text(&text);
    }

    #[test]
    fn mutated_matrices_never_panic(text in mutated("matrices")) {
        use_matrix_text(&text);
    }

    #[test]
    fn option_values_never_panic(text in "[0-9a-z/%<>=,. :-]{0,40}", number in any::<u64>()) {
        let _ = Shard::parse(&text);
        if let Ok(shard) = Shard::parse(&format!("{number}/{number}")) {
            let _ = shard.select(default_plan().to_vec());
        }
        let _ = duration_text::parse(&text);
        let _ = duration_text::parse(&number.to_string());
        let _ = criu_matrix::rate::RateBound::parse(&text);
        let _ = criu_matrix::version::Range::parse(&text);
        let _ = criu_matrix::version::parse_lenient(&text);
    }
}

/// The mutations make real changes: a fuzz that only ever fed the committed files unchanged
/// could not find anything.
#[test]
fn the_mutations_change_the_files_and_some_still_parse() {
    let (path, text) = &committed("scenarios")[0];
    let images = project().join("images");
    assert!(parse_scenario(path, text, &images).is_ok());
    assert_eq!(apply("a: 1\nrounds: 3\n", &Mutation::Number(0.9, 99999999999)), "a: 1\nrounds: 99999999999\n");
    assert_ne!(&apply(text, &Mutation::Delete(0.5, 10)), text);
    let inserted = apply(text, &Mutation::Insert(0.0, "{"));
    assert!(inserted.starts_with('{') && parse_scenario(path, &inserted, &images).is_err());
    assert_eq!(apply("a\nb\n", &Mutation::DuplicateLine(0.9)), "a\nb\nb\n");
}
