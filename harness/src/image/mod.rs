//! Images. No registry exists, so each suite's base image is imported from a debootstrapped
//! minbase tarball; a scenario image is built from `images/<name>/Containerfile` on that base
//! (`ARG BASE` + `FROM $BASE`). Images are tagged by the hash of their inputs, so an image whose
//! inputs did not change is never built again.

pub mod context;

use crate::engine::Engine;
use crate::events::Events;
use crate::stack::{debian, Cache, Session};
use anyhow::Context as _;
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
    // Read once: what is hashed is what is copied into the build.
    let build_context = context::Context::scan(&dir).with_context(|| format!("failed to read image `{name}`"))?;
    let hash = build_context.hash(&base_id).with_context(|| format!("failed to hash image `{name}`"))?;
    let tag = format!("localhost/criu-matrix/{name}:{}", &hash[..16]);
    events
        .timed(&session.name, &format!("image {tag}"), async {
            if engine.image_exists(&tag).await? {
                return Ok((tag.clone(), true));
            }
            // The build context must be visible inside the stack: copy it into the stack's /tmp.
            let inner = format!("/tmp/criu-matrix-build/{name}-{}", &hash[..16]);
            let on_host = session.host_path(&inner);
            build_context.copy_to(&on_host).with_context(|| format!("failed to copy {} into the stack", dir.display()))?;
            let built = engine.build_image(&inner, &tag, base).await;
            let _ = std::fs::remove_dir_all(&on_host);
            built.with_context(|| format!("failed to build image `{name}`"))?;
            Ok((tag.clone(), false))
        })
        .await
}
