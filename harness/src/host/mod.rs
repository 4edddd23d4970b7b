//! The machine this process runs on, probed once: its cgroup layout, how VMs can run (KVM or
//! software emulation), and whether this process is the harness inside a criu-matrix VM.
//!
//! A step of its own, before planning: the plan takes these facts as an input, so expanding a
//! matrix is a pure function that tests can feed any machine.

pub mod accel;
pub mod guest;

pub use accel::Accel;
pub use guest::Identity;

/// What the plan and the stacks need to know about this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The cgroup layout a stack on the host kernel sees: `v2` on a pure cgroup2 host; `v1` on a
    /// v1 or hybrid host (stacks unmount the hybrid's empty cgroup2, see `stack::namespace`).
    pub cgroup: String,
    /// How a VM runs here.
    pub accel: Accel,
    /// Set when this process is the harness inside a criu-matrix VM: which cell it runs.
    pub guest: Option<Identity>,
}

/// This machine's facts, probed on first use.
pub fn facts() -> &'static HostFacts {
    static FACTS: std::sync::OnceLock<HostFacts> = std::sync::OnceLock::new();
    FACTS.get_or_init(|| HostFacts {
        cgroup: cgroup_layout().to_string(),
        accel: accel::probe(),
        guest: guest::from_env(),
    })
}

/// `v2` when `/sys/fs/cgroup` is a cgroup2 mount, else `v1`.
fn cgroup_layout() -> &'static str {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    match rustix::fs::statfs("/sys/fs/cgroup") {
        Ok(stat) if stat.f_type == CGROUP2_SUPER_MAGIC => "v2",
        _ => "v1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup_layout_is_one_of_the_axis_values() {
        assert!(crate::axes::CGROUPS.contains(&facts().cgroup.as_str()));
        assert!(crate::axes::ACCELS.contains(&facts().accel.name.as_str()));
    }
}
