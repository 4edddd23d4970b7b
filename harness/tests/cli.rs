//! The command line on malformed input: located errors, exit code 2, nothing run. No containers.

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
    // A matrix of its own: the committed default one names the committed scenarios.
    let matrix = "description: the test's\nengines: [podman]\nruntimes: [runc]\nstacks: [trixie]\n";
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

const VALID: &str = "id: demo\nsummary: s\nimage: counter\nrun: {}\nready: { file: /tmp/counter }\n";

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
