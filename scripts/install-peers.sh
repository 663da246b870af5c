#!/bin/sh
# Installs, from Debian, the peer stores mapkv-bench compares mapkv with:
# LMDB, LevelDB, RocksDB, SQLite, Kyoto Cabinet, tkrzw and gdbm (their
# development packages: headers, libraries, pkg-config files), and the
# Python bindings python/bench.py compares the Python package with
# (py-lmdb, plyvel, dbm.gnu). Packages already present are skipped. Run as root, or as a user with sudo.
# Reconfigure the build afterwards so that CMake finds them:
#   cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release
set -eu
pkgs="liblmdb-dev libleveldb-dev librocksdb-dev libsqlite3-dev libkyotocabinet-dev libtkrzw-dev libgdbm-dev
  python3-lmdb python3-plyvel python3-gdbm"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install-peers: all peers already installed" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install-peers: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null || true
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-peers: done" >&2
