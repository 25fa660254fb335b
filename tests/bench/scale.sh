#!/usr/bin/env bash
# Scale benchmark: `berth plan` and a no-op `berth apply` across HOSTS_N
# (default 200) inventory hosts, over real SSH: wall time, CPU and peak
# memory (`/usr/bin/time -v`) of the berth process, and the peak total RSS
# of the ssh clients it starts.
#
#   bash tests/bench/scale.sh            # as root; 200 hosts, RUNS=3
#   HOSTS_N=50 PARALLEL=64 RUNS=5 BERTH_BIN=target/release/berth bash tests/bench/scale.sh
#
# The bed has three engines. The inventory names edge-001..edge-N, spread
# round-robin over the three bed hosts' network namespaces. Two setups:
#
#   MODE=sshd (default): one extra sshd per inventory host, each on its own
#     port (2201..) in its bed host's namespace, started by this script the
#     way the bed starts its own (a private mount namespace whose /run holds
#     docker.sock -> that host's engine, and /run/lock). Every inventory host
#     is then a distinct SSH endpoint with its own run lock, as on a real
#     fleet. Their mount namespace also hides /root/.bashrc (bind-mounted
#     /dev/null): the runner's .bashrc starts pyenv (~0.1 s CPU per remote
#     command, see README), which would otherwise be measured 200 times.
#     LEAN_SHELL=0 keeps it.
#   MODE=shared: every inventory host points at one of the bed's three sshd
#     on port 22 (berth.yaml accepts the same address under different names).
#     Only `plan` is measured: the run lock is a file on the host
#     (/run/lock/berth-<project>.lock), so 67 names for one sshd are one
#     lock, and a no-op apply waits for itself until --lock-timeout.
#
# The project has no stacks: a no-op on each host is connect, forward the
# Docker socket, list the project's containers (none), and for apply take
# and release the run lock. The three engines are shared by all the names,
# so containers on them could not be told apart per inventory host.
#
# Everything runs on this machine: the sshd side of 200 handshakes shares
# the runner's cores, so wall times here are an upper bound; berth's own CPU
# time (user + sys) is the runner-side cost.
#
# Environment:
#   HOSTS_N        inventory hosts (default 200)
#   RUNS           timed runs of plan and of apply (default 3)
#   MODE           sshd (default) or shared
#   PARALLEL       settings.parallel (hosts contacted at once); default: berth's
#   LEAN_SHELL     1 (default) or 0, MODE=sshd only (see above)
#   KEX            if set, the ssh clients' KexAlgorithms (e.g. curve25519-sha256),
#                  through berth's settings.ssh_kex; default: OpenSSH's (on 9.x the
#                  post-quantum sntrup761x25519, ~0.1 s of client CPU per
#                  handshake on the 2-core bed VM, against ~0.01 s)
#   BERTH_BIN      berth binary to time (default: build target/release/berth)
#   BERTH_BED_DIR  the bed's directory (default /var/tmp/berth-bed)
RUNS=${RUNS:-3}
HOSTS_N=${HOSTS_N:-200}
MODE=${MODE:-sshd}
LEAN_SHELL=${LEAN_SHELL:-1}
PARALLEL=${PARALLEL:-}
KEX=${KEX:-}
PROJECT=benchscale
PORT_BASE=2200
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $HOSTS_N =~ ^[1-9][0-9]*$ && $HOSTS_N -le 999 ]] || die "HOSTS_N must be 1..999, got '$HOSTS_N'"
[[ $MODE == sshd || $MODE == shared ]] || die "MODE must be sshd or shared, got '$MODE'"
[[ $LEAN_SHELL == 0 || $LEAN_SHELL == 1 ]] || die "LEAN_SHELL must be 0 or 1, got '$LEAN_SHELL'"
[[ -z $KEX || $KEX =~ ^[a-z0-9@.,+-]+$ ]] || die "KEX must be an OpenSSH KexAlgorithms list, got '$KEX'"
[[ -z $PARALLEL || $PARALLEL =~ ^[1-9][0-9]*$ ]] || die "PARALLEL must be a positive integer, got '$PARALLEL'"

if [[ ! -x /usr/bin/time ]]; then
  log "installing GNU time (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends time >&2 || die "apt-get install time failed"
fi

# ------------------------------------------------------------------ setup ---

bench_setup
REPO=$WORK/repo
mkdir -p "$REPO"
NAMES=()
HADDR=()
HPORT=()
HBED=()
for ((i = 1; i <= HOSTS_N; i++)); do
  b=$(((i - 1) % ${#HOSTS[@]}))
  NAMES+=("$(printf 'edge-%03d' "$i")")
  HADDR+=("${ADDRS[$b]}")
  HBED+=("${HOSTS[$b]}")
  if [[ $MODE == sshd ]]; then HPORT+=($((PORT_BASE + i))); else HPORT+=(22); fi
done

SCALE_KNOWN=$KNOWN
if [[ $MODE == sshd ]]; then
  SCALE_KNOWN=$WORK/known_hosts
  : >"$SCALE_KNOWN"
  log "starting $HOSTS_N sshd (ports $((PORT_BASE + 1))..$((PORT_BASE + HOSTS_N)))"
  for i in "${!NAMES[@]}"; do
    start_sshd "${HBED[$i]}" "${HADDR[$i]}" "${HPORT[$i]}" "$LEAN_SHELL"
  done
  for i in "${!NAMES[@]}"; do wait_sshd "${HADDR[$i]}" "${HPORT[$i]}"; done
fi

{
  printf 'project: %s\ndefaults:\n  identity_file: %s\nsettings:\n  known_hosts: %s\n' \
    "$PROJECT" "$KEY" "$SCALE_KNOWN"
  [[ -z $PARALLEL ]] || printf '  parallel: %s\n' "$PARALLEL"
  [[ -z $KEX ]] || printf '  ssh_kex: %s\n' "$KEX"
  printf 'hosts:\n'
  for i in "${!NAMES[@]}"; do
    printf '  - name: %s\n    address: %s\n    port: %s\n' "${NAMES[$i]}" "${HADDR[$i]}" "${HPORT[$i]}"
  done
} >"$REPO/berth.yaml"
git -C "$REPO" -c init.defaultBranch=main init -q
commit "$REPO" "bench: $HOSTS_N hosts, no stacks"

# ------------------------------------------------------------- measuring ---

# sample_run OUT TIME_PID: every 0.1 s until killed, appends to OUT the summed
# RSS (KiB) and count of berth's ssh clients, and writes OUT.cpu with the
# berth process's own CPU time so far (utime + stime, clock ticks; children
# not included): the last sample is berth's own CPU to within 0.1 s.
sample_run() {
  local out=$1 tp=$2 bp="" cpu
  while :; do
    [[ -n $bp ]] || bp=$(pgrep -P "$tp" | head -n 1) || true
    if [[ -n $bp ]]; then
      cpu=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$bp/stat" 2>/dev/null) \
        && echo "$cpu" >"$out.cpu"
    fi
    # berth's ssh masters keep their control sockets in /tmp/berth-<pid>/.
    # One ps per sample: the sampler must not cost the run much CPU.
    ps -C ssh -o rss=,args= 2>/dev/null \
      | awk '/\/berth-/ { s += $1; n++ } END { print s + 0, n + 0 }' >>"$out" || true
    sleep 0.1
  done
}

# run_one KIND R: one timed berth KIND (plan or apply), no-op required.
# Appends "wall user sys maxrss_kib ssh_rss_kib ssh_n own_cpu" to $WORK/KIND
# (seconds unless said; user and sys include the reaped ssh client processes).
run_one() {
  local kind=$1 r=$2 tv=$WORK/time.txt sp tp rc=0 wall user sys rss sshrss sshn own
  : >"$WORK/sample"
  echo 0 >"$WORK/sample.cpu"
  /usr/bin/time -v -o "$tv" "$BIN" "$kind" --repo "$REPO" --detailed-exitcode >"$LOG" 2>&1 &
  tp=$!
  sample_run "$WORK/sample" "$tp" &
  sp=$!
  wait "$tp" || rc=$?
  kill "$sp" 2>/dev/null
  wait "$sp" 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then
    cat "$LOG" >&2
    die "$kind run $r: berth $kind --detailed-exitcode exited $rc (expected 0: no changes)"
  fi
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, a, ":"); s = 0
    for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s }' "$tv")
  user=$(awk -F': ' '/User time/ { print $2 }' "$tv")
  sys=$(awk -F': ' '/System time/ { print $2 }' "$tv")
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tv")
  read -r sshrss sshn < <(sort -n "$WORK/sample" | tail -n 1)
  own=$(awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", $1 / t }' "$WORK/sample.cpu")
  echo "$wall $user $sys $rss ${sshrss:-0} ${sshn:-0} $own" >>"$WORK/$kind"
  log "$kind run $r/$RUNS: ${wall}s wall, ${user}s user, ${sys}s sys (berth itself ${own}s)," \
    "berth max RSS $((rss / 1024)) MiB, ssh clients $((${sshrss:-0} / 1024)) MiB (${sshn:-0} at peak)"
}

KINDS=(plan)
[[ $MODE == shared ]] || KINDS+=(apply)
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
log "warm-up: one untimed plan"
berth_expect 0 "warm-up plan" plan --repo "$REPO" --detailed-exitcode
for ((r = 1; r <= RUNS; r++)); do
  for kind in "${KINDS[@]}"; do run_one "$kind" "$r"; done
done
END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# ----------------------------------------------------------------- report ---

print_header "berth scale benchmark"
printf '  load avg     %s at start, %s at end (1/5/15 min)\n' "$START_LOAD" "$END_LOAD"
if [[ $MODE == sshd ]]; then
  printf '  setup        %d inventory hosts, one sshd each (ports %d..%d) over the bed'"'"'s %d engines;\n' \
    "$HOSTS_N" $((PORT_BASE + 1)) $((PORT_BASE + HOSTS_N)) "${#HOSTS[@]}"
  printf '               remote .bashrc %s; project without stacks\n' \
    "$([[ $LEAN_SHELL == 1 ]] && echo hidden || echo kept)"
else
  printf '  setup        %d inventory hosts over the bed'"'"'s %d sshd (port 22, shared run lock:\n' \
    "$HOSTS_N" "${#HOSTS[@]}"
  printf '               apply not measured); project without stacks\n'
fi
printf '  parallel     %s\n' "${PARALLEL:-berth default}"
printf '  ssh kex      %s\n' "${KEX:-OpenSSH default ($(ssh -V 2>&1 | cut -d, -f1))}"
printf '  runs         %d each; medians\n\n' "$RUNS"
printf '  %-20s %9s %9s %9s %12s %10s %10s\n' "" "wall (s)" "user (s)" "sys (s)" "berth itself" "berth RSS" "ssh RSS"
printf '  %-20s %9s %9s %9s %12s %10s %10s\n' "" "" "" "" "CPU (s)" "(MiB)" "(MiB)"
for kind in "${KINDS[@]}"; do
  printf '  %-20s %9s %9s %9s %12s %10s %10s\n' "berth $kind (no-op)" \
    "$(median "$WORK/$kind" 1)" "$(median "$WORK/$kind" 2)" "$(median "$WORK/$kind" 3)" \
    "$(median "$WORK/$kind" 7)" \
    "$(median "$WORK/$kind" 4 0 | awk '{ printf "%.1f", $1 / 1024 }')" \
    "$(median "$WORK/$kind" 5 0 | awk '{ printf "%.1f", $1 / 1024 }')"
done
printf '\n  user, sys = /usr/bin/time -v: berth and the processes it waited for (the ssh\n'
printf '              clients up to their handshake, before they go to the background)\n'
printf '  berth itself CPU = utime + stime of the berth process alone (/proc, sampled)\n'
printf '  berth RSS = "Maximum resident set size" of /usr/bin/time -v (the berth process)\n'
printf '  ssh RSS   = peak of the summed RSS of the ssh clients berth runs (sampled every 0.1 s)\n'
