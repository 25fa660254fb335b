#!/usr/bin/env bash
# Builds berth's fuzz targets (fuzz/, libFuzzer) and runs each for a
# bounded time from the committed seeds. A finding (panic, stack overflow,
# more than FUZZ_RSS_MB of memory, one input slower than FUZZ_TIMEOUT s)
# fails the step; libFuzzer prints the input and keeps it in
# fuzz/artifacts/<target>/ (replay: `target/debug/<target> <file>`).
#
# The fuzz crate is a member of berth's workspace, built with the dev
# profile into berth's own target directory, and only the workspace's
# crates (berth and the targets) get libFuzzer's coverage instrumentation
# (ci/fuzz-rustc.sh, as RUSTC_WORKSPACE_WRAPPER). So the dependencies are
# the units `cargo test` already built: after the tests, this step compiles
# berth, libFuzzer and the six targets, not the whole tree again. The fuzz
# crate lists berth's dev-dependencies for the same reason (the features
# they turn on must match the test build's). Coverage guides the fuzzer
# through berth's code; the parsers berth calls (YAML, JSON) run
# uninstrumented.
#
# Runs on the stable toolchain: coverage instrumentation needs no nightly
# flag; only the sanitizers do, so they are off (Rust code is memory-safe,
# and a panic or an abort is what we look for). `cargo fuzz` works on the
# crate too (fuzz/README.md), with its own build.
#
# FUZZ_SECONDS: seconds per target (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${FUZZ_SECONDS:-10}
rss_mb=${FUZZ_RSS_MB:-1024}
timeout_s=${FUZZ_TIMEOUT:-10}
started=$(date +%s)
target_dir=${CARGO_TARGET_DIR:-$root/target}

RUSTC_WORKSPACE_WRAPPER="$root/ci/fuzz-rustc.sh" \
  cargo build --locked -p berth-fuzz --bins
echo "fuzz: targets built after $(( $(date +%s) - started ))s" >&2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for source in fuzz/fuzz_targets/*.rs; do
  target=$(basename "$source" .rs)
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  status=0
  "$target_dir/debug/$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
    -artifact_prefix="fuzz/artifacts/$target/" \
    -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" \
    -timeout="$timeout_s" -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  echo "fuzz: $target: ${runs:-?} inputs in ${seconds}s, peak ${peak:-?} MB" >&2
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target found a failing input (exit $status): see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz: done after $(( $(date +%s) - started ))s" >&2
