#!/usr/bin/env bash
# A smoke run of every cargo-fuzz target (fuzz/fuzz_targets/): each is
# built (a build error fails the run) and fuzzed for FUZZ_SECONDS (60 by
# default); any crash fails it, with libFuzzer's report and the input left
# in fuzz/artifacts/TARGET/.
#
#   bash ci/fuzz-smoke.sh [TARGET ...]
#
# Installs cargo-fuzz (crates.io) where missing. Runs on the stable
# toolchain: RUSTC_BOOTSTRAP=1 lets it take the sanitizer flags
# cargo-fuzz passes. The targets' scratch exports live in a temporary
# directory that is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
scratch=$(mktemp -d /tmp/vph-fuzz-smoke.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
passed=0 failed=0
for t in "${targets[@]}"; do
  echo "== fuzz $t: build"
  if ! cargo fuzz build "$t" > "$scratch/$t.build" 2>&1; then
    tail -n 40 "$scratch/$t.build"
    echo "FAIL $t: does not build"
    failed=$((failed + 1))
    continue
  fi
  echo "== fuzz $t: ${seconds} s"
  mkdir -p "$scratch/$t"
  if TMPDIR="$scratch/$t" cargo fuzz run "$t" -- -max_total_time="$seconds" -print_final_stats=1 \
       > "$scratch/$t.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log")
    echo "ok   $t: ${runs:-?} inputs in ${seconds} s, no crash"
    passed=$((passed + 1))
  else
    tail -n 40 "$scratch/$t.log"
    echo "FAIL $t: crashed (input in fuzz/artifacts/$t/)"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
