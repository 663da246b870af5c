#!/bin/sh
# The main demo: sets up, builds, then shows the store and the tool at work
# on a million records (override with DEMO_RECORDS).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build} sh scripts/build.sh -DCMAKE_BUILD_TYPE=Release >"${TMPDIR:-/tmp}/mapkv-demo-build.log" 2>&1 || {
  cat "${TMPDIR:-/tmp}/mapkv-demo-build.log" >&2
  exit 1
}
bin=${BUILD_DIR:-build}/bin
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
db=$dir/demo.mkv
n=${DEMO_RECORDS:-1000000}

timed() { # timed LABEL CMD...: runs CMD, then prints how long it took
  label=$1
  shift
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v l="$label" 'BEGIN { printf "  (%s: %.3f s)\n", l, b - a }'
}

echo "== 1. the library: load, read back, delete"
"$bin/store-demo" "$db" "$n"
echo
echo "== 2. the tool: mapkv stat $db"
timed stat "$bin/mapkv" stat "$db"
echo
echo "== 3. single operations"
"$bin/mapkv" put "$db" greeting "hello, mapkv"
printf '  mapkv get greeting -> %s\n' "$("$bin/mapkv" get "$db" greeting)"
printf '  keys with prefix user:0000000001 -> %s\n' \
  "$("$bin/mapkv" keys --prefix user:0000000001 "$db" | tr '\n' ' ')"
echo
echo "== 4. mapkv compact"
timed compact "$bin/mapkv" compact "$db"
echo
echo "== 5. mapkv verify"
timed verify "$bin/mapkv" verify "$db"
echo
echo "== 6. dump and load (db_dump / mdb_dump text format)"
timed dump sh -c "'$bin/mapkv' dump '$db' > '$dir/demo.dump'"
timed load "$bin/mapkv" load -f "$dir/demo.dump" "$dir/copy.mkv"
"$bin/mapkv" stat "$dir/copy.mkv" | grep -E 'records|file size' || true
echo
echo "demo done"
