#!/usr/bin/env bash
# Rolling-update benchmark: how much of a rolling `berth apply` is berth's own
# overhead? overhead = the run's wall time (report `duration_seconds`) minus
# the time its replace steps spent waiting on gates (sum of `waited_seconds`:
# health, validation, monitor), for 3 and 9 replicas of one service.
#
#   bash tests/bench/rolling.sh          # as root; RUNS=3 by default
#   RUNS=5 BERTH_BIN=target/release/berth bash tests/bench/rolling.sh
#
# Uses the three-host test bed (it must be up: tests/bed/testbed.sh up; the
# bed is shared, so it is never brought up or down here) and project
# `benchroll`: one stack `roll`, one service
# `web` on the bed's web image with `deploy.replicas: N` (no host ports, so
# 9 replicas run 3 per host) and `update_config.parallelism: 1`. Each timed run
# flips the image v1 <-> v2 and commits. Removes the benchroll containers,
# networks and the temp repos on exit, also on error or interrupt.
#
# Environment:
#   RUNS           timed rolling applies per case (default 3)
#   CASES          space-separated REPLICAS:ORDER cases
#                  (default "3:stop-first 9:stop-first 3:start-first")
#   BERTH_BIN      berth binary to time (default: build target/release/berth)
#   BERTH_BED_DIR  the bed's directory (default /var/tmp/berth-bed)
#   REPORTS_DIR    if set, every timed run's JSON report is copied there
RUNS=${RUNS:-3}
CASES=${CASES:-"3:stop-first 9:stop-first 3:start-first"}
PROJECT=benchroll
STACK=roll
SERVICE=web
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for c in $CASES; do
  [[ $c =~ ^[1-9][0-9]*:(stop-first|start-first)$ ]] \
    || die "CASES: '$c' is not REPLICAS:stop-first or REPLICAS:start-first"
done
command -v python3 >/dev/null || die "python3 is needed to read the JSON reports"

# ------------------------------------------------------------------ setup ---

bench_setup
WEB_V1=$(bed BED_WEB_V1)
WEB_V2=$(bed BED_WEB_V2)
if [[ -n ${REPORTS_DIR:-} ]]; then
  mkdir -p "$REPORTS_DIR"
fi

# A leftover from a killed earlier run would change the first plan.
clean_hosts

# Every timed run must roll; none may pull (a pull is not a rollout cost), so
# both images are put on every host beforehand, untimed.
log "pulling $WEB_V1 and $WEB_V2 on every host (untimed)"
for h in "${HOSTS[@]}"; do
  for img in "$WEB_V1" "$WEB_V2"; do
    docker_on "$h" pull -q "$img" >"$LOG" 2>&1 \
      || { cat "$LOG" >&2; die "$h: docker pull $img failed"; }
  done
done

# write_repo DIR: berth.yaml for the three bed hosts, and a git repo.
write_repo() {
  write_inventory "$1"
  mkdir -p "$1/stacks/$STACK"
}

# write_stack DIR IMAGE REPLICAS ORDER, then commit.
write_stack() {
  local repo=$1 image=$2 replicas=$3 order=$4
  cat >"$repo/stacks/$STACK/compose.yaml" <<EOF
services:
  $SERVICE:
    image: $image
    deploy:
      replicas: $replicas
      update_config:
        parallelism: 1
        order: $order
EOF
  commit "$repo" "bench: $replicas x $image ($order)"
}

# check_running REPLICAS IMAGE: exactly REPLICAS running containers of the
# project across the hosts, all on IMAGE, none left over (.berth-old etc.).
check_running() {
  local want=$1 image=$2 h n=0 all=0 bad=0 sock
  for h in "${HOSTS[@]}"; do
    sock="unix://$BED_DIR/h/$h/docker.sock"
    all=$((all + $("$DOCKER" -H "$sock" ps -aq --filter "label=berth.project=$PROJECT" | wc -l)))
    n=$((n + $("$DOCKER" -H "$sock" ps -q --filter "label=berth.project=$PROJECT" \
      --filter status=running | wc -l)))
    # berth runs name@digest and keeps the image as written in a label.
    bad=$((bad + $("$DOCKER" -H "$sock" ps --filter "label=berth.project=$PROJECT" \
      --format '{{if .Label "berth.image"}}{{.Label "berth.image"}}{{else}}{{.Image}}{{end}}' | grep -cvxF "$image" || true)))
  done
  [[ $n -eq $want && $all -eq $want && $bad -eq 0 ]] \
    || die "expected $want running $image containers and nothing else; found $n running, $all in all, $bad on another image"
}

# Reads one apply report; prints "total waits steps_overhead max_step_overhead
# engine" (seconds; engine = sum of engine_seconds, the engine's own stop and
# start calls, 0 from a berth that does not report them) and fails unless it shows exactly REPLICAS ok replace steps and
# nothing else (no pull, create, remove or rollback).
read_report() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
path, replicas = sys.argv[1], int(sys.argv[2])
r = json.load(open(path))
steps = [s for h in r["hosts"] for s in h["steps"]]
bad = [f'{s["step"]} {s["target"]} ok={s["ok"]}' for s in steps
       if s["step"] != "replace" or not s["ok"]]
errors = [f'{h["host"]}: {h["error"]}' for h in r["hosts"] if h.get("error")]
if bad or errors or len(steps) != replicas or r["outcome"] != "converged":
    sys.exit(f'unexpected report {path}: outcome {r["outcome"]}, {len(steps)} steps '
             f'(want {replicas} replace), other/failed: {bad}, errors: {errors}')
waits = sum(s.get("waited_seconds") or 0.0 for s in steps)
own = [s["seconds"] - (s.get("waited_seconds") or 0.0) for s in steps]
engine = sum(s.get("engine_seconds") or 0.0 for s in steps)
print(f'{r["duration_seconds"]:.3f} {waits:.3f} {sum(own):.3f} {max(own):.3f} {engine:.3f}')
EOF
}

# ------------------------------------------------------------- measuring ---

START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()
CONVERGED=()
for c in $CASES; do
  replicas=${c%%:*}
  order=${c#*:}
  repo=$WORK/repo-$replicas-$order
  runs=$WORK/runs-$replicas-$order
  clean_hosts
  write_repo "$repo"
  write_stack "$repo" "$WEB_V1" "$replicas" "$order"

  log "case $replicas replicas, $order: converging (untimed)"
  t0=$(date +%s%N)
  berth_expect 0 "converge" apply --repo "$repo"
  t1=$(date +%s%N)
  CONVERGED+=("$replicas $order: $(( (t1 - t0) / 1000000 )) ms")
  check_running "$replicas" "$WEB_V1"
  berth_expect 0 "second apply" apply --repo "$repo" --detailed-exitcode

  : >"$runs"
  image=$WEB_V1
  for ((r = 1; r <= RUNS; r++)); do
    if [[ $image == "$WEB_V1" ]]; then image=$WEB_V2; else image=$WEB_V1; fi
    write_stack "$repo" "$image" "$replicas" "$order"
    # --detailed-exitcode: 2 = changes made; 0 would mean nothing rolled.
    berth_expect 2 "run $r" apply --repo "$repo" --detailed-exitcode --report "$WORK/r.json"
    [[ -z ${REPORTS_DIR:-} ]] || cp "$WORK/r.json" "$REPORTS_DIR/$replicas-$order-$r.json"
    line=$(read_report "$WORK/r.json" "$replicas") || die "run $r: bad report"
    echo "$line" >>"$runs"
    check_running "$replicas" "$image"
    read -r total waits own maxown engine <<<"$line"
    log "$replicas $order run $r/$RUNS (-> ${image##*:}): total ${total}s, waits ${waits}s," \
      "overhead $(awk -v t="$total" -v w="$waits" 'BEGIN { printf "%.2f", t - w }')s" \
      "(in steps ${own}s, slowest step ${maxown}s, engine stop+start ${engine}s)"
  done
  # Columns: total, waits, overhead, in-step overhead, outside steps,
  # overhead per replica (ms), engine stop+start, berth's own (overhead - engine).
  awk -v n="$replicas" '{ printf "%s %s %.3f %s %.3f %.1f %s %.3f\n", $1, $2, $1 - $2, $3,
    $1 - $2 - $3, ($1 - $2) / n * 1000, $5, $1 - $2 - $5 }' "$runs" >"$runs.o"
  m_total=$(median "$runs.o" 1)
  m_waits=$(median "$runs.o" 2)
  m_over=$(median "$runs.o" 3)
  m_instep=$(median "$runs.o" 4)
  m_outside=$(median "$runs.o" 5)
  per_ms=$(median "$runs.o" 6 | awk '{ printf "%.0f", $1 }')
  m_engine=$(median "$runs.o" 7)
  m_berth=$(median "$runs.o" 8)
  ROWS+=("$(printf '  %8s %-11s %4s %9s %9s %9s %10s %9s %9s %9s %9s' "$replicas" "$order" "$RUNS" \
    "$m_total" "$m_waits" "$m_over" "$per_ms" "$m_instep" "$m_outside" "$m_engine" "$m_berth")")
  clean_hosts
done
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# ----------------------------------------------------------------- report ---

print_header "berth rolling-update benchmark"
printf '  load avg     %s at start, %s at end (1/5/15 min)\n' "$START_LOAD" "$END_LOAD"
printf '  workload     1 service, %d hosts, update_config.parallelism 1, image %s <-> %s\n' \
  "${#HOSTS[@]}" "${WEB_V1##*:}" "${WEB_V2##*:}"
printf '  converge     %s (untimed)\n' "$(printf '%s; ' "${CONVERGED[@]}" | sed 's/; $//')"
printf '  runs         %d per case; medians below, in seconds unless said\n\n' "$RUNS"
printf '  %8s %-11s %4s %9s %9s %9s %10s %9s %9s %9s %9s\n' replicas order runs total waits \
  overhead "per repl." "in steps" outside engine "berth's"
printf '  %8s %-11s %4s %9s %9s %9s %10s %9s %9s %9s %9s\n' "" "" "" "" "" "" "(ms)" "" "" "" ""
printf '%s\n' "${ROWS[@]}"
printf '\n  total    = report duration_seconds (whole run: load, connect, lock, plan, roll, clean up)\n'
printf '  waits    = sum of waited_seconds of the replace steps (health, validation, monitor)\n'
printf '  overhead = total - waits; per repl. = median of (overhead / replicas)\n'
printf '  in steps = sum of (seconds - waited_seconds) of the replace steps: stop, rename,\n'
printf '             create, start; outside = overhead - in steps\n'
printf '  engine   = sum of engine_seconds of the replace steps: the Docker Engine stopping\n'
printf '             each old and starting each new container (the calls themselves)\n'
printf "  berth's  = overhead - engine: what berth adds (the issue's target: < 1 s for 9)\n"
