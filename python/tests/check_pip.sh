#!/bin/sh
# Installs the Python package the documented way, offline, into a new
# virtual environment, from a copy of the sources as a fresh clone has them
# (nothing built), then uses the installed package.
# usage: check_pip.sh PYTHON SOURCE_DIR WORK_DIR   (CC and CFLAGS are passed on)
set -eu
python=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work/clone"
cp -R "$src/include" "$src/src" "$src/python" "$work/clone/"
rm -rf "$work/clone/python/build" "$work/clone/python/"*.egg-info
"$python" -m venv --system-site-packages "$work/venv"
if ! "$work/venv/bin/pip" install -q --no-index --no-build-isolation \
  "$work/clone/python" >"$work/pip.log" 2>&1; then
  cat "$work/pip.log"
  echo "check_pip: pip install failed" >&2
  exit 1
fi
# Warning-free: with CFLAGS=-Werror a warning already failed the build.
cd "$work"
"$work/venv/bin/python" - "$work/store.mkv" <<'PY'
import os, sys, mapkv
here = os.path.dirname(mapkv.__file__)
assert here.startswith(sys.prefix), (here, sys.prefix)
for f in ("__init__.pyi", "py.typed"):
    assert os.path.exists(os.path.join(here, f)), f
with mapkv.open(sys.argv[1]) as db:
    db[b"k"] = b"v"
    with db.batch() as b:
        b[b"k2"] = b"v2"
    with db.read() as r:
        assert bytes(r[b"k2"]) == b"v2"
    assert sorted(db.items()) == [(b"k", b"v"), (b"k2", b"v2")]
with mapkv.open(sys.argv[1], readonly=True) as db:
    assert db[b"k"] == b"v" and len(db) == 2
print("check_pip: mapkv", mapkv.__version__, "installed and working from", here)
PY
