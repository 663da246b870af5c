#!/bin/sh
# Installs the Debian packages mapkv needs to build and test, skipping those
# already present (man-db and groff-base check the man pages). Run as root
# (or with sudo available).
set -eu
# The Python package: headers, setuptools, venv (and pip) and pytest.
pkgs="build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev valgrind libxxhash-dev libcmocka-dev lmdb-utils man-db groff-base clang-format clang-tools gcovr
  python3-dev python3-setuptools python3-wheel python3-venv python3-pytest"
[ "${MAPKV_WITH_PEERS:-0}" = 1 ] && pkgs="$pkgs liblmdb-dev libleveldb-dev librocksdb-dev libsqlite3-dev libkyotocabinet-dev libtkrzw-dev libgdbm-dev
  python3-lmdb python3-plyvel python3-gdbm"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "setup: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null || true
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
