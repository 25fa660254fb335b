#!/usr/bin/env bash
# Side-by-side benchmark: the same desired state (3 hosts x 20 containers,
# one per host per service) made by berth, by docker-compose 1.29 over
# ssh:// (paramiko), and by the floor: plain parallel `docker run` over SSH.
#
#   bash tests/bench/compare.sh          # as root; RUNS=2 cycles by default
#   RUNS=3 NOOP_RUNS=10 BERTH_BIN=target/release/berth bash tests/bench/compare.sh
#
# Figures (medians over the cycles; ratios of medians):
#   first converge  pull + create + start 60 containers (images absent)
#   update all      all 60 to a new image (v1 -> v2: another image ID)
#   no-op apply     berth apply / docker-compose up -d with nothing to do,
#                   against the SSH floor (one handshake + `docker ps -a`
#                   per host, all at once: see noop.sh)
#   plan            berth plan against the same SSH floor
# and, unless ROLLING=0, the rolling-update overhead of rolling.sh, run after.
#
# A cycle runs each tool in turn (berth, compose, floor; the order rotates
# from cycle to cycle): clean hosts and images, converge on v1, update to v2,
# time the no-ops (berth: floor, plan, apply interleaved; compose: up -d),
# clean. Every step is checked: 20 running containers per host on the
# expected image, berth's exit codes (2 = changed, 0 = nothing to do).
#
# Uses the three-host test bed (it must be up: tests/bed/testbed.sh up; the
# bed is shared, so it is never brought up or down here). Builds two images
# FROM the bed's worker image (they differ in a label only), pushes them to
# the bed's registry as bench/cmp-worker:v1 and :v2 and removes them from the
# hosts before every converge, so every tool pulls. On exit, also on error or
# interrupt: removes every container and network it made (berth project,
# compose project, floor label), the two images from the hosts and their
# manifests from the registry, and the temp repo.
#
# Installs Debian's docker-compose and python3-paramiko with apt-get when
# absent. Run it alone on the bed: flock /tmp/berth-bed.lock bash ...compare.sh
#
# Environment:
#   RUNS           cycles (default 2)
#   TOOLS          which tools to time (default "berth compose floor")
#   NOOP_RUNS      no-op samples per tool per cycle (default 5)
#   ROLLING        1 (default): run rolling.sh afterwards; 0: skip it
#   LEAN_SHELL     1 (default): every tool reaches the hosts through sshd of
#                  the script's own (port 2122, root's .bashrc hidden: on this
#                  machine it runs pyenv, and concurrent remote shells queue on
#                  pyenv's rehash lock); 0: through the bed's sshd (port 22)
#   ROLLING_CASES  rolling.sh's CASES (default "9:stop-first")
#   ROLLING_RUNS   rolling.sh's RUNS (default 3)
#   COMPOSE_HTTP_TIMEOUT  docker-compose's per-call timeout (default here 600 s)
#   BERTH_BIN      berth binary to time (default: build target/release/berth)
#   BERTH_BED_DIR  the bed's directory (default /var/tmp/berth-bed)
RUNS=${RUNS:-2}
NOOP_RUNS=${NOOP_RUNS:-5}
ROLLING=${ROLLING:-1}
LEAN_SHELL=${LEAN_SHELL:-1}
LEAN_PORT=2122
PROJECT=benchcmp
SERVICES=20
# On a loaded 2-core runner one Docker call over paramiko can take more than
# compose's default 60 s: the benchmark times that, it does not fail on it.
export COMPOSE_HTTP_TIMEOUT=${COMPOSE_HTTP_TIMEOUT:-600}
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $NOOP_RUNS =~ ^[1-9][0-9]*$ ]] || die "NOOP_RUNS must be a positive integer, got '$NOOP_RUNS'"
[[ $ROLLING == 0 || $ROLLING == 1 ]] || die "ROLLING must be 0 or 1, got '$ROLLING'"
[[ $LEAN_SHELL == 0 || $LEAN_SHELL == 1 ]] || die "LEAN_SHELL must be 0 or 1, got '$LEAN_SHELL'"

FLOOR_LABEL=bench.floor=$PROJECT
COMPOSE_LABEL=com.docker.compose.project=$PROJECT
CLEAN_LABELS=("$COMPOSE_LABEL" "$FLOOR_LABEL")
# Set before anything can fail: the exit trap reads them.
V1=""
V2=""
BASE=""
BASE_WAS_ON_EDGE1=1
IMAGES_PUSHED=0

# -------------------------------------------------------------- packages ---

# docker-compose 1.29 (Debian's) and paramiko, which it needs for ssh://.
ensure_compose() {
  local p missing=()
  for p in docker-compose python3-paramiko; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
}
ensure_compose
COMPOSE_VERSION=$(docker-compose version --short 2>/dev/null) || die "docker-compose does not run"

# ------------------------------------------------------------------ setup ---

bench_setup
if [[ $LEAN_SHELL == 1 ]]; then
  log "starting sshd on port $LEAN_PORT of each host (root's .bashrc hidden)"
  use_lean_sshd "$LEAN_PORT"
fi
REGISTRY=$(bed BED_REGISTRY)
BASE=$(bed BED_WORKER)
IMAGE=$REGISTRY/bench/cmp-worker
V1=$IMAGE:v1
V2=$IMAGE:v2
export DOCKER_CONFIG=$WORK/docker-config
mkdir -p "$DOCKER_CONFIG"

# Removes the two images from the hosts, and (once pushed) their manifests
# from the registry; the base image from edge-1 if this script pulled it.
remove_images() {
  local h
  [[ -n $V1 ]] || return 0
  for h in "${HOSTS[@]}"; do
    docker_on "$h" rmi -f "$V1" "$V2" >/dev/null 2>&1 || true
  done
}

bench_cleanup_extra() {
  local tag digest
  remove_images
  if [[ $BASE_WAS_ON_EDGE1 == 0 && -n $BASE ]]; then
    docker_on edge-1 rmi "$BASE" >/dev/null 2>&1 || true
  fi
  [[ $IMAGES_PUSHED == 1 ]] || return 0
  for tag in v1 v2; do
    digest=$(curl -sfI --max-time 5 \
      -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "http://$REGISTRY/v2/bench/cmp-worker/manifests/$tag" \
      | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
    if [[ -n $digest ]]; then
      curl -sf --max-time 5 -X DELETE "http://$REGISTRY/v2/bench/cmp-worker/manifests/$digest" \
        >/dev/null || log "registry: deleting bench/cmp-worker:$tag failed"
    fi
  done
}

log "building $V1 and $V2 (FROM $BASE, a label apart) on edge-1, pushing to $REGISTRY"
if ! docker_on edge-1 image inspect "$BASE" >/dev/null 2>&1; then
  BASE_WAS_ON_EDGE1=0
  docker_on edge-1 pull -q "$BASE" >"$LOG" 2>&1 || { cat "$LOG" >&2; die "edge-1: docker pull $BASE failed"; }
fi
for tag in v1 v2; do
  printf 'FROM %s\nLABEL bench.variant=%s\n' "$BASE" "$tag" \
    | DOCKER_BUILDKIT=0 docker_on edge-1 build -q -t "$IMAGE:$tag" - >"$LOG" 2>&1 \
    || { cat "$LOG" >&2; die "building $IMAGE:$tag failed"; }
  IMAGES_PUSHED=1
  docker_on edge-1 push -q "$IMAGE:$tag" >"$LOG" 2>&1 \
    || { cat "$LOG" >&2; die "pushing $IMAGE:$tag failed"; }
done
[[ $(docker_on edge-1 image inspect -f '{{.Id}}' "$V1") != $(docker_on edge-1 image inspect -f '{{.Id}}' "$V2") ]] \
  || die "$V1 and $V2 have the same image ID: an update would change nothing"
remove_images

# Names of the services (and the floor's containers): w01..w20.
NAMES=()
for i in $(seq -w 1 "$SERVICES"); do NAMES+=("w$i"); done

# berth: one repo, one stack, every service global (one replica per host).
REPO=$WORK/repo
write_inventory "$REPO"
mkdir -p "$REPO/stacks/$PROJECT"
berth_stack() {
  local n
  {
    echo "services:"
    for n in "${NAMES[@]}"; do
      printf '  %s:\n    image: %s\n    stop_grace_period: 1s\n    deploy:\n      mode: global\n' "$n" "$1"
    done
  } >"$REPO/stacks/$PROJECT/compose.yaml"
  commit "$REPO" "bench: $SERVICES global workers on $1"
}

# docker-compose: one project per host, the same file on each (compose 1.29
# has no global mode: one container per service is what it makes).
CDIR=$WORK/compose
mkdir -p "$CDIR"
compose_file() {
  local n
  {
    echo 'version: "2.4"'
    echo "services:"
    for n in "${NAMES[@]}"; do
      printf '  %s:\n    image: %s\n    stop_grace_period: 1s\n' "$n" "$1"
    done
  } >"$CDIR/docker-compose.yml"
}

# paramiko reads ~/.ssh/config and ~/.ssh/known_hosts: a HOME of our own
# gives it the bed's key and host keys and leaves root's alone.
CHOME=$WORK/home
mkdir -p "$CHOME/.ssh"
chmod 700 "$CHOME/.ssh"
cp "$KNOWN" "$CHOME/.ssh/known_hosts"
printf 'Host %s\n  User root\n  IdentityFile %s\n' "${ADDRS[*]}" "$KEY" >"$CHOME/.ssh/config"

# compose_up_all: `docker-compose up -d` on the three hosts at once, each over
# ssh://root@ADDR with paramiko. Output of host i in $WORK/compose-i.log.
COMPOSE_PIDS=()
compose_up_all() {
  local i rc=0
  COMPOSE_PIDS=()
  for i in "${!ADDRS[@]}"; do
    env HOME="$CHOME" DOCKER_HOST="ssh://root@${ADDRS[$i]}:$SSH_PORT" COMPOSE_PARAMIKO_SSH=1 \
      docker-compose --ansi never -p "$PROJECT" -f "$CDIR/docker-compose.yml" \
      up -d --quiet-pull >"$WORK/compose-$i.log" 2>&1 </dev/null &
    COMPOSE_PIDS+=("$!")
  done
  for i in "${!COMPOSE_PIDS[@]}"; do
    wait "${COMPOSE_PIDS[$i]}" || { rc=1; cat "$WORK/compose-$i.log" >&2; }
  done
  COMPOSE_PIDS=()
  [[ $rc -eq 0 ]] || die "docker-compose up -d failed"
}

# An interrupted compose run would go on creating containers after the
# clean-up: stop it first.
bench_cleanup_first() {
  local p
  ((${#COMPOSE_PIDS[@]})) || return 0
  for p in "${COMPOSE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${COMPOSE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}

# floor_all SCRIPT-ARGS: on every host at once, one SSH command: pull the
# image once, then every container at once (`docker run -d`, after
# `docker rm -f` of the old one when updating), no checks.
floor_all() {
  local image=$1 replace=$2 a p rc=0 pids=() script
  # shellcheck disable=SC2016 # expanded by the remote shell
  script='img=$1; replace=$2; label=$3; shift 3
    docker pull -q "$img" >/dev/null || exit 1
    pids=""
    for n in "$@"; do
      { if [ "$replace" = 1 ]; then docker rm -f "cmpfloor-$n" >/dev/null; fi
        docker run -d --name "cmpfloor-$n" --label "$label" --stop-timeout 1 "$img" >/dev/null; } &
      pids="$pids $!"
    done
    rc=0
    for p in $pids; do wait "$p" || rc=1; done
    exit $rc'
  for a in "${ADDRS[@]}"; do
    ssh "${SSH_OPTS[@]}" "root@$a" sh -c "$(printf '%q' "$script")" floor \
      "$image" "$replace" "$FLOOR_LABEL" "${NAMES[@]}" </dev/null >>"$WORK/floor-run.err" 2>&1 &
    pids+=("$!")
  done
  for p in "${pids[@]}"; do
    wait "$p" || rc=1
  done
  if [[ $rc -ne 0 ]]; then
    cat "$WORK/floor-run.err" >&2
    die "floor: docker run over ssh failed"
  fi
}

# check_hosts TOOL LABEL IMAGE: on every host, exactly SERVICES containers
# with LABEL, all running, all on IMAGE.
check_hosts() {
  local tool=$1 label=$2 image=$3 h all run bad
  for h in "${HOSTS[@]}"; do
    all=$(docker_on "$h" ps -aq --filter "label=$label" | wc -l)
    run=$(docker_on "$h" ps -q --filter "label=$label" --filter status=running | wc -l)
    # berth runs name@digest and keeps the image as written in a label.
    bad=$(docker_on "$h" ps --filter "label=$label" --format '{{if .Label "berth.image"}}{{.Label "berth.image"}}{{else}}{{.Image}}{{end}}' | grep -cvxF "$image" || true)
    [[ $all -eq $SERVICES && $run -eq $SERVICES && $bad -eq 0 ]] \
      || die "$tool on $h: expected $SERVICES running containers on $image; found $run running, $all in all, $bad on another image"
  done
}

# Every phase starts from nothing: no containers, no images on the hosts.
fresh_hosts() {
  clean_hosts
  remove_images
}

RES=$WORK/res
mkdir -p "$RES"

berth_ok() { local what=$1; shift; berth_expect 0 "$what" "$@"; }
berth_changed() { local what=$1; shift; berth_expect 2 "$what" "$@"; }

phase_berth() {
  local r=$1 i
  berth_stack "$V1"
  timed "$RES/converge.berth" berth_changed "berth converge" apply --repo "$REPO" --detailed-exitcode
  check_hosts berth "berth.project=$PROJECT" "$V1"
  berth_stack "$V2"
  timed "$RES/update.berth" berth_changed "berth update" apply --repo "$REPO" --detailed-exitcode
  check_hosts berth "berth.project=$PROJECT" "$V2"
  ssh_floor_once # warm-up, untimed
  for ((i = 1; i <= NOOP_RUNS; i++)); do
    timed "$RES/noop.floor" ssh_floor_once
    timed "$RES/plan.berth" berth_ok "berth plan" plan --repo "$REPO" --detailed-exitcode
    timed "$RES/noop.berth" berth_ok "berth no-op apply" apply --repo "$REPO" --detailed-exitcode
  done
  log "cycle $r: berth: converge $(last "$RES/converge.berth") s, update $(last "$RES/update.berth") s"
}

phase_compose() {
  local r=$1 i
  compose_file "$V1"
  timed "$RES/converge.compose" compose_up_all
  check_hosts docker-compose "$COMPOSE_LABEL" "$V1"
  compose_file "$V2"
  timed "$RES/update.compose" compose_up_all
  check_hosts docker-compose "$COMPOSE_LABEL" "$V2"
  for ((i = 1; i <= NOOP_RUNS; i++)); do
    timed "$RES/noop.compose" compose_up_all
    if grep -qE '^(Creating|Recreating|Starting|Pulling)' "$WORK"/compose-*.log; then
      cat "$WORK"/compose-*.log >&2
      die "docker-compose no-op up -d changed something"
    fi
  done
  check_hosts docker-compose "$COMPOSE_LABEL" "$V2"
  log "cycle $r: compose: converge $(last "$RES/converge.compose") s, update $(last "$RES/update.compose") s"
}

phase_floor() {
  local r=$1
  timed "$RES/converge.floor" floor_all "$V1" 0
  check_hosts floor "$FLOOR_LABEL" "$V1"
  timed "$RES/update.floor" floor_all "$V2" 1
  check_hosts floor "$FLOOR_LABEL" "$V2"
  log "cycle $r: floor: converge $(last "$RES/converge.floor") s, update $(last "$RES/update.floor") s"
}

# The last sample of FILE, in seconds.
last() { tail -n 1 "$1" | awk '{ printf "%.2f", $1 / 1e9 }'; }

# -------------------------------------------------------------- measuring ---

# TOOLS: which of berth, compose, floor to run (default all three).
read -r -a TOOLS <<<"${TOOLS:-berth compose floor}"
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= RUNS; r++)); do
  for ((k = 0; k < ${#TOOLS[@]}; k++)); do
    tool=${TOOLS[$(((r - 1 + k) % ${#TOOLS[@]}))]}
    log "cycle $r/$RUNS: $tool"
    fresh_hosts
    "phase_$tool" "$r"
  done
done
fresh_hosts
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# ----------------------------------------------------------------- report ---

# med FIGURE TOOL: the median in seconds, or "-" when not measured.
med() {
  local f=$RES/$1.$2
  if [[ -s $f ]]; then median "$f" 1 4 | awk '{ printf "%.2f", $1 / 1e9 }'; else echo -; fi
}
rat() { if [[ $1 == - || $2 == - ]]; then echo -; else ratio "$1" "$2"; fi; }
# samples FIGURE TOOL: every sample, seconds, in the order taken.
samples() {
  [[ -s $RES/$1.$2 ]] || return 0
  awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 / 1e9 }' "$RES/$1.$2"
}

print_header "berth vs docker-compose vs floor"
printf '  ssh          %s\n' "$([[ $LEAN_SHELL == 1 ]] && echo "the script's sshd on port $LEAN_PORT, root's .bashrc hidden" || echo "the bed's sshd (port 22), root's .bashrc runs")"
printf '  compose      docker-compose %s over ssh:// (paramiko), one project per host, hosts at once\n' \
  "$COMPOSE_VERSION"
printf '  load avg     %s at start, %s at end (1/5/15 min)\n' "$START_LOAD" "$END_LOAD"
printf '  workload     %d hosts x %d services = %d containers; images %s -> %s\n' \
  "${#HOSTS[@]}" "$SERVICES" $((${#HOSTS[@]} * SERVICES)) "$V1" "${V2##*:}"
printf '  runs         %d cycles (tool order rotating), %d no-op samples per tool per cycle\n\n' \
  "$RUNS" "$NOOP_RUNS"
printf '  %-32s %8s %15s %8s %14s %12s\n' "median wall time (s)" berth docker-compose floor \
  berth/compose berth/floor
# row NAME FIGURE FLOOR-FIGURE
row() {
  local name=$1 fig=$2 b c f
  b=$(med "$fig" berth)
  c=$(med "$fig" compose)
  f=$(med "$3" floor)
  printf '  %-32s %8s %15s %8s %14s %12s\n' "$name" "$b" "$c" "$f" "$(rat "$b" "$c")" "$(rat "$b" "$f")"
}
row "first converge (pull + create)" converge converge
row "update all (v1 -> v2)" update update
row "no-op apply" noop noop
row "plan" plan noop
printf '\n  floor, converge/update: per host one SSH command: docker pull, then %d x docker run -d\n' "$SERVICES"
printf '         (update: docker rm -f + docker run -d) all at once; hosts at once; no checks\n'
printf '  floor, no-op/plan: one SSH handshake + docker ps -a per host, hosts at once\n'
printf '  compose no-op: docker-compose up -d with nothing to change\n\n'
printf '  samples (s, in order)\n'
for fig in converge update noop plan; do
  for tool in berth compose floor; do
    s=$(samples "$fig" "$tool")
    [[ -z $s ]] || printf '    %-9s %-8s %s\n' "$fig" "$tool" "$s"
  done
done

if [[ $ROLLING == 1 ]]; then
  printf '\n  rolling-update overhead: tests/bench/rolling.sh (its own project and images)\n'
  RUNS=${ROLLING_RUNS:-3} CASES=${ROLLING_CASES:-9:stop-first} BERTH_BIN=$BIN \
    bash "$ROOT/tests/bench/rolling.sh" || die "rolling.sh failed"
fi
