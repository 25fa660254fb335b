#!/usr/bin/env bash
# No-op benchmark: how long do `berth apply` and `berth plan` take when there
# is nothing to do, compared with the floor of one SSH handshake plus one
# `docker ps -a` per host (all hosts in parallel)?
#
#   bash tests/bench/noop.sh            # as root; RUNS=10 by default
#   RUNS=20 BERTH_BIN=target/release/berth bash tests/bench/noop.sh
#
# Uses the three-host test bed (tests/bed/testbed.sh up, idempotent; never
# brought down here) and project `bench`: 20 global services x 3 hosts = 60
# containers. Removes the bench containers, networks and the temp repo on exit,
# also on error or interrupt.
#
# Environment:
#   RUNS           timed runs of each command (default 10)
#   BERTH_BIN      berth binary to time (default: build target/release/berth)
#   BERTH_BED_DIR  the bed's directory (default /var/tmp/berth-bed)
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUNS=${RUNS:-10}
PROJECT=bench
SERVICES=20
HOSTS=(edge-1 edge-2 edge-3)
BED_DIR=${BERTH_BED_DIR:-/var/tmp/berth-bed}
BED_DIR=${BED_DIR%/}
BED_ENV=$BED_DIR/bed.env

WORK=""
DOCKER=""

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (the test bed needs it)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"

# One value from bed.env (KEY=VALUE lines, values possibly double-quoted).
bed() {
  local v
  v=$(sed -n "s/^$1=//p" "$BED_ENV" | tail -n 1)
  v=${v#\"}
  v=${v%\"}
  [[ -n $v ]] || die "$1 missing from $BED_ENV"
  printf '%s\n' "$v"
}

# Removes the bench project's containers and networks on every bed host.
clean_hosts() {
  local h sock
  [[ -n $DOCKER ]] || return 0
  for h in "${HOSTS[@]}"; do
    sock="unix://$BED_DIR/h/$h/docker.sock"
    "$DOCKER" -H "$sock" ps -aq --filter "label=berth.project=$PROJECT" 2>/dev/null \
      | xargs -r "$DOCKER" -H "$sock" rm -f >/dev/null 2>&1 || log "$h: removing containers failed"
    "$DOCKER" -H "$sock" network ls -q --filter "label=berth.project=$PROJECT" 2>/dev/null \
      | xargs -r "$DOCKER" -H "$sock" network rm >/dev/null 2>&1 || log "$h: removing networks failed"
  done
}

cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  log "cleaning up (project $PROJECT)"
  clean_hosts
  [[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ setup ---

log "bringing up the bed (idempotent)"
bash "$ROOT/tests/bed/testbed.sh" up >&2

KEY=$(bed BED_KEY)
KNOWN=$(bed BED_KNOWN_HOSTS)
WORKER=$(bed BED_WORKER)
DOCKER=$(sed -n 's/^BED_DOCKER_CLI=//p' "$BED_ENV" | tail -n 1)
DOCKER=${DOCKER:-docker}
ADDRS=()
for h in "${HOSTS[@]}"; do
  ADDRS+=("$(bed "BED_ADDR_${h//-/_}")")
done

if [[ -n ${BERTH_BIN:-} ]]; then
  BIN=$BERTH_BIN
else
  log "building berth (cargo build --release --bin berth)"
  (cd "$ROOT" && cargo build --release --bin berth >&2)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/berth
fi
[[ -x $BIN ]] || die "no berth binary at $BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
REPO=$WORK/repo
LOG=$WORK/run.log
# Time a private copy: a concurrent cargo build may replace target/release/berth.
BIN_SRC=$BIN
cp "$BIN" "$WORK/berth"
BIN=$WORK/berth

# A leftover from a killed earlier run would make the first apply a no-op.
clean_hosts

mkdir -p "$REPO/stacks/bench"
cat >"$REPO/berth.yaml" <<EOF
project: $PROJECT
defaults:
  identity_file: $KEY
settings:
  known_hosts: $KNOWN
hosts:
  - name: edge-1
    address: ${ADDRS[0]}
  - name: edge-2
    address: ${ADDRS[1]}
  - name: edge-3
    address: ${ADDRS[2]}
EOF
{
  echo "services:"
  for i in $(seq -w 1 "$SERVICES"); do
    printf '  w%s:\n    image: %s\n    stop_grace_period: 1s\n    deploy:\n      mode: global\n' \
      "$i" "$WORKER"
  done
} >"$REPO/stacks/bench/compose.yaml"

export GIT_AUTHOR_NAME="berth bench" GIT_AUTHOR_EMAIL="bench@berth.invalid"
export GIT_COMMITTER_NAME="berth bench" GIT_COMMITTER_EMAIL="bench@berth.invalid"
export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
git -C "$REPO" -c init.defaultBranch=main init -q
git -C "$REPO" add -A
git -C "$REPO" -c commit.gpgsign=false commit -q -m "bench: $SERVICES global workers"

# Runs berth with its output in $LOG; on an unexpected exit code shows the log and fails.
berth_ok() {
  local what=$1 rc=0
  shift
  "$BIN" "$@" >"$LOG" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    cat "$LOG" >&2
    die "$what: berth $* exited $rc (expected 0)"
  fi
}

START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

log "converging: berth apply (${#HOSTS[@]} hosts x $SERVICES services)"
t0=$(date +%s%N)
berth_ok "converge" apply --repo "$REPO"
t1=$(date +%s%N)
CONVERGE_MS=$(( (t1 - t0) / 1000000 ))
for i in "${!HOSTS[@]}"; do
  n=$("$DOCKER" -H "unix://$BED_DIR/h/${HOSTS[$i]}/docker.sock" ps -q \
    --filter "label=berth.project=$PROJECT" --filter status=running | wc -l)
  [[ $n -eq $SERVICES ]] || die "${HOSTS[$i]}: $n running bench containers after apply, expected $SERVICES"
done
log "verifying the second apply is a no-op (--detailed-exitcode must exit 0)"
berth_ok "second apply" apply --repo "$REPO" --detailed-exitcode

# -------------------------------------------------------------- measuring ---

SSH_OPTS=(-i "$KEY" -o "UserKnownHostsFile=$KNOWN" -o StrictHostKeyChecking=yes
  -o BatchMode=yes -o ControlMaster=no -o ControlPath=none)

# The floor: one SSH handshake + one `docker ps -a` per host, hosts in parallel.
floor_once() {
  local a p rc=0 pids=()
  for a in "${ADDRS[@]}"; do
    ssh "${SSH_OPTS[@]}" "root@$a" docker ps -a >/dev/null 2>>"$WORK/floor.err" &
    pids+=("$!")
  done
  for p in "${pids[@]}"; do
    wait "$p" || rc=1
  done
  if [[ $rc -ne 0 ]]; then
    cat "$WORK/floor.err" >&2
    die "floor: ssh ... docker ps -a failed"
  fi
}

# Appends the wall time (ns) of "$@" to file $1.
timed() {
  local out=$1 t0 t1
  shift
  t0=$(date +%s%N)
  "$@"
  t1=$(date +%s%N)
  echo $((t1 - t0)) >>"$out"
}

floor_once # warm-up, untimed (page cache, sshd)
: >"$WORK/apply.ns"
: >"$WORK/plan.ns"
: >"$WORK/floor.ns"
log "timing $RUNS runs of each (interleaved: floor, plan, apply)"
for ((r = 1; r <= RUNS; r++)); do
  timed "$WORK/floor.ns" floor_once
  # --detailed-exitcode: every timed run must also be a no-op (exit 0, not 2).
  timed "$WORK/plan.ns" berth_ok "plan run $r" plan --repo "$REPO" --detailed-exitcode
  timed "$WORK/apply.ns" berth_ok "apply run $r" apply --repo "$REPO" --detailed-exitcode
  log "run $r/$RUNS done"
done
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# "min median max" in ms (1 decimal) of the ns values in file $1.
stats() {
  sort -n "$1" | awk '{ v[NR] = $1 }
    END {
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.1f %.1f %.1f\n", v[1] / 1e6, m / 1e6, v[NR] / 1e6
    }'
}

read -r A_MIN A_MED A_MAX < <(stats "$WORK/apply.ns")
read -r P_MIN P_MED P_MAX < <(stats "$WORK/plan.ns")
read -r F_MIN F_MED F_MAX < <(stats "$WORK/floor.ns")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# ----------------------------------------------------------------- report ---

printf '\nberth no-op benchmark — %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
printf '  berth        %s (%s)\n' "$("$BIN" --version)" "$BIN_SRC"
printf '  source tree  %s\n' "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
printf '  nproc        %s\n' "$(nproc)"
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
