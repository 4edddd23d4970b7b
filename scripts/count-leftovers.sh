#!/bin/sh
# Counts what a criu-matrix run could leave behind on this machine. Prints one line per kind and
# exits 1 if anything is left. Zombies are not counted: an exited conmon waits for PID 1 to reap it.
# Engine processes: podman's (conmon, podman), docker's (dockerd, its containerd, the containerd
# shims that hold containers, docker-proxy), the runtimes and CRIU, and qemu of VM cells.
set -u
init_ns=$(readlink /proc/1/ns/mnt)
own_ns=$(readlink /proc/self/ns/mnt)
procs=0; docker=0; other_ns=0
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  state=$(awk '{print $3}' "$p/stat" 2>/dev/null) || continue
  [ "$state" = Z ] && continue
  comm=$(cat "$p/comm" 2>/dev/null) || continue
  [ -e "$p/exe" ] || continue  # kernel threads (kdevtmpfs has a mount namespace of its own)
  case "$comm" in
    dockerd|containerd|containerd-shim*|docker-proxy) docker=$((docker + 1)); echo "  docker process $pid $comm";;
    conmon|crun|runc|criu|podman|qemu-system-*) procs=$((procs + 1)); echo "  process $pid $comm";;
  esac
  ns=$(readlink "$p/ns/mnt" 2>/dev/null) || continue
  [ "$ns" != "$init_ns" ] && [ "$ns" != "$own_ns" ] && { other_ns=$((other_ns + 1)); echo "  in another mount namespace: $pid $comm"; }
done
# A checkpoint cut short can leave a container's cgroup frozen, and its tasks with it; a task in
# uninterruptible sleep (D) that stays there is stuck (a moment's I/O wait is not: re-run to see).
frozen=0
for f in $(find /sys/fs/cgroup -name freezer.state 2>/dev/null); do
  case "$(cat "$f" 2>/dev/null)" in FROZEN|FREEZING) frozen=$((frozen + 1)); echo "  frozen: $f";; esac
done
for f in $(find /sys/fs/cgroup -name cgroup.freeze 2>/dev/null); do
  [ "$(cat "$f" 2>/dev/null)" = 1 ] && { frozen=$((frozen + 1)); echo "  frozen: $f"; }
done
d_state=0
for t in /proc/[0-9]*/task/[0-9]*; do
  [ -e "${t%/task/*}/exe" ] || continue  # kernel threads
  state=$(sed 's/.*) //' "$t/stat" 2>/dev/null | cut -c1)
  [ "$state" = D ] && { d_state=$((d_state + 1)); echo "  state D: ${t#/proc/} $(cat "$t/comm" 2>/dev/null) in $(cat "$t/wchan" 2>/dev/null)"; }
done
mounts=$(cat /proc/[0-9]*/mountinfo 2>/dev/null | grep -cE ' - (overlay|fuse)')
cgroups=$(find /sys/fs/cgroup -name 'libpod*' 2>/dev/null | wc -l)
docker_cgroups=$(find /sys/fs/cgroup -name 'docker*' 2>/dev/null | wc -l)
echo "engine/runtime processes (podman, runtimes, criu, qemu): $procs"
echo "docker processes (dockerd, containerd, shims): $docker"
echo "processes in other mount namespaces: $other_ns"
echo "overlay/fuse mounts (any process): $mounts"
echo "libpod cgroups: $cgroups"
echo "docker cgroups: $docker_cgroups"
echo "frozen or freezing cgroups: $frozen"
echo "tasks in uninterruptible sleep (D): $d_state"
[ $((procs + docker + other_ns + mounts + cgroups + docker_cgroups + frozen + d_state)) -eq 0 ]
