//! Directory trees the harness copies and removes: build contexts, build outputs, a run's logs,
//! and rootfs trees (which hold device nodes and read-only files).

use anyhow::Context as _;
use std::path::Path;
use std::time::Duration;

/// The longest a removal of a whole rootfs may take (a few hundred thousand files).
const REMOVE_LIMIT: Duration = Duration::from_secs(900);

/// Copies a directory tree of regular files, directories and symlinks (kept as symlinks).
pub fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("failed to create {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("failed to read {}", from.display()))? {
        let path = entry?.path();
        let target = to.join(path.file_name().expect("entries have names"));
        if let Ok(link) = std::fs::read_link(&path) {
            std::os::unix::fs::symlink(link, &target)?;
        } else if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).with_context(|| format!("failed to copy {}", path.display()))?;
        }
    }
    Ok(())
}

/// Copies a tree of regular files and directories only (the logs of a run made elsewhere): a
/// symbolic link or a special file in it is refused with its path, never followed or opened.
pub fn copy_plain_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("failed to create {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("failed to read {}", from.display()))? {
        let path = entry?.path();
        let target = to.join(path.file_name().expect("entries have names"));
        let kind = std::fs::symlink_metadata(&path).with_context(|| format!("failed to read {}", path.display()))?;
        if kind.is_dir() {
            copy_plain_tree(&path, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&path, &target).with_context(|| format!("failed to copy {}", path.display()))?;
        } else {
            anyhow::bail!("{} is a link or a special file: refused (only files and directories are copied)", path.display());
        }
    }
    Ok(())
}

/// Removes a directory tree that may hold device nodes and read-only files (a rootfs). It never
/// crosses into another filesystem: a mount inside it is left alone rather than emptied.
pub fn remove_tree(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let argv = ["rm".to_string(), "-rf".into(), "--one-file-system".into(), path.display().to_string()];
    crate::process::Command::new(argv, REMOVE_LIMIT)
        .run_blocking()?
        .checked()
        .with_context(|| format!("failed to remove {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_tree_keeps_files_directories_and_links() {
        let from = tempfile::tempdir().unwrap();
        std::fs::create_dir(from.path().join("d")).unwrap();
        std::fs::write(from.path().join("d/f"), "x").unwrap();
        std::os::unix::fs::symlink("d/f", from.path().join("l")).unwrap();
        let to = tempfile::tempdir().unwrap();
        copy_dir(from.path(), &to.path().join("copy")).unwrap();
        assert_eq!(std::fs::read_to_string(to.path().join("copy/d/f")).unwrap(), "x");
        assert_eq!(std::fs::read_link(to.path().join("copy/l")).unwrap(), Path::new("d/f"));
        remove_tree(&to.path().join("copy")).unwrap();
        assert!(!to.path().join("copy").exists());
    }
}
