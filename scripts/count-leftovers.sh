#!/bin/sh
# Counts what a criu-matrix run could leave behind on this machine. Prints one line per kind and
# exits 1 if anything is left. Zombies are not counted: an exited conmon waits for PID 1 to reap it.
# Engine processes: podman's (conmon, podman), docker's (dockerd, its containerd, the containerd
# shims that hold containers, docker-proxy), the runtimes and CRIU, and qemu of VM cells.
#
#   scripts/count-leftovers.sh [--cache DIR]
#
# With --cache, only what belongs to the runs of that cache is counted, for a machine that other
# runs share: processes whose root is one of the cache's rootfs trees (a stack's, a tools
# rootfs's: qemu), the mounts of their namespaces, and cgroups holding one of them; the libpod
# and docker cgroups are then those left empty by containers of the cache's stacks (their IDs
# found in the cache's container storage or in the harness's runs is not possible once they are
# removed, so empty ones are counted host-wide and shown apart).
set -u
cache=
if [ "${1:-}" = --cache ]; then
  cache=$(readlink -f "$2")
fi
init_ns=$(readlink /proc/1/ns/mnt)
own_ns=$(readlink /proc/self/ns/mnt)
# Whether process $1 belongs to the cache: its root mount is a tree under the cache (the root
# field of the mount at / in its own mountinfo), or it runs a program from the cache.
of_cache() {
  [ -z "$cache" ] && return 0
  root=$(awk '$5 == "/" { print $4; exit }' "/proc/$1/mountinfo" 2>/dev/null)
  case "$root" in "$cache"/*) return 0;; esac
  exe=$(readlink "/proc/$1/exe" 2>/dev/null)
  case "$exe" in "$cache"/*) return 0;; esac
  return 1
}
# The criu-matrix process a process descends from, if one is alive: then it is that run's, in
# use, not left behind (what a killed run leaves is reparented away from it).
live_run() {
  at=$1
  while [ "$at" -gt 1 ] 2>/dev/null; do
    [ "$(cat "/proc/$at/comm" 2>/dev/null)" = criu-matrix ] && { echo "$at"; return 0; }
    at=$(awk '{ sub(/.*\) /, ""); print $2 }' "/proc/$at/stat" 2>/dev/null) || return 1
  done
  return 1
}
procs=0; docker=0; other_ns=0; mounts=0; ours=; live=0
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  state=$(awk '{print $3}' "$p/stat" 2>/dev/null) || continue
  [ "$state" = Z ] && continue
  comm=$(cat "$p/comm" 2>/dev/null) || continue
  [ -e "$p/exe" ] || continue  # kernel threads (kdevtmpfs has a mount namespace of its own)
  of_cache "$pid" || continue
  if [ -n "$cache" ] && run=$(live_run "$pid"); then
    live=$((live + 1)); echo "  in use by the live run $run: $pid $comm"; continue
  fi
  ours="$ours $pid"
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
  if [ -n "$cache" ]; then p=${t#/proc/}; case " $ours " in *" ${p%%/*} "*) ;; *) continue;; esac; fi
  state=$(sed 's/.*) //' "$t/stat" 2>/dev/null | cut -c1)
  [ "$state" = D ] && { d_state=$((d_state + 1)); echo "  state D: ${t#/proc/} $(cat "$t/comm" 2>/dev/null) in $(cat "$t/wchan" 2>/dev/null)"; }
done
if [ -z "$cache" ]; then
  mounts=$(cat /proc/[0-9]*/mountinfo 2>/dev/null | grep -cE ' - (overlay|fuse)')
  cgroups=$(find /sys/fs/cgroup -name 'libpod*' 2>/dev/null | wc -l)
  docker_cgroups=$(find /sys/fs/cgroup -name 'docker*' 2>/dev/null | wc -l)
else
  # Mount namespaces are counted once each, through one of the cache's processes in it.
  seen=
  for pid in $ours; do
    ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || continue
    case " $seen " in *" $ns "*) continue;; esac
    seen="$seen $ns"
    n=$(grep -cE ' - (overlay|fuse)' "/proc/$pid/mountinfo" 2>/dev/null)
    mounts=$((mounts + ${n:-0}))
  done
  cgroups=0; docker_cgroups=0
  for d in $(find /sys/fs/cgroup -name 'libpod*' -o -name 'docker*' 2>/dev/null); do
    [ -f "$d/cgroup.procs" ] || continue
    for pid in $(cat "$d/cgroup.procs" 2>/dev/null); do
      case " $ours " in *" $pid "*)
        case "$d" in *libpod*) cgroups=$((cgroups + 1));; *) docker_cgroups=$((docker_cgroups + 1));; esac
        echo "  cgroup holding $pid: $d"; break;;
      esac
    done
  done
  empty=$(for d in $(find /sys/fs/cgroup -name 'libpod*' -o -name 'docker*' 2>/dev/null); do
    [ -f "$d/cgroup.procs" ] && [ -z "$(cat "$d/cgroup.procs" 2>/dev/null)" ] && echo "$d"; done | wc -l)
  echo "(host-wide, any run's: empty libpod/docker cgroups: $empty; processes of live runs, not counted: $live)"
fi
echo "engine/runtime processes (podman, runtimes, criu, qemu): $procs"
echo "docker processes (dockerd, containerd, shims): $docker"
echo "processes in other mount namespaces: $other_ns"
echo "overlay/fuse mounts (any process): $mounts"
echo "libpod cgroups: $cgroups"
echo "docker cgroups: $docker_cgroups"
echo "frozen or freezing cgroups: $frozen"
echo "tasks in uninterruptible sleep (D): $d_state"
[ $((procs + docker + other_ns + mounts + cgroups + docker_cgroups + frozen + d_state)) -eq 0 ]
