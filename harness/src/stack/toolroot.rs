//! A Debian rootfs of tools in the cache (`tools/<name>/rootfs`), for programs the harness needs
//! but does not install on the host: qemu and e2fsprogs for VMs, chromium to check the HTML page.
//!
//! A tool runs chrooted into that rootfs inside a private mount namespace that also sees the cache
//! at `/cache`: the `unshare`, `sh` and `chroot` steps all `exec`, so the child's PID is the
//! tool's, and ending it by PID ends the namespace with it.

use super::{debian, Cache};
use crate::process::{Command, Output};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
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

    /// The command that runs `argv` among the tools, killed with its group after `limit`.
    pub fn command(&self, argv: &[String], limit: Duration) -> Command {
        let mut full: Vec<String> = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", CHROOT_SCRIPT]
            .into_iter()
            .map(String::from)
            .collect();
        full.push("criu-matrix-tools".into());
        full.push(self.rootfs.display().to_string());
        full.push(self.cache_root.display().to_string());
        full.extend(argv.iter().cloned());
        let env =
            [("PATH".to_string(), "/usr/sbin:/usr/bin:/sbin:/bin".to_string()), ("TMPDIR".into(), "/var/tmp".into())];
        Command::new(full, limit).shown_as(argv).env_only(&env)
    }

    /// Runs a short tool (mkfs.ext4, debugfs) to completion within `limit`.
    pub async fn run(&self, argv: &[String], limit: Duration) -> anyhow::Result<Output> {
        self.command(argv, limit).run().await.context("failed to run a tool of the tools rootfs")
    }
}
