//! A cell's reproducer: `reproduce.sh`, the plain engine commands the harness ran (or their
//! plain equivalents), in order, with how to enter the stack and build the image.

use crate::axes::Axis;
use crate::plan::Cell;
use crate::process::{shell_join, Transcript};
use crate::stack::{Cache, Session};
use std::path::{Path, PathBuf};

/// Writes `reproduce.sh` into `dir`; `None` when the cell ran no engine command.
pub fn write(
    cell: &Cell,
    session: &Session,
    cache: &Cache,
    transcript: &Transcript,
    dir: &Path,
    outcome: &str,
) -> Option<PathBuf> {
    let entries = transcript.entries();
    if entries.is_empty() {
        return None;
    }
    let (engine, image) = (&cell.key[Axis::Engine], &cell.scenario.image);
    let upstream = if cell.scenario.upstream.is_empty() { "-".to_string() } else { cell.scenario.upstream.join(", ") };
    let mut script = format!(
        "#!/bin/sh\n# Reproducer for {name}\n# Scenario: {summary}\n# Upstream: {upstream}\n# What the harness saw: {outcome}\n#\n",
        name = cell.name(),
        summary = cell.scenario.summary,
    );
    for (k, v) in super::on_host::versions_of(session, engine) {
        script.push_str(&format!("# {k}: {v}\n"));
    }
    let build = match engine.as_str() {
        "docker" => format!("DOCKER_BUILDKIT=0 docker build --network host --file images/{image}/Containerfile"),
        _ => "podman build".to_string(),
    };
    script.push_str(&format!(
        "#\n{}\n#\n# The image is built from images/{image}/ in the criu-matrix repository:\n#   {build} --build-arg BASE=<a local {} base image> --tag <tag> images/{image}\n",
        session.how_to_enter(cache),
        session.suite,
    ));
    if let Some(daemon) = session.docker().filter(|_| engine == "docker") {
        script.push_str(&format!(
            "#\n# dockerd, as the harness starts it in the stack (and stops it by its PID afterwards):\n#   {} &\n",
            shell_join(&daemon.argv)
        ));
    }
    script.push_str("set -x\n");
    for e in entries {
        let status = match (e.timed_out, e.status) {
            (true, _) => format!("timed out after {:.0}s", e.seconds),
            (false, Some(c)) => format!("exit {c}, {:.2}s", e.seconds),
            (false, None) => "killed".to_string(),
        };
        script.push_str(&format!("\n# {} ({status})\n{}\n", e.purpose, e.command));
    }
    let path = dir.join("reproduce.sh");
    std::fs::write(&path, script).ok()?;
    Some(path)
}
