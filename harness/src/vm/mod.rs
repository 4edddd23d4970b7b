//! The kernel axis: Debian kernels booted under qemu with a stack's rootfs, running the same cell
//! code inside the guest.

pub mod accel;
