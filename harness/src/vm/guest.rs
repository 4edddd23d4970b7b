//! Inside the VM: PID 1, its systemd unit, and the marks it prints on the console. Which cell the
//! guest runs is `host::guest` (the guest's harness reads it from its environment).

/// Printed on the console by the guest: the host times boot-to-ready and the run by them.
pub const READY_MARK: &str = "criu-matrix-guest: ready";
pub const DONE_MARK: &str = "criu-matrix-guest: done";

/// PID 1 with the plain init (`/criu-matrix-init` on the stack disk), and the script systemd's
/// unit runs. `$1` is `plain` or `systemd`. It mounts what podman and CRIU need (ENVIRONMENT.md:
/// /dev/shm, /dev/mqueue, `lo` up, tun and overlay loaded), the cgroup layout the kernel command
/// line asks for, the modules and work disks (NVMe namespaces 2 and 3), runs the cell's
/// `/work/guest.sh`, and powers off.
pub const INIT_SCRIPT: &str = r#"#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mode=${1:-plain}
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^criu_matrix\.$1=//p" | tail -n 1; }
if [ "$mode" = plain ]; then
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev 2>/dev/null
  mkdir -p /dev/pts /dev/shm /dev/mqueue
  mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
  mount -t tmpfs -o mode=1777 shm /dev/shm
  mount -t mqueue mqueue /dev/mqueue
  mount -t tmpfs -o mode=755 run /run
  mount -t tmpfs -o mode=1777 tmp /tmp
  mount -o remount,rw /
  case "$(arg cgroup)" in
    v1)
      mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
      for c in $(awk 'NR > 1 && $4 == 1 { print $1 }' /proc/cgroups); do
        mkdir -p "/sys/fs/cgroup/$c"
        mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" 2>/dev/null || rmdir "/sys/fs/cgroup/$c"
      done
      mkdir -p /sys/fs/cgroup/systemd
      mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd ;;
    *) mount -t cgroup2 cgroup2 /sys/fs/cgroup ;;
  esac
  hostname criu-matrix-vm
fi
mkdir -p /work /lib/modules
for d in /sys/block/nvme*; do
  case "$(cat "$d/nsid" 2>/dev/null)" in
    2) mount -o ro "/dev/${d##*/}" /lib/modules ;;
    3) mount "/dev/${d##*/}" /work ;;
  esac
done
# podman needs tun and overlay; CRIU needs the socket diag modules to dump sockets; the cells'
# records go out through a virtio-serial port (virtio_pci, virtio_console: modules on 6.1).
for m in virtio_pci virtio_console tun overlay unix_diag inet_diag tcp_diag udp_diag raw_diag netlink_diag packet_diag; do
  modprobe -q "$m"
done
ip link set lo up
echo "criu-matrix-guest: ready $(cut -d' ' -f1 /proc/uptime)s after boot, $(uname -r), cgroup $(stat -fc %T /sys/fs/cgroup), init $mode" >/dev/console
sh /work/guest.sh </dev/null >/dev/console 2>&1
echo "criu-matrix-guest: done $?" >/dev/console
umount /work
sync
echo o >/proc/sysrq-trigger
sleep 60
"#;

/// The systemd unit that runs the cell when systemd is PID 1.
/// It waits only for basic.target and D-Bus (podman's systemd cgroup manager talks to systemd
/// over the bus): the minimal rootfs has no udev, so units waiting for devices would hold
/// multi-user.target for their 90 s job timeout.
pub const SYSTEMD_UNIT: &str = "[Unit]
Description=criu-matrix cell
Wants=dbus.socket
After=basic.target dbus.socket
[Service]
Type=oneshot
ExecStart=/criu-matrix-init systemd
StandardOutput=journal+console
StandardError=journal+console
[Install]
WantedBy=multi-user.target
";
