#!/usr/bin/env bash
# No-op benchmark: how long do `berth apply` and `berth plan` take when there
# is nothing to do, compared with the floor of one SSH handshake plus one
# `docker ps -a` per host (all hosts in parallel)?
#
#   bash tests/bench/noop.sh            # as root; RUNS=10 by default
#   RUNS=20 BERTH_BIN=target/release/berth bash tests/bench/noop.sh
#
# Uses the three-host test bed (it must be up: tests/bed/testbed.sh up; the
# bed is shared, so it is never brought up or down here) and project
# `bench`: 20 global services x 3 hosts = 60
# containers. Removes the bench containers, networks and the temp repo on exit,
# also on error or interrupt.
#
# Environment:
#   RUNS           timed runs of each command (default 10)
#   TRACE=1        one more plan and apply with BERTH_LOG=berth=debug: where the round trips go
#   BERTH_BIN      berth binary to time (default: build target/release/berth)
#   BERTH_BED_DIR  the bed's directory (default /var/tmp/berth-bed)
RUNS=${RUNS:-10}
PROJECT=bench
SERVICES=20
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ------------------------------------------------------------------ setup ---

bench_setup
WORKER=$(bed BED_WORKER)
REPO=$WORK/repo

write_inventory "$REPO"
mkdir -p "$REPO/stacks/bench"
{
  echo "services:"
  for i in $(seq -w 1 "$SERVICES"); do
    printf '  w%s:\n    image: %s\n    stop_grace_period: 1s\n    deploy:\n      mode: global\n' \
      "$i" "$WORKER"
  done
} >"$REPO/stacks/bench/compose.yaml"

commit "$REPO" "bench: $SERVICES global workers"

berth_ok() { local what=$1; shift; berth_expect 0 "$what" "$@"; }

START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

log "converging: berth apply (${#HOSTS[@]} hosts x $SERVICES services)"
t0=$(date +%s%N)
berth_ok "converge" apply --repo "$REPO"
t1=$(date +%s%N)
CONVERGE_MS=$(( (t1 - t0) / 1000000 ))
for i in "${!HOSTS[@]}"; do
  n=$(docker_on "${HOSTS[$i]}" ps -q \
    --filter "label=berth.project=$PROJECT" --filter status=running | wc -l)
  [[ $n -eq $SERVICES ]] || die "${HOSTS[$i]}: $n running bench containers after apply, expected $SERVICES"
done
log "verifying the second apply is a no-op (--detailed-exitcode must exit 0)"
berth_ok "second apply" apply --repo "$REPO" --detailed-exitcode

# -------------------------------------------------------------- measuring ---

ssh_floor_once # warm-up, untimed (page cache, sshd)
: >"$WORK/apply.ns"
: >"$WORK/plan.ns"
: >"$WORK/floor.ns"
log "timing $RUNS runs of each (interleaved: floor, plan, apply)"
for ((r = 1; r <= RUNS; r++)); do
  timed "$WORK/floor.ns" ssh_floor_once
  # --detailed-exitcode: every timed run must also be a no-op (exit 0, not 2).
  timed "$WORK/plan.ns" berth_ok "plan run $r" plan --repo "$REPO" --detailed-exitcode
  timed "$WORK/apply.ns" berth_ok "apply run $r" apply --repo "$REPO" --detailed-exitcode
  log "run $r/$RUNS done"
done
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# TRACE=1: one more plan and apply each, untimed, with berth's debug log,
# whose lines say where a no-op's round trips go (ssh up, engine answered,
# run lock answered, observed; locks released, connections closed).
TRACES=()
if [[ ${TRACE:-0} == 1 ]]; then
  for cmd in plan apply; do
    BERTH_LOG=berth=debug berth_ok "traced $cmd" "$cmd" --repo "$REPO" --detailed-exitcode
    while IFS= read -r line; do TRACES+=("$cmd: $line"); done \
      < <(grep -E 'ssh up after|observed after|released after' "$LOG" | sed 's/\x1b\[[0-9;]*m//g')
  done
fi

read -r A_MIN A_MED A_MAX < <(stats "$WORK/apply.ns")
read -r P_MIN P_MED P_MAX < <(stats "$WORK/plan.ns")
read -r F_MIN F_MED F_MAX < <(stats "$WORK/floor.ns")

# ----------------------------------------------------------------- report ---

print_header "berth no-op benchmark"
printf '  load avg     %s at start, %s at end (1/5/15 min)\n' "$START_LOAD" "$END_LOAD"
printf '  workload     %d hosts x %d services = %d containers (project %s)\n' \
  "${#HOSTS[@]}" "$SERVICES" $((${#HOSTS[@]} * SERVICES)) "$PROJECT"
printf '  converge     first apply took %d ms (untimed below)\n' "$CONVERGE_MS"
printf '  runs         %d each\n\n' "$RUNS"
printf '  %-34s %10s %10s %10s\n' "wall time (ms)" min median max
printf '  %-34s %10s %10s %10s\n' "berth apply (no-op)" "$A_MIN" "$A_MED" "$A_MAX"
printf '  %-34s %10s %10s %10s\n' "berth plan" "$P_MIN" "$P_MED" "$P_MAX"
printf '  %-34s %10s %10s %10s\n' "floor: ssh + docker ps -a, x3 par." "$F_MIN" "$F_MED" "$F_MAX"
printf '\n  median(apply) / median(floor)  %s\n' "$(ratio "$A_MED" "$F_MED")"
printf '  median(plan)  / median(floor)  %s\n' "$(ratio "$P_MED" "$F_MED")"
if [[ ${#TRACES[@]} -gt 0 ]]; then
  printf '\n  traced runs (BERTH_LOG=berth=debug):\n'
  printf '    %s\n' "${TRACES[@]}"
fi
