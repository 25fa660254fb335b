#!/usr/bin/env bash
# berth multi-host test bed: three "hosts" on one machine, each a network
# namespace with its own containerd + dockerd and its own OpenSSH sshd, plus
# one image registry on the bridge, four test images pushed to it, a second
# registry that wants credentials (htpasswd basic auth, one image), and an
# SSH bastion (a fourth sshd, no engine) for ProxyJump tests.
#
#   tests/bed/testbed.sh up|down|status|env
#   tests/bed/testbed.sh sshd-stop HOST|sshd-start HOST
#   tests/bed/testbed.sh engine-stop HOST|engine-start HOST
#   tests/bed/testbed.sh isolate HOST|unisolate HOST
#   tests/bed/testbed.sh bastion-up|authreg-up
#   tests/bed/testbed.sh image-base [HOST]
#   tests/bed/testbed.sh image-base-cache
#   faults, for the fault-injection tests (each idempotent; `up` and `down`
#   undo every one of them):
#   tests/bed/testbed.sh registry-stop|registry-start
#   tests/bed/testbed.sh engine-restart HOST|sshd-restart HOST
#   tests/bed/testbed.sh link-drop HOST|link-restore HOST
#   tests/bed/testbed.sh fill-disk edge-2|free-disk edge-2
#   tests/bed/testbed.sh disk-up
#   tests/bed/testbed.sh swarm-up|swarm-down
#   `swarm-up` joins the three engines into one Docker Swarm (init on edge-1
#   advertising 10.77.0.11, edge-2/3 join as workers) and waits until all
#   three nodes are ready; a swarm already so is left alone, anything else is
#   left and made again. `swarm-down` makes every engine leave its swarm
#   (`swarm leave --force`: the services' tasks stop with it) and removes the
#   `docker_gwbridge` network the swarm made. `down` needs neither: the
#   engines' data go with the bed.
#
# Layout (fixed, one bed per machine):
#   bridge berthbr0 10.77.0.1/24 in the root namespace (registry on :5000,
#     the registry with credentials on :5001: user and password in bed.env,
#     Docker client configs with them right and wrong under BED_DIR/authreg)
#   edge-N in netns berth-edge-N at 10.77.0.1N (veth bth-edge-N <-> eth0)
#   bastion in netns berth-edge-bastion at 10.77.0.10 (veth bth-edge-b): sshd
#     only, key auth with the bed's key, TCP forwarding allowed. Its names
#     share the edge prefixes so every stale-bed cleanup by prefix removes it.
#   `isolate HOST` makes HOST's sshd refuse the runner (10.77.0.1) while the
#   bastion still reaches it; `unisolate HOST` (and `up`) undo that.
#   `link-drop HOST` silently drops every packet between HOST and the bridge
#   address (runner and registry): no RST, no ICMP, as a cut cable or a dead
#   firewall state does; `link-restore HOST` (and `up`) undo that.
#   `engine-restart HOST` restarts its containerd + dockerd (containers stop,
#   those with a restart policy come back); `sshd-restart HOST` kills its sshd
#   and every established session (the runner's SSH master dies), then
#   starts it again.
#   edge-2's engine data (dockerd's --data-root, where it keeps images and
#   container layers) is a small file system of its own, a tmpfs capped at
#   DISK_SIZE (memory is used only for what is stored); `fill-disk edge-2`
#   lowers the cap to what is in use, so the engine's next write fails with
#   "no space left on device" as on a full disk, without filling anything;
#   `free-disk edge-2` (and `up`) put the cap back. `disk-up` moves the
#   engine data of a bed made by an older copy of this script onto it (the
#   engine restarts; `up` does it too).
#   everything written lives under BED_DIR (default /var/tmp/berth-bed,
#   override with BERTH_BED_DIR); `down` removes it.
#
# `up` is idempotent: a healthy bed is left alone ("bed already up"); a
# healthy bed without a working bastion (one made by an older copy of this
# script) only gets its bastion (re)made, so a shared bed is never rebuilt for
# it (`bastion-up` does just that step; likewise a bed without the registry
# with credentials only gets that, `authreg-up`); anything else (half up, or left behind by a killed session: namespaces, bridge,
# iptables rule, mounts, stray processes) is torn down first, then the bed is
# built fresh. Mutating commands hold a lock (flock on BED_DIR's parent
# directory), so concurrent callers serialise. Daemons are started with
# setsid and all standard streams redirected, so piped callers never hang.
#
# `image-base-cache` only makes the cached tarball described below (the one
# step that downloads; ci/install-deps.sh runs it before the tests).
# `image-base [HOST]` gives HOST's engine (default edge-1) the Debian base the
# repo's Dockerfile builds on, with the packages its runtime stage lists
# already installed (the bed has no registry outside itself and its builds no
# network): debootstrap --variant=minbase from the machine's own Debian
# mirror, `docker import`ed, and printed as its image name. The root file
# system is kept as a tarball under BERTH_IMAGE_CACHE (default
# /var/cache/berth-bed), keyed by the package list, so only the first run on
# a machine pays for debootstrap; `down` removes the imported image with the
# engine's data, never the cache.
#
# BERTH_BED_STORAGE_DRIVER forces the dockerd storage driver (default: overlay2
# if an overlay mount works under BED_DIR, else vfs).
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

readonly SUBNET_PREFIX=10.77.0
readonly GATEWAY=10.77.0.1
readonly BRIDGE=berthbr0
readonly NETNS_PREFIX=berth-edge-
readonly VETH_PREFIX=bth-edge-
readonly HOSTS=(edge-1 edge-2 edge-3)
readonly BASTION_ADDR=$SUBNET_PREFIX.10
readonly BASTION_NETNS=${NETNS_PREFIX}bastion
readonly BASTION_VETH=${VETH_PREFIX}b
# iptables comment marking `isolate` rules inside a host's namespace.
readonly ISOLATE_TAG=berth-isolate
readonly REGISTRY="$GATEWAY:5000"
readonly WEB_IMAGE="$REGISTRY/berth/web"
readonly WORKER_IMAGE="$REGISTRY/berth/worker"
# The registry with credentials (htpasswd, basic auth; plain HTTP like the
# other). The password is the bed's own, for tests only.
readonly AUTH_REGISTRY="$GATEWAY:5001"
readonly AUTH_USER=berth
readonly AUTH_PASSWORD=bed-registry-pass
readonly AUTH_WEB_IMAGE="$AUTH_REGISTRY/berth/web"
# The host whose engine data is on a small file system of its own (see
# `fill-disk`), and that file system's size: room for every test's images
# and containers on one host, many times over.
readonly DISK_HOST=edge-2
readonly DISK_SIZE=1g
readonly PACKAGES_FOR=(
  # command-or-path:debian-package
  dockerd:docker.io
  containerd:containerd
  /usr/sbin/sshd:openssh-server
  ssh:openssh-client
  ssh-keygen:openssh-client
  docker-registry:docker-registry
  htpasswd:apache2-utils
  ip:iproute2
  iptables:iptables
  curl:curl
  haproxy:haproxy
  # discovery drives HAProxy's admin socket with socat on the HAProxy host.
  socat:socat
  nsenter:util-linux
  unshare:util-linux
  setsid:util-linux
  flock:util-linux
  debootstrap:debootstrap
  # bed::import starts a Compose project the way teams do before berth.
  docker-compose:docker-compose
)

BED_DIR="${BERTH_BED_DIR:-/var/tmp/berth-bed}"
BED_DIR="${BED_DIR%/}"
STATE="$BED_DIR/state"
ENV_FILE="$BED_DIR/bed.env"
SSH_DIR="$BED_DIR/ssh"
KEY="$SSH_DIR/id_ed25519"
KNOWN="$SSH_DIR/known_hosts"
KNOWN_WRONG="$SSH_DIR/known_hosts.wrong"
# known_hosts with every key right but the bastion's.
KNOWN_BASTION_WRONG="$SSH_DIR/known_hosts.bastion-wrong"
# ssh config for the bed's own ProxyJump check (tests write their own).
JUMP_CONFIG="$SSH_DIR/jump_config"
BASTION_DIR="$BED_DIR/bastion"
AUTHREG_DIR="$BED_DIR/authreg"
RUN_DIR="$BED_DIR/run"
IMAGE_CACHE="${BERTH_IMAGE_CACHE:-/var/cache/berth-bed}"
IMAGE_CACHE="${IMAGE_CACHE%/}"
# The name the base is imported under; its tag is the package list's key.
readonly IMAGE_BASE_REPO=berth-bed/debian-bookworm-minbase
T0=$(date +%s.%N)

# ---------------------------------------------------------------- helpers ---

log() { printf 'testbed: %s\n' "$*" >&2; }
die() { printf 'testbed: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2fs", b - a }'; }

host_index() { echo "${1#edge-}"; }
host_addr() { echo "$SUBNET_PREFIX.1$(host_index "$1")"; }
host_dir() { echo "$BED_DIR/h/$1"; }
# The host's secrets_dir: its own tmpfs, seen at the same path by its sshd
# (which has a private /run) and its dockerd (which resolves bind mounts in
# the machine's mount namespace, shared by the three hosts).
host_secrets() { echo "$(host_dir "$1")/secrets"; }
host_sock() { echo "$BED_DIR/h/$1/docker.sock"; }
host_ctd_sock() { echo "$BED_DIR/h/$1/ctd.sock"; }
host_data() { echo "$BED_DIR/h/$1/data"; }
host_netns() { echo "berth-$1"; }
host_var() { echo "${1//-/_}"; }

check_host() {
  local h
  for h in "${HOSTS[@]}"; do [[ $1 == "$h" ]] && return 0; done
  die "unknown host \`$1\` (hosts: ${HOSTS[*]})"
}

check_bed_dir() {
  [[ $BED_DIR == /* ]] || die "BERTH_BED_DIR must be an absolute path, got \`$BED_DIR\`"
  [[ $BED_DIR != *[[:space:]]* ]] || die "BERTH_BED_DIR must not contain spaces"
  case "$BED_DIR" in
    / | /run | /run/* | /var/run | /var/run/* | /proc* | /sys* | /dev* | /usr | /etc | /var | /var/tmp | /tmp | /root | /home)
      die "refusing BERTH_BED_DIR=\`$BED_DIR\` (use a dedicated directory outside /run)" ;;
  esac
}

docker_cli() {
  if [[ -x /usr/bin/docker ]]; then echo /usr/bin/docker; else command -v docker; fi
}

# Read and write the state file (KEY=VALUE). Writers hold the bed lock.
state_get() {
  [[ -f $STATE ]] || return 0
  sed -n "s/^$1=//p" "$STATE" | tail -n 1
}
state_set() {
  local tmp="$STATE.tmp"
  {
    if [[ -f $STATE ]]; then grep -v "^$1=" "$STATE" || true; fi
    echo "$1=$2"
  } >"$tmp"
  mv -f "$tmp" "$STATE"
}

# A recorded PID counts only if it is alive and its command line names BED_DIR
# (so a reused PID is never ours).
pid_is_ours() {
  local pid=$1
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$BED_DIR/"
}

# Alive and not a zombie (an orphan's zombie may linger until PID 1 reaps it).
is_running() {
  local st
  st=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}

# Wait until none of the PIDs is alive, at most $1 seconds; then SIGKILL.
wait_gone() {
  local limit=$1; shift
  local deadline pid alive
  deadline=$(awk -v n="$(now)" -v l="$limit" 'BEGIN { printf "%.3f", n + l }')
  while :; do
    alive=()
    for pid in "$@"; do is_running "$pid" && alive+=("$pid"); done
    ((${#alive[@]} == 0)) && return 0
    if awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }'; then
      log "  still running after ${limit}s, killing: ${alive[*]}"
      kill -9 "${alive[@]}" 2>/dev/null || true
      sleep 0.1
      return 0
    fi
    sleep 0.05
  done
}

# stop_recorded SIGNAL LIMIT NAME... : signal the recorded PIDs of NAMEs, wait.
stop_recorded() {
  local sig=$1 limit=$2; shift 2
  local name pid pids=()
  for name in "$@"; do
    pid=$(state_get "pid_$name")
    if pid_is_ours "$pid"; then
      kill "-$sig" "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    [[ -f $STATE ]] && state_set "pid_$name" ""
  done
  ((${#pids[@]} == 0)) || wait_gone "$limit" "${pids[@]}"
}

# In a subshell about to exec a daemon: close every inherited fd but 0-2 (the
# bed lock, a caller's pipes), so no caller waits on a daemon holding them.
close_extra_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

# Start a background daemon detached from the caller: its own session, all
# streams to a log file, lock fd closed. Records its PID as pid_NAME.
launch() {
  local name=$1 logf=$2; shift 2
  local pf="$RUN_DIR/$name.pid" i pid
  rm -f "$pf"
  (
    close_extra_fds
    # shellcheck disable=SC2016 # $$ and $0 belong to the inner sh
    exec setsid sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pf" "$@" \
      </dev/null >>"$logf" 2>&1
  ) &
  for ((i = 0; i < 200; i++)); do
    [[ -s $pf ]] && break
    sleep 0.01
  done
  [[ -s $pf ]] || die "$name did not start (log: $logf)"
  pid=$(<"$pf")
  state_set "pid_$name" "$pid"
}

# wait_for WHAT LOGFILE PID TIMEOUT CMD... : poll CMD with a short backoff.
# Fails naming WHAT and showing the end of LOGFILE if CMD never succeeds or
# the process PID (if given) exits first.
wait_for() {
  local what=$1 logf=$2 pid=$3 limit=$4; shift 4
  local start delay=0.02
  start=$(now)
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ -n $pid ]] && ! is_running "$pid"; then
      fail_with_log "$what: process $pid exited" "$logf"
    fi
    if awk -v s="$start" -v n="$(now)" -v l="$limit" 'BEGIN { exit !(n - s > l) }'; then
      fail_with_log "$what did not come up within ${limit}s" "$logf"
    fi
    sleep "$delay"
    delay=$(awk -v d="$delay" 'BEGIN { d *= 2; if (d > 0.5) d = 0.5; print d }')
  done
}

fail_with_log() {
  printf 'testbed: error: %s\n' "$1" >&2
  if [[ -n ${2:-} && -f $2 ]]; then
    printf 'testbed: last lines of %s:\n' "$2" >&2
    tail -n 25 "$2" | sed 's/^/    /' >&2
  fi
  exit 1
}

# ------------------------------------------------------------- readiness ---

ping_engine() {
  [[ $(curl -sf --max-time 2 --unix-socket "$(host_sock "$1")" http://d/_ping) == OK ]]
}

ssh_true() { ssh_addr_true "$(host_addr "$1")"; }

ssh_addr_true() {
  ssh -F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o UserKnownHostsFile="$KNOWN" \
    -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -o ConnectTimeout=3 -o LogLevel=ERROR "root@$1" true </dev/null
}

# edge-1 through the bastion (ProxyJump; the jump reads the same config).
jump_true() {
  ssh -F "$JUMP_CONFIG" -J "root@$BASTION_ADDR" "root@$(host_addr edge-1)" true </dev/null
}

bastion_healthy() {
  [[ -n $(state_get pid_sshd_bastion) && -f $JUMP_CONFIG ]] || return 1
  ssh_addr_true "$BASTION_ADDR" 2>/dev/null && jump_true 2>/dev/null
}

ping_registry() {
  curl -sf --max-time 2 -o /dev/null "http://$REGISTRY/v2/"
}

# bed_healthy [quiet]: one round of every check, in parallel.
bed_healthy() {
  local quiet=${1:-} h pids=() what=() i bad=0
  if [[ ! -f $STATE || ! -f $ENV_FILE || -z $(state_get ready) ]]; then
    [[ -n $quiet ]] || log "not up: no complete bed under $BED_DIR"
    return 1
  fi
  for h in "${HOSTS[@]}"; do
    if ! mountpoint -q "$(host_secrets "$h")"; then
      [[ -n $quiet ]] || log "not up: no tmpfs at $(host_secrets "$h")"
      return 1
    fi
    ping_engine "$h" & pids+=($!); what+=("engine $h (/_ping on $(host_sock "$h"))")
    ssh_true "$h" 2>/dev/null & pids+=($!); what+=("sshd $h (ssh root@$(host_addr "$h") true)")
  done
  ping_registry & pids+=($!); what+=("registry (http://$REGISTRY/v2/)")
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      bad=1
      [[ -n $quiet ]] || log "not up: ${what[$i]} does not answer"
    fi
  done
  return "$bad"
}

# -------------------------------------------------------------- packages ---

ensure_packages() {
  local entry cmd pkg missing=()
  for entry in "${PACKAGES_FOR[@]}"; do
    cmd=${entry%%:*}; pkg=${entry#*:}
    if ! command -v "$cmd" >/dev/null 2>&1; then
      [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
    fi
  done
  # The images need a statically linked busybox.
  if ! [[ -x /bin/busybox ]] || ldd /bin/busybox >/dev/null 2>&1; then
    missing+=(busybox-static)
  fi
  ((${#missing[@]} == 0)) && return 0
  log "installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
}

# ------------------------------------------------------------- tear-down ---

netns_inode() { stat -L -c %i "/run/netns/$1" 2>/dev/null || true; }

# Kill (SIGKILL) every process that belongs to a bed but is not recorded:
# processes inside a berth-edge-* network namespace; container processes (in
# their own namespaces, found by the cgroup named after a container ID from a
# bed data root; they outlive a killed dockerd and shim); bed daemons naming
# BED_DIR on their command line. Never the caller or its ancestors.
sweep_processes() {
  local ns inodes=" " protect=" " a=$$ victims=() path target pid ino p comm cmd ids
  while [[ $a -gt 1 ]]; do
    protect+="$a "
    a=$(awk '{ print $4 }' "/proc/$a/stat" 2>/dev/null || echo 1)
  done
  for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep "^$NETNS_PREFIX" || true); do
    inodes+="$(netns_inode "$ns") "
  done
  while IFS=' ' read -r path target; do
    pid=${path#/proc/}; pid=${pid%%/*}
    ino=${target#net:[}; ino=${ino%]}
    [[ $protect != *" $pid "* && $inodes == *" $ino "* ]] && victims+=("$pid")
  done < <(find /proc/[0-9]*/ns/net -maxdepth 0 -printf '%p %l\n' 2>/dev/null || true)
  ids=$(find "$BED_DIR"/h/*/data/containers -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null \
    | grep -E '^[0-9a-f]{64}$' || true)
  if [[ -n $ids ]]; then
    while IFS= read -r path; do
      pid=${path#/proc/}; pid=${pid%%/*}
      [[ $protect == *" $pid "* ]] || victims+=("$pid")
    done < <(grep -lF "$ids" /proc/[0-9]*/cgroup 2>/dev/null || true)
  fi
  for p in /proc/[0-9]*; do
    { read -r comm <"$p/comm"; } 2>/dev/null || continue
    case "$comm" in
      dockerd | containerd | containerd-shim* | sshd | docker-registry | docker-proxy)
        pid=${p#/proc/}
        [[ $protect == *" $pid "* ]] && continue
        cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        [[ $cmd == *"$BED_DIR/"* ]] && victims+=("$pid") ;;
    esac
  done
  if ((${#victims[@]})); then
    log "  killing ${#victims[@]} leftover bed process(es)"
    kill -9 "${victims[@]}" 2>/dev/null || true
    wait_gone 3 "${victims[@]}"
  fi
}

# containerd-shim's socket lives at /run/containerd/s/sha256(<containerd
# address>/<namespace>/<container id>) and outlives a killed shim: remove ours.
remove_shim_sockets() {
  local h id
  for h in "${HOSTS[@]}"; do
    for id in $(find "$(host_dir "$h")/data/containers" -mindepth 1 -maxdepth 1 -type d \
      -printf '%f\n' 2>/dev/null | grep -E '^[0-9a-f]{64}$' || true); do
      rm -f "/run/containerd/s/$(printf '%s' "$(host_ctd_sock "$h")/moby/$id" | sha256sum | cut -c1-64)"
    done
  done
}

unmount_all() {
  local pass mp left
  for pass in 1 2 3; do
    left=0
    while IFS= read -r mp; do
      [[ -n $mp ]] || continue
      left=1
      umount -l "$mp" 2>/dev/null || umount -f "$mp" 2>/dev/null || true
    done < <(awk '{ print $5 }' /proc/self/mountinfo | while IFS= read -r m; do printf '%b\n' "$m"; done \
      | awk -v d="$BED_DIR/" 'index($0, d) == 1 || $0 == substr(d, 1, length(d) - 1) { print length($0), $0 }' \
      | sort -rn | cut -d' ' -f2-)
    ((left)) || return 0
    [[ $pass == 3 ]] || sleep 0.1
  done
}

teardown_network() {
  local ns link
  for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep "^$NETNS_PREFIX" || true); do
    ip netns delete "$ns" 2>/dev/null || log "  could not delete netns $ns"
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | sed 's/@.*//' | grep "^$VETH_PREFIX" || true); do
    ip link delete "$link" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link delete "$BRIDGE" 2>/dev/null || log "  could not delete bridge $BRIDGE"
  fi
  if command -v iptables >/dev/null 2>&1; then
    while iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
  fi
}

# Tear down whatever there is of a bed, bounded in time. Safe when absent.
teardown() {
  local prev
  if [[ -f $STATE ]]; then
    # dockerd first: it stops its containers (shutdown-timeout 3).
    stop_recorded TERM 8 dockerd_edge_1 dockerd_edge_2 dockerd_edge_3
    stop_recorded TERM 3 containerd_edge_1 containerd_edge_2 containerd_edge_3 \
      sshd_edge_1 sshd_edge_2 sshd_edge_3 sshd_bastion registry authreg
  fi
  sweep_processes
  remove_shim_sockets
  unmount_all
  teardown_network
  # Empty directories dockerd and containerd-shim make outside BED_DIR
  # (hard-coded paths); rmdir leaves them if anything else uses them.
  rmdir /run/containerd/s /run/containerd /run/docker/plugins /run/docker 2>/dev/null || true
  prev=$(state_get ip_forward_prev)
  if [[ -n $prev && $prev != 1 ]]; then
    echo "$prev" >/proc/sys/net/ipv4/ip_forward 2>/dev/null || true
  fi
  if [[ -d $BED_DIR ]]; then
    if [[ -f $BED_DIR/.berth-bed || -z $(ls -A "$BED_DIR") ]]; then
      rm -rf "$BED_DIR" 2>/dev/null || { unmount_all; rm -rf "$BED_DIR"; }
    else
      die "$BED_DIR exists but is not a berth bed (no .berth-bed marker); not removing it"
    fi
  fi
}

# --------------------------------------------------------------- bring-up ---

choose_storage_driver() {
  if [[ -n ${BERTH_BED_STORAGE_DRIVER:-} ]]; then
    echo "$BERTH_BED_STORAGE_DRIVER"; return
  fi
  local p="$BED_DIR/probe" fstype
  fstype=$(stat -f -c %T "$BED_DIR")
  if [[ $fstype == overlayfs ]]; then echo vfs; return; fi
  mkdir -p "$p/l" "$p/u" "$p/w" "$p/m"
  if mount -t overlay overlay -o "lowerdir=$p/l,upperdir=$p/u,workdir=$p/w" "$p/m" 2>/dev/null; then
    umount "$p/m"
    rm -rf "$p"
    echo overlay2
  else
    rm -rf "$p"
    echo vfs
  fi
}

setup_network() {
  local h ns addr other
  other=$(ip -o -4 addr show 2>/dev/null | awk -v b="$BRIDGE" '$2 != b && $4 ~ /^10\.77\.0\./ { print $2 }' | head -n 1)
  [[ -z $other ]] || die "interface $other already has an address in $SUBNET_PREFIX.0/24"
  ip link add name "$BRIDGE" type bridge forward_delay 0
  ip addr add "$GATEWAY/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for h in "${HOSTS[@]}"; do
    ns=$(host_netns "$h"); addr=$(host_addr "$h")
    ip netns add "$ns"
    ip link add "$VETH_PREFIX${h#edge-}" type veth peer name eth0 netns "$ns"
    ip link set "$VETH_PREFIX${h#edge-}" master "$BRIDGE" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$GATEWAY"
  done
  state_set ip_forward_prev "$(cat /proc/sys/net/ipv4/ip_forward)"
  echo 1 >/proc/sys/net/ipv4/ip_forward
  iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
}

public_key() { awk '{ print $1, $2 }' "$1.pub"; }

setup_keys() {
  local h
  mkdir -p "$SSH_DIR"
  ssh-keygen -q -t ed25519 -N '' -C berth-bed-client -f "$KEY"
  ssh-keygen -q -t ed25519 -N '' -C berth-bed-wrong -f "$SSH_DIR/wrong_host_key"
  cp "$KEY.pub" "$SSH_DIR/authorized_keys"
  : >"$KNOWN"; : >"$KNOWN_WRONG"
  for h in "${HOSTS[@]}"; do
    ssh-keygen -q -t ed25519 -N '' -C "berth-bed-$h" -f "$(host_dir "$h")/ssh_host_ed25519_key"
    echo "$(host_addr "$h") $(public_key "$(host_dir "$h")/ssh_host_ed25519_key")" >>"$KNOWN"
    if [[ $h == edge-3 ]]; then
      echo "$(host_addr "$h") $(public_key "$SSH_DIR/wrong_host_key")" >>"$KNOWN_WRONG"
    else
      echo "$(host_addr "$h") $(public_key "$(host_dir "$h")/ssh_host_ed25519_key")" >>"$KNOWN_WRONG"
    fi
  done
  chmod 600 "$KEY" "$SSH_DIR/authorized_keys"
}

write_host_configs() {
  local h d driver=$1 extra=""
  # OpenSSH >= 9.8 penalises sources after failed logins; tests make many.
  if /usr/sbin/sshd -G -f /dev/null -o PerSourcePenalties=no >/dev/null 2>&1; then
    extra="PerSourcePenalties no"
  fi
  local checks=()
  for h in "${HOSTS[@]}"; do
    d=$(host_dir "$h")
    cat >"$d/daemon.json" <<EOF
{
  "insecure-registries": ["$REGISTRY", "$AUTH_REGISTRY"],
  "deprecated-key-path": "$d/key.json",
  "storage-driver": "$driver",
  "shutdown-timeout": 3
}
EOF
    cat >"$d/containerd.toml" <<EOF
version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/ctd-opt"
EOF
    cat >"$d/sshd_config" <<EOF
ListenAddress $(host_addr "$h"):22
HostKey $d/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile $SSH_DIR/authorized_keys
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes
MaxSessions 50
MaxStartups 100:30:200
PidFile none
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
LogLevel INFO
Subsystem sftp internal-sftp
$extra
EOF
    checks+=("$d/sshd_config")
  done
  # sshd -t wants /run/sshd: check in a private mount namespace, not on /run.
  # shellcheck disable=SC2016 # $@ belongs to the inner sh
  unshare --mount --propagation private sh -c '
    mount -t tmpfs -o size=1m berth-check /run && mkdir /run/sshd &&
    for c in "$@"; do /usr/sbin/sshd -t -f "$c" || exit 1; done' sh "${checks[@]}" \
    >"$BED_DIR/sshd-check.log" 2>&1 \
    || fail_with_log "sshd configuration is invalid" "$BED_DIR/sshd-check.log"
}

start_registry() {
  local r="$BED_DIR/registry"
  mkdir -p "$r/data"
  cat >"$r/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $r/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
  launch registry "$r/registry.log" docker-registry serve "$r/config.yml"
}

# ------------------------------------------------ registry with credentials ---

start_authreg() {
  local r="$AUTHREG_DIR"
  mkdir -p "$r/data"
  htpasswd -Bbn "$AUTH_USER" "$AUTH_PASSWORD" >"$r/htpasswd" 2>"$r/htpasswd.log" \
    || fail_with_log "htpasswd failed" "$r/htpasswd.log"
  cat >"$r/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $r/data
  delete:
    enabled: true
auth:
  htpasswd:
    realm: berth-bed
    path: $r/htpasswd
http:
  addr: $AUTH_REGISTRY
EOF
  launch authreg "$r/registry.log" docker-registry serve "$r/config.yml"
}

# Up and asking for credentials.
ping_authreg() {
  [[ $(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://$AUTH_REGISTRY/v2/") == 401 ]]
}

# Docker client configs (`--docker-config` directories) for the registry
# with credentials: right, and with a wrong password.
write_authreg_configs() {
  local r="$AUTHREG_DIR" d pass
  for d in docker-config docker-config-wrong; do
    pass=$AUTH_PASSWORD
    [[ $d == docker-config-wrong ]] && pass=not-the-password
    mkdir -p "$r/$d"
    printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$AUTH_REGISTRY" \
      "$(printf '%s:%s' "$AUTH_USER" "$pass" | base64 -w0)" >"$r/$d/config.json"
  done
}

# web:v1 copied from the open registry to the one with credentials, through
# edge-1's engine, which is left without either.
push_authreg_image() {
  local logf="$AUTHREG_DIR/push.log"
  local docker=("$(docker_cli)" -H "unix://$(host_sock edge-1)")
  export DOCKER_CONFIG="$AUTHREG_DIR/docker-config"
  { "${docker[@]}" pull -q "$WEB_IMAGE:v1" \
      && "${docker[@]}" tag "$WEB_IMAGE:v1" "$AUTH_WEB_IMAGE:v1" \
      && "${docker[@]}" push -q "$AUTH_WEB_IMAGE:v1" \
      && "${docker[@]}" rmi "$WEB_IMAGE:v1" "$AUTH_WEB_IMAGE:v1"; } >>"$logf" 2>&1 \
    || fail_with_log "pushing $AUTH_WEB_IMAGE:v1 failed" "$logf"
}

authreg_env() {
  echo "BED_AUTH_REGISTRY=$AUTH_REGISTRY"
  echo "BED_AUTH_USER=$AUTH_USER"
  echo "BED_AUTH_PASSWORD=$AUTH_PASSWORD"
  echo "BED_AUTH_WEB_V1=$AUTH_WEB_IMAGE:v1"
  echo "BED_AUTH_DOCKER_CONFIG=$AUTHREG_DIR/docker-config"
  echo "BED_AUTH_DOCKER_CONFIG_WRONG=$AUTHREG_DIR/docker-config-wrong"
}

authreg_healthy() {
  pid_is_ours "$(state_get pid_authreg)" && ping_authreg \
    && grep -q '^BED_AUTH_REGISTRY=' "$ENV_FILE" 2>/dev/null \
    && grep -qF "$AUTH_REGISTRY" "$(host_dir edge-1)/daemon.json"
}

# Adds the registry with credentials to a bed that is otherwise up: the
# engines learn it is plain HTTP by a reload (SIGHUP re-reads
# `insecure-registries`), nothing else is touched.
add_authreg() {
  local t h d pid tmp="$ENV_FILE.tmp"
  t=$(now)
  log "the bed is up but has no registry with credentials: making only that"
  stop_recorded TERM 3 authreg
  for h in "${HOSTS[@]}"; do
    d=$(host_dir "$h")
    if ! grep -qF "$AUTH_REGISTRY" "$d/daemon.json"; then
      sed -i "s|\"$REGISTRY\"\]|\"$REGISTRY\", \"$AUTH_REGISTRY\"]|" "$d/daemon.json"
      grep -qF "$AUTH_REGISTRY" "$d/daemon.json" || die "cannot add $AUTH_REGISTRY to $d/daemon.json"
      pid=$(state_get "pid_dockerd_$(host_var "$h")")
      if pid_is_ours "$pid"; then kill -HUP "$pid"; fi
    fi
  done
  start_authreg
  wait_for "registry with credentials" "$AUTHREG_DIR/registry.log" "$(state_get pid_authreg)" 30 ping_authreg
  write_authreg_configs
  # The engines' reload is quick but not instant.
  sleep 0.5
  push_authreg_image
  {
    grep -v '^BED_AUTH_' "$ENV_FILE" || true
    authreg_env
  } >"$tmp"
  mv -f "$tmp" "$ENV_FILE"
  echo "registry with credentials up in $(since "$t"): $AUTH_REGISTRY; env: $ENV_FILE"
}

start_containerd() {
  local h=$1 d
  d=$(host_dir "$h")
  rm -f "$(host_ctd_sock "$h")"
  launch "containerd_$(host_var "$h")" "$d/containerd.log" \
    nsenter --net="/run/netns/$(host_netns "$h")" \
    containerd --config "$d/containerd.toml" --root "$d/ctd-root" --state "$d/x/ctd" \
    --address "$(host_ctd_sock "$h")"
}

start_dockerd() {
  local h=$1 d
  d=$(host_dir "$h")
  rm -f "$d/x/docker.pid"
  # shellcheck disable=SC2016 # $0 and $@ belong to the inner sh
  launch "dockerd_$(host_var "$h")" "$d/dockerd.log" \
    nsenter --net="/run/netns/$(host_netns "$h")" unshare --uts \
    sh -c 'echo "$0" >/proc/sys/kernel/hostname && exec "$@"' "$h" \
    dockerd --config-file "$d/daemon.json" --data-root "$d/data" --exec-root "$d/x" \
    --pidfile "$d/x/docker.pid" -H "unix://$(host_sock "$h")" \
    --containerd "$(host_ctd_sock "$h")"
}

# Wait for containerd's socket, then start dockerd on it.
start_engine() {
  local h=$1 d pid
  d=$(host_dir "$h")
  mkdir -p "$d/x"
  start_containerd "$h"
  pid=$(state_get "pid_containerd_$(host_var "$h")")
  wait_for "containerd on $h" "$d/containerd.log" "$pid" 20 test -S "$(host_ctd_sock "$h")"
  start_dockerd "$h"
}

wait_engine() {
  local h=$1
  wait_for "dockerd on $h" "$(host_dir "$h")/dockerd.log" \
    "$(state_get "pid_dockerd_$(host_var "$h")")" 30 ping_engine "$h"
}

start_sshd() {
  local h=$1 d
  d=$(host_dir "$h")
  # Private mount namespace: a fresh /run where docker.sock (and so
  # /var/run/docker.sock) points at this host's own engine.
  # shellcheck disable=SC2016 # $0, $1, $@ belong to the inner sh
  launch "sshd_$(host_var "$h")" "$d/sshd.log" \
    nsenter --net="/run/netns/$(host_netns "$h")" \
    unshare --uts --mount --propagation private \
    sh -c '
      echo "$0" >/proc/sys/kernel/hostname &&
      mount -t tmpfs -o mode=755,size=16m berth-run /run &&
      mkdir -m 755 /run/sshd && mkdir -m 1777 /run/lock && ln -s "$1" /run/docker.sock &&
      if [ ! -L /var/run ]; then
        mount -t tmpfs -o mode=755,size=1m berth-var-run /var/run &&
        ln -s "$1" /var/run/docker.sock
      fi &&
      shift && exec "$@"' "$h" "$(host_sock "$h")" \
    /usr/sbin/sshd -D -e -f "$d/sshd_config"
}

wait_sshd() {
  local h=$1
  wait_for "sshd on $h" "$(host_dir "$h")/sshd.log" \
    "$(state_get "pid_sshd_$(host_var "$h")")" 30 ssh_true "$h"
}

# Kill every sshd of HOST: the listener and its per-connection processes, so
# established connections drop too ("host unreachable").
stop_sshd() {
  stop_recorded TERM 2 "sshd_$(host_var "$1")"
  kill_sshd_in_netns "$(host_netns "$1")"
}

stop_engine() {
  local v
  v=$(host_var "$1")
  stop_recorded TERM 10 "dockerd_$v"
  stop_recorded TERM 3 "containerd_$v"
}

# ---------------------------------------------------------------- bastion ---

# Kill every sshd whose network namespace is NETNS (a listener and its
# per-connection processes), so established connections drop too.
kill_sshd_in_netns() {
  local ino p comm pids=()
  ino=$(netns_inode "$1")
  [[ -n $ino ]] || return 0
  for p in /proc/[0-9]*; do
    { read -r comm <"$p/comm"; } 2>/dev/null || continue
    [[ $comm == sshd ]] || continue
    [[ $(readlink "$p/ns/net" 2>/dev/null) == "net:[$ino]" ]] || continue
    pids+=("${p#/proc/}")
  done
  if ((${#pids[@]})); then
    kill -9 "${pids[@]}" 2>/dev/null || true
    wait_gone 2 "${pids[@]}"
  fi
}

# FILE gets "ADDR KEY" in place of any line for ADDR (written whole and
# renamed: tests may be reading it).
known_set() {
  local file=$1 addr=$2 key=$3
  { awk -v a="$addr" '$1 != a' "$file" 2>/dev/null || true; echo "$addr $key"; } >"$file.tmp"
  mv -f "$file.tmp" "$file"
}

bastion_network() {
  ip netns add "$BASTION_NETNS"
  ip link add "$BASTION_VETH" type veth peer name eth0 netns "$BASTION_NETNS"
  ip link set "$BASTION_VETH" master "$BRIDGE" up
  ip -n "$BASTION_NETNS" link set lo up
  ip -n "$BASTION_NETNS" addr add "$BASTION_ADDR/24" dev eth0
  ip -n "$BASTION_NETNS" link set eth0 up
  ip -n "$BASTION_NETNS" route add default via "$GATEWAY"
  # A remade bastion has a new MAC: forget the old one, or the runner's
  # first connections wait seconds for its stale neighbour entry to expire.
  ip neigh flush to "$BASTION_ADDR" 2>/dev/null || true
}

# The bastion's host key (kept if it exists) in the bed's known_hosts files,
# a known_hosts where only the bastion's key is wrong, and the ssh config of
# the bed's own ProxyJump check.
bastion_keys() {
  local key="$BASTION_DIR/ssh_host_ed25519_key"
  mkdir -p "$BASTION_DIR"
  [[ -f $key ]] || ssh-keygen -q -t ed25519 -N '' -C berth-bed-bastion -f "$key"
  known_set "$KNOWN" "$BASTION_ADDR" "$(public_key "$key")"
  known_set "$KNOWN_WRONG" "$BASTION_ADDR" "$(public_key "$key")"
  cp "$KNOWN" "$KNOWN_BASTION_WRONG.new"
  known_set "$KNOWN_BASTION_WRONG.new" "$BASTION_ADDR" "$(public_key "$SSH_DIR/wrong_host_key")"
  mv -f "$KNOWN_BASTION_WRONG.new" "$KNOWN_BASTION_WRONG"
  printf '%s\n' 'Host *' '  User root' "  IdentityFile $KEY" '  IdentitiesOnly yes' \
    "  UserKnownHostsFile $KNOWN" '  GlobalKnownHostsFile /dev/null' \
    '  StrictHostKeyChecking yes' '  BatchMode yes' '  ConnectTimeout 3' '  LogLevel ERROR' \
    >"$JUMP_CONFIG.tmp"
  mv -f "$JUMP_CONFIG.tmp" "$JUMP_CONFIG"
}

write_bastion_config() {
  local extra=""
  if /usr/sbin/sshd -G -f /dev/null -o PerSourcePenalties=no >/dev/null 2>&1; then
    extra="PerSourcePenalties no"
  fi
  # A jump host forwards TCP (`ssh -W`, what ProxyJump runs) and nothing else.
  cat >"$BASTION_DIR/sshd_config" <<EOF
ListenAddress $BASTION_ADDR:22
HostKey $BASTION_DIR/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile $SSH_DIR/authorized_keys
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding no
MaxSessions 50
MaxStartups 100:30:200
PidFile none
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
LogLevel INFO
$extra
EOF
  # shellcheck disable=SC2016 # $0 belongs to the inner sh
  unshare --mount --propagation private sh -c '
    mount -t tmpfs -o size=1m berth-check /run && mkdir /run/sshd &&
    /usr/sbin/sshd -t -f "$0"' "$BASTION_DIR/sshd_config" \
    >"$BASTION_DIR/sshd-check.log" 2>&1 \
    || fail_with_log "bastion sshd configuration is invalid" "$BASTION_DIR/sshd-check.log"
}

start_bastion() {
  # Private mount namespace: a fresh /run for sshd's privilege separation.
  # shellcheck disable=SC2016 # $@ belongs to the inner sh
  launch sshd_bastion "$BASTION_DIR/sshd.log" \
    nsenter --net="/run/netns/$BASTION_NETNS" \
    unshare --uts --mount --propagation private \
    sh -c '
      echo bastion >/proc/sys/kernel/hostname &&
      mount -t tmpfs -o mode=755,size=1m berth-run /run &&
      mkdir -m 755 /run/sshd && exec "$@"' sh \
    /usr/sbin/sshd -D -e -f "$BASTION_DIR/sshd_config"
}

wait_bastion() {
  local pid
  pid=$(state_get pid_sshd_bastion)
  wait_for "sshd on the bastion" "$BASTION_DIR/sshd.log" "$pid" 30 ssh_addr_true "$BASTION_ADDR"
  wait_for "ProxyJump through the bastion to edge-1" "$BASTION_DIR/sshd.log" "$pid" 10 jump_true
}

# Removes whatever there is of a bastion (its sshd, veth, namespace); leaves
# the rest of the bed alone. Safe when absent.
bastion_reset() {
  stop_recorded TERM 2 sshd_bastion
  kill_sshd_in_netns "$BASTION_NETNS"
  ip link delete "$BASTION_VETH" 2>/dev/null || true
  ip netns delete "$BASTION_NETNS" 2>/dev/null || true
}

bastion_up() {
  bastion_network
  bastion_keys
  write_bastion_config
  start_bastion
  wait_bastion
}

bastion_env() {
  echo "BED_BASTION_ADDR=$BASTION_ADDR"
  echo "BED_BASTION_NETNS=$BASTION_NETNS"
  echo "BED_KNOWN_HOSTS_BASTION_WRONG=$KNOWN_BASTION_WRONG"
}

# The bastion's lines of bed.env replaced, the rest kept as written.
write_bastion_env() {
  local tmp="$ENV_FILE.tmp"
  {
    grep -v -e '^BED_BASTION_' -e '^BED_KNOWN_HOSTS_BASTION_WRONG=' "$ENV_FILE" || true
    bastion_env
  } >"$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

# Adds the bastion to a bed that is otherwise up (never touching the rest).
add_bastion() {
  local t
  t=$(now)
  log "the bed is up but has no working bastion: making only the bastion"
  bastion_reset
  bastion_up
  write_bastion_env
  echo "bastion up in $(since "$t"): bastion=$BASTION_ADDR; env: $ENV_FILE"
}

# ------------------------------------------------------------- isolation ---

# iptables comment marking `link-drop` rules inside a host's namespace.
readonly LINK_DROP_TAG=berth-link-drop

# The two rules `link-drop` puts in a host's namespace (INPUT, OUTPUT).
link_drop_rules() {
  echo "INPUT -s $GATEWAY/32 -m comment --comment $LINK_DROP_TAG -j DROP"
  echo "OUTPUT -d $GATEWAY/32 -m comment --comment $LINK_DROP_TAG -j DROP"
}

link_restore_host() {
  local ns rule
  ns=$(host_netns "$1")
  [[ -e /run/netns/$ns ]] || return 0
  while read -r rule; do
    # shellcheck disable=SC2086 # the rule is split into words on purpose
    while nsenter --net="/run/netns/$ns" iptables -D $rule 2>/dev/null; do :; done
  done < <(link_drop_rules)
}

# The rule `isolate` puts in a host's namespace: the runner's connections to
# port 22 are reset, the bastion's (and the other hosts') pass.
isolate_rule() {
  echo "INPUT -s $GATEWAY/32 -p tcp --dport 22 -m comment --comment $ISOLATE_TAG -j REJECT --reject-with tcp-reset"
}

unisolate_host() {
  local ns
  ns=$(host_netns "$1")
  [[ -e /run/netns/$ns ]] || return 0
  # shellcheck disable=SC2046 # the rule is split into words on purpose
  while nsenter --net="/run/netns/$ns" iptables -D $(isolate_rule) 2>/dev/null; do :; done
}

# ------------------------------------------------------------- disk full ---

# DISK_HOST's engine data is on its own tmpfs.
disk_mounted() {
  [[ $(findmnt -n -o FSTYPE --mountpoint "$(host_data "$DISK_HOST")" 2>/dev/null) == tmpfs ]]
}

mount_disk() {
  local data
  data=$(host_data "$DISK_HOST")
  mkdir -p "$data"
  mount -t tmpfs -o "mode=0711,size=$DISK_SIZE" "berth-data-$DISK_HOST" "$data"
}

disk_env() { echo "BED_DISK_HOST=$DISK_HOST"; }

# The cap lowered to what is in use now: the engine's next write that needs
# room fails with ENOSPC. A cap below the use is refused (EINVAL), so a
# write between reading the use and remounting makes it try again.
fill_disk() {
  local data used i
  data=$(host_data "$DISK_HOST")
  for ((i = 0; i < 50; i++)); do
    used=$(df -k --output=used "$data" | tail -n 1 | tr -d ' ')
    # size=0 would mean no cap at all.
    ((used > 0)) || used=4
    if mount -o "remount,size=${used}k" "$data" 2>/dev/null; then return 0; fi
    sleep 0.02
  done
  die "cannot lower the size of $data to what is in use"
}

free_disk() {
  mount -o "remount,size=$DISK_SIZE" "$(host_data "$DISK_HOST")" \
    || die "cannot put the size of $(host_data "$DISK_HOST") back to $DISK_SIZE"
}

# Moves DISK_HOST's engine data onto its own file system on a bed that is
# otherwise up (made by an older copy of this script): the engine stops,
# its data is copied over (images and containers kept; those with a restart
# policy start again with the engine), and it starts again.
add_disk() {
  local h=$DISK_HOST data t tmp="$ENV_FILE.tmp"
  t=$(now)
  log "the bed is up but $h's engine data is not on a file system of its own: moving it there ($h's engine restarts)"
  data=$(host_data "$h")
  stop_engine "$h"
  # What the stopped containers left mounted under it.
  unmount_under "$data"
  rm -rf "$data.move"
  if [[ -d $data ]]; then mv "$data" "$data.move"; fi
  mount_disk
  if [[ -d $data.move ]] && ! cp -a "$data.move/." "$data/" 2>"$BED_DIR/disk-move.log"; then
    umount "$data"
    rm -rf "$data"
    mv "$data.move" "$data"
    start_engine "$h"
    wait_engine "$h"
    fail_with_log "copying $h's engine data to its own file system failed (it stays where it was)" \
      "$BED_DIR/disk-move.log"
  fi
  rm -rf "$data.move"
  start_engine "$h"
  wait_engine "$h"
  {
    grep -v '^BED_DISK_' "$ENV_FILE" || true
    disk_env
  } >"$tmp"
  mv -f "$tmp" "$ENV_FILE"
  echo "$h's engine data on its own file system ($DISK_SIZE) in $(since "$t")"
}

check_disk_host() {
  check_host "$1"
  [[ $1 == "$DISK_HOST" ]] \
    || die "only $DISK_HOST's engine data is on a file system of its own: \`fill-disk\` cannot fill $1's"
  need_bed
  disk_mounted || die "$1's engine data is not on a file system of its own: run \`$0 disk-up\` first"
}

write_build_context() {
  local c=$1 applet
  mkdir -p "$c/rootfs/bin" "$c/rootfs/etc" "$c/rootfs/tmp" "$c/rootfs/www" \
    "$c/www/v1" "$c/www/v2" "$c/www/bad"
  chmod 1777 "$c/rootfs/tmp"
  cp /bin/busybox "$c/rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$c/rootfs/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$c/rootfs/etc/passwd"
  echo 'root:x:0:' >"$c/rootfs/etc/group"
  cat >"$c/rootfs/bin/web-entrypoint" <<'EOF'
#!/bin/sh
# busybox httpd as PID 1 ignores SIGTERM; run it as a child and exit on TERM.
port="${PORT:-80}"
httpd -f -p "$port" -h /www &
pid=$!
trap 'kill "$pid" 2>/dev/null; exit 0' TERM INT
echo "berth-test web listening on port $port"
wait "$pid"
EOF
  cat >"$c/rootfs/bin/worker-entrypoint" <<'EOF'
#!/bin/sh
trap 'exit 0' TERM INT
echo "berth-test worker started"
while true; do sleep 1 & wait $!; done
EOF
  chmod 755 "$c/rootfs/bin/web-entrypoint" "$c/rootfs/bin/worker-entrypoint"
  echo 'berth-test web v1' >"$c/www/v1/index.html"
  echo 'berth-test web v2' >"$c/www/v2/index.html"
  echo 'berth-test web bad' >"$c/www/bad/index.html"
  echo ok >"$c/www/v1/health"
  echo ok >"$c/www/v2/health"
  # www/bad has no health file: its healthcheck always fails.
  # Shared steps first, so the variants take them from the build cache and
  # differ only in the last layer (the classic builder runs a container for
  # every metadata step: keep those few).
  for v in v1 v2 bad; do
    sed "s/@VARIANT@/$v/" >"$c/Dockerfile.$v" <<'EOF'
FROM scratch
COPY rootfs/ /
HEALTHCHECK --interval=1s --timeout=2s --start-period=1s --retries=3 \
  CMD wget -q -O /dev/null "http://127.0.0.1:${PORT:-80}/health" || exit 1
ENTRYPOINT ["/bin/web-entrypoint"]
COPY www/@VARIANT@/ /www/
EOF
  done
  cat >"$c/Dockerfile.worker" <<'EOF'
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/bin/worker-entrypoint"]
EOF
}

# build_one TAG LOG DOCKER-ARGS... : build an image with the classic builder.
build_one() {
  local tag=$1 logf=$2; shift 2
  "${DOCKER[@]}" build -q -t "$tag" "$@" >>"$logf" 2>&1
}

build_images() {
  local c="$BED_DIR/build/ctx" logd="$BED_DIR/build" v pids=() what=() i
  DOCKER=("$(docker_cli)" -H "unix://$(host_sock edge-1)")
  export DOCKER_BUILDKIT=0 DOCKER_CONFIG="$BED_DIR/docker-config"
  mkdir -p "$DOCKER_CONFIG"
  write_build_context "$c"
  # v1 first: it creates the shared busybox layer that the others reuse.
  build_one "$WEB_IMAGE:v1" "$logd/v1.log" -f "$c/Dockerfile.v1" "$c" \
    || fail_with_log "building $WEB_IMAGE:v1 failed" "$logd/v1.log"
  "${DOCKER[@]}" push -q "$WEB_IMAGE:v1" >>"$logd/v1.log" 2>&1 & pids+=($!); what+=(v1)
  for v in v2 bad; do
    { build_one "$WEB_IMAGE:$v" "$logd/$v.log" -f "$c/Dockerfile.$v" "$c" \
        && "${DOCKER[@]}" push -q "$WEB_IMAGE:$v" >>"$logd/$v.log" 2>&1; } &
    pids+=($!); what+=("$v")
  done
  { build_one "$WORKER_IMAGE:v1" "$logd/worker.log" -f "$c/Dockerfile.worker" "$c" \
      && "${DOCKER[@]}" push -q "$WORKER_IMAGE:v1" >>"$logd/worker.log" 2>&1; } &
  pids+=($!); what+=(worker)
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || fail_with_log "building or pushing image ${what[$i]} failed" "$logd/${what[$i]}.log"
  done
  # Every host starts without images: berth must pull.
  "${DOCKER[@]}" rmi "$WEB_IMAGE:v1" "$WEB_IMAGE:v2" "$WEB_IMAGE:bad" "$WORKER_IMAGE:v1" \
    >>"$logd/rmi.log" 2>&1 || fail_with_log "removing the built images from edge-1 failed" "$logd/rmi.log"
}

write_env() {
  local h v tmp="$ENV_FILE.tmp" api
  api=$(curl -sf --max-time 2 -D - -o /dev/null --unix-socket "$(host_sock edge-1)" http://d/_ping \
    | tr -d '\r' | sed -n 's/^[Aa]pi-[Vv]ersion: //p')
  {
    echo "# berth test bed; written by tests/bed/testbed.sh up"
    echo "BED_DIR=$BED_DIR"
    echo "BED_HOSTS=\"${HOSTS[*]}\""
    for h in "${HOSTS[@]}"; do
      v=$(host_var "$h")
      echo "BED_ADDR_$v=$(host_addr "$h")"
      echo "BED_SOCK_$v=$(host_sock "$h")"
      echo "BED_NETNS_$v=$(host_netns "$h")"
      echo "BED_SECRETS_DIR_$v=$(host_secrets "$h")"
    done
    echo "BED_SSH_USER=root"
    echo "BED_KEY=$KEY"
    echo "BED_KNOWN_HOSTS=$KNOWN"
    echo "BED_KNOWN_HOSTS_WRONG=$KNOWN_WRONG"
    echo "BED_REGISTRY=$REGISTRY"
    echo "BED_WEB_V1=$WEB_IMAGE:v1"
    echo "BED_WEB_V2=$WEB_IMAGE:v2"
    echo "BED_WEB_BAD=$WEB_IMAGE:bad"
    echo "BED_WORKER=$WORKER_IMAGE:v1"
    echo "BED_GATEWAY=$GATEWAY"
    echo "BED_SUBNET=$SUBNET_PREFIX.0/24"
    echo "BED_BRIDGE=$BRIDGE"
    echo "BED_STORAGE_DRIVER=$(state_get storage_driver)"
    echo "BED_ENGINE_API=${api:-1.41}"
    echo "BED_DOCKER_CLI=$(docker_cli)"
    disk_env
    echo "BED_SCRIPT=$(readlink -f "$0")"
    bastion_env
    authreg_env
  } >"$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

# ------------------------------------------------------------ image base ---

# The packages the Dockerfile's runtime stage needs (its RUNTIME_PACKAGES line).
runtime_packages() {
  local dockerfile
  dockerfile="$(dirname "$(readlink -f "$0")")/../../Dockerfile"
  [[ -f $dockerfile ]] || die "no Dockerfile at $dockerfile"
  sed -n 's/^ARG RUNTIME_PACKAGES="\(.*\)"$/\1/p' "$dockerfile"
}

# The machine's Debian mirror, from its apt sources (deb822 or one-line).
debian_mirror() {
  local m
  if [[ -n ${BERTH_DEBIAN_MIRROR:-} ]]; then echo "$BERTH_DEBIAN_MIRROR"; return 0; fi
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }')
  if [[ -z $m ]]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } else break } }')
  fi
  [[ -n $m ]] || die "no Debian mirror in /etc/apt/sources*; set BERTH_DEBIAN_MIRROR"
  echo "$m"
}

# Unmounts whatever debootstrap left mounted under $1 (after a failure).
unmount_under() {
  local m
  for m in $(awk -v r="$1/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}

# Prints the cached Debian base tarball, making it first when missing. It
# downloads from Debian's mirror, so ci/install-deps.sh calls it (through
# `image-base-cache`) before any test runs: the image test itself then only
# imports a local file.
image_base_tar() {
  local pkgs key tar root t mirror
  pkgs=$(runtime_packages)
  [[ -n $pkgs ]] || die "the Dockerfile has no ARG RUNTIME_PACKAGES=\"...\" line"
  key=$(printf 'bookworm minbase %s\n' "$pkgs" | sha256sum | cut -c1-12)
  tar="$IMAGE_CACHE/debian-bookworm-minbase-$key.tar"
  mkdir -p "$IMAGE_CACHE"
  # Its own lock: debootstrap takes a minute or two, and must not hold the bed's.
  exec 8>"$IMAGE_CACHE/.lock"
  flock -w 900 8 || die "another image-base holds $IMAGE_CACHE/.lock"
  if [[ ! -s $tar ]]; then
    command -v debootstrap >/dev/null 2>&1 || ensure_packages
    mirror=$(debian_mirror)
    t=$(now)
    log "image base: debootstrap --variant=minbase bookworm + ${pkgs// /,} (cached in $IMAGE_CACHE)"
    root=$(mktemp -d "$IMAGE_CACHE/rootfs.XXXXXX")
    if ! debootstrap --variant=minbase --include="${pkgs// /,}" bookworm "$root" "$mirror" \
      >"$IMAGE_CACHE/debootstrap.log" 2>&1; then
      unmount_under "$root"; rm -rf "$root"
      fail_with_log "debootstrap failed" "$IMAGE_CACHE/debootstrap.log"
    fi
    unmount_under "$root"
    # Downloaded packages and indexes are not part of an image.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
    tar --numeric-owner -C "$root" -cf "$tar.tmp" . || { rm -rf "$root" "$tar.tmp"; die "cannot write $tar"; }
    mv -f "$tar.tmp" "$tar"
    rm -rf "$root"
    # Bases of older package lists are of no further use.
    find "$IMAGE_CACHE" -maxdepth 1 -name 'debian-bookworm-minbase-*.tar' ! -name "${tar##*/}" -delete
    log "  done in $(since "$t") ($(du -h "$tar" | cut -f1))"
  fi
  exec 8>&-
  echo "$tar"
}

cmd_image_base() {
  local host=${1:-edge-1} tar tag key t sock
  check_host "$host"; need_bed
  tar=$(image_base_tar) || exit 1
  key=${tar##*-}; key=${key%.tar}
  tag="$IMAGE_BASE_REPO:$key"
  sock=$(host_sock "$host")
  if ! "$(docker_cli)" -H "unix://$sock" image inspect "$tag" >/dev/null 2>&1; then
    t=$(now)
    "$(docker_cli)" -H "unix://$sock" import "$tar" "$tag" >/dev/null \
      || die "docker import of $tar on $host failed"
    log "image base: imported as $tag on $host in $(since "$t")"
  fi
  echo "$tag"
}

# -------------------------------------------------------------- commands ---

take_lock() {
  local parent
  parent=$(dirname "$BED_DIR")
  mkdir -p "$parent"
  exec 9<"$parent"
  flock -w 300 9 || die "another testbed.sh holds the lock on $parent for over 300s"
}

cmd_up() {
  local h t driver t_net t_daemons t_build
  # A test killed while a host was isolated or cut off leaves its rules:
  # lift them (and restart a registry a test left stopped, below).
  for h in "${HOSTS[@]}"; do unisolate_host "$h"; link_restore_host "$h"; done
  # And a disk a test left full.
  if disk_mounted; then free_disk; fi
  if [[ -f $STATE && -n $(state_get ready) ]] && ! pid_is_ours "$(state_get pid_registry)"; then
    start_registry
    wait_for "registry" "$BED_DIR/registry/registry.log" "$(state_get pid_registry)" 30 ping_registry
  fi
  if bed_healthy quiet; then
    if bastion_healthy; then
      echo "bed already up"
    else
      add_bastion
    fi
    authreg_healthy || add_authreg
    disk_mounted || add_disk
    return 0
  fi
  ensure_packages
  t=$(now)
  log "removing any previous bed"
  teardown
  log "  done in $(since "$t")"

  t=$(now)
  mkdir -p "$BED_DIR" "$RUN_DIR"
  touch "$BED_DIR/.berth-bed"
  : >"$STATE"
  for h in "${HOSTS[@]}"; do
    mkdir -p "$(host_dir "$h")/x" "$(host_secrets "$h")"
    mount -t tmpfs -o mode=0700,size=8m "berth-secrets-$h" "$(host_secrets "$h")"
  done
  mount_disk
  driver=$(choose_storage_driver)
  state_set storage_driver "$driver"
  log "network: bridge $BRIDGE $GATEWAY/24, namespaces ${HOSTS[*]/#/berth-}"
  setup_network
  setup_keys
  write_host_configs "$driver"
  t_net=$(since "$t")

  t=$(now)
  log "daemons: registry, containerd + dockerd ($driver) + sshd per host"
  start_registry
  start_authreg
  write_authreg_configs
  for h in "${HOSTS[@]}"; do start_containerd "$h"; done
  for h in "${HOSTS[@]}"; do
    wait_for "containerd on $h" "$(host_dir "$h")/containerd.log" \
      "$(state_get "pid_containerd_$(host_var "$h")")" 20 test -S "$(host_ctd_sock "$h")"
    start_dockerd "$h"
  done
  for h in "${HOSTS[@]}"; do start_sshd "$h"; done
  wait_for "registry" "$BED_DIR/registry/registry.log" "$(state_get pid_registry)" 30 ping_registry
  wait_for "registry with credentials" "$AUTHREG_DIR/registry.log" "$(state_get pid_authreg)" 30 ping_authreg
  for h in "${HOSTS[@]}"; do wait_engine "$h"; done
  for h in "${HOSTS[@]}"; do wait_sshd "$h"; done
  log "bastion: sshd at $BASTION_ADDR"
  bastion_up
  t_daemons=$(since "$t")

  t=$(now)
  log "images: building and pushing to $REGISTRY"
  build_images
  push_authreg_image
  t_build=$(since "$t")

  write_env
  state_set ready "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "bed up in $(since "$T0"): network+keys $t_net, daemons ready $t_daemons, images $t_build"
  echo "  hosts: $(for h in "${HOSTS[@]}"; do printf '%s=%s ' "$h" "$(host_addr "$h")"; done)bastion=$BASTION_ADDR registry=$REGISTRY"
  echo "  storage driver: $driver; env: $ENV_FILE"
}

cmd_down() {
  local t
  t=$(now)
  log "tearing down bed at $BED_DIR"
  teardown
  echo "bed down in $(since "$t")"
}

cmd_status() {
  if ! bed_healthy; then echo down; return 1; fi
  if ! bastion_healthy; then
    log "not up: the bastion ($BASTION_ADDR) does not answer or cannot jump (\`$0 up\` adds it)"
    echo down; return 1
  fi
  echo up
}

cmd_env() {
  if bed_healthy && bastion_healthy; then echo "$ENV_FILE"; else return 1; fi
}

cmd_bastion_up() {
  need_bed
  bed_healthy || die "the bed is not up: run \`$0 up\` (it makes the bastion too)"
  if bastion_healthy; then
    log "bastion already up"
  else
    add_bastion
  fi
}

cmd_authreg_up() {
  need_bed
  bed_healthy || die "the bed is not up: run \`$0 up\` (it makes this registry too)"
  if authreg_healthy; then
    log "registry with credentials already up"
  else
    add_authreg
  fi
}

cmd_isolate() {
  check_host "$1"; need_bed
  unisolate_host "$1"
  # shellcheck disable=SC2046 # the rule is split into words on purpose
  nsenter --net="/run/netns/$(host_netns "$1")" iptables -I $(isolate_rule) \
    || die "cannot add the isolation rule in $(host_netns "$1")"
  log "$1 isolated: its sshd refuses $GATEWAY (the runner), the bastion $BASTION_ADDR still reaches it"
}

cmd_unisolate() {
  check_host "$1"; need_bed
  unisolate_host "$1"
  log "$1 reachable from the runner again"
}

need_bed() {
  [[ -f $STATE ]] || die "no bed under $BED_DIR (run \`$0 up\` first)"
}

cmd_sshd_stop() {
  check_host "$1"; need_bed
  stop_sshd "$1"
  log "sshd on $1 stopped"
}

cmd_sshd_start() {
  check_host "$1"; need_bed
  if pid_is_ours "$(state_get "pid_sshd_$(host_var "$1")")"; then
    log "sshd on $1 already running"
  else
    start_sshd "$1"
  fi
  wait_sshd "$1"
  log "sshd on $1 started"
}

cmd_engine_stop() {
  check_host "$1"; need_bed
  stop_engine "$1"
  log "engine on $1 stopped"
}

cmd_engine_start() {
  local v
  check_host "$1"; need_bed
  v=$(host_var "$1")
  if pid_is_ours "$(state_get "pid_dockerd_$v")"; then
    log "engine on $1 already running"
  else
    pid_is_ours "$(state_get "pid_containerd_$v")" && stop_recorded TERM 3 "containerd_$v"
    start_engine "$1"
  fi
  wait_engine "$1"
  log "engine on $1 started"
}

cmd_registry_stop() {
  need_bed
  stop_recorded TERM 3 registry
  log "registry stopped"
}

cmd_registry_start() {
  need_bed
  if pid_is_ours "$(state_get pid_registry)"; then
    log "registry already running"
  else
    start_registry
  fi
  wait_for "registry" "$BED_DIR/registry/registry.log" "$(state_get pid_registry)" 30 ping_registry
  log "registry started"
}

cmd_engine_restart() {
  check_host "$1"; need_bed
  stop_engine "$1"
  start_engine "$1"
  wait_engine "$1"
  log "engine on $1 restarted"
}

cmd_sshd_restart() {
  check_host "$1"; need_bed
  stop_sshd "$1"
  start_sshd "$1"
  wait_sshd "$1"
  log "sshd on $1 restarted (its sessions were cut)"
}

cmd_link_drop() {
  local rule
  check_host "$1"; need_bed
  link_restore_host "$1"
  while read -r rule; do
    # shellcheck disable=SC2086 # the rule is split into words on purpose
    nsenter --net="/run/netns/$(host_netns "$1")" iptables -I $rule \
      || die "cannot add the link-drop rules in $(host_netns "$1")"
  done < <(link_drop_rules)
  log "$1 cut off: packets to and from $GATEWAY are dropped silently"
}

cmd_link_restore() {
  check_host "$1"; need_bed
  link_restore_host "$1"
  log "$1 linked again"
}

cmd_fill_disk() {
  check_disk_host "$1"
  fill_disk
  log "$1's disk is full: its engine's next write fails with \"no space left on device\""
}

cmd_free_disk() {
  check_disk_host "$1"
  free_disk
  log "$1's disk has room again ($DISK_SIZE)"
}

cmd_disk_up() {
  need_bed
  bed_healthy || die "the bed is not up: run \`$0 up\` (it puts $DISK_HOST's engine data on its own file system too)"
  if disk_mounted; then
    log "$DISK_HOST's engine data is already on a file system of its own"
  else
    add_disk
  fi
}

# ------------------------------------------------------------------ swarm ---

swarm_cli() {
  local h=$1; shift
  "$(docker_cli)" -H "unix://$(host_sock "$h")" "$@"
}

# inactive | active | pending | error | locked (or empty when the engine is down).
swarm_state() { swarm_cli "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true; }

# Ready nodes of edge-1's swarm, when edge-1 is its manager.
swarm_ready_nodes() {
  swarm_cli edge-1 node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true
}

swarm_leave_all() {
  local h
  for h in "${HOSTS[@]}"; do
    if [[ $(swarm_state "$h") != inactive ]]; then
      swarm_cli "$h" swarm leave --force >/dev/null 2>&1 || log "  $h: swarm leave failed"
    fi
  done
}

cmd_swarm_up() {
  local h token manager i
  need_bed
  manager=$(host_addr edge-1)
  if [[ $(swarm_state edge-1) == active && $(swarm_ready_nodes) == "${#HOSTS[@]}" ]]; then
    echo "swarm already up"
    return 0
  fi
  swarm_leave_all
  swarm_cli edge-1 swarm init --advertise-addr "$manager" --listen-addr "$manager:2377" >/dev/null \
    || die "swarm init on edge-1 failed"
  token=$(swarm_cli edge-1 swarm join-token -q worker) || die "no join token from edge-1"
  for h in "${HOSTS[@]:1}"; do
    swarm_cli "$h" swarm join --token "$token" --advertise-addr "$(host_addr "$h")" \
      --listen-addr "$(host_addr "$h"):2377" "$manager:2377" >/dev/null \
      || die "$h could not join the swarm at $manager:2377"
  done
  for ((i = 0; i < 150; i++)); do
    if [[ $(swarm_ready_nodes) == "${#HOSTS[@]}" ]]; then
      echo "swarm up: manager edge-1 ($manager), workers ${HOSTS[*]:1}"
      return 0
    fi
    sleep 0.2
  done
  die "the swarm's nodes did not all become ready within 30s"
}

cmd_swarm_down() {
  local h
  need_bed
  swarm_leave_all
  for h in "${HOSTS[@]}"; do
    swarm_cli "$h" network rm docker_gwbridge >/dev/null 2>&1 || true
  done
  echo "swarm down"
}

usage() {
  cat >&2 <<EOF
usage: $0 up|down|status|env
       $0 sshd-stop HOST|sshd-start HOST|engine-stop HOST|engine-start HOST
       $0 isolate HOST|unisolate HOST|bastion-up|authreg-up|image-base [HOST]|image-base-cache
       $0 registry-stop|registry-start|engine-restart HOST|sshd-restart HOST
       $0 link-drop HOST|link-restore HOST|fill-disk $DISK_HOST|free-disk $DISK_HOST|disk-up
       $0 swarm-up|swarm-down
hosts: ${HOSTS[*]}; bed directory: $BED_DIR (BERTH_BED_DIR)
EOF
  exit 2
}

main() {
  (($# >= 1)) || usage
  [[ $EUID -eq 0 ]] || die "the test bed needs root (network namespaces, mounts, iptables)"
  check_bed_dir
  local cmd=$1; shift
  case "$cmd" in
    up | down | sshd-stop | sshd-start | engine-stop | engine-start | isolate | unisolate | bastion-up | authreg-up \
      | registry-stop | registry-start | engine-restart | sshd-restart | link-drop | link-restore \
      | fill-disk | free-disk | disk-up | swarm-up | swarm-down) take_lock ;;
  esac
  case "$cmd" in
    up) (($# == 0)) || usage; cmd_up ;;
    down) (($# == 0)) || usage; cmd_down ;;
    status) (($# == 0)) || usage; cmd_status ;;
    env) (($# == 0)) || usage; cmd_env ;;
    sshd-stop) (($# == 1)) || usage; cmd_sshd_stop "$1" ;;
    sshd-start) (($# == 1)) || usage; cmd_sshd_start "$1" ;;
    engine-stop) (($# == 1)) || usage; cmd_engine_stop "$1" ;;
    engine-start) (($# == 1)) || usage; cmd_engine_start "$1" ;;
    isolate) (($# == 1)) || usage; cmd_isolate "$1" ;;
    unisolate) (($# == 1)) || usage; cmd_unisolate "$1" ;;
    bastion-up) (($# == 0)) || usage; cmd_bastion_up ;;
    image-base) (($# <= 1)) || usage; cmd_image_base "$@" ;;
    image-base-cache) (($# == 0)) || usage; image_base_tar >/dev/null ;;
    registry-stop) (($# == 0)) || usage; cmd_registry_stop ;;
    registry-start) (($# == 0)) || usage; cmd_registry_start ;;
    engine-restart) (($# == 1)) || usage; cmd_engine_restart "$1" ;;
    sshd-restart) (($# == 1)) || usage; cmd_sshd_restart "$1" ;;
    link-drop) (($# == 1)) || usage; cmd_link_drop "$1" ;;
    link-restore) (($# == 1)) || usage; cmd_link_restore "$1" ;;
    authreg-up) (($# == 0)) || usage; cmd_authreg_up ;;
    fill-disk) (($# == 1)) || usage; cmd_fill_disk "$1" ;;
    free-disk) (($# == 1)) || usage; cmd_free_disk "$1" ;;
    disk-up) (($# == 0)) || usage; cmd_disk_up ;;
    swarm-up) (($# == 0)) || usage; cmd_swarm_up ;;
    swarm-down) (($# == 0)) || usage; cmd_swarm_down ;;
    *) usage ;;
  esac
}

main "$@"
