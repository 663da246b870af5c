#!/bin/sh
# bench_quick: runs `mapkv-bench --quick --json` once and checks that every
# compiled-in store completed every workload (exit status 0: every read's
# answer was right), and what the report says of the newer workloads:
#  - every store has a result for each of them (readprocs may be "not
#    supported", with a reason);
#  - the concurrent workloads ran for at least --min-seconds, with the
#    configured number of threads, writers or processes;
#  - the durable workloads report bytes dirtied per commit (at least one
#    byte), for every store and for the write+fdatasync baseline;
#  - readprocs on LMDB and SQLite, whose readers see every commit, reports
#    that every reader process saw the writer's last commit.
# Usage: check_bench.sh MAPKV_BENCH SCRATCH_DIR
set -eu
bench=$1
dir=$2
out=$dir.json
rm -rf "$dir"
"$bench" --quick --json --dir "$dir" >"$out"
rm -rf "$dir"
fail() {
  echo "check_bench: $*" >&2
  exit 1
}
# One result per line: {"store": "x", "workload": "y", ...}
atleast() { # atleast VALUE MIN: VALUE is a number >= MIN
  awk -v v="$1" -v m="$2" 'BEGIN { exit !(v ~ /^[0-9.]+$/ && v + 0 >= m + 0) }'
}
field() { # field LINE NAME -> the value of "NAME": in LINE
  printf '%s\n' "$1" | sed -n "s/.*\"$2\": \([^,}]*\).*/\1/p" | tr -d '"'
}
min=$(sed -n 's/.*"min_seconds": \([0-9.]*\).*/\1/p' "$out")
threads=$(sed -n 's/.*"threads": \([0-9]*\), "writers".*/\1/p' "$out")
writers=$(sed -n 's/.*"writers": \([0-9]*\).*/\1/p' "$out")
if [ -z "$min" ] || [ -z "$threads" ] || [ -z "$writers" ]; then
  fail "no configuration in the JSON"
fi
stores=$("$bench" --list | cut -d' ' -f1)
for s in $stores; do
  for w in readrandom_mt readprocs readwhilewriting fillsync_empty fillsync \
    fillsync_mt; do
    line=$(grep "{\"store\": \"$s\", \"workload\": \"$w\"" "$out" || true)
    [ -n "$line" ] || fail "$s: no result for $w"
    [ "$(field "$line" ok)" = true ] || fail "$s: $w failed: $line"
    if [ "$(field "$line" supported)" = false ]; then
      [ "$w" = readprocs ] || fail "$s: $w not supported"
      [ -n "$(field "$line" note)" ] || fail "$s: $w: no reason given"
      continue
    fi
    case $w in
    readrandom_mt | readprocs | readwhilewriting | fillsync_mt)
      secs=$(field "$line" seconds)
      n=$(field "$line" threads)
      atleast "$secs" "$min" ||
        fail "$s: $w ran $secs s, less than $min s"
      want=$threads
      [ "$w" = fillsync_mt ] && want=$writers
      [ "$n" = "$want" ] || fail "$s: $w ran $n threads, not $want"
      ;;
    esac
    case $w in
    fillsync*)
      b=$(field "$line" dirtied_bytes_per_commit)
      atleast "$b" 1 ||
        fail "$s: $w: no bytes per commit ($b)"
      ;;
    esac
    if [ "$w" = readprocs ] && { [ "$s" = lmdb ] || [ "$s" = sqlite ]; }; then
      [ "$(field "$line" readers_saw_last_commit)" = "$threads" ] ||
        fail "$s: readprocs: a reader did not see the last commit: $line"
    fi
  done
done
for w in fillsync fillsync_empty; do
  line=$(grep "{\"store\": \"write+fdatasync\", \"workload\": \"$w\"" "$out" ||
    true)
  b=$(field "$line" dirtied_bytes_per_commit)
  atleast "$b" 1 ||
    fail "write+fdatasync: $w: no bytes per commit ($b)"
done
rm -f "$out"
echo "check_bench: ok: $(printf '%s\n' "$stores" | wc -l) stores"
