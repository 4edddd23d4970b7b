//! What a cell needs around its container, in the stack: daemons the harness runs for the
//! cell's lifetime (`services:`), bind mounts from the stack into the container (`mounts:`), and
//! CRIU configuration files (`criu_config:`), for workloads that talk to something outside the
//! container, such as a desktop application on the host's D-Bus system bus.
//!
//! Each cell has a directory of its own in the stack; `{dir}` in a service's arguments, its
//! ready file and a mount's source stands for it, so two cells never share a socket.

use super::duration::duration_text;
use super::error::ScenarioError;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};
use std::time::Duration;

/// The placeholder for the cell's own directory in the stack.
pub const CELL_DIR: &str = "{dir}";

/// A daemon the harness starts in the stack before the container and stops (by PID) after the
/// container is removed, however the cell ends.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Names the service in logs (`service-<name>.log`) and the reproducer.
    pub name: Spanned<String>,
    /// The command, run in the foreground (it must not fork away: it is stopped by its PID).
    pub args: Spanned<Vec<String>>,
    /// Files of the scenario's image directory copied into `{dir}` before the service starts
    /// (its configuration).
    #[serde(default)]
    pub files: Vec<Spanned<String>>,
    /// The service is ready once this file exists in the stack (a socket, a pid file).
    pub ready: ServiceReady,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceReady {
    pub file: Spanned<String>,
    #[serde(default = "default_service_timeout", with = "duration_text")]
    pub timeout: Duration,
}

fn default_service_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A path of the stack bind-mounted into the container (a file, a socket or a directory).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// In the stack: an absolute path, or one under `{dir}`.
    pub source: Spanned<String>,
    /// In the container: an absolute path.
    pub target: Spanned<String>,
}

/// A file the harness writes into the stack's `/etc/criu/` for the cell's lifetime (CRIU reads
/// `default.conf`; runc passes `runc.conf` to CRIU, crun >= 1.26 `crun.conf`, else `runc.conf`):
/// the only way to give CRIU options that an engine does not pass.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CriuConfigFile {
    /// A file name in `/etc/criu/`, e.g. `runc.conf`.
    pub file: Spanned<String>,
    /// One CRIU option per line, without the leading dashes (`ext-unix-sk`, `ghost-limit 16M`).
    pub options: Vec<String>,
}

/// The OCI annotation naming the CRIU configuration file that runc (and crun from 1.26, with
/// CRIU from 4.2) passes to CRIU in place of its own `/etc/criu/runc.conf` (`crun.conf`); an
/// empty value names none. CRIU reads that file last, over the options of the runtime's request.
pub const CRIU_CONFIG_ANNOTATION: &str = "org.criu.config";

/// Replaces `{dir}` with the cell's directory.
pub fn in_cell_dir(text: &str, dir: &str) -> String {
    text.replace(CELL_DIR, dir)
}

/// Why a stack path written in a scenario cannot be used, if it cannot.
pub fn stack_path_problem(path: &str) -> Option<String> {
    if path.starts_with('/') || path.starts_with(CELL_DIR) {
        None
    } else {
        Some(format!("expected an absolute path or one under `{CELL_DIR}` (the cell's directory), got `{path}`"))
    }
}

/// Checks `services:`, `mounts:`, `criu_config:` and the container's annotations of one
/// scenario; `image_dir` holds the files services may copy.
pub(super) fn validate(
    file: &Path,
    services: &[ServiceSpec],
    mounts: &[MountSpec],
    criu_config: &[CriuConfigFile],
    annotations: &BTreeMap<String, Spanned<String>>,
    image_dir: &Path,
) -> Result<(), ScenarioError> {
    let mut names = BTreeSet::new();
    for service in services {
        let name = &service.name;
        if !is_plain_name(&name.value) {
            let message = format!("expected a service name of letters, digits, `-` and `_`, got `{}`", name.value);
            return Err(ScenarioError::at(file, name, message));
        }
        if !names.insert(name.value.as_str()) {
            return Err(ScenarioError::at(file, name, format!("service `{}` is defined twice", name.value)));
        }
        if service.args.value.is_empty() {
            let message = format!("service `{}` has no command (`args`)", name.value);
            return Err(ScenarioError::at(file, &service.args, message));
        }
        if let Some(problem) = stack_path_problem(&service.ready.file.value) {
            return Err(ScenarioError::at(file, &service.ready.file, format!("ready file: {problem}")));
        }
        for copied in &service.files {
            let relative = !copied.value.is_empty()
                && Path::new(&copied.value).components().all(|c| matches!(c, Component::Normal(_)));
            if !relative || !image_dir.join(&copied.value).is_file() {
                let message =
                    format!("expected a file of the image directory {}, got `{}`", image_dir.display(), copied.value);
                return Err(ScenarioError::at(file, copied, message));
            }
        }
    }
    for mount in mounts {
        if let Some(problem) = stack_path_problem(&mount.source.value) {
            return Err(ScenarioError::at(file, &mount.source, format!("mount source: {problem}")));
        }
        if !mount.target.value.starts_with('/') {
            let message = format!("expected an absolute path in the container, got `{}`", mount.target.value);
            return Err(ScenarioError::at(file, &mount.target, message));
        }
    }
    let mut config_files = BTreeSet::new();
    for config in criu_config {
        if !config_files.insert(config.file.value.as_str()) {
            let message = format!("`{}` is written twice: give all its options in one entry", config.file.value);
            return Err(ScenarioError::at(file, &config.file, message));
        }
        let plain = config.file.value.ends_with(".conf") && is_plain_name(config.file.value.trim_end_matches(".conf"));
        if !plain {
            let message =
                format!("expected a file name in /etc/criu/ such as `runc.conf`, got `{}`", config.file.value);
            return Err(ScenarioError::at(file, &config.file, message));
        }
    }
    for (key, value) in annotations {
        if key.is_empty() || key.contains('=') || key.chars().any(char::is_whitespace) {
            let message = format!("expected an annotation key without `=` or spaces, got `{key}`");
            return Err(ScenarioError::at(file, value, message));
        }
        if key == CRIU_CONFIG_ANNOTATION && !(value.value.is_empty() || value.value.starts_with('/')) {
            let message = format!(
                "expected an absolute path in the stack (or nothing) for `{CRIU_CONFIG_ANNOTATION}`, got `{}`",
                value.value
            );
            return Err(ScenarioError::at(file, value, message));
        }
    }
    Ok(())
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn the_cell_directory_is_substituted_everywhere() {
        assert_eq!(
            in_cell_dir("--address=unix:path={dir}/bus", "/run/criu-matrix/7-1"),
            "--address=unix:path=/run/criu-matrix/7-1/bus"
        );
        assert_eq!(in_cell_dir("plain", "/x"), "plain");
    }

    const SURROUNDED: &str = "\
id: demo
summary: an app on a bus outside its container
image: demo
criu_config:
  - file: runc.conf
    options: [ext-unix-sk]
services:
  - name: system-bus
    args: [dbus-daemon, '--config-file={dir}/bus.conf', '--address=unix:path={dir}/socket']
    files: [bus.conf]
    ready: { file: '{dir}/socket', timeout: 10s }
mounts:
  - { source: '{dir}/socket', target: /run/dbus/system_bus_socket }
run:
  args: [/app]
  annotations: { org.criu.config: /etc/criu/runc.conf }
ready: { file: /tmp/counter }
verify:
  - exec: { args: [dbus-send, --system, /x], output: 'uint64 \\d+' }
  - counter: /tmp/counter
";

    fn parse(text: &str) -> Result<crate::scenario::Scenario, ScenarioError> {
        let images = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(images.path().join("demo")).unwrap();
        std::fs::write(images.path().join("demo/Containerfile"), "FROM scratch\n").unwrap();
        std::fs::write(images.path().join("demo/bus.conf"), "<busconfig/>\n").unwrap();
        crate::scenario::parse_scenario(Path::new("scenarios/demo.yaml"), text, images.path())
    }

    #[test]
    fn services_mounts_and_criu_config_parse() {
        let s = parse(SURROUNDED).unwrap();
        assert_eq!(s.services[0].name.value, "system-bus");
        assert_eq!(s.services[0].ready.timeout, Duration::from_secs(10));
        assert_eq!(s.mounts[0].target.value, "/run/dbus/system_bus_socket");
        assert_eq!(s.criu_config[0].options, ["ext-unix-sk"]);
        assert_eq!(s.run.annotations[CRIU_CONFIG_ANNOTATION].value, "/etc/criu/runc.conf");
    }

    /// Each mistake is reported at its line with what was expected.
    #[rstest]
    #[case::unknown_service_key(SURROUNDED.replace("    files:", "    filez:"), 10, "filez")]
    #[case::missing_file(SURROUNDED.replace("files: [bus.conf]", "files: [nowhere.conf]"), 10, "image directory")]
    #[case::file_outside(SURROUNDED.replace("files: [bus.conf]", "files: [../demo/bus.conf]"), 10, "image directory")]
    #[case::relative_ready(SURROUNDED.replace("ready: { file: '{dir}/socket'", "ready: { file: 'socket'"), 11, "absolute path")]
    #[case::no_command(SURROUNDED.replace("args: [dbus-daemon, '--config-file={dir}/bus.conf', '--address=unix:path={dir}/socket']", "args: []"), 9, "no command")]
    #[case::bad_service_name(SURROUNDED.replace("name: system-bus", "name: system bus"), 8, "service name")]
    #[case::relative_source(SURROUNDED.replace("source: '{dir}/socket'", "source: socket"), 13, "absolute path")]
    #[case::relative_target(SURROUNDED.replace("target: /run/dbus/system_bus_socket", "target: run/dbus"), 13, "absolute path in the container")]
    #[case::config_path(SURROUNDED.replace("file: runc.conf", "file: ../runc.conf"), 5, "/etc/criu/")]
    #[case::config_twice(SURROUNDED.replace("    options: [ext-unix-sk]\n", "    options: [ext-unix-sk]\n  - file: runc.conf\n    options: [ghost-limit 16M]\n"), 7, "written twice")]
    #[case::exec_without_command(SURROUNDED.replace("args: [dbus-send, --system, /x]", "args: []"), 19, "command")]
    #[case::exec_bad_regex(SURROUNDED.replace("'uint64 \\d+'", "'(unclosed'"), 19, "regular expression for `output`")]
    #[case::relative_criu_config_annotation(SURROUNDED.replace("org.criu.config: /etc/criu/runc.conf", "org.criu.config: runc.conf"), 16, "absolute path in the stack")]
    #[case::annotation_key_with_equals(SURROUNDED.replace("org.criu.config:", "'a=b':"), 16, "annotation key")]
    fn malformed_surroundings_are_located(#[case] text: String, #[case] line: u64, #[case] needle: &str) {
        let err = parse(&text).expect_err("must be rejected");
        assert_eq!(err.line, line, "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }

    #[rstest]
    #[case::absolute("/run/dbus/system_bus_socket", true)]
    #[case::in_cell_dir("{dir}/system_bus_socket", true)]
    #[case::relative("system_bus_socket", false)]
    #[case::empty("", false)]
    fn stack_paths_are_absolute_or_in_the_cell_directory(#[case] path: &str, #[case] usable: bool) {
        assert_eq!(stack_path_problem(path).is_none(), usable);
    }
}
