#!/bin/sh
# The rustc wrapper of ci/fuzz.sh (RUSTC_WORKSPACE_WRAPPER: cargo runs it
# for the workspace's own crates only, berth and the fuzz targets). It adds
# libFuzzer's coverage instrumentation, the flags cargo-fuzz passes (with
# `--sanitizer none`), to those crates alone: the dependencies are then the
# very units `cargo test` built, and the fuzz step reuses them instead of
# building the whole tree again, instrumented.
case " $* " in
  *" --crate-name "*)
    exec "$@" -Cpasses=sancov-module \
      -Cllvm-args=-sanitizer-coverage-level=4 \
      -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
      -Cllvm-args=-sanitizer-coverage-pc-table \
      -Cllvm-args=-sanitizer-coverage-trace-compares \
      --cfg fuzzing ;;
esac
# Version and target queries: as they are.
exec "$@"
