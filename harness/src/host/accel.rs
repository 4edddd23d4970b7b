//! Deciding how a VM runs: KVM when it can boot a stock kernel, software emulation otherwise.

use std::path::Path;

/// The acceleration VMs use on this machine, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accel {
    /// `kvm` or `tcg`.
    pub name: String,
    pub why: String,
}

/// `CRIU_MATRIX_ACCEL` (`kvm`/`tcg`) wins; else KVM needs an openable /dev/kvm that is not PVM.
/// PVM (`kvm_pvm` loaded, as on Firecracker-style hosts) hangs stock Debian kernels at boot, so
/// it counts as no KVM. Read through [`super::facts`], which probes once per process.
pub(super) fn probe() -> Accel {
    let tcg = |why: String| Accel { name: "tcg".into(), why };
    if let Ok(forced) = std::env::var("CRIU_MATRIX_ACCEL") {
        return Accel { name: forced.clone(), why: format!("CRIU_MATRIX_ACCEL={forced}") };
    }
    if Path::new("/sys/module/kvm_pvm").exists() {
        return tcg("/dev/kvm is PVM (kvm_pvm is loaded): stock Debian kernels hang at boot under it".into());
    }
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Err(e) => tcg(format!("/dev/kvm cannot be opened: {e}")),
        Ok(_) if ["kvm_intel", "kvm_amd"].iter().any(|m| Path::new("/sys/module").join(m).exists()) => {
            Accel { name: "kvm".into(), why: "/dev/kvm opens and kvm_intel/kvm_amd is loaded".into() }
        }
        Ok(_) => tcg("/dev/kvm opens but neither kvm_intel nor kvm_amd is loaded".into()),
    }
}
