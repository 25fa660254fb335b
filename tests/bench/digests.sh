#!/usr/bin/env bash
# Digest benchmark: what resolving image tags to digests adds to `berth
# plan`. 20 global services, each its own image (20 distinct images, so 20
# registry lookups), on the bed's 3 hosts; `berth plan` timed with
# `settings.resolve_from: none` and with the default (the runner asks the
# registry), interleaved, plus the resolve step as berth logs it.
#
#   bash tests/bench/digests.sh            # as root; RUNS=10 by default
#   RUNS=20 BERTH_BIN=target/release/berth bash tests/bench/digests.sh
#
# Uses the three-host test bed (it must be up: tests/bed/testbed.sh up; the
# bed is shared, so it is never brought up or down here) and project
# `bench-digests`. Pushes 20 tags (berth/bench-digest-NN:v1, all the bed's
# worker image) to the bed's registry, and removes the bench containers,
# networks and the temp repos on exit, also on error or interrupt.
#
# Environment:
#   RUNS           timed runs of each plan (default 10)
#   BERTH_BIN      berth binary to time (default: build target/release/berth)
#   BERTH_BED_DIR  the bed's directory (default /var/tmp/berth-bed)
RUNS=${RUNS:-10}
PROJECT=bench-digests
SERVICES=20
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ------------------------------------------------------------------ setup ---

bench_setup
WORKER=$(bed BED_WORKER)
REGISTRY=$(bed BED_REGISTRY)
ON=$WORK/resolving
OFF=$WORK/not-resolving

log "pushing $SERVICES distinct images to $REGISTRY (through edge-3's engine)"
docker_on edge-3 pull -q "$WORKER" >/dev/null
IMAGES=()
for i in $(seq -w 1 "$SERVICES"); do
  IMAGES+=("$REGISTRY/berth/bench-digest-$i:v1")
  docker_on edge-3 tag "$WORKER" "${IMAGES[-1]}"
done
pids=()
for image in "${IMAGES[@]}"; do
  docker_on edge-3 push -q "$image" >/dev/null & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "pushing a bench image failed"; done
docker_on edge-3 rmi "${IMAGES[@]}" >/dev/null

write_repo() {
  local repo=$1 i
  write_inventory "$repo"
  mkdir -p "$repo/stacks/bench"
  {
    echo "services:"
    for i in "${!IMAGES[@]}"; do
      printf '  w%02d:\n    image: %s\n    stop_grace_period: 1s\n    deploy:\n      mode: global\n' \
        "$((i + 1))" "${IMAGES[$i]}"
    done
  } >"$repo/stacks/bench/compose.yaml"
  commit "$repo" "bench: $SERVICES global workers, $SERVICES images"
}
write_repo "$ON"
EXTRA_SETTINGS="  resolve_from: none
" write_repo "$OFF"

berth_ok() { local what=$1; shift; berth_expect 0 "$what" "$@"; }

START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
log "converging: berth apply (${#HOSTS[@]} hosts x $SERVICES services, pinned)"
berth_ok "converge" apply --repo "$ON"
berth_ok "second apply" apply --repo "$ON" --detailed-exitcode
berth_ok "plan without resolution" plan --repo "$OFF" --detailed-exitcode

# -------------------------------------------------------------- measuring ---

berth_ok "warm-up" plan --repo "$ON" # untimed
: >"$WORK/on.ns"
: >"$WORK/off.ns"
: >"$WORK/step.ms"
log "timing $RUNS runs of each (interleaved: without, with resolution)"
for ((r = 1; r <= RUNS; r++)); do
  timed "$WORK/off.ns" berth_ok "plan run $r (resolve_from: none)" \
    plan --repo "$OFF" --detailed-exitcode
  export BERTH_LOG=berth=debug
  timed "$WORK/on.ns" berth_ok "plan run $r (resolving)" plan --repo "$ON" --detailed-exitcode
  unset BERTH_LOG
  sed -n "s/.*resolved $SERVICES image(s) to digests in \([0-9]*\) ms.*/\1/p" "$LOG" >>"$WORK/step.ms"
  log "run $r/$RUNS done"
done
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
[[ $(wc -l <"$WORK/step.ms") -eq $RUNS ]] || die "berth did not log its resolve step ($SERVICES images) on every run"

read -r ON_MIN ON_MED ON_MAX < <(stats "$WORK/on.ns")
read -r OFF_MIN OFF_MED OFF_MAX < <(stats "$WORK/off.ns")
read -r S_MIN S_MED S_MAX < <(stats "$WORK/step.ms" 1)

# ----------------------------------------------------------------- report ---

print_header "berth digest-resolution benchmark"
printf '  load avg     %s at start, %s at end (1/5/15 min)\n' "$START_LOAD" "$END_LOAD"
printf '  workload     %d hosts x %d services, %d distinct images (project %s)\n' \
  "${#HOSTS[@]}" "$SERVICES" "$SERVICES" "$PROJECT"
printf '  runs         %d each\n\n' "$RUNS"
printf '  %-40s %10s %10s %10s\n' "wall time (ms)" min median max
printf '  %-40s %10s %10s %10s\n' "berth plan, resolve_from: none" "$OFF_MIN" "$OFF_MED" "$OFF_MAX"
printf '  %-40s %10s %10s %10s\n' "berth plan, resolving (runner)" "$ON_MIN" "$ON_MED" "$ON_MAX"
printf '  %-40s %10s %10s %10s\n' "resolve step, as berth logs it" "$S_MIN" "$S_MED" "$S_MAX"
printf '\n  median(resolving) - median(none)  %s ms (budget: 300 ms)\n' \
  "$(awk -v a="$ON_MED" -v b="$OFF_MED" 'BEGIN { printf "%.1f", a - b }')"
