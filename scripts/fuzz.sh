#!/bin/sh
# The fuzz of scenario, matrix and option parsing (harness/tests/fuzz.rs), run longer than
# `cargo test` does: CASES cases per property (default 100000), in release mode. It fails with
# the smallest input that panics, which proptest also keeps in harness/proptest-regressions/.
#   scripts/fuzz.sh [CASES]
set -eu
cd "$(dirname "$0")/.."
cases=${1:-100000}
start=$(date +%s)
PROPTEST_CASES=$cases cargo test --release --test fuzz -- --test-threads 2
echo "fuzz: $cases cases per property, $(( $(date +%s) - start )) s, no panic"
