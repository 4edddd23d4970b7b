//! Where a cell runs: the host kernel as it is, or a Debian kernel booted in a VM with a chosen
//! cgroup layout and PID 1. These are the `kernel`, `cgroup`, `init` and `accel` axes.

use super::MatrixFile;

/// The kernel-side coordinates of a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kernel: String,
    pub cgroup: String,
    pub init: String,
    pub accel: String,
}

/// The targets a matrix covers. The host kernel is one target (its cgroup layout and init are
/// facts, not choices); each VM kernel is crossed with the matrix's cgroups and inits.
pub fn targets(matrix: &MatrixFile) -> Vec<Target> {
    let mut out = Vec::new();
    for kernel in &matrix.kernels {
        if kernel == "host" {
            // Inside a criu-matrix VM, the running kernel is the cell's kernel on the host.
            if let Some(id) = crate::vm::guest::identity() {
                out.push(Target { kernel: id.kernel, cgroup: id.cgroup, init: id.init, accel: id.accel });
                continue;
            }
            out.push(Target {
                kernel: kernel.clone(),
                cgroup: host_cgroup().to_string(),
                init: "host".into(),
                accel: "native".into(),
            });
            continue;
        }
        let accel = crate::vm::accel::decide().name;
        for cgroup in &matrix.cgroups {
            for init in &matrix.inits {
                out.push(Target {
                    kernel: kernel.clone(),
                    cgroup: cgroup.clone(),
                    init: init.clone(),
                    accel: accel.clone(),
                });
            }
        }
    }
    out
}

/// The cgroup layout a stack on the host kernel sees: `v2` on a pure cgroup2 host; `v1` on a v1
/// or hybrid host (stacks unmount the hybrid's empty cgroup2, see `stack::namespace`).
pub fn host_cgroup() -> &'static str {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a zeroed statfs buffer we own.
    let rc = unsafe { libc::statfs(c"/sys/fs/cgroup".as_ptr(), &mut buf) };
    if rc == 0 && buf.f_type as i64 == CGROUP2_SUPER_MAGIC {
        "v2"
    } else {
        "v1"
    }
}

/// Axis values a matrix may use, checked when it is loaded.
pub const CGROUPS: [&str; 2] = ["v1", "v2"];
pub const INITS: [&str; 2] = ["plain", "systemd"];
