//! A Debian rootfs of tools in the cache (`tools/<name>/rootfs`), for programs the harness needs
//! but does not install on the host: qemu and e2fsprogs for VMs, chromium to check the HTML page.
//!
//! A tool runs chrooted into that rootfs inside a private mount namespace that also sees the cache
//! at `/cache`: the `unshare`, `sh` and `chroot` steps all `exec`, so the child's PID is the
//! tool's, and ending it by PID ends the namespace with it.

use crate::stack::{debian, Cache, Output};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

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

/// Ensures `tools/<name>/rootfs`, a minbase `suite` with `packages` (rebuilt when they change);
/// returns it and whether it was already there.
pub async fn ensure(cache: &Cache, name: &str, suite: &str, packages: &[&str]) -> anyhow::Result<(ToolRoot, bool)> {
    let dir = cache.root.join("tools").join(name);
    let (rootfs, cached) = debian::ensure_rootfs_in(cache, &dir, suite, packages).await?;
    Ok((ToolRoot { rootfs, cache_root: cache.root.clone() }, cached))
}

#[derive(Debug, Clone)]
pub struct ToolRoot {
    rootfs: PathBuf,
    cache_root: PathBuf,
}

impl ToolRoot {
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
            .context("failed to start `unshare` for the tools rootfs")?;
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
}
