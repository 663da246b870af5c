#!/bin/sh
# Sets up, builds and runs the main demo.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
sh scripts/build.sh -DCMAKE_BUILD_TYPE=Release
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"${BUILD_DIR:-build}/bin/mmf-demo" "$dir/demo.bin"
