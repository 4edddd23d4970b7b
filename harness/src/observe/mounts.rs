//! The container's mount table as its first process sees it (`/proc/PID/mountinfo`, read from
//! the host with procfs), made comparable across a restore: mount IDs and device numbers are
//! new after every restore and are left out; a container's 64-hex id (in the paths of its own
//! files: /etc/hostname, /etc/hosts, ...) reads `<id>`, so a restore into a new container
//! compares its own files with the old one's; overlay's `lowerdir`/`upperdir`/`workdir` name
//! the engine's storage and are left out.

use super::Probe;
use crate::record::{MountChange, MountSeen};
use regex::Regex;
use std::collections::BTreeMap;

/// One mountinfo line, normalized.
pub fn seen(m: &procfs::process::MountInfo) -> MountSeen {
    let ids = Regex::new(r"[0-9a-f]{64}").expect("static regex");
    let norm = |s: &str| ids.replace_all(s, "<id>").into_owned();
    let options = |map: &std::collections::HashMap<String, Option<String>>, skip: &[&str]| -> String {
        let mut v: Vec<String> = map
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={}", norm(v)),
                None => k.clone(),
            })
            .collect();
        v.sort();
        v.join(",")
    };
    MountSeen {
        mount_point: norm(&m.mount_point.to_string_lossy()),
        root: norm(&m.root),
        options: options(&m.mount_options, &[]),
        fs_type: m.fs_type.clone(),
        source: norm(m.mount_source.as_deref().unwrap_or_default()),
        super_options: options(
            &m.super_options,
            &["lowerdir", "upperdir", "workdir", "redirect_dir", "index", "metacopy"],
        ),
    }
}

/// What changed between two readings of a mount table, mount point by mount point (a mount
/// point mounted twice is compared in order): mounts gone, mounts new, and each field that differs.
pub fn changes(before: &[MountSeen], after: &[MountSeen]) -> Vec<MountChange> {
    let keyed = |list: &[MountSeen]| -> BTreeMap<(String, usize), MountSeen> {
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        list.iter()
            .map(|m| {
                let n = count.entry(m.mount_point.clone()).or_default();
                *n += 1;
                ((m.mount_point.clone(), *n), m.clone())
            })
            .collect()
    };
    let (b, a) = (keyed(before), keyed(after));
    let mut out = Vec::new();
    for (key, old) in &b {
        match a.get(key) {
            None => out.push(MountChange {
                mount_point: key.0.clone(),
                field: "mount".into(),
                before: old.describe(),
                after: "(gone)".into(),
            }),
            Some(new) => {
                for (field, x, y) in [
                    ("root", &old.root, &new.root),
                    ("options", &old.options, &new.options),
                    ("fs_type", &old.fs_type, &new.fs_type),
                    ("source", &old.source, &new.source),
                    ("super_options", &old.super_options, &new.super_options),
                ] {
                    if x != y {
                        out.push(MountChange {
                            mount_point: key.0.clone(),
                            field: field.into(),
                            before: x.clone(),
                            after: y.clone(),
                        });
                    }
                }
            }
        }
    }
    for (key, new) in &a {
        if !b.contains_key(key) {
            out.push(MountChange {
                mount_point: key.0.clone(),
                field: "mount".into(),
                before: "(none)".into(),
                after: new.describe(),
            });
        }
    }
    out
}

impl Probe<'_> {
    /// The container's mount table, as its first process sees it.
    pub async fn mounts(&self, name: &str) -> Result<Vec<MountSeen>, String> {
        let pid = self.pid(name).await?;
        let process = super::proc::process(&self.session.host_path("/proc"), pid)
            .ok_or_else(|| format!("failed to open /proc/{pid} of container {name}"))?;
        let infos = process
            .mountinfo()
            .map_err(|e| format!("failed to read /proc/{pid}/mountinfo of container {name}: {e}"))?;
        Ok(infos.iter().map(seen).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> MountSeen {
        seen(&procfs::process::MountInfo::from_line(line).unwrap())
    }

    const ID_A: &str = "9a932a3c66c492bd5edc61c94d4b5dc41b1e8558c5883c1eb46e86e47a4df9f1";
    const ID_B: &str = "1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff001";

    #[test]
    fn a_restore_changes_only_what_really_changed() {
        let before = vec![
            parse("1001 1000 0:55 / / rw,relatime - overlay overlay rw,lowerdir=/a:/b,upperdir=/u1,workdir=/w1"),
            parse(&format!("1002 1001 0:56 /{ID_A}/userdata/hostname /etc/hostname rw,nosuid,nodev - tmpfs tmpfs rw")),
            parse("1003 1001 0:33 /libpod_parent/libpod-abc /sys/fs/cgroup/cpu ro,nosuid - cgroup cgroup rw,cpu"),
            parse("1004 1001 0:5 /null /proc/timer_list ro,nosuid - devtmpfs udev rw"),
        ];
        let after = vec![
            parse("2001 2000 0:75 / / rw,relatime - overlay overlay rw,lowerdir=/a:/b,upperdir=/u2,workdir=/w2"),
            parse(&format!("2002 2001 0:76 /{ID_B}/userdata/hostname /etc/hostname rw,nosuid,nodev - tmpfs tmpfs rw")),
            parse("2003 2001 0:33 /libpod_parent/conmon /sys/fs/cgroup/cpu ro,nosuid - cgroup cgroup rw,cpu"),
            parse("2004 2001 0:5 /null /proc/timer_list rw - devtmpfs udev rw"),
        ];
        let found = changes(&before, &after);
        let fields: Vec<(&str, &str)> = found.iter().map(|c| (c.mount_point.as_str(), c.field.as_str())).collect();
        assert_eq!(fields, [("/proc/timer_list", "options"), ("/sys/fs/cgroup/cpu", "root")], "{found:?}");
        assert_eq!((found[0].before.as_str(), found[0].after.as_str()), ("nosuid,ro", "rw"));
        assert!(changes(&before, &before).is_empty());
        let gone = changes(&before, &after[..3]);
        assert!(gone.iter().any(|c| c.field == "mount" && c.after == "(gone)"), "{gone:?}");
    }
}
