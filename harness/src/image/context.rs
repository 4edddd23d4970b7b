//! A scenario image's build context: the tree of `images/<name>/`, read once, checked, hashed
//! and copied from the same listing, so the hash covers exactly what the build sees.
//!
//! Only regular files, directories and symbolic links that stay inside the directory are
//! taken. A link that leaves it (`/etc/shadow`, `../x`), a link to anything but a regular file
//! or a directory (`/dev/zero`, a FIFO), a link to a directory that holds it (a cycle), a
//! dangling link, and any other kind of file are refused with their path. Links are hashed and
//! copied as links (their target text), as the build sees them: the walk never follows one.

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

/// The most entries a build context may have (the largest committed one has a dozen).
const MAX_ENTRIES: usize = 100_000;

/// One entry of a build context, by its path relative to the context's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    /// The permission bits (`mode & 0o7777`); none for a link.
    pub mode: u32,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// A symbolic link, and the text it holds.
    Link(PathBuf),
}

/// A checked build context.
#[derive(Debug)]
pub struct Context {
    pub root: PathBuf,
    /// Sorted by path: parents before their children.
    pub entries: Vec<Entry>,
}

impl Context {
    /// Reads and checks the tree at `root`, which must itself be a directory (not a link).
    pub fn scan(root: &Path) -> anyhow::Result<Context> {
        let meta = std::fs::symlink_metadata(root).with_context(|| format!("failed to read {}", root.display()))?;
        anyhow::ensure!(
            meta.is_dir(),
            "the image directory {} is not a directory (a link to one is not followed)",
            root.display()
        );
        let mut entries = Vec::new();
        walk(root, Path::new(""), &mut entries)?;
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        for entry in &entries {
            if let Kind::Link(target) = &entry.kind {
                check_link(root, &entry.path, target)?;
            }
        }
        Ok(Context { root: root.to_path_buf(), entries })
    }

    /// SHA-256 over every entry (its kind, path, mode, and a file's bytes or a link's target)
    /// and `base_id`, the image the context builds on.
    pub fn hash(&self, base_id: &str) -> anyhow::Result<String> {
        let mut hasher = Sha256::new();
        hasher.update(base_id.as_bytes());
        for entry in &self.entries {
            let (kind, extra): (&[u8], Option<&Path>) = match &entry.kind {
                Kind::File => (b"f", None),
                Kind::Dir => (b"d", None),
                Kind::Link(target) => (b"l", Some(target)),
            };
            hasher.update([0]);
            hasher.update(kind);
            hasher.update(entry.path.as_os_str().as_encoded_bytes());
            hasher.update([0]);
            hasher.update(format!("{:o}", entry.mode));
            hasher.update([0]);
            if let Some(target) = extra {
                hasher.update(target.as_os_str().as_encoded_bytes());
            }
            if entry.kind == Kind::File {
                let path = self.root.join(&entry.path);
                let mut file = open_regular(&path)?;
                let length = std::io::copy(&mut file, &mut hasher).with_context(|| format!("failed to read {}", path.display()))?;
                hasher.update(length.to_le_bytes());
            }
        }
        Ok(format!("{:x}", hasher.finalize()))
    }

    /// Copies exactly the entries hashed into `to` (created), with their modes.
    pub fn copy_to(&self, to: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(to).with_context(|| format!("failed to create {}", to.display()))?;
        for entry in &self.entries {
            let (from, target) = (self.root.join(&entry.path), to.join(&entry.path));
            match &entry.kind {
                Kind::Dir => std::fs::create_dir(&target).with_context(|| format!("failed to create {}", target.display()))?,
                Kind::Link(link) => std::os::unix::fs::symlink(link, &target)
                    .with_context(|| format!("failed to create the link {}", target.display()))?,
                Kind::File => {
                    let mut source = open_regular(&from)?;
                    let mut dest = std::fs::File::create(&target).with_context(|| format!("failed to create {}", target.display()))?;
                    std::io::copy(&mut source, &mut dest).with_context(|| format!("failed to copy {}", from.display()))?;
                }
            }
            if entry.kind == Kind::File {
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(entry.mode))
                    .with_context(|| format!("failed to set the mode of {}", target.display()))?;
            }
        }
        // Directories' modes last, deepest first: a read-only one is filled before it is closed.
        for entry in self.entries.iter().rev().filter(|e| e.kind == Kind::Dir) {
            let target = to.join(&entry.path);
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(entry.mode))
                .with_context(|| format!("failed to set the mode of {}", target.display()))?;
        }
        Ok(())
    }
}

/// Opens a file of the context for reading, never following a link, never blocking on a FIFO:
/// it must still be the regular file the scan saw.
fn open_regular(path: &Path) -> anyhow::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
        .with_context(|| format!("failed to open {}", path.display()))?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().with_context(|| format!("failed to read {}", path.display()))?;
    anyhow::ensure!(meta.is_file(), "{} is no longer a regular file", path.display());
    Ok(file)
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<Entry>) -> anyhow::Result<()> {
    let dir = root.join(rel);
    for item in std::fs::read_dir(&dir).with_context(|| format!("failed to read {}", dir.display()))? {
        let item = item.with_context(|| format!("failed to read {}", dir.display()))?;
        let path = rel.join(item.file_name());
        let full = root.join(&path);
        let meta = std::fs::symlink_metadata(&full).with_context(|| format!("failed to read {}", full.display()))?;
        let mode = meta.permissions().mode() & 0o7777;
        let kind = if meta.is_symlink() {
            Kind::Link(std::fs::read_link(&full).with_context(|| format!("failed to read the link {}", full.display()))?)
        } else if meta.is_dir() {
            Kind::Dir
        } else if meta.is_file() {
            Kind::File
        } else {
            anyhow::bail!("{} is neither a regular file, a directory nor a link: refused in a build context", full.display());
        };
        let is_dir = kind == Kind::Dir;
        out.push(Entry { path: path.clone(), mode: if matches!(kind, Kind::Link(_)) { 0 } else { mode }, kind });
        anyhow::ensure!(out.len() <= MAX_ENTRIES, "{} has more than {MAX_ENTRIES} entries", root.display());
        if is_dir {
            walk(root, &path, out)?;
        }
    }
    Ok(())
}

/// A link at `link` (relative to `root`) holding `target`: it must resolve, through links that
/// stay inside too, to a regular file or a directory inside `root` that does not hold the link.
fn check_link(root: &Path, link: &Path, target: &Path) -> anyhow::Result<()> {
    let shown = root.join(link);
    let refuse = |why: String| anyhow::anyhow!("{} -> {}: {why}: refused in a build context", shown.display(), target.display());
    let resolved = resolve(root, link).map_err(refuse)?;
    let full = root.join(&resolved);
    let meta = std::fs::symlink_metadata(&full).map_err(|e| refuse(format!("{} cannot be read ({e})", full.display())))?;
    if meta.is_dir() {
        if link.starts_with(&resolved) {
            return Err(refuse("a link to a directory that holds it (a cycle)".into()));
        }
    } else if !meta.is_file() {
        return Err(refuse("a link to something other than a regular file or a directory".into()));
    }
    Ok(())
}

/// One step of a path being resolved.
enum Step {
    Root,
    Parent,
    Name(std::ffi::OsString),
}

/// The steps of `path`, last first (a stack to pop).
fn steps(path: &Path) -> Vec<Step> {
    let mut steps: Vec<Step> = path
        .components()
        .filter_map(|c| match c {
            Component::RootDir | Component::Prefix(_) => Some(Step::Root),
            Component::ParentDir => Some(Step::Parent),
            Component::Normal(name) => Some(Step::Name(name.to_os_string())),
            Component::CurDir => None,
        })
        .collect();
    steps.reverse();
    steps
}

/// Where the link at `link` ends, relative to `root`, following links inside `root` (at most
/// 40, as the kernel does), never leaving it; else why not.
fn resolve(root: &Path, link: &Path) -> Result<PathBuf, String> {
    let mut pending = steps(link);
    let mut at = PathBuf::new();
    let mut hops = 0;
    while let Some(step) = pending.pop() {
        match step {
            Step::Root => return Err("an absolute link leaves the image directory".into()),
            Step::Parent => {
                if !at.pop() {
                    return Err("it leaves the image directory".into());
                }
            }
            Step::Name(name) => {
                let next = at.join(name);
                match std::fs::symlink_metadata(root.join(&next)) {
                    Ok(meta) if meta.is_symlink() => {
                        hops += 1;
                        if hops > 40 {
                            return Err("too many levels of links (a cycle)".into());
                        }
                        let target = std::fs::read_link(root.join(&next)).map_err(|e| e.to_string())?;
                        pending.extend(steps(&target));
                    }
                    Ok(_) => at = next,
                    Err(_) => return Err(format!("{} does not exist (a dangling link)", root.join(&next).display())),
                }
            }
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Containerfile"), "FROM x\n").unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.sh"), "echo 1\n").unwrap();
        dir
    }

    fn hash(dir: &Path) -> String {
        Context::scan(dir).unwrap().hash("base").unwrap()
    }

    #[test]
    fn the_hash_covers_names_modes_contents_links_and_the_base() {
        let dir = tree();
        let first = hash(dir.path());
        assert_eq!(first, hash(dir.path()));
        assert_ne!(first, Context::scan(dir.path()).unwrap().hash("other").unwrap());
        let changes: [&dyn Fn(&Path); 5] = [
            &|d| std::fs::write(d.join("src/a.sh"), "echo 2\n").unwrap(),
            &|d| std::fs::set_permissions(d.join("src/a.sh"), std::fs::Permissions::from_mode(0o755)).unwrap(),
            &|d| std::fs::rename(d.join("src/a.sh"), d.join("src/b.sh")).unwrap(),
            &|d| std::fs::create_dir(d.join("empty")).unwrap(),
            &|d| symlink("src/a.sh", d.join("link")).unwrap(),
        ];
        for change in changes {
            let dir = tree();
            change(dir.path());
            assert_ne!(hash(dir.path()), first);
        }
        // Two links to different targets differ.
        let (a, b) = (tree(), tree());
        symlink("src", a.path().join("l")).unwrap();
        symlink("src/a.sh", b.path().join("l")).unwrap();
        assert_ne!(hash(a.path()), hash(b.path()));
    }

    #[test]
    fn links_inside_are_kept_and_copied_as_links() {
        let dir = tree();
        symlink("src/a.sh", dir.path().join("run.sh")).unwrap();
        symlink("../Containerfile", dir.path().join("src/up")).unwrap();
        symlink("src", dir.path().join("sources")).unwrap();
        let context = Context::scan(dir.path()).unwrap();
        let to = tempfile::tempdir().unwrap();
        context.copy_to(&to.path().join("copy")).unwrap();
        let copy = to.path().join("copy");
        assert_eq!(std::fs::read_link(copy.join("run.sh")).unwrap(), Path::new("src/a.sh"));
        assert_eq!(std::fs::read_to_string(copy.join("src/up")).unwrap(), "FROM x\n");
        // The copy is the same context.
        assert_eq!(hash(&copy), hash(dir.path()));
    }

    /// Each of these is refused with the path of the entry, before anything is read through it.
    #[test]
    fn links_that_leave_or_loop_and_special_files_are_refused_with_their_path() {
        let cases: [(&str, &dyn Fn(&Path), &str); 8] = [
            ("shadow", &|d| symlink("/etc/shadow", d.join("shadow")).unwrap(), "absolute link leaves"),
            ("up", &|d| symlink("../outside", d.join("up")).unwrap(), "leaves the image directory"),
            ("zero", &|d| symlink("/dev/zero", d.join("zero")).unwrap(), "absolute link leaves"),
            ("src/self", &|d| symlink("..", d.join("src/self")).unwrap(), "a cycle"),
            ("loop", &|d| symlink("loop", d.join("loop")).unwrap(), "too many levels"),
            ("gone", &|d| symlink("nowhere", d.join("gone")).unwrap(), "dangling"),
            ("fifo", &|d| rustix::fs::mknodat(rustix::fs::CWD, &d.join("fifo"), rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0).unwrap(), "neither a regular file"),
            ("tofifo", &|d| {
                rustix::fs::mknodat(rustix::fs::CWD, &d.join("fifo"), rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0).unwrap();
                symlink("fifo", d.join("tofifo")).unwrap()
            }, "neither a regular file"),
        ];
        for (name, make, why) in cases {
            let dir = tree();
            make(dir.path());
            let err = format!("{:#}", Context::scan(dir.path()).unwrap_err());
            assert!(err.contains(&dir.path().join(name).display().to_string()) || err.contains("fifo"), "{name}: {err}");
            assert!(err.contains(why), "{name}: {err}");
        }
    }

    #[test]
    fn an_image_directory_that_is_a_link_is_refused() {
        let dir = tree();
        let parent = tempfile::tempdir().unwrap();
        symlink(dir.path(), parent.path().join("img")).unwrap();
        let err = Context::scan(&parent.path().join("img")).unwrap_err().to_string();
        assert!(err.contains("is not a directory (a link to one is not followed)"), "{err}");
    }
}
