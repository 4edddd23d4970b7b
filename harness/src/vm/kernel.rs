//! Debian kernels for the kernel axis: the suite's `linux-image-cloud-amd64` (virtio, NVMe and ext4
//! are built in, so a VM boots without an initramfs), fetched with apt into the cache and unpacked
//! there, never installed on the host.

use crate::stack::Cache;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How long one apt or dpkg step may take.
const APT_LIMIT: std::time::Duration = std::time::Duration::from_secs(900);

/// The Debian suites whose kernels the kernel axis boots (`crate::axes::KERNELS`).
fn kernel_suites() -> Vec<&'static str> {
    crate::axes::Kernel::bootable().filter_map(|k| k.suite).collect()
}

const META_PACKAGE: &str = "linux-image-cloud-amd64";

/// An unpacked kernel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kernel {
    /// The axis name (the suite).
    pub name: String,
    /// `uname -r` of the kernel, e.g. `6.1.0-50-cloud-amd64`.
    pub release: String,
    /// The Debian package version, e.g. `6.1.176-1`.
    pub package_version: String,
    pub vmlinuz: PathBuf,
    /// The directory holding `<release>/` (to be mounted as the guest's /lib/modules).
    pub modules_root: PathBuf,
}

/// Ensures kernel `name` is unpacked in the cache; returns it and whether it was already there.
pub async fn ensure(cache: &Cache, name: &str) -> anyhow::Result<(Kernel, bool)> {
    let suite = crate::axes::Kernel::find(name).and_then(|k| k.suite).with_context(|| {
        format!(
            "unknown kernel `{name}` (known: {})",
            crate::axes::Axis::Kernel.values().unwrap_or_default().join(", ")
        )
    })?;
    let dir = cache.root.join("kernels").join(name);
    let marker = dir.join("kernel.json");
    let root = dir.join("root");
    // The marker's paths are located again under this cache's `root`, so a cache that was moved
    // or copied (`cp -al`) keeps its kernels.
    if let Ok(text) = std::fs::read_to_string(&marker) {
        if let Ok(cached) = serde_json::from_str::<Kernel>(&text) {
            if let Ok(kernel) = locate(name, &root, &cached.package_version) {
                return Ok((kernel, true));
            }
        }
    }
    let apt = Apt::new(cache)?;
    let packages = apt.packages_of(suite).await?;
    let download = tempfile::tempdir_in(&cache.root)?;
    apt.download(&packages, suite, download.path()).await?;
    crate::files::remove_tree(&root)?;
    std::fs::create_dir_all(&root)?;
    for deb in std::fs::read_dir(download.path())? {
        let deb = deb?.path();
        let argv = ["dpkg".to_string(), "-x".into(), deb.display().to_string(), root.display().to_string()];
        crate::process::Command::new(argv, APT_LIMIT).run().await?.checked()?;
    }
    let kernel = locate(name, &root, &apt.version_of(META_PACKAGE, suite).await.unwrap_or_default())?;
    std::fs::write(&marker, serde_json::to_string_pretty(&kernel)?)?;
    Ok((kernel, false))
}

/// Finds vmlinuz and the modules of the one kernel unpacked under `root` (the image may keep them
/// in /boot and /lib/modules, or, since 7.x, both under /usr/lib/modules/<release>/).
fn locate(name: &str, root: &Path, package_version: &str) -> anyhow::Result<Kernel> {
    for modules_root in [root.join("lib/modules"), root.join("usr/lib/modules")] {
        let Ok(entries) = std::fs::read_dir(&modules_root) else { continue };
        for entry in entries.flatten() {
            let release = entry.file_name().to_string_lossy().to_string();
            let candidates = [entry.path().join("vmlinuz"), root.join("boot").join(format!("vmlinuz-{release}"))];
            if let Some(vmlinuz) = candidates.into_iter().find(|p| p.is_file()) {
                return Ok(Kernel {
                    name: name.to_string(),
                    release,
                    package_version: package_version.to_string(),
                    vmlinuz,
                    modules_root,
                });
            }
        }
    }
    anyhow::bail!("no vmlinuz with its modules found under {}", root.display())
}

/// The kernels' apt: every kernel suite's index in the cache (`stack::apt`).
struct Apt {
    apt: crate::stack::apt::PrivateApt,
}

impl Apt {
    fn new(cache: &Cache) -> anyhow::Result<Apt> {
        let apt = crate::stack::apt::PrivateApt::new(cache.root.join("kernels/apt"), "deb", &kernel_suites())?;
        Ok(Apt { apt })
    }

    async fn command(&self, tool: &str, args: &[&str], cwd: Option<&Path>) -> anyhow::Result<String> {
        self.apt.command(tool, args, cwd).await
    }

    /// `apt-cache show PKG/SUITE`, updating the private index once when it does not know it.
    async fn show(&self, package: &str, suite: &str) -> anyhow::Result<String> {
        let spec = format!("{package}/{suite}");
        match self.command("apt-cache", &["show", &spec], None).await {
            Ok(text) if !text.trim().is_empty() => Ok(text),
            _ => {
                self.command("apt-get", &["update", "-qq"], None).await?;
                self.command("apt-cache", &["show", &spec], None).await
            }
        }
    }

    async fn version_of(&self, package: &str, suite: &str) -> anyhow::Result<String> {
        let text = self.show(package, suite).await?;
        field(&text, "Version").context("no Version field")
    }

    /// The kernel packages behind the suite's cloud meta-package: the image, and the binary and
    /// modules packages newer kernels split out of it.
    async fn packages_of(&self, suite: &str) -> anyhow::Result<Vec<String>> {
        let meta = self.show(META_PACKAGE, suite).await?;
        let mut wanted: Vec<String> = kernel_depends(&meta);
        let mut i = 0;
        while i < wanted.len() {
            let text = self.show(&wanted[i], suite).await?;
            for dep in kernel_depends(&text) {
                if !wanted.contains(&dep) {
                    wanted.push(dep);
                }
            }
            i += 1;
        }
        anyhow::ensure!(!wanted.is_empty(), "{META_PACKAGE} in {suite} depends on no kernel image");
        Ok(wanted)
    }

    async fn download(&self, packages: &[String], suite: &str, into: &Path) -> anyhow::Result<()> {
        let specs: Vec<String> = packages.iter().map(|p| format!("{p}/{suite}")).collect();
        let mut args = vec!["download", "-qq"];
        args.extend(specs.iter().map(String::as_str));
        self.command("apt-get", &args, Some(into)).await.map(|_| ())
    }
}

/// The private apt's sources: each kernel suite, signed by Debian's archive keyring.
fn field(text: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}:");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().to_string())
}

/// The kernel packages (`linux-image-*`, `linux-binary-*`, `linux-modules-*`) in the first
/// `Depends:` of an `apt-cache show` text.
fn kernel_depends(text: &str) -> Vec<String> {
    let Some(depends) = field(text, "Depends") else { return Vec::new() };
    depends
        .split([',', '|'])
        .filter_map(|d| d.split_whitespace().next())
        .filter(|n| ["linux-image-", "linux-binary-", "linux-modules-"].iter().any(|p| n.starts_with(p)))
        .filter(|n| !n.starts_with("linux-image-cloud"))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_image_binary_and_modules_packages_but_not_initramfs_tools() {
        let text = "Package: linux-image-7.2.13+deb14-cloud-amd64\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), linux-modules-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)\nVersion: 7.2.13-1\n";
        assert_eq!(
            kernel_depends(text),
            ["linux-binary-7.2.13+deb14-cloud-amd64", "linux-modules-7.2.13+deb14-cloud-amd64"]
        );
        let meta = "Depends: linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)\n";
        assert_eq!(kernel_depends(meta), ["linux-image-6.1.0-50-cloud-amd64"]);
    }

    #[test]
    fn finds_a_kernel_in_either_layout() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib/modules/7.2.13+deb14-cloud-amd64")).unwrap();
        std::fs::write(root.path().join("usr/lib/modules/7.2.13+deb14-cloud-amd64/vmlinuz"), "k").unwrap();
        let k = locate("sid", root.path(), "7.2.13-1").unwrap();
        assert_eq!(k.release, "7.2.13+deb14-cloud-amd64");
        let old = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(old.path().join("lib/modules/6.1.0-50-cloud-amd64")).unwrap();
        std::fs::create_dir_all(old.path().join("boot")).unwrap();
        std::fs::write(old.path().join("boot/vmlinuz-6.1.0-50-cloud-amd64"), "k").unwrap();
        assert_eq!(
            locate("bookworm", old.path(), "").unwrap().vmlinuz,
            old.path().join("boot/vmlinuz-6.1.0-50-cloud-amd64")
        );
        assert!(locate("x", tempfile::tempdir().unwrap().path(), "").is_err());
    }
}
