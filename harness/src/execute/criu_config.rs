//! CRIU configuration files in a stack's `/etc/criu/` for one cell (`criu_config:`), and the
//! record of which configuration was in force.
//!
//! CRIU reads `default.conf` itself when it starts, then applies the options of the runtime's
//! request, then the file the runtime names in that request (runc: `runc.conf`, or the
//! `org.criu.config` annotation; crun >= 1.26: the annotation, else `crun.conf`, else `runc.conf`).
//! Every file the harness writes starts with a marker line. A stack is entered by one run at a
//! time and each file is removed after its cell, so a marked file found before a cell is the
//! leftover of a killed run: it is removed, and no cell runs with another cell's options. A file
//! without the marker belongs to the stack and is never replaced nor removed.
//!
//! Paths are given in the stack and resolved under `root`, where the host sees the stack's `/`.

use crate::cleanup::{self, Guard};
use crate::process::{shell_join, Transcript};
use crate::record::{CriuConfigFileRecord, CriuConfigRecord};
use crate::scenario::CriuConfigFile;
use std::path::{Path, PathBuf};

/// Where CRIU and the runtimes look for configuration files.
const DIR: &str = "/etc/criu";

/// The first line of every CRIU configuration file the harness writes.
const MARKER: &str = "# written by criu-matrix for one cell, removed after it";

fn on_host(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// A file written for a cell: its undo action and how a person undoes it.
pub struct Written {
    pub guard: Guard,
    /// (purpose, command) for the reproducer.
    pub teardown: (String, String),
}

/// Removes the marked files a killed run left in `/etc/criu/`; returns their paths.
pub fn remove_leftovers(root: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    for path in files(root) {
        let marked = std::fs::read_to_string(on_host(root, &path)).is_ok_and(|t| t.starts_with(MARKER));
        if marked && std::fs::remove_file(on_host(root, &path)).is_ok() {
            tracing::warn!("removed {path}, left in the stack by an earlier run that was killed");
            removed.push(path);
        }
    }
    removed
}

/// Writes `/etc/criu/<file>`, refusing to replace a file the harness did not write. The guard
/// restores what was there before: no file (and no directory, if it made `/etc/criu`).
pub fn write(root: &Path, config: &CriuConfigFile, transcript: &Transcript) -> Result<Written, String> {
    let path = format!("{DIR}/{}", config.file.value);
    let file = on_host(root, &path);
    if let Ok(existing) = std::fs::read_to_string(&file) {
        if !existing.starts_with(MARKER) {
            return Err(format!("{path} exists already in the stack: the harness does not replace a CRIU configuration it did not write"));
        }
        return Err(format!("{path} is written twice for this cell"));
    }
    let dir = on_host(root, DIR);
    let made_dir = !dir.exists();
    let text: String =
        std::iter::once(MARKER).chain(config.options.iter().map(String::as_str)).map(|l| format!("{l}\n")).collect();
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&file, &text))
        .map_err(|e| format!("failed to write {path}: {e}"))?;
    let guard = cleanup::on_cleanup(format!("remove {path}"), move || {
        let _ = std::fs::remove_file(&file);
        if made_dir {
            let _ = std::fs::remove_dir(&dir);
        }
    });
    let lines = config.options.iter().map(|o| shell_join(std::slice::from_ref(o))).collect::<Vec<_>>().join(" ");
    transcript.push_equivalent(
        "CRIU options the engine does not pass, in a configuration file",
        &format!("mkdir -p {DIR} && printf '%s\\n' {lines} > {path}"),
    );
    Ok(Written { guard, teardown: (format!("remove {path}"), format!("rm {path}")) })
}

/// The CRIU configuration in force: every file in `/etc/criu/` with its text and whether the
/// harness wrote it, the file `annotation` (the container's `org.criu.config`) names if it lies
/// elsewhere, and the annotation itself.
pub fn in_force(root: &Path, annotation: Option<&str>) -> CriuConfigRecord {
    let mut paths = files(root);
    if let Some(named) = annotation.filter(|a| !a.is_empty() && !paths.iter().any(|p| p == a)) {
        paths.push(named.to_string());
        paths.sort();
    }
    let files = paths
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(on_host(root, &path)).ok()?;
            Some(CriuConfigFileRecord { by_harness: text.starts_with(MARKER), path, text })
        })
        .collect();
    CriuConfigRecord { files, annotation: annotation.map(String::from) }
}

/// The regular files in `/etc/criu/`, as stack paths, sorted.
fn files(root: &Path) -> Vec<String> {
    let mut paths: Vec<String> = std::fs::read_dir(on_host(root, DIR))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| format!("{DIR}/{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(file: &str, options: &[&str]) -> CriuConfigFile {
        let yaml = format!("file: {file}\noptions: [{}]\n", options.join(", "));
        serde_saphyr::from_str(&yaml).unwrap()
    }

    fn stack_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let file = on_host(root.path(), path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        root
    }

    #[test]
    fn a_file_and_the_directory_it_needed_are_gone_after_the_cell() {
        let root = stack_with(&[]);
        let written = write(root.path(), &config("runc.conf", &["ghost-limit 16M"]), &Transcript::default()).unwrap();
        let text = std::fs::read_to_string(root.path().join("etc/criu/runc.conf")).unwrap();
        assert_eq!(text, format!("{MARKER}\nghost-limit 16M\n"));
        written.guard.run();
        assert!(!root.path().join("etc/criu").exists());
        assert!(root.path().join("etc").exists());
    }

    #[test]
    fn the_stacks_own_files_stay_untouched() {
        let root = stack_with(&[("/etc/criu/default.conf", "tcp-established\n")]);
        let err = write(root.path(), &config("default.conf", &["ghost-limit 16M"]), &Transcript::default())
            .err()
            .expect("must refuse");
        assert!(err.contains("did not write"), "{err}");
        let written = write(root.path(), &config("runc.conf", &["ghost-limit 16M"]), &Transcript::default()).unwrap();
        written.guard.run();
        assert!(!root.path().join("etc/criu/runc.conf").exists());
        assert_eq!(std::fs::read_to_string(root.path().join("etc/criu/default.conf")).unwrap(), "tcp-established\n");
        assert!(remove_leftovers(root.path()).is_empty());
        assert!(root.path().join("etc/criu/default.conf").exists());
    }

    #[test]
    fn a_killed_runs_files_are_removed_before_the_next_cell() {
        let leftover = format!("{MARKER}\next-unix-sk\n");
        let root = stack_with(&[("/etc/criu/runc.conf", &leftover), ("/etc/criu/default.conf", "# the stack's\n")]);
        assert_eq!(remove_leftovers(root.path()), ["/etc/criu/runc.conf"]);
        assert!(!root.path().join("etc/criu/runc.conf").exists());
        assert!(root.path().join("etc/criu/default.conf").exists());
    }

    #[test]
    fn the_record_holds_every_file_and_the_annotation() {
        let root =
            stack_with(&[("/etc/criu/default.conf", "# the stack's\n"), ("/srv/netty.conf", "ghost-limit 8M\n")]);
        let written = write(root.path(), &config("runc.conf", &["ghost-limit 16M"]), &Transcript::default()).unwrap();
        let record = in_force(root.path(), Some("/srv/netty.conf"));
        let summary: Vec<(&str, bool)> = record.files.iter().map(|f| (f.path.as_str(), f.by_harness)).collect();
        assert_eq!(
            summary,
            [("/etc/criu/default.conf", false), ("/etc/criu/runc.conf", true), ("/srv/netty.conf", false)]
        );
        assert_eq!(record.files[1].text, format!("{MARKER}\nghost-limit 16M\n"));
        assert_eq!(record.annotation.as_deref(), Some("/srv/netty.conf"));
        drop(written);
        assert_eq!(in_force(root.path(), None).files.len(), 1);
    }
}
