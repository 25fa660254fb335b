# berth as a container image: Debian slim, the ssh client and git, berth as
# the entrypoint, running as the unprivileged user `berth` (uid 10001), the
# repo expected at /repo (the working directory, so `--repo` is not needed).
#
#   docker build -t berth .
#   docker run --rm --group-add "$(id -g)" \
#     -v "$PWD:/repo:ro" \
#     -v "$HOME/.ssh/berth_ed25519:/keys/id:ro" \
#     -v "$HOME/.ssh/known_hosts:/keys/known_hosts:ro" \
#     -e BERTH_IDENTITY=/keys/id -e BERTH_KNOWN_HOSTS=/keys/known_hosts \
#     berth plan
#
# The key: ssh refuses a key that others than its owner can read, and the
# container's user is not its owner. `chmod 640` it and pass your group with
# `--group-add`: the container reads the key through the group, and ssh
# accepts it (the group bit only matters to ssh for the key's owner).
# Files berth writes (`--out`, `--report`, `--metrics`) need a directory it
# may write: mount one, e.g. `-v "$PWD/out:/out"` with `chmod 2770 out`.
#
# Stages, in this order because the classic builder (Docker 20.10's default)
# builds every stage up to the target:
#   runtime   the base and what berth runs with, the user, /repo
#   prebuilt  runtime + a berth binary taken from the build context's root:
#               mkdir ctx && cp Dockerfile target/release/berth ctx/
#               docker build --target prebuilt -t berth ctx
#             (a binary built on Debian 12 / glibc 2.36 or older)
#   build     compiles berth from this repo (Rust + Nettle, libclang)
#   (last)    runtime + the compiled binary: what `docker build .` makes
#
# BASE_IMAGE must be Debian 12 (bookworm) or a derivative, where the package
# names below exist; the test bed builds on one made offline by debootstrap
# (tests/bed/testbed.sh image-base), which has the packages already.

ARG BASE_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1-slim-bookworm

FROM ${BASE_IMAGE} AS runtime
# What berth needs at run time: the ssh client (berth drives it), git and CA
# certificates (cloning repos from git URLs), the shared libraries the binary
# links (OpenSSL, zlib, Nettle, GMP), tini to reap the ssh processes and
# forward signals as PID 1, and curl and jq for CI scripts around berth (the
# GitLab template posts the plan with them). tests/bed/testbed.sh reads this line.
ARG RUNTIME_PACKAGES="ca-certificates git openssh-client tini libssl3 zlib1g libnettle8 libhogweed6 libgmp10 curl jq"
# Installs only what the base lacks, so a base that has everything needs no
# network. safe.directory: the checkout mounted at /repo belongs to the
# runner's user, not to `berth`; git (and berth's libgit2) refuse such a
# repository otherwise.
RUN set -eu; \
    missing=""; \
    for p in $RUNTIME_PACKAGES; do \
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --uid 10001 --user-group --create-home --home-dir /home/berth --shell /usr/sbin/nologin berth; \
    git config --system --add safe.directory /repo; \
    mkdir -p /repo
WORKDIR /repo
ENV HOME=/home/berth
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/berth"]
CMD ["--help"]
LABEL org.opencontainers.image.title="berth" \
      org.opencontainers.image.description="Declarative GitOps reconciler for Docker hosts: plan and apply Compose stacks from git over SSH" \
      org.opencontainers.image.licenses="Apache-2.0"
USER berth

FROM runtime AS prebuilt
USER root
# `Dockerfile` is always in the context, so this COPY never fails when
# `berth*` matches nothing (the classic builder builds this stage for a plain
# `docker build .` too); the RUN says when the binary is missing.
COPY Dockerfile berth* /tmp/prebuilt/
RUN if [ -f /tmp/prebuilt/berth ]; then \
      install -m 0755 /tmp/prebuilt/berth /usr/local/bin/berth && /usr/local/bin/berth --version; \
    else \
      echo "prebuilt: no ./berth in the build context; only --target prebuilt uses one"; \
    fi; \
    rm -rf /tmp/prebuilt
USER berth

FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config clang libclang-dev nettle-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin berth \
 && install -m 0755 target/release/berth /usr/local/bin/berth

FROM runtime
COPY --from=build /usr/local/bin/berth /usr/local/bin/berth
RUN ["/usr/local/bin/berth", "--version"]
