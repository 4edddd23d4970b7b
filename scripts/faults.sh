#!/bin/bash
# Faults injected into real runs (issue 18, point 7), each followed by what it left: the cell's
# verdict, the records kept, and `count-leftovers.sh --cache`. A fault must end as `error`
# (never `fail` or `pass`) or be recovered, lose no finished record, and leave nothing (or
# leave only what the next run cleans, after a SIGKILL).
#
#   scripts/faults.sh FAULT...     (or `all`)
#
#   interrupt-vm     Ctrl-C (SIGINT) the harness while its VM cell's qemu runs; qemu must be
#                    gone when the harness has exited
#   kill-qemu        SIGKILL qemu in the middle of a VM cell
#   kill-dockerd     SIGKILL the stack's dockerd in the middle of a docker cell
#   kill-criu        SIGKILL criu during a checkpoint (a dump)
#   full-disk        a cache on a small tmpfs that fills up while a stack is provisioned
#   sigkill-harness  SIGKILL the harness in the middle of its second cell, then run again
#   corrupt-marker   garbage in a stack rootfs's marker file, then a run
#   half-image       SIGKILL the harness in the middle of an image build, then run again
#
# Environment: CRIU_MATRIX_CACHE (required: the cache to use), FAULT_BIN (default
# target/debug/criu-matrix), FAULT_STACK (default sid), FAULT_KERNEL (a VM kernel, default
# bookworm). Each fault prints one `RESULT` line; logs go to target/faults/.
set -u
cd "$(dirname "$0")/.."
: "${CRIU_MATRIX_CACHE:?set CRIU_MATRIX_CACHE to the cache to use}"
BIN=${FAULT_BIN:-target/debug/criu-matrix}
STACK=${FAULT_STACK:-sid}
KERNEL=${FAULT_KERNEL:-bookworm}
LOGS=target/faults
mkdir -p "$LOGS"

# Processes that descend from $1 (by their PPID chain), one PID a line.
descendants() {
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END { for (p in parent) { q = p; while (q > 1) { if (parent[q] == root) { print p; break } q = parent[q] } } }'
}
# The first descendant of $1 whose command name is $2.
descendant_named() {
  for p in $(descendants "$1"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = "$2" ] && { echo "$p"; return 0; }; done
  return 1
}
# Waits up to $1 seconds for the command "$2..." to succeed; gives up early once the run
# ($RUN_PID, when set) has exited.
wait_for() {
  limit=$1; shift; start=$(date +%s)
  until "$@"; do
    [ $(( $(date +%s) - start )) -ge "$limit" ] && return 1
    [ -n "${RUN_PID:-}" ] && ! kill -0 "$RUN_PID" 2>/dev/null && return 1
    sleep 0.05
  done
}
# Starts the harness in a session of its own; sets RUN_PID, writes the log to $LOGS/$1.log.
start_run() {
  log=$LOGS/$1.log; shift
  setsid "$BIN" run --no-progress "$@" >"$log" 2>&1 &
  RUN_PID=$!
}
# The run directory a log names (`results: DIR`).
run_dir_of() { sed -n 's/^results: //p' "$1" | tail -n 1; }
# The verdicts of a run directory's records, as `verdict` words.
verdicts_of() {
  [ -n "$1" ] && [ -f "$1/cells.jsonl" ] || { echo "(no records)"; return; }
  python3 -c 'import json,sys; print(" ".join(json.loads(l)["verdict"] for l in open(sys.argv[1]) if l.strip()) or "(none)")' "$1/cells.jsonl"
}
# The runs the harness made since $1 (a marker file), their verdicts.
recent_verdicts() {
  for d in $(find results/runs -maxdepth 1 -mindepth 1 -type d -newer "$1" | sort); do echo "$(basename "$d"): $(verdicts_of "$d")"; done
}
leftovers() {
  out=$(sh scripts/count-leftovers.sh --cache "$CRIU_MATRIX_CACHE" 2>&1)
  echo "$out" | awk -F': ' '/^[a-z].*: [0-9]+$/ { n += $2 } END { print n + 0 }'
}
result() { echo "RESULT $*" | tee -a "$LOGS/results.txt"; }

vm_cell=(--matrix nightly --stack "$STACK" --kernel "$KERNEL" --scenario baseline-counter --runtime crun --cgroup v2 --init plain)
podman_cells=(--stack "$STACK" --engine podman --runtime crun --scenario baseline-counter --scenario baseline-counter-export)

fault_interrupt_vm() {
  marker=$(mktemp); start_run interrupt-vm "${vm_cell[@]}"
  if ! wait_for 1800 descendant_named "$RUN_PID" qemu-system-x86 >/dev/null; then
    result "interrupt-vm: no qemu started"; kill -INT "$RUN_PID"; wait "$RUN_PID"; return
  fi
  qemu=$(descendant_named "$RUN_PID" qemu-system-x86); sleep 5
  kill -INT "$RUN_PID"; wait "$RUN_PID"; code=$?
  if [ -e "/proc/$qemu" ] && [ "$(awk '{print $3}' /proc/$qemu/stat 2>/dev/null)" != Z ]; then
    after="qemu $qemu STILL RUNNING at the harness's exit"
    t0=$(date +%s); RUN_PID= wait_for 60 sh -c "! [ -e /proc/$qemu ]" && after="$after (gone $(( $(date +%s) - t0 )) s later)"
  else
    after="qemu gone at the harness's exit"
  fi
  result "interrupt-vm: exit $code, $after, said: $(grep -E '^interrupted: cleanup' "$LOGS/interrupt-vm.log" | tail -n 1); records: $(recent_verdicts "$marker"); leftovers $(leftovers)"
  rm -f "$marker"
}

fault_kill_qemu() {
  marker=$(mktemp); start_run kill-qemu "${vm_cell[@]}"
  if wait_for 1800 grep -q "vm boot" "$LOGS/kill-qemu.log"; then
    sleep 3; qemu=$(descendant_named "$RUN_PID" qemu-system-x86) && kill -KILL "$qemu"
  fi
  wait "$RUN_PID"; code=$?
  result "kill-qemu: exit $code, qemu ${qemu:-?} killed; records: $(verdicts_of "$(run_dir_of "$LOGS/kill-qemu.log")") ($(grep -o 'error ([0-9.]*s): [^|]*' "$LOGS/kill-qemu.log" | head -n 1 | cut -c1-160)); leftovers $(leftovers)"
  rm -f "$marker"
}

fault_kill_dockerd() {
  start_run kill-dockerd --stack "$STACK" --engine docker --runtime runc --scenario baseline-counter
  if wait_for 900 descendant_named "$RUN_PID" containerd-shim >/dev/null; then
    dockerd=$(descendant_named "$RUN_PID" dockerd) && kill -KILL "$dockerd"
  fi
  wait "$RUN_PID"; code=$?
  result "kill-dockerd: exit $code, dockerd ${dockerd:-?} killed; records: $(verdicts_of "$(run_dir_of "$LOGS/kill-dockerd.log")") ($(grep -oE '(error|fail|pass|reproduced) \([0-9.]*s\): .*' "$LOGS/kill-dockerd.log" | head -n 1 | cut -c1-160)); leftovers $(leftovers)"
}

fault_kill_criu() {
  # The Java daemon's dumps take a second or more: time to see criu and kill it.
  start_run kill-criu --stack "$STACK" --engine podman --runtime runc --scenario java-daemon-double-checkpoint-in-place
  criu=
  # Found by name (fast), killed only if it is the run's.
  mine() { for p in $(pgrep -x criu); do descendants "$RUN_PID" | grep -qx "$p" && { echo "$p"; return 0; }; done; return 1; }
  if wait_for 900 mine >/dev/null; then
    criu=$(mine) && kill -KILL "$criu"
  fi
  wait "$RUN_PID"; code=$?
  result "kill-criu: exit $code, criu ${criu:-(never seen)} killed; records: $(verdicts_of "$(run_dir_of "$LOGS/kill-criu.log")") ($(grep -oE '(error|fail|pass|reproduced) \([0-9.]*s\): .*' "$LOGS/kill-criu.log" | head -n 1 | cut -c1-200)); leftovers $(leftovers)"
}

fault_full_disk() {
  small=$(mktemp -d); mount -t tmpfs -o size=300m criu-matrix-full "$small"
  CRIU_MATRIX_CACHE=$small start_run full-disk --stack bookworm --engine podman --runtime runc --scenario baseline-counter
  wait "$RUN_PID"; code=$?
  left=$(CRIU_MATRIX_CACHE=$small sh scripts/count-leftovers.sh --cache "$small" | awk -F': ' '/^[a-z].*: [0-9]+$/ { n += $2 } END { print n + 0 }')
  result "full-disk: exit $code; records: $(verdicts_of "$(run_dir_of "$LOGS/full-disk.log")") ($(grep -oE 'error \([0-9.]*s\): .*' "$LOGS/full-disk.log" | head -n 1 | cut -c1-200)); leftovers in the small cache $left, mounts of it $(grep -c "$small" /proc/self/mountinfo)"
  umount "$small" && rmdir "$small"
}

fault_sigkill_harness() {
  start_run sigkill-harness "${podman_cells[@]}"
  # The second cell's container, then SIGKILL.
  wait_for 900 grep -q "baseline-counter-export::.*started" "$LOGS/sigkill-harness.log" &&
    wait_for 300 descendant_named "$RUN_PID" conmon >/dev/null
  kill -KILL "$RUN_PID"; wait "$RUN_PID" 2>/dev/null
  dir=$(ls -dt results/runs/2* | head -n 1)
  kept=$(verdicts_of "$dir"); before=$(leftovers)
  start_run sigkill-harness-again "${podman_cells[@]}"; wait "$RUN_PID"; code=$?
  result "sigkill-harness: killed run kept: $kept; leftovers after the kill $before; the next run: exit $code, $(verdicts_of "$(run_dir_of "$LOGS/sigkill-harness-again.log")"), said: $(grep -oE 'cleaning up after an earlier run[^)]*\)' "$LOGS/sigkill-harness-again.log" | head -n 1); leftovers $(leftovers)"
}

fault_corrupt_marker() {
  marker_file=$CRIU_MATRIX_CACHE/stacks/$STACK/rootfs/.criu-matrix-stack.json
  cp "$marker_file" "$LOGS/marker.saved"
  printf '{"suite": "%s", "packages": [tru' "$STACK" >"$marker_file"
  start_run corrupt-marker "${podman_cells[@]}"; wait "$RUN_PID"; code=$?
  result "corrupt-marker: exit $code; records: $(verdicts_of "$(run_dir_of "$LOGS/corrupt-marker.log")"); $(grep -oE 'provision stack rootfs: [^|]*' "$LOGS/corrupt-marker.log" | head -n 1); marker now valid JSON: $(python3 -c 'import json,sys; json.load(open(sys.argv[1])); print("yes")' "$marker_file" 2>/dev/null || echo no); leftovers $(leftovers)"
}

fault_half_image() {
  # A copy of the project whose java-daemon image has a first step of its own, so that no
  # layer of an earlier build is reused and the build (a JDK download) takes a while.
  proj=$LOGS/half-image-project; rm -rf "$proj"; mkdir -p "$proj/results"
  cp -r scenarios images matrices "$proj/"
  sed -i "0,/^FROM .*/s//&\nRUN echo 'fault injected at $(date +%s%N)' >\/fault-marker/" "$proj/images/java-daemon/Containerfile"
  export CRIU_MATRIX_PROJECT=$PWD/$proj
  start_run half-image --stack "$STACK" --engine podman --runtime runc --scenario java-daemon-double-checkpoint-in-place
  wait_for 900 grep -q "image localhost/criu-matrix/java-daemon.* \.\.\.$" "$LOGS/half-image.log" && sleep 20
  building=$(descendants "$RUN_PID" | wc -l); built=$(grep -c "image localhost/criu-matrix/java-daemon.*: done" "$LOGS/half-image.log")
  kill -KILL "$RUN_PID"; wait "$RUN_PID" 2>/dev/null
  start_run half-image-again --stack "$STACK" --engine podman --runtime runc --scenario java-daemon-double-checkpoint-in-place
  wait "$RUN_PID"; code=$?
  unset CRIU_MATRIX_PROJECT
  result "half-image: killed during the build ($building processes under the harness, build finished: $built); the next run: exit $code, $(verdicts_of "$(run_dir_of "$LOGS/half-image-again.log")"), $(grep -oE 'image localhost/criu-matrix/java-daemon[^ ]*: done[^|]*' "$LOGS/half-image-again.log" | head -n 1); leftovers $(leftovers)"
  rm -rf "$proj"
}

faults=("$@")
[ "${faults[0]:-all}" = all ] && faults=(interrupt-vm kill-qemu kill-dockerd kill-criu full-disk sigkill-harness corrupt-marker half-image)
for f in "${faults[@]}"; do
  echo "== $f ($(date -u +%H:%M:%S))"
  "fault_${f//-/_}"
done
