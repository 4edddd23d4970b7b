//! `criu-matrix bugreport CELL`: a Markdown report of one recorded cell, ready to paste into an
//! upstream issue (CRIU, runc, crun, podman, moby): a title, the versions, the plain-CLI
//! reproducer, expected against actual, the relevant log lines, and links to the known upstream
//! issues (those the matched expectation names first, then the scenario's).
//!
//! `--verify` runs the reproducer in the cell's stack and checks that the failure signature shows
//! up again (see `verify`); the report then says so, with what matched and how long it took.

pub mod verify;

use crate::axes::Axis;
use crate::record::CellRecord;
use crate::scenario::{Expectation, Scenario};
use regex::Regex;

/// Short repository names used in scenario texts (`criu#2705`), and the project each is.
const SHORT_REPOS: &[(&str, &str)] = &[
    ("criu", "checkpoint-restore/criu"),
    ("crun", "containers/crun"),
    ("podman", "containers/podman"),
    ("runc", "opencontainers/runc"),
    ("moby", "moby/moby"),
    ("docker", "moby/moby"),
    ("containerd", "containerd/containerd"),
];

/// An upstream reference as a link: `owner/repo#N` (or a short `criu#N`) to its GitHub issue,
/// a URL as itself.
pub fn link(reference: &str) -> Option<(String, String)> {
    let reference = reference.trim();
    if reference.starts_with("http://") || reference.starts_with("https://") {
        return Some((reference.to_string(), reference.to_string()));
    }
    let (repo, number) = reference.split_once('#')?;
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let repo = match repo.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() => repo.to_string(),
        Some(_) => return None,
        None => SHORT_REPOS.iter().find(|(short, _)| *short == repo)?.1.to_string(),
    };
    // GitHub redirects an issue URL to the pull request when the number is one.
    Some((format!("{repo}#{number}"), format!("https://github.com/{repo}/issues/{number}")))
}

/// Every `owner/repo#N` or short `repo#N` reference in a text, in order, once each.
pub fn references_in(text: &str) -> Vec<String> {
    let re = Regex::new(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z][\w.-]*#\d+").expect("a valid regex");
    let mut found: Vec<String> = Vec::new();
    for m in re.find_iter(text) {
        if let Some((name, _)) = link(m.as_str()) {
            if !found.contains(&name) {
                found.push(name);
            }
        }
    }
    found
}

/// The clause that decided the cell's verdict, as its record names it: a known issue by its id,
/// a scenario clause by its line; for a record from before clauses were named, the scenario's
/// clause whose signature produced the matched line.
pub fn matched_clause<'a>(scenario: &'a Scenario, record: &CellRecord) -> Option<&'a Expectation> {
    use crate::record::ClauseKind;
    use crate::scenario::ClauseSource;
    match &record.clause {
        Some(c) if c.kind == ClauseKind::KnownIssue => scenario.known_issue(&c.id).map(|k| &k.expectation),
        Some(c) if c.kind == ClauseKind::Scenario => scenario
            .expect
            .iter()
            .find(|e| matches!(e.source, ClauseSource::Scenario { line } if format!("line {line}") == c.id)),
        Some(_) => None,
        None => {
            let line = record.failure.as_ref()?.signature_matched.as_ref()?;
            scenario.expect.iter().find(|e| e.signature.as_ref().is_some_and(|s| s.is_match(line)))
        }
    }
}

/// The upstream references of the clause that decided the verdict: a known issue's id and
/// address, or those a scenario clause's reason names.
fn clause_references(scenario: &Scenario, record: &CellRecord, clause: Option<&Expectation>) -> Vec<String> {
    if let Some(id) = record.clause.as_ref().and_then(|c| c.known_issue()) {
        let upstream = scenario.known_issue(id).map(|k| k.upstream.clone()).unwrap_or_default();
        let mut found = references_in(id);
        if found.is_empty() && !upstream.is_empty() {
            found.push(upstream);
        }
        return found;
    }
    clause.and_then(|c| c.reason.as_deref()).map(references_in).unwrap_or_default()
}

fn version<'a>(record: &'a CellRecord, tool: &str) -> &'a str {
    record.versions.get(tool).map(String::as_str).unwrap_or("unknown")
}

/// A CRIU log line without its timestamp and source position, for a title:
/// `(00.19) Error (criu/sockets.c:628): sockets: x` is `sockets: x`.
fn log_message(line: &str) -> String {
    let re = Regex::new(r"^\s*(?:\(\d+\.\d+\)\s*)?(?:Error \([^)]*\):\s*)?").expect("a valid regex");
    re.replace(line.trim(), "").to_string()
}

/// The project a report goes to: the first known issue's, else CRIU when CRIU's log has the
/// error, else the engine.
fn project_for(record: &CellRecord, known: &[String]) -> String {
    if let Some(first) = known.first() {
        return first.split('#').next().unwrap_or_default().to_string();
    }
    let excerpt = record.failure.as_ref().map(|f| f.excerpt.as_str()).unwrap_or_default();
    if excerpt.contains("Error (criu/") || excerpt.contains("Error (compel/") {
        "checkpoint-restore/criu".to_string()
    } else if record.key[Axis::Engine] == "docker" {
        "moby/moby".to_string()
    } else {
        format!("containers/{}", record.key[Axis::Engine])
    }
}

/// The report, in Markdown. `verified` is what `--verify` found, when it ran.
pub fn render(
    scenario: &Scenario,
    record: &CellRecord,
    reproducer: Option<&str>,
    verified: Option<&verify::Verified>,
) -> String {
    let clause = matched_clause(scenario, record);
    let known = clause_references(scenario, record, clause);
    let mut out = title(scenario, record, &known);
    out.push_str(&versions(record));
    out.push_str(&steps(record, reproducer, verified));
    out.push_str(&expected_and_actual(scenario, record));
    out.push_str(&upstream_issues(scenario, &known, clause));
    out
}

/// The title (the failure and the versions) and who the report is for.
fn title(scenario: &Scenario, record: &CellRecord, known: &[String]) -> String {
    let k = &record.key;
    let headline = match &record.failure {
        Some(f) => {
            let what = match &f.signature_matched {
                Some(line) => log_message(line),
                None => crate::text::one_line(&f.message),
            };
            format!("{} {} fails: {what}", k[Axis::Engine], f.step)
        }
        None => format!("{}: {}", scenario.summary, record.verdict),
    };
    let title = format!(
        "{headline} ({} {}, {} {}, CRIU {}, Linux {})",
        k[Axis::Runtime],
        version(record, &k[Axis::Runtime]),
        k[Axis::Engine],
        version(record, &k[Axis::Engine]),
        version(record, "criu"),
        version(record, "kernel")
    );
    format!(
        "# {title}\n\n_Filed for {} from cell `{}` of the criu-matrix scenario `{}`: {}._\n\n",
        project_for(record, known),
        record.name,
        scenario.id,
        scenario.summary
    )
}

/// The versions table: the kernel, distribution, engine, runtime, CRIU and cgroup first.
fn versions(record: &CellRecord) -> String {
    let k = &record.key;
    let (engine, runtime) = (&k[Axis::Engine], &k[Axis::Runtime]);
    let distribution = record.versions.get("os").cloned().unwrap_or_else(|| format!("Debian {}", k[Axis::Stack]));
    let mut rows = vec![
        ("kernel".to_string(), version(record, "kernel").to_string()),
        ("distribution".to_string(), format!("{distribution} (stack `{}`)", k[Axis::Stack])),
        ("engine".to_string(), format!("{engine} {}", version(record, engine))),
        ("runtime".to_string(), format!("{runtime} {}", version(record, runtime))),
        ("CRIU".to_string(), version(record, "criu").to_string()),
        ("cgroup".to_string(), version(record, "cgroup").to_string()),
    ];
    if k.boots_a_kernel() {
        let booted = format!("Debian {}'s, in a VM ({}, {})", k[Axis::Kernel], k[Axis::Init], k[Axis::Accel]);
        rows.push(("kernel under test".to_string(), booted));
    }
    for (tool, v) in &record.versions {
        let shown = ["kernel", "os", "criu", "cgroup", engine.as_str(), runtime.as_str()];
        if !shown.contains(&tool.as_str()) {
            rows.push((tool.clone(), v.clone()));
        }
    }
    let mut out = String::from("## Versions\n\n| what | version |\n|---|---|\n");
    for (what, v) in rows {
        out.push_str(&format!("| {what} | {} |\n", v.replace('|', "\\|")));
    }
    out
}

/// The plain-CLI reproducer, and what `--verify` found when it ran.
fn steps(record: &CellRecord, reproducer: Option<&str>, verified: Option<&verify::Verified>) -> String {
    let mut out = String::from("\n## Steps to reproduce\n\n");
    match reproducer {
        Some(script) => {
            out.push_str(&format!(
                "Only the plain `{}` CLI, in the order the harness ran it (its times and exit codes as comments); \
                 after a failed checkpoint or restore the script prints CRIU's log of it.\n\n",
                record.key[Axis::Engine]
            ));
            out.push_str(&format!("```sh\n{}\n```\n", script.trim_end()));
        }
        None => out.push_str("No reproducer was recorded for this cell (it ran no engine command).\n"),
    }
    if let Some(v) = verified {
        out.push_str(&format!("\n{}\n", v.summary()));
    }
    out
}

/// What each round should do, against what the failed round did, with its log lines.
fn expected_and_actual(scenario: &Scenario, record: &CellRecord) -> String {
    let rounds = scenario.rounds;
    let flow = if scenario.checkpoint.export {
        "checkpoint --export, restore --import into a new container"
    } else {
        "checkpoint and restore in place"
    };
    let mut out = format!(
        "\n## Expected\n\nEach of {rounds} round(s) ({flow}) succeeds, and the restored workload continues where it \
         was (its state is checked after every restore).\n\n## Actual\n\n"
    );
    match &record.failure {
        Some(f) => {
            let message = f.message.trim_end();
            out.push_str(&format!("Round {} of {rounds}, the {} failed:\n\n```\n{message}\n```\n", f.round, f.step));
            if let Some(line) = &f.signature_matched {
                out.push_str(&format!("\nThe known failure signature matched:\n\n```\n{line}\n```\n"));
            }
            out.push_str(&format!("\n## Relevant log lines\n\n```\n{}\n```\n", f.excerpt.trim_end()));
        }
        None => out.push_str(&format!("{}: {}\n", record.verdict, record.reason)),
    }
    out
}

/// The upstream issues: those the matched clause names first, then the scenario's references.
fn upstream_issues(scenario: &Scenario, known: &[String], clause: Option<&Expectation>) -> String {
    let mut related: Vec<String> = Vec::new();
    for r in &scenario.upstream {
        let name = link(r).map(|(n, _)| n).unwrap_or_else(|| r.clone());
        if !known.contains(&name) && !related.contains(&name) {
            related.push(name);
        }
    }
    let mut out = String::from("\n## Known upstream issues\n\n");
    if known.is_empty() && related.is_empty() {
        out.push_str("None known to criu-matrix.\n");
    }
    for name in known {
        let (name, url) = link(name).expect("made from a link");
        out.push_str(&format!("- [{name}]({url}): matches this signature\n"));
    }
    for name in &related {
        match link(name) {
            Some((name, url)) => out.push_str(&format!("- [{name}]({url}): related (the scenario's references)\n")),
            None => out.push_str(&format!("- {name}: related\n")),
        }
    }
    if let Some(reason) = clause.and_then(|c| c.reason.as_deref()) {
        let source = match clause.and_then(|c| c.source.known_issue()) {
            Some(id) => format!(" (known issue {id}, `known-issues/{}`)", crate::scenario::known::file_name(id)),
            None => String::new(),
        };
        out.push_str(&format!("\nWhy criu-matrix expects this failure here{source}: {}\n", reason.trim()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("checkpoint-restore/criu#2705", Some("https://github.com/checkpoint-restore/criu/issues/2705"))]
    #[case("criu#590", Some("https://github.com/checkpoint-restore/criu/issues/590"))]
    #[case("moby#42900", Some("https://github.com/moby/moby/issues/42900"))]
    #[case("https://criu.org/TCP_connection", Some("https://criu.org/TCP_connection"))]
    #[case("unknown#1", None)]
    #[case("criu#", None)]
    fn references_become_links(#[case] reference: &str, #[case] url: Option<&str>) {
        assert_eq!(link(reference).map(|(_, u)| u).as_deref(), url);
    }

    #[test]
    fn references_are_found_in_reasons() {
        let text = "fails on every inet socket (criu#2705, checkpoint-restore/criu#2718); see crun#1679 and criu#2705";
        assert_eq!(
            references_in(text),
            ["checkpoint-restore/criu#2705", "checkpoint-restore/criu#2718", "containers/crun#1679"]
        );
    }

    fn scenario() -> Scenario {
        let images = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(images.path().join("img")).unwrap();
        std::fs::write(images.path().join("img/Containerfile"), "FROM x\n").unwrap();
        let text = "id: tcp\nsummary: a TCP connection\nupstream: [checkpoint-restore/criu#2718, \"https://criu.org/TCP_connection\"]\n\
                    image: img\nrun: {}\nready: { file: /f }\nrounds: 2\nverify: [counter: /f]\nexpect:\n  - outcome: fails\n    round: 1\n    step: checkpoint\n    \
                    signature: \"Can't get 1:16 opt\"\n    reason: CRIU before 4.2 (criu#2705)\n";
        crate::scenario::parse_scenario(std::path::Path::new("t.yaml"), text, images.path()).unwrap()
    }

    #[test]
    fn a_report_has_title_versions_reproducer_and_links() {
        let mut record = crate::record::testing::record("tcp", "crun", "trixie", crate::record::Verdict::Reproduced);
        for (k, v) in [
            ("kernel", "6.18.0"),
            ("criu", "4.1.1"),
            ("crun", "1.21"),
            ("podman", "5.4.2"),
            ("os", "Debian GNU/Linux 13 (trixie)"),
        ] {
            record.versions.insert(k.into(), v.into());
        }
        record.failure = Some(crate::record::FailureRecord {
            round: 1,
            step: "checkpoint".into(),
            message: "`podman container checkpoint x` exited with 125: CRIU checkpointing failed -52".into(),
            signature_matched: Some(
                "(00.01) Error (criu/sockets.c:1): sockets: Can't get 1:16 opt: Operation not supported".into(),
            ),
            excerpt: "line 1\n(00.01) Error (criu/sockets.c:1): sockets: Can't get 1:16 opt: Operation not supported"
                .into(),
        });
        let md = render(&scenario(), &record, Some("#!/bin/sh\npodman run x\n"), None);
        assert!(
            md.starts_with("# podman checkpoint fails: sockets: Can't get 1:16 opt: Operation not supported (crun"),
            "{md}"
        );
        assert!(md.contains("(crun 1.21, podman 5.4.2, CRIU 4.1.1, Linux 6.18.0)"), "{md}");
        assert!(md.contains("| distribution | Debian GNU/Linux 13 (trixie) (stack `trixie`) |"), "{md}");
        assert!(md.contains("```sh\n#!/bin/sh\npodman run x\n```"), "{md}");
        assert!(
            md.contains("Round 1 of 2, the checkpoint failed:\n\n```\n`podman container checkpoint x` exited"),
            "{md}"
        );
        assert!(md.contains("- [checkpoint-restore/criu#2705](https://github.com/checkpoint-restore/criu/issues/2705): matches this signature"), "{md}");
        assert!(
            md.contains(
                "- [checkpoint-restore/criu#2718](https://github.com/checkpoint-restore/criu/issues/2718): related"
            ),
            "{md}"
        );
        assert!(md.contains("_Filed for checkpoint-restore/criu"), "{md}");
    }
}
