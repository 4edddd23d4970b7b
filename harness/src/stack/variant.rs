//! Stack variants: a Debian suite's stack with one component rebuilt by the harness from that
//! suite's own source packages, for a version no Debian binary offers.
//!
//! `bookworm-crun-criu` is bookworm's stack whose crun 1.8.1 is rebuilt with CRIU support
//! (Debian builds it without, and no Debian crun between 1.8.1 and 1.21 exists): the crun before
//! 1.21 that containers/crun#1651 needs, with the podman 4.3.1 whose OCI spec it understands.
//! libcriu comes from trixie's `libcriu2` (see `crun-criu-build.sh` for why).
//!
//! Three cached steps, each redone only when its input changes:
//! 1. the stack rootfs: the suite's debootstrap, as for the suite's own stack;
//! 2. the build, in a separate build rootfs of the same suite (`builds/<variant>/`), by
//!    `crun-criu-build.sh`; its outputs are kept with the hash of the script, the build rootfs is
//!    removed afterwards;
//! 3. the install into the stack rootfs: Debian's `/usr/bin/crun` diverted (`dpkg-divert`, kept
//!    as `/usr/bin/crun.distrib`), the rebuilt one in its place, libcriu in `/usr/local/lib`
//!    (trixie's libcriu2 package cannot be installed beside bookworm's criu: it Breaks it).

use super::cache::Cache;
use super::debian;
use super::namespace;
use crate::axes::{StackSource, STACKS};
use crate::events::Events;
use crate::files::{copy_dir, remove_tree};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A stack variant the harness knows how to provision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub name: &'static str,
    /// The Debian suite it is made of (its packages, and its containers' base image).
    pub suite: &'static str,
    /// What is rebuilt, for people reading a reproducer.
    pub rebuilt: &'static str,
}

/// The build script, run inside the build rootfs with the output directory as `$1`.
const BUILD_SCRIPT: &str = include_str!("crun-criu-build.sh");

/// The build rootfs: what `apt-get source` and `dpkg-buildpackage` need before `apt-get build-dep`.
const BUILD_PACKAGES: &[&str] = &["build-essential", "dpkg-dev", "ca-certificates", "fakeroot"];

/// Building CRIU's library and crun's package takes minutes on 2 loaded cores; this is far above.
const BUILD_LIMIT: Duration = Duration::from_secs(3600);

impl Variant {
    /// The rebuilt stack of the axes table named `name`.
    pub fn find(name: &str) -> Option<Variant> {
        STACKS.iter().find_map(|stack| match stack.source {
            StackSource::Rebuilt { suite, rebuilt } if stack.name == name => {
                Some(Variant { name: stack.name, suite, rebuilt })
            }
            _ => None,
        })
    }

    fn build_dir(&self, cache: &Cache) -> PathBuf {
        cache.root.join("builds").join(self.name)
    }

    /// What the build produced, as `versions.txt` recorded it (for reproducers and reports).
    pub fn build_summary(&self, cache: &Cache) -> String {
        std::fs::read_to_string(self.build_dir(cache).join("out/versions.txt")).unwrap_or_default()
    }
}

/// Written next to the build's outputs and into the stack rootfs once they are installed.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct BuildMarker {
    script_sha256: String,
    versions: String,
}

const BUILD_MARKER: &str = ".criu-matrix-build.json";
const INSTALL_MARKER: &str = ".criu-matrix-variant.json";

fn script_hash() -> String {
    format!("{:x}", Sha256::digest(BUILD_SCRIPT.as_bytes()))
}

fn read_marker(path: &Path) -> Option<BuildMarker> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Ensures the variant's stack rootfs, with the rebuilt component installed. Returns its path and
/// whether everything was cached.
pub async fn ensure_rootfs(cache: &Cache, variant: Variant, events: &Events) -> anyhow::Result<(PathBuf, bool)> {
    let suite = debian::Suite::find(variant.suite).with_context(|| format!("unknown suite `{}`", variant.suite))?;
    let (rootfs, rootfs_cached) =
        debian::ensure_rootfs_in(cache, &cache.stack_dir(variant.name), suite.name, &suite.all_packages()).await?;
    let (out, build_cached) = events
        .timed(variant.name, "build crun with CRIU from source", async {
            let (out, cached) = ensure_build(cache, variant).await?;
            Ok(((out, cached), cached))
        })
        .await?;
    let wanted = read_marker(&out.join(BUILD_MARKER)).context("the build left no marker")?;
    if read_marker(&rootfs.join(INSTALL_MARKER)).as_ref() == Some(&wanted) {
        return Ok((rootfs, rootfs_cached && build_cached));
    }
    install(&out, &rootfs)?;
    std::fs::write(rootfs.join(INSTALL_MARKER), serde_json::to_string_pretty(&wanted)?)?;
    Ok((rootfs, false))
}

/// Ensures the build's outputs (`builds/<variant>/out`), building them when the script changed.
async fn ensure_build(cache: &Cache, variant: Variant) -> anyhow::Result<(PathBuf, bool)> {
    let dir = variant.build_dir(cache);
    let out = dir.join("out");
    if read_marker(&out.join(BUILD_MARKER)).is_some_and(|m| m.script_sha256 == script_hash()) {
        return Ok((out, true));
    }
    let (rootfs, _) = debian::ensure_rootfs_in(cache, &dir, variant.suite, BUILD_PACKAGES).await?;
    let name = format!("{}-build", variant.name);
    let holder =
        namespace::enter(&name, &rootfs, &dir.join("storage"), &dir.join("docker"), &dir.join("holder.json")).await?;
    std::fs::write(rootfs.join("build.sh"), BUILD_SCRIPT)?;
    let inner_out = "/build/out";
    remove_tree(&rootfs.join(inner_out.trim_start_matches('/')))?;
    let argv = ["sh", "/build.sh", inner_out].map(String::from);
    let ran = super::exec::run(&holder.entry(), &argv, BUILD_LIMIT, None).await?;
    drop(holder);
    let built = rootfs.join(inner_out.trim_start_matches('/'));
    if !ran.success() {
        let log = std::fs::read_to_string(built.join("build.log")).unwrap_or_default();
        let kept = dir.join("build-failed.log");
        let _ = std::fs::write(&kept, &log);
        let tail: Vec<&str> = log.lines().rev().take(25).collect::<Vec<_>>().into_iter().rev().collect();
        anyhow::bail!(
            "building {} failed ({}); log {}:\n{}{}",
            variant.name,
            ran.failure_text(),
            kept.display(),
            tail.join("\n"),
            ran.stderr.trim()
        );
    }
    let versions = std::fs::read_to_string(built.join("versions.txt")).context("the build wrote no versions.txt")?;
    let marker = BuildMarker { script_sha256: script_hash(), versions };
    std::fs::write(built.join(BUILD_MARKER), serde_json::to_string_pretty(&marker)?)?;
    remove_tree(&out)?;
    copy_dir(&built, &out)?;
    // The outputs are what is kept; the build rootfs (compilers, -dev packages) is not.
    remove_tree(&rootfs)?;
    Ok((out, false))
}

/// Puts the rebuilt crun and libcriu into the stack rootfs, Debian's crun diverted aside.
fn install(out: &Path, rootfs: &Path) -> anyhow::Result<()> {
    let chroot = |args: &[&str]| -> anyhow::Result<()> {
        let argv =
            ["chroot".to_string(), rootfs.display().to_string()].into_iter().chain(args.iter().map(|a| a.to_string()));
        let env = [("PATH".to_string(), "/usr/sbin:/usr/bin:/sbin:/bin".to_string())];
        crate::process::Command::new(argv, Duration::from_secs(120)).env_only(&env).run_blocking()?.checked()?;
        Ok(())
    };
    if !rootfs.join("usr/bin/crun.distrib").exists() {
        chroot(&["dpkg-divert", "--local", "--rename", "--divert", "/usr/bin/crun.distrib", "--add", "/usr/bin/crun"])?;
    }
    std::fs::copy(out.join("crun"), rootfs.join("usr/bin/crun"))?;
    let lib = rootfs.join("usr/local/lib");
    std::fs::create_dir_all(&lib)?;
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        let name = path.file_name().expect("entries have names").to_string_lossy().into_owned();
        if !name.starts_with("libcriu.so") {
            continue;
        }
        let target = lib.join(&name);
        let _ = std::fs::remove_file(&target);
        match std::fs::read_link(&path) {
            Ok(link) => std::os::unix::fs::symlink(link, &target)?,
            Err(_) => {
                std::fs::copy(&path, &target)?;
            }
        }
    }
    chroot(&["ldconfig"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_is_made_of_a_known_suite() {
        let variants: Vec<Variant> = STACKS.iter().filter_map(|s| Variant::find(s.name)).collect();
        assert!(!variants.is_empty());
        for v in variants {
            assert!(debian::Suite::find(v.suite).is_some(), "{}", v.name);
            assert!(debian::Suite::find(v.name).is_none(), "{} shadows a suite", v.name);
        }
    }

    #[test]
    fn markers_compare_by_script_and_versions() {
        let a = BuildMarker { script_sha256: script_hash(), versions: "crun source: 1.8.1-1+deb12u1\n".into() };
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<BuildMarker>(&text).unwrap(), a);
        assert_eq!(script_hash().len(), 64);
    }
}
