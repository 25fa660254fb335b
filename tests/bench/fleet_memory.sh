#!/usr/bin/env bash
# The planner and the scheduler at fleet scale, without SSH or Docker: runs
# `berth-bench-memory` (tests/bench/fleet_memory.rs, built with the
# `bench-memory` feature) under GNU time, which prints plan, no-op apply and
# update-all figures over in-memory engines with a per-call latency.
# Needs no test bed. See tests/bench/README.md.
#
#   bash tests/bench/fleet_memory.sh                     # 200 hosts x 5 services
#   HOSTS=1000 LATENCY_MS=20 bash tests/bench/fleet_memory.sh
#
# Environment (read by the binary): HOSTS, SERVICES, LATENCY_MS, CONNECT_MS,
# RUNS, PARALLEL; BENCH_BIN to run a binary already built.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ -x /usr/bin/time ]] || { echo "fleet_memory.sh: needs GNU time (apt-get install time)" >&2; exit 1; }
if [[ -z ${BENCH_BIN:-} ]]; then
  cargo build --release --features bench-memory --bin berth-bench-memory >&2
  BENCH_BIN=target/release/berth-bench-memory
fi
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); berth $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
/usr/bin/time -v -o "$out" "$BENCH_BIN"
grep -E 'Elapsed \(wall clock\)|Maximum resident set size|User time|System time' "$out" | sed 's/^\s*/  whole process: /'
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
