//! The host-side tools of the kernel axis (qemu, mkfs.ext4, debugfs, depmod) come from a Debian trixie
//! rootfs of their own in the cache (a `ToolRoot`): bookworm's qemu 7.2 is unreliable under TCG
//! with systemd guests (ENVIRONMENT.md), trixie's 10.0 is not, and nothing is installed on the host.

pub use crate::stack::toolroot::ToolRoot as Tools;
use crate::stack::Cache;
use std::time::Duration;

const PACKAGES: &[&str] = &["qemu-system-x86", "e2fsprogs", "kmod"];

/// Ensures the tools rootfs; returns it and whether it was already there.
pub async fn ensure(cache: &Cache) -> anyhow::Result<(Tools, bool)> {
    crate::stack::toolroot::ensure(cache, "vm", "trixie", PACKAGES).await
}

impl Tools {
    /// `qemu-system-x86_64 --version`, first line.
    pub async fn qemu_version(&self) -> String {
        let argv = ["qemu-system-x86_64".to_string(), "--version".to_string()];
        match self.run(&argv, Duration::from_secs(30)).await {
            Ok(o) if o.success() => o.stdout.lines().next().unwrap_or_default().to_string(),
            _ => "unknown".to_string(),
        }
    }
}
