//! The host-side tools of the kernel axis (qemu, mkfs.ext4, debugfs, depmod) come from a Debian trixie
//! rootfs of their own in the cache: bookworm's qemu 7.2 is unreliable under TCG with systemd
//! guests (ENVIRONMENT.md), trixie's 10.0 is not, and nothing is installed on the host.
//!
//! A tool runs chrooted into that rootfs inside a private mount namespace that also sees the cache
//! at `/cache`: the `unshare`, `sh` and `chroot` steps all `exec`, so the child's PID is the
//! tool's, and ending it by PID ends the namespace with it.

use crate::stack::{debian, Cache, Output};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const PACKAGES: &[&str] = &["qemu-system-x86", "e2fsprogs", "kmod"];

const CHROOT_SCRIPT: &str = r#"set -e
root=$1 cache=$2; shift 2
mount --make-rprivate /
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mkdir -p "$root/cache"
mount --bind "$cache" "$root/cache"
exec chroot "$root" "$@"
"#;

#[derive(Debug, Clone)]
pub struct Tools {
    rootfs: PathBuf,
    cache_root: PathBuf,
}

/// Ensures the tools rootfs; returns it and whether it was already there.
pub async fn ensure(cache: &Cache) -> anyhow::Result<(Tools, bool)> {
    let dir = cache.root.join("tools/vm");
    let (rootfs, cached) = debian::ensure_rootfs_in(cache, &dir, "trixie", PACKAGES).await?;
    Ok((Tools { rootfs, cache_root: cache.root.clone() }, cached))
}

impl Tools {
    /// A host path under the cache, as the tools see it.
    pub fn inner(&self, host: &Path) -> anyhow::Result<String> {
        let rel = host
            .strip_prefix(&self.cache_root)
            .with_context(|| format!("{} is not under the cache {}", host.display(), self.cache_root.display()))?;
        Ok(format!("/cache/{}", rel.display()))
    }

    /// The command that runs `argv` among the tools.
    pub fn command(&self, argv: &[String]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c", CHROOT_SCRIPT, "criu-matrix-tools"])
            .arg(&self.rootfs)
            .arg(&self.cache_root)
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("TMPDIR", "/var/tmp")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs a short tool (mkfs.ext4, debugfs) to completion within `limit`.
    pub async fn run(&self, argv: &[String], limit: Duration) -> anyhow::Result<Output> {
        let started = std::time::Instant::now();
        let child = self
            .command(argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("failed to start `unshare` for the VM tools")?;
        let _tracked = child.id().map(crate::cleanup::ChildGuard::track);
        let (status, stdout, stderr, timed_out) = match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(out) => {
                let out = out?;
                (out.status.code(), out.stdout, out.stderr, false)
            }
            Err(_) => (None, Vec::new(), Vec::new(), true),
        };
        Ok(Output {
            argv: argv.to_vec(),
            status,
            stdout: String::from_utf8_lossy(&stdout).to_string(),
            stderr: String::from_utf8_lossy(&stderr).to_string(),
            seconds: started.elapsed().as_secs_f64(),
            timed_out,
        })
    }

    /// `qemu-system-x86_64 --version`, first line.
    pub async fn qemu_version(&self) -> String {
        let argv = ["qemu-system-x86_64".to_string(), "--version".to_string()];
        match self.run(&argv, Duration::from_secs(30)).await {
            Ok(o) if o.success() => o.stdout.lines().next().unwrap_or_default().to_string(),
            _ => "unknown".to_string(),
        }
    }
}
