//! What an override is made of, resolved before anything is built: the commit a revision names,
//! Debian's source version in a suite, the hash of a tree or a file. The key of a build is the
//! hash of all its inputs (the component, the stack's suite, the build script, the source's
//! identity and the patches), so the same inputs are never built twice.

use super::apt::Apt;
use crate::axes::Component;
use crate::plan::{Override, Source};
use crate::record::{ComponentOrigin, PatchOrigin};
use crate::stack::Cache;
use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

const GIT_LIMIT: Duration = Duration::from_secs(300);

/// What a build starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// Installed as it is: a binary at the component's program path.
    File(PathBuf),
    /// Installed as it is: a tree copied over the stack's root.
    Tree(PathBuf),
    /// Debian's source package at this version, from the suite's archive.
    Deb { suite: String, version: String },
    /// A commit of a git checkout, taken with `git archive`.
    Git { dir: PathBuf, commit: String },
    /// A source tree as it is (without `.git`).
    Dir(PathBuf),
}

impl Material {
    /// Whether the harness builds it (else its files are installed as they are).
    pub fn is_built(&self) -> bool {
        !matches!(self, Material::File(_) | Material::Tree(_))
    }
}

/// An override with everything resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub component: &'static Component,
    pub material: Material,
    pub patches: Vec<PathBuf>,
    /// The hash of every input.
    pub key: String,
    /// Its origin as far as it is known before the build (the build adds its version).
    pub origin: ComponentOrigin,
}

/// Resolves `o` for a stack of `suite`; `script` is the build script that would build it.
pub async fn resolve(o: &Override, suite: &str, script: &str, cache: &Cache) -> anyhow::Result<Resolved> {
    let mut origin = ComponentOrigin { source: o.source.spec(), ..Default::default() };
    let mut key = Sha256::new();
    key.update(format!("criu-matrix build 1\n{}\n{suite}\n", o.component.name));
    let material = match &o.source {
        Source::Path(path) => {
            let meta = std::fs::metadata(path).with_context(|| format!("failed to read {}", path.display()))?;
            if meta.is_dir() {
                key.update(format!("tree {}\n", tree_hash(path)?));
                Material::Tree(path.clone())
            } else {
                let bytes = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
                key.update(format!("file {}\n", hex(&Sha256::digest(&bytes))));
                Material::File(path.clone())
            }
        }
        Source::Deb { suite: from } => {
            let version = Apt::new(cache, from)?.source_version(o.component.source_package).await?;
            origin.debian_source = Some(format!("{} {version} ({from})", o.component.source_package));
            key.update(format!("script {}\ndeb {from} {version}\n", hex(&Sha256::digest(script))));
            Material::Deb { suite: from.clone(), version }
        }
        Source::Src { dir, rev: Some(rev) } => {
            let commit = git(dir, &["rev-parse", "--verify", &format!("{rev}^{{commit}}")]).await?;
            let tree = git(dir, &["rev-parse", &format!("{commit}^{{tree}}")]).await?;
            origin.git_describe = git(dir, &["describe", "--tags", "--always", &commit]).await.ok();
            origin.git_commit = Some(commit.clone());
            key.update(format!("script {}\ngit tree {tree}\n", hex(&Sha256::digest(script))));
            Material::Git { dir: dir.clone(), commit }
        }
        Source::Src { dir, rev: None } => {
            anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
            if dir.join(".git").exists() {
                origin.git_commit = git(dir, &["rev-parse", "HEAD"]).await.ok();
                origin.git_describe = git(dir, &["describe", "--tags", "--always", "--dirty"]).await.ok();
            }
            key.update(format!("script {}\ntree {}\n", hex(&Sha256::digest(script)), tree_hash(dir)?));
            Material::Dir(dir.clone())
        }
    };
    for patch in &o.patches {
        let bytes = std::fs::read(patch).with_context(|| format!("failed to read the patch {}", patch.display()))?;
        let sha256 = hex(&Sha256::digest(&bytes));
        key.update(format!("patch {sha256}\n"));
        origin.patches.push(PatchOrigin { file: patch.display().to_string(), sha256 });
    }
    let key = hex(&key.finalize());
    origin.inputs = Some(key.clone());
    Ok(Resolved { component: o.component, material, patches: o.patches.clone(), key, origin })
}

/// `git -C DIR ARGS...`, its output trimmed.
pub async fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let argv = ["git".to_string(), "-C".into(), dir.display().to_string()]
        .into_iter()
        .chain(args.iter().map(|a| a.to_string()));
    let out = crate::process::Command::new(argv, GIT_LIMIT).run().await.context("failed to run git")?;
    Ok(out.checked()?.stdout.trim().to_string())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of a tree: every path (sorted), its kind, whether it is executable, and its
/// content or link target; `.git` is left out.
pub fn tree_hash(dir: &Path) -> anyhow::Result<String> {
    let mut hash = Sha256::new();
    let mut files = Vec::new();
    walk(dir, Path::new(""), &mut files)?;
    for relative in files {
        let path = dir.join(&relative);
        let meta = std::fs::symlink_metadata(&path)?;
        hash.update(relative.as_os_str().as_encoded_bytes());
        if meta.file_type().is_symlink() {
            hash.update(b"\0link\0");
            hash.update(std::fs::read_link(&path)?.as_os_str().as_encoded_bytes());
        } else {
            use std::os::unix::fs::PermissionsExt as _;
            let executable = meta.permissions().mode() & 0o111 != 0;
            hash.update(if executable { b"\0exec\0" } else { b"\0file\0" });
            hash.update(std::fs::read(&path)?);
        }
        hash.update(b"\n");
    }
    Ok(hex(&hash.finalize()))
}

/// Copies a source tree without its `.git`.
pub fn copy_source(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut files = Vec::new();
    walk(from, Path::new(""), &mut files)?;
    std::fs::create_dir_all(to)?;
    for relative in files {
        let (src, dst) = (from.join(&relative), to.join(&relative));
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match std::fs::read_link(&src) {
            Ok(link) => std::os::unix::fs::symlink(link, &dst)?,
            Err(_) => {
                std::fs::copy(&src, &dst).with_context(|| format!("failed to copy {}", src.display()))?;
            }
        }
    }
    Ok(())
}

fn walk(top: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let dir = top.join(relative);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("failed to read {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_name() == ".git" {
            continue;
        }
        let path = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            walk(top, &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache { root: dir.path().to_path_buf() };
        (dir, cache)
    }

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let top = dir.path().display().to_string();
            let argv: Vec<String> =
                ["git", "-C", &top].into_iter().chain(args.iter().copied()).map(String::from).collect();
            crate::process::Command::new(argv, GIT_LIMIT).run_blocking().unwrap().checked().unwrap();
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["config", "user.email", "t@example.invalid"]);
        git(&["config", "user.name", "t"]);
        std::fs::write(dir.path().join("a.c"), "int a;\n").unwrap();
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "one"]);
        git(&["tag", "v1"]);
        std::fs::write(dir.path().join("a.c"), "int a = 2;\n").unwrap();
        git(&["commit", "-q", "-am", "two"]);
        dir
    }

    fn over(text: &str, base: &Path) -> Override {
        Override::parse(text, base).unwrap()
    }

    #[tokio::test]
    async fn a_revision_is_keyed_by_its_tree_and_described() {
        let (_c, cache) = cache();
        let repo = repo();
        let one = resolve(&over("criu=src:.@v1", repo.path()), "trixie", "script", &cache).await.unwrap();
        let head = resolve(&over("criu=src:.@main", repo.path()), "trixie", "script", &cache).await.unwrap();
        assert_ne!(one.key, head.key);
        assert_eq!(one.origin.git_describe.as_deref(), Some("v1"));
        assert!(head.origin.git_describe.as_deref().unwrap().starts_with("v1-1-g"), "{:?}", head.origin.git_describe);
        assert!(matches!(&one.material, Material::Git { commit, .. } if commit.len() == 40));
        // The same inputs, the same key; another suite or script, another.
        let again = resolve(&over("criu=src:.@v1", repo.path()), "trixie", "script", &cache).await.unwrap();
        assert_eq!(one.key, again.key);
        let sid = resolve(&over("criu=src:.@v1", repo.path()), "sid", "script", &cache).await.unwrap();
        assert_ne!(one.key, sid.key);
        let other = resolve(&over("criu=src:.@v1", repo.path()), "trixie", "script 2", &cache).await.unwrap();
        assert_ne!(one.key, other.key);
        let bad = resolve(&over("criu=src:.@nope", repo.path()), "trixie", "script", &cache).await.unwrap_err();
        assert!(format!("{bad:#}").contains("nope"), "{bad:#}");
    }

    #[tokio::test]
    async fn a_tree_is_keyed_by_its_content_without_git() {
        let (_c, cache) = cache();
        let repo = repo();
        let before = resolve(&over("criu=src:.", repo.path()), "trixie", "s", &cache).await.unwrap();
        assert!(before.origin.git_describe.is_some());
        std::fs::write(repo.path().join(".git/description"), "changed\n").unwrap();
        let same = resolve(&over("criu=src:.", repo.path()), "trixie", "s", &cache).await.unwrap();
        assert_eq!(before.key, same.key, ".git is not part of the tree");
        std::fs::write(repo.path().join("a.c"), "int a = 3;\n").unwrap();
        let after = resolve(&over("criu=src:.", repo.path()), "trixie", "s", &cache).await.unwrap();
        assert_ne!(before.key, after.key);
        assert!(after.origin.git_describe.as_deref().unwrap().ends_with("-dirty"));
        let copy = tempfile::tempdir().unwrap();
        copy_source(repo.path(), &copy.path().join("src")).unwrap();
        assert!(copy.path().join("src/a.c").is_file() && !copy.path().join("src/.git").exists());
        assert_eq!(tree_hash(repo.path()).unwrap(), tree_hash(&copy.path().join("src")).unwrap());
    }

    #[tokio::test]
    async fn a_binary_and_its_patches_are_hashed() {
        let (_c, cache) = cache();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("criu"), "ELF").unwrap();
        std::fs::write(dir.path().join("p.patch"), "diff").unwrap();
        let file = resolve(&over("criu=path:criu", dir.path()), "trixie", "s", &cache).await.unwrap();
        assert_eq!(file.material, Material::File(dir.path().join("criu")));
        assert!(!file.material.is_built());
        let tree = resolve(&over("criu=path:.", dir.path()), "trixie", "s", &cache).await.unwrap();
        assert!(matches!(tree.material, Material::Tree(_)));
        let mut patched = over("criu=src:.", dir.path());
        patched.patches.push(dir.path().join("p.patch"));
        let with = resolve(&patched, "trixie", "s", &cache).await.unwrap();
        let without = resolve(&over("criu=src:.", dir.path()), "trixie", "s", &cache).await.unwrap();
        assert_ne!(with.key, without.key);
        assert_eq!(with.origin.patches.len(), 1);
        assert_eq!(with.origin.inputs.as_deref(), Some(with.key.as_str()));
        assert!(resolve(&over("criu=path:missing", dir.path()), "trixie", "s", &cache).await.is_err());
    }
}
