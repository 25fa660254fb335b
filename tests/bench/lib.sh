# Shared by the benchmarks (sourced, not run): the bed, the berth binary
# under test, a work directory, and cleanup of the bench project's containers
# and networks on exit (also on error or interrupt).
#
# The sourcing script sets PROJECT (and RUNS's default) first, then calls
# bench_setup. After it: ROOT, HOSTS, ADDRS, KEY, KNOWN, DOCKER, SSH_OPTS,
# BIN (a private copy), BIN_SRC, WORK, LOG, and the bed() lookup.
#
# A script that makes more than the bench project's containers adds their
# label filters (KEY=VALUE) to CLEAN_LABELS, and may define bench_cleanup_first
# (called by the exit trap before the containers are removed: stop what still
# makes them) and bench_cleanup_extra (called after, before the sshd it started
# are stopped and the work directory is removed).
#
# Environment:
#   BERTH_BIN      berth binary to time (default: build target/release/berth)
#   BERTH_BED_DIR  the bed's directory (default /var/tmp/berth-bed)

set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HOSTS=(edge-1 edge-2 edge-3)
BED_DIR=${BERTH_BED_DIR:-/var/tmp/berth-bed}
BED_DIR=${BED_DIR%/}
BED_ENV=$BED_DIR/bed.env

WORK=""
DOCKER=""
ADDRS=()
KEY=""
KNOWN=""
SSH_OPTS=()
CLEAN_LABELS=()
# The port the tools reach the hosts on: 22 (the bed's sshd) unless
# use_lean_sshd moved them to sshd of the benchmark's own.
SSH_PORT=22
SSHD_PIDS=()

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (the test bed needs it)"
[[ ${RUNS:-} =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '${RUNS:-}'"
[[ -n ${PROJECT:-} ]] || die "PROJECT must be set before sourcing lib.sh"

# One value from bed.env (KEY=VALUE lines, values possibly double-quoted).
bed() {
  local v
  v=$(sed -n "s/^$1=//p" "$BED_ENV" | tail -n 1)
  v=${v#\"}
  v=${v%\"}
  [[ -n $v ]] || die "$1 missing from $BED_ENV"
  printf '%s\n' "$v"
}

# The docker CLI against one bed host's engine.
docker_on() {
  local h=$1
  shift
  "$DOCKER" -H "unix://$BED_DIR/h/$h/docker.sock" "$@"
}

# Removes the bench project's containers and networks (and those labelled
# with any of CLEAN_LABELS) on every bed host, and the commit its last apply
# recorded beside the run lock (each bench run starts a new repo: a new
# history, which berth would refuse as a rewind).
clean_hosts() {
  local h a label sock p pids=()
  [[ -n $DOCKER ]] || return 0
  for a in "${ADDRS[@]}"; do
    ssh -i "$KEY" -o "UserKnownHostsFile=$KNOWN" -o StrictHostKeyChecking=yes -o BatchMode=yes \
      -o ConnectTimeout=5 -p "$SSH_PORT" "root@$a" \
      "rm -f /run/lock/berth-$PROJECT.lock.applied /tmp/berth-$PROJECT.lock.applied" \
      </dev/null >/dev/null 2>&1 &
    pids+=("$!")
  done
  # Only these: the sourcing script may have daemons of its own in the background.
  for p in "${pids[@]}"; do wait "$p" || true; done
  for h in "${HOSTS[@]}"; do
    sock="unix://$BED_DIR/h/$h/docker.sock"
    for label in "berth.project=$PROJECT" ${CLEAN_LABELS[@]+"${CLEAN_LABELS[@]}"}; do
      docker_on "$h" ps -aq --filter "label=$label" 2>/dev/null \
        | xargs -r "$DOCKER" -H "$sock" rm -f >/dev/null 2>&1 \
        || log "$h: removing containers ($label) failed"
      docker_on "$h" network ls -q --filter "label=$label" 2>/dev/null \
        | xargs -r "$DOCKER" -H "$sock" network rm >/dev/null 2>&1 \
        || log "$h: removing networks ($label) failed"
    done
  done
}

cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  log "cleaning up (project $PROJECT)"
  if declare -F bench_cleanup_first >/dev/null; then bench_cleanup_first; fi
  clean_hosts
  if declare -F bench_cleanup_extra >/dev/null; then bench_cleanup_extra; fi
  stop_sshds
  [[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Checks that the bed is up (it is shared: a benchmark never brings it up
# or down), reads it, builds or takes the binary and makes the work
# directory. A leftover of a killed earlier run is removed.
bench_setup() {
  local h
  bash "$ROOT/tests/bed/testbed.sh" status >/dev/null \
    || die "the test bed is not up; bring it up with \`bash tests/bed/testbed.sh up\` (idempotent)"

  KEY=$(bed BED_KEY)
  KNOWN=$(bed BED_KNOWN_HOSTS)
  DOCKER=$(sed -n 's/^BED_DOCKER_CLI=//p' "$BED_ENV" | tail -n 1)
  DOCKER=${DOCKER:-docker}
  ADDRS=()
  for h in "${HOSTS[@]}"; do
    ADDRS+=("$(bed "BED_ADDR_${h//-/_}")")
  done
  set_ssh_opts

  if [[ -n ${BERTH_BIN:-} ]]; then
    BIN=$BERTH_BIN
  else
    log "building berth (cargo build --release --bin berth)"
    (cd "$ROOT" && cargo build --release --bin berth >&2)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/berth
  fi
  [[ -x $BIN ]] || die "no berth binary at $BIN"

  WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-$PROJECT.XXXXXX")
  LOG=$WORK/run.log
  # Time a private copy: a concurrent cargo build may replace target/release/berth.
  BIN_SRC=$BIN
  cp "$BIN" "$WORK/berth"
  BIN=$WORK/berth

  clean_hosts

  export GIT_AUTHOR_NAME="berth bench" GIT_AUTHOR_EMAIL="bench@berth.invalid"
  export GIT_COMMITTER_NAME="berth bench" GIT_COMMITTER_EMAIL="bench@berth.invalid"
  export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
}

set_ssh_opts() {
  SSH_OPTS=(-i "$KEY" -o "UserKnownHostsFile=$KNOWN" -o StrictHostKeyChecking=yes
    -o BatchMode=yes -o ControlMaster=no -o ControlPath=none -p "$SSH_PORT")
}

# start_sshd HOST ADDR PORT LEAN: one more sshd for bed host HOST, listening
# on ADDR:PORT in HOST's network namespace, started the way the bed starts
# its own (the bed's config; a private mount namespace whose /run holds
# /run/lock and docker.sock -> HOST's engine). LEAN=1 also hides root's
# .bashrc there (/dev/null bind-mounted over it): on this machine it starts
# pyenv, whose `pyenv rehash` lock makes concurrent remote shells wait on
# each other (tens of `docker system dial-stdio` shells from docker-compose
# took minutes). Appends "[ADDR]:PORT KEY" to $WORK/known_hosts and the PID
# to SSHD_PIDS (stopped on exit). wait_sshd ADDR PORT waits until it accepts.
start_sshd() {
  local h=$1 addr=$2 port=$3 lean=$4 cfg=$WORK/sshd_config.$1
  if [[ ! -f $cfg ]]; then
    grep -v '^ListenAddress' "$BED_DIR/h/$h/sshd_config" | sed 's/^LogLevel .*/LogLevel ERROR/' >"$cfg"
  fi
  printf '[%s]:%s %s\n' "$addr" "$port" \
    "$(cut -d' ' -f1-2 "$BED_DIR/h/$h/ssh_host_ed25519_key.pub")" >>"$WORK/known_hosts"
  # shellcheck disable=SC2016 # $0, $1, $@ belong to the inner sh
  nsenter --net="/run/netns/$(bed "BED_NETNS_${h//-/_}")" \
    unshare --mount --propagation private \
    sh -c '
      mount -t tmpfs -o mode=755,size=1m bench-run /run &&
      mkdir -m 755 /run/sshd && mkdir -m 1777 /run/lock && ln -s "$0" /run/docker.sock &&
      if [ ! -L /var/run ]; then
        mount -t tmpfs -o mode=755,size=1m bench-var-run /var/run &&
        ln -s "$0" /var/run/docker.sock
      fi &&
      if [ "$1" = 1 ] && [ -f /root/.bashrc ]; then mount --bind /dev/null /root/.bashrc; fi &&
      shift 2 && exec "$@"' "$BED_DIR/h/$h/docker.sock" "$lean" x \
    /usr/sbin/sshd -D -e -f "$cfg" -o "ListenAddress=$addr:$port" \
    </dev/null >>"$WORK/sshd.log" 2>&1 &
  SSHD_PIDS+=("$!")
}

wait_sshd() {
  local t
  for ((t = 0; t < 200; t++)); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.05
  done
  cat "$WORK/sshd.log" >&2
  die "the benchmark's sshd at $1:$2 did not come up"
}

stop_sshds() {
  local p
  ((${#SSHD_PIDS[@]})) || return 0
  for p in "${SSHD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SSHD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SSHD_PIDS=()
}

# use_lean_sshd PORT: every tool reaches the three bed hosts through sshd of
# the benchmark's own on PORT with root's .bashrc hidden (see start_sshd):
# sets SSH_PORT, KNOWN (the new sshd's host keys) and SSH_OPTS.
use_lean_sshd() {
  local i
  : >"$WORK/known_hosts"
  for i in "${!HOSTS[@]}"; do start_sshd "${HOSTS[$i]}" "${ADDRS[$i]}" "$1" 1; done
  for i in "${!HOSTS[@]}"; do wait_sshd "${ADDRS[$i]}" "$1"; done
  SSH_PORT=$1
  KNOWN=$WORK/known_hosts
  set_ssh_opts
}

# write_inventory DIR: berth.yaml for the three bed hosts (each with its own
# secrets_dir tmpfs), and `git init`.
write_inventory() {
  local repo=$1 i
  mkdir -p "$repo"
  {
    printf 'project: %s\ndefaults:\n  identity_file: %s\nsettings:\n  known_hosts: %s\n  insecure_registries: ["%s"]\n%shosts:\n' \
      "$PROJECT" "$KEY" "$KNOWN" "$(bed BED_REGISTRY)" "${EXTRA_SETTINGS:-}"
    for i in "${!HOSTS[@]}"; do
      printf '  - name: %s\n    address: %s\n    port: %s\n    secrets_dir: %s\n' \
        "${HOSTS[$i]}" "${ADDRS[$i]}" "$SSH_PORT" "$(bed "BED_SECRETS_DIR_${HOSTS[$i]//-/_}")"
    done
  } >"$repo/berth.yaml"
  git -C "$repo" -c init.defaultBranch=main init -q
}

# commit DIR MESSAGE: commits everything (unsigned, whatever the user's config).
commit() {
  git -C "$1" add -A
  git -C "$1" -c commit.gpgsign=false commit -q -m "$2"
}

# berth_expect WANT WHAT ARGS...: runs berth with its output in $LOG; fails
# (showing the log) unless it exits WANT.
berth_expect() {
  local want=$1 what=$2 rc=0
  shift 2
  "$BIN" "$@" >"$LOG" 2>&1 || rc=$?
  if [[ $rc -ne $want ]]; then
    cat "$LOG" >&2
    die "$what: berth $* exited $rc (expected $want)"
  fi
}

# "min median max" of the numbers in file $1, divided by $2 (default 1e6:
# ns -> ms), 1 decimal.
stats() {
  sort -n "$1" | awk -v d="${2:-1e6}" '{ v[NR] = $1 }
    END {
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.1f %.1f %.1f\n", v[1] / d, m / d, v[NR] / d
    }'
}

# median FILE COLUMN [DECIMALS]: the median of one column of numbers (default 2 decimals).
median() {
  awk -v c="$2" '{ print $c }' "$1" | sort -n | awk -v d="${3:-2}" '{ v[NR] = $1 }
    END { printf "%." d "f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ssh_floor_once: the least any tool must do to look at the hosts: one SSH
# handshake + one `docker ps -a` per host, all hosts at once.
ssh_floor_once() {
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

# timed FILE CMD...: runs CMD and appends its wall time (ns) to FILE.
timed() {
  local out=$1 t0 t1
  shift
  t0=$(date +%s%N)
  "$@"
  t1=$(date +%s%N)
  echo $((t1 - t0)) >>"$out"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# The header every benchmark prints: what ran where, under what load.
print_header() {
  printf '\n%s — %s\n' "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '  berth        %s (%s)\n' "$("$BIN" --version)" "$BIN_SRC"
  printf '  source tree  %s\n' "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  printf '  nproc        %s\n' "$(nproc)"
}
