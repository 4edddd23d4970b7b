//! Derived stacks' rootfs (`trixie+criu=sid`, `bookworm-crun-criu`): the base suite's own stack
//! (debootstrapped again into the derived stack's directory, so the base stack and its lock are
//! never touched) with the overriding components' files installed over it. `build` makes those
//! files; this installs them and says what is installed.
//!
//! - A component comes as a *tree*: files laid out at their paths in the stack
//!   (`usr/sbin/criu`, `usr/lib/x86_64-linux-gnu/libcriu.so.2`).
//! - Each file of a Debian package it replaces is diverted first (`dpkg-divert --rename`, kept as
//!   `PATH.distrib`), so dpkg still knows what is Debian's.
//! - A marker (`/.criu-matrix-derived.json`) lists each component's origin, the key of its inputs
//!   and every file installed. Another set of keys takes the previous files out (the diversions
//!   undone) before the new ones go in; the same keys install nothing.
//! - Paths are resolved inside the rootfs (its merged-/usr links followed there), never on the host.

use super::cache::Cache;
use super::debian;
use crate::record::ComponentOrigin;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component as PathPart, Path, PathBuf};
use std::time::Duration;

/// A component's files to install, and where they came from.
#[derive(Debug, Clone)]
pub struct Install {
    pub component: String,
    /// Files at their paths in the stack.
    pub tree: PathBuf,
    /// The hash of what was built or given: a different key is a reinstall.
    pub key: String,
    pub origin: ComponentOrigin,
}

/// What is installed in a derived rootfs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Marker {
    components: Vec<Installed>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Installed {
    component: String,
    key: String,
    origin: ComponentOrigin,
    files: Vec<InstalledFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct InstalledFile {
    /// Absolute inside the stack.
    path: String,
    /// Whether a file was there first (Debian's), diverted aside.
    diverted: bool,
}

/// The marker's name at the rootfs's top (also on a VM's stack disk, where the guest reads it).
pub const MARKER: &str = ".criu-matrix-derived.json";

const CHROOT_LIMIT: Duration = Duration::from_secs(300);

/// Ensures the derived stack's rootfs in `dir`: the suite's stack with `installs` over it.
/// Returns its path and whether nothing had to be done.
pub async fn ensure_rootfs(
    cache: &Cache,
    dir: &Path,
    suite: debian::Suite,
    installs: &[Install],
) -> anyhow::Result<(PathBuf, bool)> {
    let (rootfs, rootfs_cached) = debian::ensure_rootfs_in(cache, dir, suite.name, &suite.all_packages()).await?;
    let found = read_marker(&rootfs).unwrap_or_default();
    let keys = |components: Vec<(&str, &str)>| {
        let mut k: Vec<(String, String)> = components.into_iter().map(|(c, k)| (c.to_string(), k.to_string())).collect();
        k.sort();
        k
    };
    let wanted = keys(installs.iter().map(|i| (i.component.as_str(), i.key.as_str())).collect());
    let have = keys(found.components.iter().map(|i| (i.component.as_str(), i.key.as_str())).collect());
    if wanted == have {
        return Ok((rootfs, rootfs_cached));
    }
    uninstall(&rootfs, &found)?;
    let _ = std::fs::remove_file(rootfs.join(MARKER));
    let mut marker = Marker::default();
    for install in installs {
        let files = install_tree(&rootfs, &install.tree)
            .with_context(|| format!("failed to install {} into {}", install.component, rootfs.display()))?;
        marker.components.push(Installed {
            component: install.component.clone(),
            key: install.key.clone(),
            origin: install.origin.clone(),
            files,
        });
        // Written after each component, so a failure later still takes this one out next time.
        std::fs::write(rootfs.join(MARKER), serde_json::to_string_pretty(&marker)?)?;
    }
    chroot(&rootfs, "ldconfig")?;
    Ok((rootfs, false))
}

fn read_marker(root: &Path) -> Option<Marker> {
    serde_json::from_str(&std::fs::read_to_string(root.join(MARKER)).ok()?).ok()
}

/// The origin of each component the marker at `root` says was installed over Debian's.
pub fn installed(root: &Path) -> BTreeMap<String, ComponentOrigin> {
    read_marker(root)
        .map(|m| m.components.into_iter().map(|c| (c.component, c.origin)).collect())
        .unwrap_or_default()
}

/// Every component's origin in the stack whose root the host sees at `root`: an installed
/// override's, else the Debian package that holds its program (`debian`, with its version),
/// else `host` (the host stack's programs as found), each with the SHA-256 of its program.
pub fn components(root: &Path, is_host: bool) -> BTreeMap<String, ComponentOrigin> {
    let overrides = installed(root);
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap_or_default();
    let packages = installed_packages(&status);
    let mut out = BTreeMap::new();
    for component in crate::axes::COMPONENTS {
        if let Some(origin) = overrides.get(component.name) {
            out.insert(component.name.to_string(), origin.clone());
            continue;
        }
        let program = root.join(component.program.trim_start_matches('/'));
        let Ok(bytes) = std::fs::read(&program) else { continue };
        let package = component.binary_packages[0];
        let version = packages.get(package).map(|v| format!("{package} {v}")).unwrap_or_default();
        let source = if is_host || version.is_empty() { "host" } else { "debian" };
        out.insert(
            component.name.to_string(),
            ComponentOrigin {
                source: source.to_string(),
                version,
                program: Some(component.program.to_string()),
                sha256: Some(sha256(&bytes)),
                ..Default::default()
            },
        );
    }
    out
}

/// Installed packages and their versions, from dpkg's status file.
fn installed_packages(status: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for block in status.split("\n\n") {
        let field = |name: &str| {
            block.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':'))).map(|v| v.trim())
        };
        if let (Some(package), Some(version), Some(state)) = (field("Package"), field("Version"), field("Status")) {
            if state.ends_with(" installed") {
                out.insert(package.to_string(), version.to_string());
            }
        }
    }
    out
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Runs a shell script in the rootfs (`chroot`, with a plain PATH).
fn chroot(rootfs: &Path, script: &str) -> anyhow::Result<()> {
    let argv = ["chroot".to_string(), rootfs.display().to_string(), "sh".into(), "-ec".into(), script.to_string()];
    let env = [("PATH".to_string(), "/usr/sbin:/usr/bin:/sbin:/bin".to_string())];
    crate::process::Command::new(argv, CHROOT_LIMIT).env_only(&env).run_blocking()?.checked()?;
    Ok(())
}

fn quote(text: &str) -> String {
    shlex::try_quote(text).map(|q| q.into_owned()).unwrap_or_else(|_| format!("'{text}'"))
}

/// Where `inner` (absolute in the stack) is, its directories' links followed inside the rootfs:
/// `/sbin/criu` is `/usr/sbin/criu` on a merged-/usr system. A link never leads out of it.
fn resolve(rootfs: &Path, inner: &Path) -> anyhow::Result<PathBuf> {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> =
        inner.components().filter(|c| matches!(c, PathPart::Normal(_))).map(|c| c.as_os_str().to_owned()).collect();
    pending.reverse();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        let candidate: PathBuf = parts.iter().chain(std::iter::once(&part)).collect();
        let is_last = pending.is_empty();
        match std::fs::read_link(rootfs.join(&candidate)) {
            // The file itself may be a link (it is replaced, not followed).
            Ok(link) if !is_last => {
                hops += 1;
                anyhow::ensure!(hops < 40, "too many links resolving {}", inner.display());
                if link.is_absolute() {
                    parts.clear();
                }
                let mut more: Vec<std::ffi::OsString> = Vec::new();
                for c in link.components() {
                    match c {
                        PathPart::Normal(n) => more.push(n.to_owned()),
                        PathPart::ParentDir => more.push("..".into()),
                        _ => {}
                    }
                }
                more.reverse();
                pending.extend(more);
            }
            _ if part == ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    Ok(PathBuf::from("/").join(parts.iter().collect::<PathBuf>()))
}

/// Installs the files of `tree` over `rootfs`; returns what it installed.
fn install_tree(rootfs: &Path, tree: &Path) -> anyhow::Result<Vec<InstalledFile>> {
    let mut files = Vec::new();
    walk(tree, Path::new(""), &mut files)?;
    anyhow::ensure!(!files.is_empty(), "{} holds no file to install", tree.display());
    let mut installed = Vec::new();
    let mut divert = String::new();
    for relative in &files {
        let inner = resolve(rootfs, &Path::new("/").join(relative))?;
        let target = rootfs.join(inner.strip_prefix("/").expect("absolute"));
        let exists = std::fs::symlink_metadata(&target).is_ok();
        if exists {
            let path = quote(&inner.display().to_string());
            let aside = quote(&format!("{}.distrib", inner.display()));
            divert.push_str(&format!("dpkg-divert --quiet --local --rename --divert {aside} --add {path}\n"));
        }
        installed.push((relative.clone(), inner, target, exists));
    }
    if !divert.is_empty() {
        chroot(rootfs, &divert)?;
    }
    let mut out = Vec::new();
    for (relative, inner, target, diverted) in installed {
        let from = tree.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _ = std::fs::remove_file(&target);
        match std::fs::read_link(&from) {
            Ok(link) => std::os::unix::fs::symlink(link, &target)?,
            Err(_) => {
                std::fs::copy(&from, &target).with_context(|| format!("failed to copy {}", from.display()))?;
            }
        }
        out.push(InstalledFile { path: inner.display().to_string(), diverted });
    }
    Ok(out)
}

/// Takes out what `marker` says was installed, Debian's files put back.
fn uninstall(rootfs: &Path, marker: &Marker) -> anyhow::Result<()> {
    let mut undivert = String::new();
    for file in marker.components.iter().flat_map(|c| &c.files) {
        let target = rootfs.join(file.path.trim_start_matches('/'));
        let _ = std::fs::remove_file(&target);
        if file.diverted {
            undivert.push_str(&format!("dpkg-divert --quiet --local --rename --remove {}\n", quote(&file.path)));
        }
    }
    if !undivert.is_empty() {
        chroot(rootfs, &undivert)?;
    }
    Ok(())
}

/// Every file and link under `dir`, relative to the tree's top.
fn walk(top: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let dir = top.join(relative);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("failed to read {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = relative.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
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

    #[test]
    fn paths_resolve_through_the_rootfs_links_and_never_out_of_it() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/sbin")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::os::unix::fs::symlink("usr/sbin", r.join("sbin")).unwrap();
        // An absolute link is the rootfs's own absolute path, not the host's.
        std::os::unix::fs::symlink("/usr/lib", r.join("lib")).unwrap();
        std::os::unix::fs::symlink("../../etc", r.join("usr/sbin/up")).unwrap();
        assert_eq!(resolve(r, Path::new("/sbin/criu")).unwrap(), Path::new("/usr/sbin/criu"));
        assert_eq!(resolve(r, Path::new("/lib/x86_64-linux-gnu/libcriu.so.2")).unwrap(), Path::new("/usr/lib/x86_64-linux-gnu/libcriu.so.2"));
        assert_eq!(resolve(r, Path::new("/usr/sbin/up/x")).unwrap(), Path::new("/etc/x"));
        assert_eq!(resolve(r, Path::new("/usr/sbin/up")).unwrap(), Path::new("/usr/sbin/up"), "the file itself is not followed");
        std::os::unix::fs::symlink("../../../../../..", r.join("usr/out")).unwrap();
        assert_eq!(resolve(r, Path::new("/usr/out/etc/passwd")).unwrap(), Path::new("/etc/passwd"));
    }

    #[test]
    fn dpkg_status_gives_the_installed_versions() {
        let status = "Package: criu\nStatus: install ok installed\nVersion: 4.1.1-1\n\nPackage: crun\nStatus: deinstall ok config-files\nVersion: 1.21-1\n";
        let p = installed_packages(status);
        assert_eq!(p.get("criu").map(String::as_str), Some("4.1.1-1"));
        assert!(!p.contains_key("crun"));
    }

    /// A rootfs without Debian's files: nothing to divert, so no chroot is needed.
    #[test]
    fn a_tree_installs_and_its_marker_says_what_came_from_where() {
        let root = tempfile::tempdir().unwrap();
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("usr/sbin")).unwrap();
        std::fs::write(tree.path().join("usr/sbin/criu"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("criu", tree.path().join("usr/sbin/criu-link")).unwrap();
        let files = install_tree(root.path(), tree.path()).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/usr/sbin/criu", "/usr/sbin/criu-link"]);
        assert!(files.iter().all(|f| !f.diverted));
        assert_eq!(std::fs::read_link(root.path().join("usr/sbin/criu-link")).unwrap(), Path::new("criu"));
        let origin = ComponentOrigin { source: "path:/x/criu".into(), ..Default::default() };
        let marker = Marker {
            components: vec![Installed { component: "criu".into(), key: "k".into(), origin: origin.clone(), files }],
        };
        std::fs::write(root.path().join(MARKER), serde_json::to_string(&marker).unwrap()).unwrap();
        let seen = components(root.path(), false);
        assert_eq!(seen.get("criu"), Some(&origin));
        uninstall(root.path(), &marker).unwrap();
        assert!(!root.path().join("usr/sbin/criu").exists());
        assert!(install_tree(root.path(), tempfile::tempdir().unwrap().path()).is_err(), "an empty tree");
    }

    #[test]
    fn a_program_debian_installed_is_named_with_its_package_and_hash() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.path().join("var/lib/dpkg")).unwrap();
        std::fs::write(root.path().join("usr/bin/crun"), "crun").unwrap();
        std::fs::write(root.path().join("var/lib/dpkg/status"), "Package: crun\nStatus: install ok installed\nVersion: 1.21-1\n").unwrap();
        let seen = components(root.path(), false);
        let crun = seen.get("crun").unwrap();
        assert_eq!((crun.source.as_str(), crun.version.as_str()), ("debian", "crun 1.21-1"));
        assert_eq!(crun.sha256.as_deref(), Some(sha256(b"crun").as_str()));
        assert!(!seen.contains_key("criu"), "absent programs are not components");
        assert_eq!(components(root.path(), true)["crun"].source, "host");
    }
}
