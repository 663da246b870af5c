#!/bin/sh
# The main demo: sets up, builds, then shows the store and the tool at work
# on a million records (override with DEMO_RECORDS).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
log=${TMPDIR:-/tmp}/mapkv-demo-build.log
echo "== 0. building the library, the mapkv tool and the demo program (Release)"
echo "   into ${BUILD_DIR:-build}/: configuring with cmake, then compiling; the full log is $log"
# The build's progress: one line rewritten in place on a terminal, a line
# at each tenth otherwise. The status of the build goes through a file,
# since a pipeline's status is its last command's.
tty=0
[ -t 1 ] && tty=1
{
  BUILD_DIR=${BUILD_DIR:-build} BUILD_TARGETS="store-demo mapkv" \
    sh scripts/build.sh -DCMAKE_BUILD_TYPE=Release 2>&1
  echo $? >"$log.rc"
} | tee "$log" | awk -v tty="$tty" '
  # ninja: "[12/66] Building C object ...", make: "[ 25%] Building C object ..."
  match($0, /^\[ *[0-9]+(\/[0-9]+|%)\] /) {
    tag = substr($0, 2, RLENGTH - 3); what = substr($0, RLENGTH + 1)
    if (tag ~ /%$/) pct = tag + 0
    else {
      split(tag, nm, "/")
      if (nm[1] == 0) next  # ninja re-checking the build files
      pct = int(100 * nm[1] / nm[2])
    }
    if (tty) {
      line = sprintf("   [%3d%%] %s", pct, what)
      printf "\r\033[K%s", substr(line, 1, 78); fflush()
    } else if (pct >= next_pct) {
      printf "   %d%% built (%s)\n", pct, tag; fflush()
      while (next_pct <= pct) next_pct += 10
    }
  }
  END { if (tty) printf "\r\033[K" }'
if [ "$(cat "$log.rc" 2>/dev/null)" != 0 ]; then
  echo "the build failed; its log:" >&2
  cat "$log" >&2
  exit 1
fi
echo "   built"
echo
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
