//! A component built in a throwaway build rootfs of the stack's suite, cached by the key of its
//! inputs (`builds/<component>/<key>/`: `tree/`, `version.txt`, `build.log`, `built.json`).
//!
//! - The build rootfs is a copy of a cached template (`builds/roots/<suite>/rootfs`: minbase and
//!   the compilers), made for one build in `builds/work/<component>-<suite>/` and removed after it;
//!   the template itself is never entered.
//! - The build runs in the rootfs's own private mount namespace (`stack::namespace`), as a stack's
//!   commands do: one process group, a time limit, ended with the namespace.
//! - Downloaded packages are kept per suite (`builds/apt-archives/<suite>/`) and put back into
//!   the next build rootfs, so a bisect downloads its build dependencies once.
//! - A source that does not build (the script's exit code [`DOES_NOT_BUILD`]: a patch that does
//!   not apply, a compiler error) is remembered as such (`failed.json`), so asking again skips at
//!   once; any other failure (the archive unreachable, a timeout) is an error, never remembered.

use super::inputs::{copy_source, Material, Resolved};
use crate::events::{Event, Events};
use crate::files::remove_tree;
use crate::stack::{debian, namespace, Cache};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const DEB_SCRIPT: &str = include_str!("deb-build.sh");
pub const SRC_SCRIPT: &str = include_str!("src-build.sh");

/// The template build rootfs: what `apt-get source`, `dpkg-buildpackage` and the upstream builds
/// need before each build installs its own dependencies.
const BUILD_PACKAGES: &[&str] = &["build-essential", "dpkg-dev", "fakeroot", "patch", "ca-certificates", "xz-utils"];

/// The exit code by which a build script says the source itself does not build.
pub const DOES_NOT_BUILD: i32 = 42;

/// A build of CRIU's or crun's Debian package with its dependencies on 2 loaded cores takes
/// minutes to tens of minutes; this is far above.
const BUILD_LIMIT: Duration = Duration::from_secs(2 * 3600);
const COPY_LIMIT: Duration = Duration::from_secs(900);

/// The script that builds `material`.
pub fn script_for(material: &Material) -> &'static str {
    match material {
        Material::Deb { .. } => DEB_SCRIPT,
        _ => SRC_SCRIPT,
    }
}

/// A component's files, ready to install.
#[derive(Debug, Clone)]
pub struct Built {
    pub tree: PathBuf,
    /// What the build says it made (`criu 4.2.1-1+criumatrix1 (...)`, `Version: 4.1`).
    pub version: String,
    /// How long the build took when it ran.
    pub seconds: Option<f64>,
    pub cached: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    key: String,
    version: String,
    seconds: f64,
}

/// A source that does not build: what bisect skips.
#[derive(Debug)]
pub struct DoesNotBuild {
    pub component: String,
    pub log: PathBuf,
    pub tail: String,
}

impl std::fmt::Display for DoesNotBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} does not build from this source (log {}):\n{}", self.component, self.log.display(), self.tail)
    }
}

impl std::error::Error for DoesNotBuild {}

/// The directory of a build's outputs.
pub fn build_dir(cache: &Cache, component: &str, key: &str) -> PathBuf {
    cache.root.join("builds").join(component).join(&key[..key.len().min(24)])
}

/// Ensures the files of `r` for a stack of `suite`: built (or found built), or taken as given.
pub async fn ensure(r: &Resolved, suite: &str, cache: &Cache, events: &Events) -> anyhow::Result<Built> {
    let component = r.component.name;
    let dir = build_dir(cache, component, &r.key);
    match &r.material {
        Material::Tree(tree) => {
            anyhow::ensure!(
                ["usr", "bin", "sbin", "lib", "etc", "opt"].iter().any(|d| tree.join(d).is_dir()),
                "{} is not an installed tree (nothing like usr/, bin/ or sbin/ at its top): give the program itself as path:FILE",
                tree.display()
            );
            return Ok(Built { tree: tree.clone(), version: String::new(), seconds: None, cached: true });
        }
        Material::File(file) => {
            let tree = dir.join("tree");
            let program = tree.join(r.component.program.trim_start_matches('/'));
            if !program.is_file() {
                std::fs::create_dir_all(program.parent().expect("a program has a directory"))?;
                std::fs::copy(file, &program).with_context(|| format!("failed to copy {}", file.display()))?;
            }
            return Ok(Built { tree, version: String::new(), seconds: None, cached: true });
        }
        _ => {}
    }
    if let Some(built) = cached(&dir)? {
        return Ok(built);
    }
    let work = cache.root.join("builds/work").join(format!("{component}-{suite}"));
    std::fs::create_dir_all(&work)?;
    let _lock = lock(&work.with_extension("lock"), &format!("{component} build for {suite}"), events).await?;
    // Another run may have built it while this one waited.
    if let Some(built) = cached(&dir)? {
        return Ok(built);
    }
    let started = Instant::now();
    let template = debian::ensure_rootfs_in(cache, &cache.root.join("builds/roots").join(suite), suite, BUILD_PACKAGES)
        .await
        .with_context(|| format!("failed to make the {suite} build rootfs"))?
        .0;
    let rootfs = work.join("rootfs");
    remove_tree(&rootfs)?;
    let cp = ["cp", "-a", &template.display().to_string(), &rootfs.display().to_string()].map(String::from);
    crate::process::Command::new(cp, COPY_LIMIT).run().await?.checked().context("failed to copy the build rootfs")?;
    let result = build_in(r, &rootfs, &work, cache, suite).await;
    let out = rootfs.join("build/out");
    let outcome = match result {
        Err(e) => Err(e),
        Ok(status) if status == Some(0) => keep(&out, &dir, &r.key, started.elapsed().as_secs_f64()),
        Ok(status) => {
            let log = std::fs::read_to_string(out.join("build.log")).unwrap_or_default();
            std::fs::create_dir_all(&dir)?;
            let kept = dir.join(if status == Some(DOES_NOT_BUILD) { "failed.log" } else { "error.log" });
            std::fs::write(&kept, &log)?;
            let tail = tail(&log, 30);
            if status == Some(DOES_NOT_BUILD) {
                Err(anyhow::Error::new(DoesNotBuild { component: component.to_string(), log: kept, tail }))
            } else {
                let how = status.map(|c| format!("exit {c}")).unwrap_or_else(|| "killed at its time limit".into());
                Err(anyhow::anyhow!("building {component} failed ({how}); log {}:\n{tail}", kept.display()))
            }
        }
    };
    // The build rootfs (compilers, -dev packages, the source) is not kept.
    remove_tree(&rootfs)?;
    outcome
}

/// A build made earlier: its outputs, or the word that the source does not build.
fn cached(dir: &Path) -> anyhow::Result<Option<Built>> {
    if let Ok(text) = std::fs::read_to_string(dir.join("built.json")) {
        if let Ok(record) = serde_json::from_str::<Record>(&text) {
            if dir.join("tree").is_dir() {
                return Ok(Some(Built {
                    tree: dir.join("tree"),
                    version: record.version,
                    seconds: Some(record.seconds),
                    cached: true,
                }));
            }
        }
    }
    let failed = dir.join("failed.log");
    if let Ok(log) = std::fs::read_to_string(&failed) {
        let component = dir.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
        let tail = tail(&log, 30);
        return Err(anyhow::Error::new(DoesNotBuild { component: component.unwrap_or_default(), log: failed, tail }));
    }
    Ok(None)
}

/// Stages the source, runs the build script in the rootfs's namespace; its exit code.
async fn build_in(r: &Resolved, rootfs: &Path, work: &Path, cache: &Cache, suite: &str) -> anyhow::Result<Option<i32>> {
    let build = rootfs.join("build");
    std::fs::create_dir_all(build.join("patches"))?;
    for (i, patch) in r.patches.iter().enumerate() {
        let name = patch.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        std::fs::copy(patch, build.join("patches").join(format!("{:02}-{name}", i + 1)))?;
    }
    let component = r.component;
    let quote = |s: &str| shlex::try_quote(s).map(|q| q.into_owned()).unwrap_or_default();
    let mut env = format!("COMPONENT={}\nOUT=/build/out\nDOES_NOT_BUILD={DOES_NOT_BUILD}\n", component.name);
    match &r.material {
        Material::Deb { suite: from, version } => {
            env.push_str(&format!(
                "SOURCE_PACKAGE={}\nSOURCE_VERSION={}\nSOURCE_SUITE={}\nBINARY_PACKAGES={}\n",
                quote(component.source_package),
                quote(version),
                quote(from),
                quote(&component.binary_packages.join(" "))
            ));
        }
        Material::Git { dir, commit } => {
            let tar = build.join("src.tar");
            let argv = ["git", "-C", &dir.display().to_string(), "archive", "--format=tar", "-o", &tar.display().to_string(), commit];
            crate::process::Command::new(argv.map(String::from), COPY_LIMIT)
                .run()
                .await?
                .checked()
                .context("failed to take the source with git archive")?;
            let describe = r.origin.git_describe.clone().unwrap_or_else(|| commit.clone());
            env.push_str(&format!("DESCRIBE={}\n", quote(&describe)));
        }
        Material::Dir(dir) => {
            copy_source(dir, &build.join("src"))?;
            env.push_str(&format!("DESCRIBE={}\n", quote(r.origin.git_describe.as_deref().unwrap_or_default())));
        }
        Material::File(_) | Material::Tree(_) => unreachable!("nothing to build"),
    }
    std::fs::write(build.join("env.sh"), env)?;
    std::fs::write(build.join("build.sh"), script_for(&r.material))?;
    // A Debian build whose packaging the mirror lacks builds the upstream tarball instead.
    std::fs::write(build.join("src-build.sh"), SRC_SCRIPT)?;
    let archives = cache.root.join("builds/apt-archives").join(suite);
    let inner_archives = rootfs.join("var/cache/apt/archives");
    copy_debs(&archives, &inner_archives)?;
    let name = format!("{}-build-{suite}", component.name);
    let holder =
        namespace::enter(&name, rootfs, &work.join("storage"), &work.join("docker"), &work.join("holder.json")).await?;
    let argv = ["sh", "/build/build.sh"].map(String::from);
    let ran = crate::stack::exec::run(&holder.entry(), &argv, BUILD_LIMIT, None).await;
    drop(holder);
    copy_debs(&inner_archives, &archives)?;
    let ran = ran?;
    Ok(if ran.timed_out { None } else { ran.status })
}

/// Keeps a build's outputs under `dir`.
fn keep(out: &Path, dir: &Path, key: &str, seconds: f64) -> anyhow::Result<Built> {
    anyhow::ensure!(out.join("tree").is_dir(), "the build left no tree in {}", out.display());
    let version = std::fs::read_to_string(out.join("version.txt")).unwrap_or_default().trim().to_string();
    remove_tree(dir)?;
    std::fs::create_dir_all(dir)?;
    crate::files::copy_dir(&out.join("tree"), &dir.join("tree"))?;
    std::fs::copy(out.join("build.log"), dir.join("build.log"))?;
    let record = Record { key: key.to_string(), version: version.clone(), seconds };
    std::fs::write(dir.join("built.json"), serde_json::to_string_pretty(&record)?)?;
    Ok(Built { tree: dir.join("tree"), version, seconds: Some(seconds), cached: false })
}

/// Copies the `.deb` files of `from` that `to` lacks.
fn copy_debs(from: &Path, to: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(()) };
    std::fs::create_dir_all(to)?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "deb") {
            let target = to.join(entry.file_name());
            if !target.exists() {
                std::fs::copy(&path, &target)?;
            }
        }
    }
    Ok(())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// An exclusive lock on `path` (an `flock`, dropped with the file), waited for up to two hours.
async fn lock(path: &Path, what: &str, events: &Events) -> anyhow::Result<std::fs::File> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    let started = Instant::now();
    let mut announced = false;
    while file.try_lock().is_err() {
        let holder = std::fs::read_to_string(path).unwrap_or_default().trim().to_string();
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(2 * 3600),
            "the {what} is held by another criu-matrix run (pid {holder})"
        );
        if !announced {
            let message = format!("the {what} is held by another criu-matrix run (pid {holder}): waiting");
            events.emit(Event::Warning { message: &message });
            announced = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_that_did_not_build_is_remembered_and_a_build_is_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let build = dir.path().join("criu/abc");
        assert!(cached(&build).unwrap().is_none());
        std::fs::create_dir_all(&build).unwrap();
        std::fs::write(build.join("failed.log"), "make: *** [criu] Error 1\n").unwrap();
        let err = cached(&build).unwrap_err();
        let no = err.downcast_ref::<DoesNotBuild>().expect("a DoesNotBuild");
        assert_eq!(no.component, "criu");
        assert!(no.tail.contains("Error 1"));
        // An error that is not the source's is not remembered.
        std::fs::remove_file(build.join("failed.log")).unwrap();
        std::fs::write(build.join("error.log"), "Temporary failure resolving").unwrap();
        assert!(cached(&build).unwrap().is_none());
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("tree/usr/sbin")).unwrap();
        std::fs::write(out.join("tree/usr/sbin/criu"), "ELF").unwrap();
        std::fs::write(out.join("build.log"), "ok").unwrap();
        std::fs::write(out.join("version.txt"), "Version: 4.2\n").unwrap();
        let kept = keep(&out, &build, "abc", 12.5).unwrap();
        assert!(!kept.cached);
        let again = cached(&build).unwrap().unwrap();
        assert!(again.cached && again.version == "Version: 4.2" && again.seconds == Some(12.5));
        assert!(again.tree.join("usr/sbin/criu").is_file());
    }

    #[test]
    fn both_scripts_mark_a_source_that_does_not_build_by_their_exit_code() {
        for script in [DEB_SCRIPT, SRC_SCRIPT] {
            assert!(script.contains("exit \"$DOES_NOT_BUILD\""), "a script that never says its source failed");
        }
    }
}
