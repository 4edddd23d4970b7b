//! Cgroups: where an engine puts a container (an OCI `cgroupsPath` as a path on disk), and the
//! cgroups the harness's containers leave on the host.
//!
//! With cgroup v1 controllers plus an empty cgroup2 (a hybrid host), the stack hides the cgroup2
//! mount, yet restored processes still land in cgroup2 directories such as
//! `libpod_parent/libpod-<id>`, each restore nesting inside the previous container's directory.
//! Nothing else removes them, and CRIU walks them all on every later dump (seen: `frozen_time`
//! growing from 0.1 s to 5 s after a few dozen cells). So after removing containers, the harness
//! removes their cgroup directories: `rmdir` only, which the kernel refuses for a cgroup that still
//! has processes or children.

use std::path::{Path, PathBuf};

/// Removes every `libpod-<id>` cgroup directory of these containers, in every hierarchy under
/// `root` (normally `/sys/fs/cgroup`), with the empty directories inside them.
pub fn remove_container_cgroups(root: &Path, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let names: Vec<String> = ids.iter().map(|id| format!("libpod-{id}")).collect();
    let mut found = Vec::new();
    find(root, &names, 0, &mut found);
    // Deepest first: a later container's directory may sit inside an earlier one's.
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for dir in found {
        remove_empty_tree(&dir);
    }
}

/// Removes podman's cgroupfs parent (`libpod_parent`, with its `conmon` child) wherever it is empty:
/// the harness's podman made it; `rmdir` leaves it wherever anything still uses it.
pub fn remove_empty_parents(root: &Path) {
    remove_empty_named(root, "libpod_parent");
}

/// Removes the cgroup `name` (an engine's cgroupfs parent, e.g. dockerd's `docker`) at the top of
/// every hierarchy (and at the root of a cgroup2 mount), with the empty cgroups inside it.
pub fn remove_empty_named(root: &Path, name: &str) {
    remove_empty_tree(&root.join(name));
    let Ok(hierarchies) = std::fs::read_dir(root) else { return };
    for h in hierarchies.flatten() {
        remove_empty_tree(&h.path().join(name));
    }
}

fn find(dir: &Path, names: &[String], depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 64 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        if !kind.is_dir() {
            continue;
        }
        let path = entry.path();
        if entry.file_name().to_str().is_some_and(|n| names.iter().any(|name| name == n)) {
            out.push(path.clone());
        }
        find(&path, names, depth + 1, out);
    }
}

/// `rmdir` of every empty directory under `dir`, then `dir` itself; cgroups in use stay.
fn remove_empty_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// An OCI `linux.cgroupsPath` as a path under the cgroup root. The systemd form
/// `SLICE:PREFIX:NAME` names the scope `PREFIX-NAME.scope` in SLICE, whose parents come from its
/// dashes (`a-b.slice` is `/a.slice/a-b.slice`), as systemd lays slices out.
pub fn cgroups_path_on_disk(spec: &str) -> String {
    let parts: Vec<&str> = spec.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return spec.to_string();
    };
    let slice = if slice.is_empty() { "system.slice" } else { slice };
    let mut path = String::new();
    if slice != "-.slice" {
        let stem = slice.trim_end_matches(".slice");
        let pieces: Vec<&str> = stem.split('-').collect();
        for i in 1..=pieces.len() {
            path.push('/');
            path.push_str(&pieces[..i].join("-"));
            path.push_str(".slice");
        }
    }
    let scope = if prefix.is_empty() { format!("{name}.scope") } else { format!("{prefix}-{name}.scope") };
    format!("{path}/{scope}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("machine.slice:libpod:abc", "/machine.slice/libpod-abc.scope")]
    #[case("user-1000.slice:libpod:abc", "/user.slice/user-1000.slice/libpod-abc.scope")]
    #[case(":crun:abc", "/system.slice/crun-abc.scope")]
    #[case("-.slice:libpod:abc", "/libpod-abc.scope")]
    #[case("/libpod_parent/libpod-abc", "/libpod_parent/libpod-abc")]
    fn oci_cgroups_paths_become_paths_on_disk(#[case] spec: &str, #[case] path: &str) {
        assert_eq!(cgroups_path_on_disk(spec), path);
    }

    #[test]
    fn removes_nested_container_directories_and_keeps_others() {
        let root = tempfile::tempdir().unwrap();
        let nested = root.path().join("unified/libpod_parent/libpod-aaa/libpod_parent/libpod-bbb/libpod_parent");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::create_dir_all(root.path().join("unified/libpod_parent/libpod-ccc")).unwrap();
        remove_container_cgroups(root.path(), &["aaa".to_string(), "bbb".to_string()]);
        assert!(!root.path().join("unified/libpod_parent/libpod-aaa").exists());
        assert!(root.path().join("unified/libpod_parent/libpod-ccc").exists());
    }
}
