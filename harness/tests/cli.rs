//! The command line without containers: malformed input (located errors, exit code 2, nothing
//! run), and the commands that work on records (compare, merge) and plans (--shard).

use std::path::Path;
use std::process::Command;

fn project_with(scenario_name: &str, scenario: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for sub in ["matrices", "scenarios"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("images/counter")).unwrap();
    std::fs::copy(root.join("images/counter/Containerfile"), dir.path().join("images/counter/Containerfile")).unwrap();
    // The committed default matrix names the committed scenarios; this project has its own.
    let matrix = "engines: [podman, docker]\nruntimes: [runc]\nstacks: [trixie]\n";
    std::fs::write(dir.path().join("matrices/default.yaml"), matrix).unwrap();
    std::fs::write(dir.path().join("scenarios").join(scenario_name), scenario).unwrap();
    dir
}

fn criu_matrix(project: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_criu-matrix"))
        .args(args)
        .env("CRIU_MATRIX_PROJECT", project)
        .env("CRIU_MATRIX_CACHE", project.join("cache"))
        .output()
        .unwrap()
}

const VALID: &str =
    "id: demo\nsummary: s\nimage: counter\nrun: {}\nready: { file: /tmp/counter }\nverify: [counter: /tmp/counter]\n";

#[test]
fn validate_accepts_a_valid_project() {
    let project = project_with("demo.yaml", VALID);
    let out = criu_matrix(project.path(), &["validate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 scenarios and 1 matrices are valid"));
}

#[test]
fn a_malformed_scenario_stops_every_command_with_exit_code_2() {
    let project = project_with("demo.yaml", &VALID.replace("run: {}", "run: {}\nrounds: 2\nrounds: 3"));
    for args in [&["validate"][..], &["list"], &["run", "--no-progress"]] {
        let out = criu_matrix(project.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("demo.yaml:6:1: duplicate mapping key: rounds"), "{args:?}: {stderr}");
    }
    // Nothing ran: no run directory, no cache.
    assert!(!project.path().join("results").exists());
    assert!(!project.path().join("cache/stacks").exists());
}

/// The committed baseline, a real run of the default matrix, as the records these tests use.
fn baseline() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(root.join("results/baselines/default.jsonl")).unwrap()
}

fn run_dir(project: &Path, id: &str, cells: &str) -> std::path::PathBuf {
    let dir = project.join("results/runs").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cells.jsonl"), cells).unwrap();
    dir
}

#[test]
fn compare_exits_1_on_a_regression_only() {
    let project = project_with("demo.yaml", VALID);
    let same = run_dir(project.path(), "same", &baseline());
    // One cell that passed in the baseline fails now: a regression; one that ran is skipped.
    let mut changed: Vec<serde_json::Value> = baseline().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let passed = changed.iter().position(|r| r["verdict"] == "pass").unwrap();
    changed[passed]["verdict"] = "fail".into();
    let reproduced = changed.iter().position(|r| r["verdict"] == "reproduced").unwrap();
    changed[reproduced]["verdict"] = "skip".into();
    let text: String = changed.iter().map(|r| format!("{r}\n")).collect();
    let regressed = run_dir(project.path(), "regressed", &text);
    let base = project.path().join("results/runs/same/cells.jsonl");

    let out = criu_matrix(project.path(), &["compare", base.to_str().unwrap(), same.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("96 cells compared: 96 unchanged"));

    let summary = project.path().join("compare.md");
    let args = ["compare", base.to_str().unwrap(), "regressed", "--markdown", summary.to_str().unwrap()];
    let out = criu_matrix(project.path(), &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("1 regression (new failure)") && stdout.contains("1 lost coverage"), "{stdout}");
    let name = changed[passed]["name"].as_str().unwrap().rsplit_once("::").unwrap().0.to_string();
    assert!(stdout.contains(&format!("  {name}: pass -> fail")), "{stdout}");
    assert!(std::fs::read_to_string(&summary).unwrap().starts_with("## Against the baseline: 1 regression(s)"));
    assert!(regressed.exists());

    let out = criu_matrix(project.path(), &["compare", "no-such-baseline", "same"]);
    assert_eq!(out.status.code(), Some(2), "a comparison that cannot be made is not a regression");

    // Coverage lost without a regression: a cell the baseline proved is skipped now, and one is
    // gone. Exit 1, unless the run was narrowed on purpose (--allow-lost).
    let mut lost: Vec<serde_json::Value> = baseline().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let good = lost.iter().position(|r| r["verdict"] == "reproduced").unwrap();
    lost[good]["verdict"] = "skip".into();
    let gone = lost.iter().rposition(|r| r["verdict"] == "pass").unwrap();
    lost.remove(gone);
    let text: String = lost.iter().map(|r| format!("{r}\n")).collect();
    run_dir(project.path(), "lost", &text);
    let out = criu_matrix(project.path(), &["compare", base.to_str().unwrap(), "lost"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("2 lost coverage") && !stdout.contains("regression (new failure):"), "{stdout}");
    let out = criu_matrix(project.path(), &["compare", base.to_str().unwrap(), "lost", "--allow-lost"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_clause_that_could_never_match_stops_every_command_with_exit_code_2() {
    let text = format!(
        "{VALID}rounds: 2\nexpect:\n  - when: {{ runtime: runc }}\n    outcome: fails\n    round: 7\n    signature: 'Dumping FAILED'\n"
    );
    let project = project_with("demo.yaml", &text);
    for args in [&["validate"][..], &["list"], &["run", "--no-progress"]] {
        let out = criu_matrix(project.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(
                "demo.yaml:11:12: round 7 is not a round of this scenario (rounds: 2): the clause could never match"
            ),
            "{args:?}: {stderr}"
        );
    }
    assert!(!project.path().join("results").exists());
}

#[test]
fn merged_shards_are_one_run_with_every_report() {
    let project = project_with("demo.yaml", VALID);
    let text = baseline();
    let lines: Vec<&str> = text.lines().collect();
    run_dir(project.path(), "shard-1", &(lines[..30].join("\n") + "\n"));
    run_dir(project.path(), "shard-2", &(lines[30..].join("\n") + "\n"));
    let out = criu_matrix(project.path(), &["merge", "shard-1", "shard-2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("merged 96 records from 2 runs"), "{stdout}");
    let merged = std::fs::read_link(project.path().join("results/runs/latest")).unwrap();
    let merged = project.path().join("results/runs").join(merged);
    for report in ["cells.jsonl", "matrix.md", "matrix.json", "matrix.html", "junit.xml"] {
        assert!(merged.join(report).is_file(), "{report}");
    }
    let out = criu_matrix(project.path(), &["compare", "shard-1", merged.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("30 unchanged, 66 new"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn shards_of_a_plan_list_every_cell_once() {
    let project = project_with("demo.yaml", VALID);
    let matrix = "engines: [podman]\nruntimes: [runc, crun]\nstacks: [host, trixie, sid, bookworm]\n";
    std::fs::write(project.path().join("matrices/demo.yaml"), matrix).unwrap();
    let cells = |shard: &str| -> Vec<String> {
        let out = criu_matrix(project.path(), &["list", "--matrix", "demo", "--shard", shard]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("demo::"))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let all = cells("1/1");
    assert_eq!(all.len(), 8, "{all:?}");
    let joined: Vec<String> = ["1/3", "2/3", "3/3"].iter().flat_map(|s| cells(s)).collect();
    assert_eq!(joined, all);
    let out = criu_matrix(project.path(), &["list", "--matrix", "demo", "--shard", "4/3"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
