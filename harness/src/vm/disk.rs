//! The disks a VM boots with, all ext4 made by `mkfs.ext4 -d` from a directory (no loop mounts):
//! - the stack disk: the stack's rootfs with its container storage (podman's and docker's data
//!   root, base and scenario images already built on the host) and the guest init, cached while its inputs are unchanged and
//!   attached copy-on-write (`snapshot=on`), so a cell never dirties it;
//! - the modules disk of a kernel, cached, read-only;
//! - the work disk of one cell: the harness binary and the project in, the cell's record out.

use super::kernel::Kernel;
use super::tools::Tools;
use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bumped when what a stack disk holds changes shape.
const STACK_DISK_FORMAT: &str = "4";
/// Room left on the stack disk for containers, checkpoints and logs.
const STACK_DISK_SPARE_MB: u64 = 3072;

/// Ensures the stack disk for `stack`; returns its path and whether it was already there.
pub async fn ensure_stack_disk(
    tools: &Tools,
    vm_dir: &Path,
    stack: &str,
    rootfs: &Path,
    storage: &Path,
    docker: &Path,
    init: &str,
) -> anyhow::Result<(PathBuf, bool)> {
    let mut hash = Sha256::new();
    hash.update(STACK_DISK_FORMAT);
    hash.update(std::fs::read(rootfs.join(".criu-matrix-stack.json")).unwrap_or_default());
    // A derived stack's components (`stack::variant`): another build installed, another disk.
    hash.update(std::fs::read(rootfs.join(crate::stack::variant::MARKER)).unwrap_or_default());
    // The image list changes whenever an image is built or imported.
    hash.update(std::fs::read(storage.join("storage/overlay-images/images.json")).unwrap_or_default());
    hash.update(std::fs::read(docker.join("image/overlay2/repositories.json")).unwrap_or_default());
    hash.update(init);
    let key = format!("{:x}", hash.finalize());
    let disks = vm_dir.join("disks");
    std::fs::create_dir_all(&disks)?;
    let image = disks.join(format!("stack-{stack}-{}.img", &key[..16]));
    if image.is_file() {
        return Ok((image, true));
    }
    remove_matching(&disks, &format!("stack-{stack}-"))?;
    // A tree of hard links: the rootfs and storage are not copied, only linked, then read by mkfs.
    let staging = vm_dir.join(format!("staging-{stack}"));
    crate::files::remove_tree(&staging)?;
    link_tree(rootfs, &staging)?;
    let containers = staging.join("var/lib/containers");
    std::fs::create_dir_all(&containers)?;
    if storage.join("storage").is_dir() {
        link_tree(&storage.join("storage"), &containers.join("storage"))?;
    }
    // docker's data root as the stack's dockerd left it (idle: nothing runs while this is linked).
    if docker.join("image").is_dir() {
        let _ = std::fs::remove_dir(staging.join("var/lib/docker"));
        link_tree(docker, &staging.join("var/lib/docker"))?;
    }
    write_executable(&staging.join("criu-matrix-init"), init)?;
    // With systemd as PID 1 (when the rootfs has it) the same script runs from a unit.
    let units = staging.join("etc/systemd/system");
    std::fs::create_dir_all(units.join("multi-user.target.wants"))?;
    std::fs::write(units.join("criu-matrix.service"), super::guest::SYSTEMD_UNIT)?;
    let wants = units.join("multi-user.target.wants/criu-matrix.service");
    let _ = std::fs::remove_file(&wants);
    std::os::unix::fs::symlink("/etc/systemd/system/criu-matrix.service", wants)?;
    let size_mb = tree_megabytes(&staging)? * 5 / 4 + STACK_DISK_SPARE_MB;
    let made = make_image(tools, &staging, &image, size_mb, Layout::Partitioned).await;
    crate::files::remove_tree(&staging)?;
    made?;
    Ok((image, false))
}

/// The MBR disk signature of every stack disk: the kernel finds its root by
/// `root=PARTUUID=<signature>-01` without an initramfs, whatever order NVMe namespaces are
/// probed in (they are probed asynchronously, so `/dev/nvme0n1` is not always the first disk).
pub const DISK_SIGNATURE: u32 = 0x6372_6d78; // "crmx"
const PARTITION_OFFSET: u64 = 1 << 20;

/// The kernel argument that names the stack disk's root partition.
pub fn root_argument() -> String {
    format!("root=PARTUUID={DISK_SIGNATURE:08x}-01")
}

fn write_mbr(image: &Path, fs_bytes: u64) -> anyhow::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(image)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&mbr(fs_bytes))?;
    file.sync_all()?;
    Ok(())
}

fn mbr(fs_bytes: u64) -> [u8; 512] {
    let mut sector = [0u8; 512];
    sector[440..444].copy_from_slice(&DISK_SIGNATURE.to_le_bytes());
    let entry = &mut sector[446..462];
    entry[0] = 0x00; // not bootable: the kernel is given to qemu directly
    entry[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]); // CHS unused
    entry[4] = 0x83; // Linux
    entry[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&((PARTITION_OFFSET / 512) as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&((fs_bytes / 512) as u32).to_le_bytes());
    sector[510] = 0x55;
    sector[511] = 0xaa;
    sector
}

/// Ensures the modules disk of a kernel (holding `<release>/`, mounted as the guest's /lib/modules).
/// The package ships no `modules.dep` (its postinst makes it), so `depmod` runs here first.
pub async fn ensure_modules_disk(tools: &Tools, vm_dir: &Path, kernel: &Kernel) -> anyhow::Result<PathBuf> {
    let disks = vm_dir.join("disks");
    std::fs::create_dir_all(&disks)?;
    let image = disks.join(format!("modules-{}.img", kernel.release));
    if !image.is_file() {
        let root = kernel.modules_root.parent().and_then(Path::parent).context("modules outside a root")?;
        // depmod -b looks in BASE/lib/modules; merged-/usr packages ship usr/lib/modules only.
        if kernel.modules_root.ends_with("usr/lib/modules") && !root.join("lib").exists() {
            std::os::unix::fs::symlink("usr/lib", root.join("lib"))?;
        }
        let argv = vec!["depmod".to_string(), "-b".to_string(), tools.inner(root)?, kernel.release.clone()];
        let out = tools.run(&argv, Duration::from_secs(300)).await?;
        anyhow::ensure!(out.success(), "depmod failed: {}", out.failure_text());
        let size_mb = tree_megabytes(&kernel.modules_root)? * 5 / 4 + 64;
        mkfs(tools, &kernel.modules_root, &image, size_mb).await?;
    }
    Ok(image)
}

/// Makes the work disk of one cell from `staging`.
pub async fn make_work_disk(tools: &Tools, staging: &Path, image: &Path) -> anyhow::Result<()> {
    let size_mb = tree_megabytes(staging)? * 5 / 4 + 512;
    mkfs(tools, staging, image, size_mb).await
}

/// Copies `/` of an ext4 image out into `into` (debugfs `rdump`, no mount).
pub async fn extract(tools: &Tools, image: &Path, inner: &str, into: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(into)?;
    let request = format!("rdump {inner} {}", tools.inner(into)?);
    let argv = vec!["debugfs".to_string(), "-R".to_string(), request, tools.inner(image)?];
    let out = tools.run(&argv, Duration::from_secs(300)).await?;
    anyhow::ensure!(out.success(), "debugfs rdump failed: {}", out.stderr.trim());
    Ok(())
}

/// How a disk image is laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// The filesystem is the whole image.
    Bare,
    /// The filesystem at 1 MiB, behind an MBR with one Linux partition (the root disk).
    Partitioned,
}

async fn mkfs(tools: &Tools, dir: &Path, image: &Path, size_mb: u64) -> anyhow::Result<()> {
    make_image(tools, dir, image, size_mb, Layout::Bare).await
}

async fn make_image(tools: &Tools, dir: &Path, image: &Path, size_mb: u64, layout: Layout) -> anyhow::Result<()> {
    let partial = image.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let options = match layout {
        Layout::Bare => "root_owner=0:0".to_string(),
        Layout::Partitioned => format!("root_owner=0:0,offset={PARTITION_OFFSET}"),
    };
    let argv = vec![
        "mkfs.ext4".to_string(),
        "-q".to_string(),
        "-F".to_string(),
        "-E".to_string(),
        options,
        "-d".to_string(),
        tools.inner(dir)?,
        tools.inner(&partial)?,
        format!("{size_mb}M"),
    ];
    let out = tools.run(&argv, Duration::from_secs(900)).await?;
    if !out.success() {
        let _ = std::fs::remove_file(&partial);
        anyhow::bail!("mkfs.ext4 -d {} failed: {}", dir.display(), out.failure_text());
    }
    if layout == Layout::Partitioned {
        write_mbr(&partial, size_mb * 1024 * 1024)?;
    }
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, image)?;
    Ok(())
}

fn link_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    let argv = ["cp".to_string(), "-al".into(), from.display().to_string(), to.display().to_string()];
    crate::process::Command::new(argv, Duration::from_secs(600))
        .run_blocking()?
        .checked()
        .with_context(|| format!("failed to link {} to {}", from.display(), to.display()))?;
    Ok(())
}

pub fn write_executable(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    // Never write through a hard link into the cached rootfs.
    let _ = std::fs::remove_file(path);
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn tree_megabytes(dir: &Path) -> anyhow::Result<u64> {
    let argv = ["du".to_string(), "-s".into(), "-m".into(), "--apparent-size".into(), dir.display().to_string()];
    let out = crate::process::Command::new(argv, Duration::from_secs(600)).run_blocking()?.checked()?;
    out.stdout.split_whitespace().next().and_then(|n| n.parse().ok()).context("du printed no size")
}

fn remove_matching(dir: &Path, prefix: &str) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mbr_names_one_linux_partition_at_one_mebibyte_with_the_signature() {
        let sector = mbr(1 << 30);
        assert_eq!(&sector[510..], &[0x55, 0xaa]);
        assert_eq!(u32::from_le_bytes(sector[440..444].try_into().unwrap()), DISK_SIGNATURE);
        assert_eq!(sector[446 + 4], 0x83);
        assert_eq!(u32::from_le_bytes(sector[454..458].try_into().unwrap()), 2048);
        assert_eq!(u32::from_le_bytes(sector[458..462].try_into().unwrap()), (1u32 << 30) / 512);
        assert_eq!(root_argument(), "root=PARTUUID=63726d78-01");
    }
}
