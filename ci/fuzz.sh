#!/usr/bin/env bash
# Builds berth's fuzz targets (fuzz/, cargo-fuzz) and runs each for a
# bounded time from the committed seeds. A finding (panic, stack overflow,
# more than FUZZ_RSS_MB of memory, one input slower than FUZZ_TIMEOUT s)
# fails the step; libFuzzer prints the input and keeps it in
# fuzz/artifacts/<target>/ (replay: `cargo fuzz run <target> <file>`).
#
# Runs on the stable toolchain: libFuzzer's coverage instrumentation needs no
# nightly flag; only the sanitizers do, so they are off (`--sanitizer none`:
# Rust code is memory-safe, and a panic or an abort is what we look for).
#
# FUZZ_SECONDS: seconds per target (default 10). Installs cargo-fuzz when
# missing (crates.io).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-10}
rss_mb=${FUZZ_RSS_MB:-1024}
timeout_s=${FUZZ_TIMEOUT:-10}
started=$(date +%s)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi
echo "fuzz: cargo-fuzz ready after $(( $(date +%s) - started ))s" >&2

cargo fuzz build --sanitizer none
echo "fuzz: targets built after $(( $(date +%s) - started ))s" >&2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  status=0
  cargo fuzz run --sanitizer none "$target" "corpus/$target" "seeds/$target" -- \
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
