#!/bin/sh
# Configures and builds mapkv into ${BUILD_DIR:-build}; extra arguments are
# passed to cmake (e.g. -DMAPKV_SANITIZE=ON). BUILD_TARGETS="a b" builds
# only those targets (default: everything).
set -eu
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
gen=""
command -v ninja >/dev/null 2>&1 && gen="-G Ninja"
# shellcheck disable=SC2086
[ -f "$dir/CMakeCache.txt" ] || cmake -S . -B "$dir" $gen "$@" >/dev/null
cmake -S . -B "$dir" "$@" >/dev/null
# shellcheck disable=SC2086
cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" ${BUILD_TARGETS:+--target $BUILD_TARGETS}
