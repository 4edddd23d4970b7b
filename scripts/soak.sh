#!/bin/bash
# The soak (issue 18): a matrix run N times in a row. After each run: its wall time and exit
# code, what `count-leftovers.sh` counts, and the machine-wide figures a leak would grow (all
# processes, mounts, cgroups, the cache's disk use). Then the cells whose verdicts differ
# between runs (flaky). Nothing is retried.
#
#   scripts/soak.sh [RUNS [MATRIX]]     (default 5 runs of `default`)
#
# Environment: SOAK_BIN (default target/debug/criu-matrix), CRIU_MATRIX_CACHE (the cache, as for
# the harness). Logs go to target/soak/.
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-5}
MATRIX=${2:-default}
BIN=${SOAK_BIN:-target/debug/criu-matrix}
CACHE=${CRIU_MATRIX_CACHE:-$HOME/.cache/criu-matrix}
LOGS=target/soak
mkdir -p "$LOGS"
: >"$LOGS/runs.txt"
figures() {
  procs=$(ls -d /proc/[0-9]* 2>/dev/null | wc -l)
  mounts=$(wc -l </proc/self/mountinfo)
  cgroups=$(find /sys/fs/cgroup -type d 2>/dev/null | wc -l)
  disk=$(du -sm "$CACHE" 2>/dev/null | cut -f1)
  left=$(sh scripts/count-leftovers.sh 2>&1 | awk -F': ' '/^[a-z].*: [0-9]+$/ { n += $2 } END { print n + 0 }')
  echo "processes $procs, mounts $mounts, cgroups $cgroups, cache ${disk} MB, leftovers $left"
}
echo "before: $(figures)" | tee -a "$LOGS/runs.txt"
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s)
  "$BIN" run --matrix "$MATRIX" --no-progress >"$LOGS/run-$i.out" 2>"$LOGS/run-$i.err" </dev/null
  code=$?
  dir=$(sed -n 's/^results: //p' "$LOGS/run-$i.out" | tail -n 1)
  echo "$dir" >"$LOGS/run-$i.dir"
  echo "run $i: exit $code in $(( $(date +%s) - start )) s ($dir); $(figures)" | tee -a "$LOGS/runs.txt"
done
python3 - "$LOGS" "$RUNS" <<'PY' | tee -a "$LOGS/runs.txt"
import json, sys, collections
logs, runs = sys.argv[1], int(sys.argv[2])
seen = collections.defaultdict(list)
for i in range(1, runs + 1):
    d = open(f"{logs}/run-{i}.dir").read().strip()
    try:
        for line in open(f"{d}/cells.jsonl"):
            r = json.loads(line)
            seen[r["name"]].append(r["verdict"])
    except OSError:
        print(f"run {i}: no records")
flaky = {n: v for n, v in seen.items() if len(set(v)) > 1 or len(v) != runs}
print(f"{len(seen)} cells, {len(flaky)} flaky (verdicts differ between runs, or a run lacks the cell)")
for n, v in sorted(flaky.items()):
    print(f"  {n}: {' '.join(v)}")
PY
