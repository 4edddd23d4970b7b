//! Debian suites as container stacks: each suite is a pinned set of podman, crun, runc and CRIU,
//! provisioned with debootstrap as a rootfs in the cache, and reused while its package list holds.

use super::cache::Cache;
use crate::axes::{StackSource, STACKS};
use crate::files::remove_tree;
use crate::process::Command;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long an apt or dpkg step may take (a download of a few packages from the mirror).
const APT_LIMIT: Duration = Duration::from_secs(900);
/// How long debootstrap may take (a stack with podman, docker and systemd: minutes).
const DEBOOTSTRAP_LIMIT: Duration = Duration::from_secs(1800);

/// A Debian suite the harness knows how to provision: a stack of the axes table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub name: &'static str,
    /// Installed in the stack rootfs besides debootstrap's minbase and [`COMMON`].
    pub packages: &'static [&'static str],
    /// Packages of [`COMMON`] this suite does not ship.
    pub without: &'static [&'static str],
}

/// What every stack needs to run, checkpoint and restore rootful podman containers.
#[rustfmt::skip]
const COMMON: &[&str] = &[
    "podman", "crun", "runc", "criu", "conmon",
    // podman's default network: netavark drives nftables (trixie, sid) or iptables (bookworm).
    "netavark", "aardvark-dns", "nftables", "iptables",
    "ca-certificates", "procps", "iproute2", "util-linux", "mount", "kmod",
    // Booted in a VM with systemd as PID 1, podman uses the systemd cgroup manager over D-Bus.
    // Scenarios with a system bus outside the containers (`services:`) start dbus-daemon
    // with system.conf and its `messagebus` user themselves, without systemd.
    "systemd", "dbus", "dbus-daemon", "dbus-system-bus-common",
    // The second engine: dockerd (started by the harness per stack), its containerd and CLI.
    "docker.io", "containerd",
];

impl Suite {
    /// The suite of a Debian stack of the axes table.
    pub fn find(name: &str) -> Option<Suite> {
        STACKS.iter().find_map(|stack| match stack.source {
            StackSource::Debian { suite, extra_packages, without } if suite == name => {
                Some(Suite { name: suite, packages: extra_packages, without })
            }
            _ => None,
        })
    }

    /// Every package to `--include`, common ones first.
    pub fn all_packages(&self) -> Vec<&'static str> {
        let mut all: Vec<&str> = COMMON.iter().copied().filter(|p| !self.without.contains(p)).collect();
        for p in self.packages {
            if !all.contains(p) {
                all.push(p);
            }
        }
        all
    }
}

/// Written into a provisioned rootfs; a rootfs whose marker differs from what is wanted is rebuilt.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Marker {
    suite: String,
    packages: Vec<String>,
    mirror: String,
    seconds: f64,
}

const MARKER: &str = ".criu-matrix-stack.json";

/// Debian's archive keyring (package `debian-archive-keyring`): every Release file of every
/// package the harness fetches (debootstrap, apt for kernels) is checked against it, never
/// taken unsigned.
pub const ARCHIVE_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// [`ARCHIVE_KEYRING`], if this host has it.
pub fn archive_keyring() -> anyhow::Result<&'static Path> {
    let keyring = Path::new(ARCHIVE_KEYRING);
    anyhow::ensure!(
        keyring.is_file(),
        "failed to find Debian's archive keyring {ARCHIVE_KEYRING} (install `debian-archive-keyring`): packages are \
         only taken with their signatures checked against it"
    );
    Ok(keyring)
}

/// The Debian mirror: `CRIU_MATRIX_MIRROR`, else the one the host's apt already uses.
pub fn mirror() -> anyhow::Result<String> {
    if let Ok(m) = std::env::var("CRIU_MATRIX_MIRROR") {
        return Ok(m);
    }
    host_mirror().context("failed to find a Debian mirror in /etc/apt (set CRIU_MATRIX_MIRROR)")
}

fn host_mirror() -> anyhow::Result<String> {
    let mut texts = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if matches!(p.extension().and_then(|e| e.to_str()), Some("list" | "sources")) {
                texts.push(std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    texts
        .iter()
        .find_map(|t| mirror_in(t))
        .ok_or_else(|| anyhow::anyhow!("no Debian main archive among the apt sources"))
}

/// Finds the main Debian archive (not security, not a third party) in one-line or deb822 sources.
fn mirror_in(text: &str) -> Option<String> {
    let is_archive = |uri: &str| uri.trim_end_matches('/').ends_with("/debian");
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("deb ") {
            let uri = rest.split_whitespace().find(|w| w.contains("://"))?;
            if is_archive(uri) {
                return Some(uri.to_string());
            }
        }
        if let Some(uris) = line.strip_prefix("URIs:") {
            if let Some(uri) = uris.split_whitespace().find(|u| is_archive(u)) {
                return Some(uri.to_string());
            }
        }
    }
    None
}

/// A debootstrap to run: the host's, or one unpacked from Debian's package into the cache, so
/// provisioning needs no install on the host.
pub struct Debootstrap {
    program: PathBuf,
    /// DEBOOTSTRAP_DIR when it is not installed.
    dir: Option<PathBuf>,
}

pub async fn debootstrap(cache: &Cache) -> anyhow::Result<Debootstrap> {
    if let Ok(program) = which::which("debootstrap") {
        return Ok(Debootstrap { program, dir: None });
    }
    let root = cache.root.join("tools/debootstrap");
    let program = root.join("usr/sbin/debootstrap");
    let dir = root.join("usr/share/debootstrap");
    if !program.is_file() {
        let download = tempfile::tempdir_in(&cache.root)?;
        let fetch =
            || Command::new(["apt-get", "download", "debootstrap"], APT_LIMIT).current_dir(download.path()).run();
        let mut out = fetch().await.context("failed to run apt-get (is this a Debian host?)")?;
        if !out.success() {
            // Fresh machines may have no package lists yet.
            Command::new(["apt-get", "update", "-qq"], APT_LIMIT).run().await?.checked()?;
            out = fetch().await?;
        }
        out.checked()?;
        let deb = std::fs::read_dir(download.path())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .context("apt-get download left no .deb")?;
        let unpacked = tempfile::tempdir_in(&cache.root)?;
        let x = ["dpkg".to_string(), "-x".into(), deb.display().to_string(), unpacked.path().display().to_string()];
        Command::new(x, APT_LIMIT).run().await?.checked()?;
        std::fs::create_dir_all(root.parent().expect("has a parent"))?;
        let _ = std::fs::remove_dir_all(&root);
        std::fs::rename(unpacked.keep(), &root)?;
    }
    Ok(Debootstrap { program, dir: Some(dir) })
}

impl Debootstrap {
    /// `debootstrap --variant=minbase [--include=...] SUITE TARGET MIRROR`, killed after `limit`.
    async fn run(&self, suite: &str, include: &[&str], target: &Path, mirror: &str, log: &Path) -> anyhow::Result<()> {
        let argv = self.argv(suite, include, target, mirror, archive_keyring()?);
        let mut cmd = Command::new(argv, DEBOOTSTRAP_LIMIT);
        if let Some(dir) = &self.dir {
            cmd = cmd.env("DEBOOTSTRAP_DIR", dir.display().to_string());
        }
        let out = cmd.run().await.context("failed to run debootstrap")?;
        std::fs::write(log, format!("{}{}", out.stdout, out.stderr))?;
        if !out.success() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            let how = out.failure_text().lines().next().unwrap_or_default().to_string();
            anyhow::bail!("debootstrap {suite} failed ({how}); log {}:\n{}", log.display(), tail.join("\n"));
        }
        Ok(())
    }
}

impl Debootstrap {
    /// The command line: the Release file's signature checked against `keyring`, and the run
    /// refused when it cannot be checked (`--force-check-gpg`: no gpgv, no signature).
    fn argv(&self, suite: &str, include: &[&str], target: &Path, mirror: &str, keyring: &Path) -> Vec<String> {
        let mut argv = vec![
            self.program.display().to_string(),
            "--variant=minbase".to_string(),
            format!("--keyring={}", keyring.display()),
            "--force-check-gpg".to_string(),
        ];
        if !include.is_empty() {
            argv.push(format!("--include={}", include.join(",")));
        }
        argv.extend([suite.to_string(), target.display().to_string(), mirror.to_string()]);
        argv
    }
}

/// Ensures the stack rootfs of `suite`. Returns its path and whether it was already there.
pub async fn ensure_rootfs(cache: &Cache, suite: Suite) -> anyhow::Result<(PathBuf, bool)> {
    ensure_rootfs_in(cache, &cache.stack_dir(suite.name), suite.name, &suite.all_packages()).await
}

/// Ensures a minbase rootfs of `suite` with `packages` at `dir/rootfs` (stacks, and the tools the
/// harness runs from a rootfs of their own, such as qemu). Rebuilt when the package list changes.
pub async fn ensure_rootfs_in(
    cache: &Cache,
    dir: &Path,
    suite: &str,
    packages: &[&str],
) -> anyhow::Result<(PathBuf, bool)> {
    let mirror = mirror()?;
    let rootfs = dir.join("rootfs");
    let wanted = |seconds| Marker {
        suite: suite.to_string(),
        packages: packages.iter().map(|s| s.to_string()).collect(),
        mirror: mirror.clone(),
        seconds,
    };
    if let Ok(text) = std::fs::read_to_string(rootfs.join(MARKER)) {
        if let Ok(found) = serde_json::from_str::<Marker>(&text) {
            if found.packages == wanted(0.0).packages && found.suite == suite {
                return Ok((rootfs, true));
            }
        }
    }
    std::fs::create_dir_all(dir)?;
    let tool = debootstrap(cache).await?;
    let building = dir.join("rootfs.partial");
    remove_tree(&building)?;
    let started = std::time::Instant::now();
    tool.run(suite, packages, &building, &mirror, &dir.join("debootstrap.log")).await?;
    std::fs::write(building.join(MARKER), serde_json::to_string_pretty(&wanted(started.elapsed().as_secs_f64()))?)?;
    remove_tree(&rootfs)?;
    std::fs::rename(&building, &rootfs)?;
    Ok((rootfs, false))
}

/// Ensures a tarball of a minbase `suite` rootfs, the base every scenario image builds on.
pub async fn ensure_base_tarball(cache: &Cache, suite: &str) -> anyhow::Result<(PathBuf, bool)> {
    let tarball = cache.root.join("bases").join(format!("{suite}.tar"));
    if tarball.is_file() {
        return Ok((tarball, true));
    }
    std::fs::create_dir_all(tarball.parent().expect("has a parent"))?;
    let mirror = mirror()?;
    let tool = debootstrap(cache).await?;
    let building = cache.root.join("bases").join(format!("{suite}.rootfs"));
    remove_tree(&building)?;
    tool.run(suite, &[], &building, &mirror, &cache.root.join("bases").join(format!("{suite}.log"))).await?;
    let partial = tarball.with_extension("tar.partial");
    let tar =
        ["tar", "-C", &building.display().to_string(), "--numeric-owner", "-cf", &partial.display().to_string(), "."]
            .map(String::from);
    Command::new(tar, APT_LIMIT).run().await?.checked().context("failed to pack the base rootfs")?;
    std::fs::rename(&partial, &tarball)?;
    remove_tree(&building)?;
    Ok((tarball, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_main_archive_in_deb822_sources() {
        let text = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n";
        assert_eq!(mirror_in(text).as_deref(), Some("http://mirror.example/debian"));
    }

    #[test]
    fn finds_the_main_archive_in_one_line_sources() {
        let text = "deb [arch=amd64] http://mirror.example/debian-security bookworm-security main\ndeb http://mirror.example/debian/ bookworm main\n";
        assert_eq!(mirror_in(text).as_deref(), Some("http://mirror.example/debian/"));
    }

    #[test]
    fn debootstrap_checks_signatures_against_the_archive_keyring() {
        let tool = Debootstrap { program: "/usr/sbin/debootstrap".into(), dir: None };
        let argv = tool.argv("trixie", &["criu"], Path::new("/t"), "http://m/debian", Path::new(ARCHIVE_KEYRING));
        assert!(argv.contains(&format!("--keyring={ARCHIVE_KEYRING}")), "{argv:?}");
        assert!(argv.contains(&"--force-check-gpg".to_string()), "{argv:?}");
        assert!(!argv.iter().any(|a| a.contains("no-check-gpg") || a.contains("trusted")), "{argv:?}");
    }

    #[test]
    fn skips_third_party_sources() {
        assert_eq!(mirror_in("deb https://packages.example/apt stable main\n"), None);
    }
}
