//! The on-disk cache: stack rootfs trees, base image tarballs, container storage, tools, and the
//! outputs of builds stack variants need (`builds/<variant>/out`, see `stack::variant`).
//! `CRIU_MATRIX_CACHE`, else `$XDG_CACHE_HOME/criu-matrix`, else `~/.cache/criu-matrix`, else
//! `/var/cache/criu-matrix`.

use std::path::{Path, PathBuf};

/// Below this much free space on the cache's filesystem a run warns before it starts: a cold
/// provisioning of the three stacks, their images and VM disks writes about 18 GB.
pub const LOW_SPACE_BYTES: u64 = 10 * 1_000_000_000;

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

    /// A warning when the cache's filesystem has less than [`LOW_SPACE_BYTES`] free: a full disk
    /// otherwise shows up only as `No space left on device` from whichever step hits it.
    pub fn low_space_warning(&self) -> Option<String> {
        let free = free_bytes(&self.root)?;
        low_space_message(&self.root, free)
    }

    /// `stacks/<suite>/`: `rootfs/`, `storage/` (podman's /var/lib/containers), `facts.json`, `lock`.
    pub fn stack_dir(&self, stack: &str) -> PathBuf {
        self.root.join("stacks").join(stack)
    }
}

/// The bytes free on the filesystem holding `path` (root may use the reserved blocks too).
fn free_bytes(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bfree * stat.f_frsize)
}

fn low_space_message(root: &Path, free: u64) -> Option<String> {
    (free < LOW_SPACE_BYTES).then(|| {
        format!(
            "only {:.1} GB free for the cache {}: provisioning stacks, images and VM disks needs up to \
             about 18 GB, and a full disk fails the step that hits it with `No space left on device`",
            free as f64 / 1e9,
            root.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_below_the_threshold_only() {
        let root = Path::new("/cache");
        assert!(low_space_message(root, LOW_SPACE_BYTES).is_none());
        let warning = low_space_message(root, 1_300_000_000).expect("1.3 GB is low");
        assert!(warning.starts_with("only 1.3 GB free for the cache /cache"), "{warning}");
    }

    #[test]
    fn measures_a_real_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).is_some_and(|b| b > 0));
    }
}
