//! Images. No registry exists, so each suite's base image is imported from a debootstrapped
//! minbase tarball; a scenario image is built from `images/<name>/Containerfile` on that base
//! (`ARG BASE` + `FROM $BASE`). Images are tagged by the hash of their inputs, so an image whose
//! inputs did not change is never built again.

use crate::engine::Engine;
use crate::events::Events;
use crate::stack::{debian, Cache, Session};
use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Ensures the base image of the session's suite; returns its tag.
pub async fn ensure_base(
    engine: &dyn Engine,
    session: &Session,
    cache: &Cache,
    events: &Events,
) -> anyhow::Result<String> {
    let tag = format!("localhost/criu-matrix/base:{}", session.suite);
    events
        .timed(&session.name, &format!("base image {tag}"), async {
            if engine.image_exists(&tag).await? {
                return Ok((tag.clone(), true));
            }
            let (tarball, _) = debian::ensure_base_tarball(cache, &session.suite).await?;
            engine.import_image(&tarball, &tag).await?;
            Ok((tag.clone(), false))
        })
        .await
}

/// Ensures the image `name` built on `base`; returns its tag.
pub async fn ensure_image(
    engine: &dyn Engine,
    session: &Session,
    images_dir: &Path,
    name: &str,
    base: &str,
    events: &Events,
) -> anyhow::Result<String> {
    let dir = images_dir.join(name);
    let base_id = engine.image_id(base).await?;
    let hash = content_hash(&dir, &base_id)?;
    let tag = format!("localhost/criu-matrix/{name}:{}", &hash[..16]);
    events
        .timed(&session.name, &format!("image {tag}"), async {
            if engine.image_exists(&tag).await? {
                return Ok((tag.clone(), true));
            }
            // The build context must be visible inside the stack: copy it into the stack's /tmp.
            let inner = format!("/tmp/criu-matrix-build/{name}-{}", &hash[..16]);
            let on_host = session.host_path(&inner);
            crate::files::copy_dir(&dir, &on_host)
                .with_context(|| format!("failed to copy {} into the stack", dir.display()))?;
            let built = engine.build_image(&inner, &tag, base).await;
            let _ = std::fs::remove_dir_all(&on_host);
            built.with_context(|| format!("failed to build image `{name}`"))?;
            Ok((tag.clone(), false))
        })
        .await
}

/// SHA-256 over every file of the image directory (path and content, in sorted order) and the
/// base image's id.
pub fn content_hash(dir: &Path, base_id: &str) -> anyhow::Result<String> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    hasher.update(base_id.as_bytes());
    for rel in files {
        hasher.update([0]);
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(dir.join(&rel))?);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root)?.display().to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_follows_contents_paths_and_base() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Containerfile"), "FROM x\n").unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.sh"), "echo 1\n").unwrap();
        let first = content_hash(dir.path(), "base1").unwrap();
        assert_eq!(first, content_hash(dir.path(), "base1").unwrap());
        assert_ne!(first, content_hash(dir.path(), "base2").unwrap());
        std::fs::write(dir.path().join("src/a.sh"), "echo 2\n").unwrap();
        assert_ne!(first, content_hash(dir.path(), "base1").unwrap());
    }
}
