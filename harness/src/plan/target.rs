//! Where a cell runs: the host kernel as it is, or a Debian kernel booted in a VM with a chosen
//! cgroup layout and PID 1. These are the `kernel`, `cgroup`, `init` and `accel` axes.

use super::matrix::Part;
use crate::axes::Axis;
use crate::host::HostFacts;

/// The kernel-side coordinates of a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kernel: String,
    pub cgroup: String,
    pub init: String,
    pub accel: String,
    /// Whether this process boots the kernel in a VM.
    pub in_vm: bool,
}

/// The targets a matrix part covers. The host kernel is one target (its cgroup layout and init
/// are facts, not choices); each VM kernel is crossed with the part's cgroups and inits.
pub fn targets(part: &Part, host: &HostFacts) -> Vec<Target> {
    let mut out = Vec::new();
    for kernel in part.values(Axis::Kernel) {
        if kernel == "host" {
            // Inside a criu-matrix VM, the running kernel is the cell's kernel on the host.
            if let Some(id) = &host.guest {
                let (kernel, cgroup, init, accel) =
                    (id.kernel.clone(), id.cgroup.clone(), id.init.clone(), id.accel.clone());
                out.push(Target { kernel, cgroup, init, accel, in_vm: false });
                continue;
            }
            let (cgroup, init, accel) = (host.cgroup.clone(), "host".to_string(), "native".to_string());
            out.push(Target { kernel: kernel.clone(), cgroup, init, accel, in_vm: false });
            continue;
        }
        for cgroup in part.values(Axis::Cgroup) {
            for init in part.values(Axis::Init) {
                out.push(Target {
                    kernel: kernel.clone(),
                    cgroup: cgroup.clone(),
                    init: init.clone(),
                    accel: host.accel.name.clone(),
                    in_vm: host.guest.is_none(),
                });
            }
        }
    }
    out
}
