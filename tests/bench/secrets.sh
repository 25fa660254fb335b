#!/usr/bin/env bash
# Secrets benchmark: what does delivering secrets add to an apply? Every
# timed run rotates all of a service's secrets (new values, encrypted with
# GnuPG to the runner's key), so apply decrypts them, writes them to each
# host's tmpfs (one SSH command per host) and replaces the readers.
#
#   bash tests/bench/secrets.sh          # as root; RUNS=3 by default
#   RUNS=5 CASES="1 10 40" bash tests/bench/secrets.sh
#
# Uses the three-host test bed (it must be up: tests/bed/testbed.sh up; the
# bed is shared, so it is never brought up or down here) and project
# `benchsec`: one global service (3 replicas,
# one per host) reading N secrets. Removes the project's containers and
# networks and the temp repo and keyring on exit.
#
# Environment:
#   RUNS           timed applies per case (default 3)
#   CASES          space-separated secret counts (default "1 10")
#   BERTH_BIN      berth binary to time (default: build target/release/berth)
#   BERTH_BED_DIR  the bed's directory (default /var/tmp/berth-bed)
RUNS=${RUNS:-3}
CASES=${CASES:-"1 10"}
PROJECT=benchsec
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for c in $CASES; do
  [[ $c =~ ^[1-9][0-9]*$ ]] || die "CASES: '$c' is not a number of secrets"
done
command -v gpg >/dev/null || die "gpg is needed (apt-get install gnupg)"
command -v python3 >/dev/null || die "python3 is needed to read the JSON reports"

bench_setup
WEB=$(bed BED_WEB_V1)
export GNUPGHOME=$WORK/g
mkdir -m 700 "$GNUPGHOME"
gpgb() { gpg --batch --yes --no-tty --pinentry-mode loopback --passphrase '' "$@"; }
gpgb --quick-gen-key 'Bench runner <bench@berth.invalid>' future-default default never 2>/dev/null
gpgb --armor --export-secret-keys 'Bench runner' >"$WORK/runner.key"
# Stop this keyring's gpg-agent too, keeping the exit status for cleanup.
trap 'rc=$?; gpgconf --kill all >/dev/null 2>&1; (exit "$rc"); cleanup' EXIT

# write_case DIR N ROUND: the stack, and N secrets with values for ROUND.
write_case() {
  local repo=$1 n=$2 round=$3 i name
  mkdir -p "$repo/stacks/sec/secrets"
  {
    printf 'services:\n  app:\n    image: %s\n    deploy:\n      mode: global\n    secrets:\n' "$WEB"
    for ((i = 1; i <= n; i++)); do printf '      - s%03d\n' "$i"; done
    printf 'secrets:\n'
    for ((i = 1; i <= n; i++)); do printf '  s%03d:\n    file: ./secrets/s%03d.asc\n' "$i" "$i"; done
  } >"$repo/stacks/sec/compose.yaml"
  for ((i = 1; i <= n; i++)); do
    name=$(printf 's%03d' "$i")
    printf 'value-%s-round-%s-%s' "$name" "$round" "$RANDOM" \
      | gpgb --trust-model always --armor --encrypt -r 'Bench runner' \
        >"$repo/stacks/sec/secrets/$name.asc"
  done
  commit "$repo" "bench: $n secrets, round $round"
}

# Prints "total secrets_step replace_steps" (seconds; the secrets step is the
# slowest host's, replace the sum over hosts) from one apply report.
read_report() {
  python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
if r["outcome"] != "converged":
    sys.exit(f'unexpected outcome {r["outcome"]}')
secrets = max((s["seconds"] for h in r["hosts"] for s in h["steps"] if s["step"] == "secrets"), default=0.0)
replace = sum(s["seconds"] for h in r["hosts"] for s in h["steps"] if s["step"] == "replace")
print(f'{r["duration_seconds"]:.3f} {secrets:.3f} {replace:.3f}')
EOF
}

START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()
for n in $CASES; do
  repo=$WORK/repo-$n
  runs=$WORK/runs-$n
  clean_hosts
  write_inventory "$repo"
  write_case "$repo" "$n" 0
  log "case $n secret(s): converging (untimed)"
  berth_expect 0 "converge" apply --repo "$repo" --key-file "$WORK/runner.key"
  : >"$runs"
  for ((r = 1; r <= RUNS; r++)); do
    write_case "$repo" "$n" "$r"
    berth_expect 2 "run $r" apply --repo "$repo" --key-file "$WORK/runner.key" \
      --detailed-exitcode --report "$WORK/r.json"
    grep -q "value-s001-round-$r" "$LOG" "$WORK/r.json" && die "a secret value reached berth's output"
    line=$(read_report "$WORK/r.json") || die "run $r: bad report"
    echo "$line" >>"$runs"
    log "$n secret(s) run $r/$RUNS: $line (total, secrets step, replace steps; s)"
  done
  ROWS+=("$(printf '  %8s %4s %9s %14s %14s' "$n" "$RUNS" "$(median "$runs" 1 3)" \
    "$(median "$runs" 2 3)" "$(median "$runs" 3 3)")")
  clean_hosts
done
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

print_header "berth secrets benchmark"
printf '  load avg     %s at start, %s at end (1/5/15 min)\n' "$START_LOAD" "$END_LOAD"
printf '  workload     1 global service on %d hosts reading N secrets, all rotated every run\n' \
  "${#HOSTS[@]}"
printf '  runs         %d per case; medians, in seconds\n\n' "$RUNS"
printf '  %8s %4s %9s %14s %14s\n' secrets runs total "secrets step" "replace steps"
printf '%s\n' "${ROWS[@]}"
printf '\n  total         = report duration_seconds (load, decrypt, connect, lock, plan, deliver, roll)\n'
printf '  secrets step  = writing all of a host'"'"'s secret files (one SSH command), slowest host\n'
printf '  replace steps = sum over the 3 hosts of the replace steps (stop, create, start, gates)\n'
