//! The on-disk cache: stack rootfs trees, base image tarballs, container storage, tools, and the
//! outputs of builds stack variants need (`builds/<variant>/out`, see `stack::variant`).
//! `CRIU_MATRIX_CACHE`, else `$XDG_CACHE_HOME/criu-matrix`, else `~/.cache/criu-matrix`, else
//! `/var/cache/criu-matrix`.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    pub fn from_env() -> anyhow::Result<Cache> {
        let root = if let Some(dir) = std::env::var_os("CRIU_MATRIX_CACHE") {
            PathBuf::from(dir)
        } else if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            PathBuf::from(dir).join("criu-matrix")
        } else if let Some(home) = std::env::var_os("HOME") {
            PathBuf::from(home).join(".cache/criu-matrix")
        } else {
            // Service and CI environments may have no HOME; the harness runs as root anyway.
            PathBuf::from("/var/cache/criu-matrix")
        };
        std::fs::create_dir_all(&root)
            .map_err(|e| anyhow::anyhow!("failed to create the cache directory {}: {e}", root.display()))?;
        Ok(Cache { root })
    }

    /// `stacks/<suite>/`: `rootfs/`, `storage/` (podman's /var/lib/containers), `facts.json`, `lock`.
    pub fn stack_dir(&self, stack: &str) -> PathBuf {
        self.root.join("stacks").join(stack)
    }
}
