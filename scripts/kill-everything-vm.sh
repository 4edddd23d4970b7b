#!/bin/sh
# The kill-everything case (issue 18) in two VMs, never on the host: a named cgroup v1 hierarchy
# in the guest, a sentinel in another session, one podman checkpoint/restore with crun, without
# and then with a PID namespace around the engine. Writes results/runs/kill-everything-STACK-KERNEL/.
#   scripts/kill-everything-vm.sh [STACK [KERNEL]]  (default trixie: crun 1.21, sid: crun 1.28;
#                                                   kernel bookworm: 6.1 has the v1 memory controller)
set -eu
cd "$(dirname "$0")/.."
CRIU_MATRIX_VM_REPRO=1 CRIU_MATRIX_REPRO_STACK=${1:-trixie} CRIU_MATRIX_REPRO_KERNEL=${2:-bookworm} CRIU_MATRIX_VM_APPEND="tp_printk ${CRIU_MATRIX_VM_APPEND:-}" \
  cargo test --test kill_everything -- --nocapture
