#!/bin/sh
# fuzz.sh — builds the libFuzzer targets (clang, -DMAPKV_FUZZ=ON, ASan+UBSan)
# into ${BUILD_DIR:-build-fuzz} and runs each for FUZZ_SECONDS (default 60)
# on a scratch copy of its seed corpus (tests/fuzz/corpus/<target>, plus
# tests/data/*.dump for fuzz_dumpfmt), so the checked-in corpus never
# grows. Fails if any target finds a crash, a leak, a timeout or a failed
# check; the reproducer is kept in ${BUILD_DIR}/artifacts/<target>/ (rerun
# it with: ${BUILD_DIR}/fuzz/<target> FILE).
#
#   FUZZ_SECONDS=600 sh scripts/fuzz.sh            # every target, longer
#   sh scripts/fuzz.sh fuzz_ops                     # one target
#   FUZZ_KEEP_CORPUS=DIR sh scripts/fuzz.sh        # keep what was found
#
# Needs clang and the libFuzzer runtime (Debian: clang, libclang-rt-14-dev);
# scripts/setup.sh installs them.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${BUILD_DIR:-build-fuzz}
case $dir in /*) ;; *) dir=$root/$dir ;; esac
seconds=${FUZZ_SECONDS:-60}
targets=${*:-fuzz_open fuzz_ops fuzz_dumpfmt}

# The toolchain: clang with the libFuzzer runtime.
have_fuzzer() {
  command -v clang >/dev/null 2>&1 || return 1
  printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' \
    >"${TMPDIR:-/tmp}/mapkv-fuzz-probe.c"
  clang -fsanitize=fuzzer,address,undefined -o "${TMPDIR:-/tmp}/mapkv-fuzz-probe" \
    "${TMPDIR:-/tmp}/mapkv-fuzz-probe.c" >/dev/null 2>&1
  rc=$?
  rm -f "${TMPDIR:-/tmp}/mapkv-fuzz-probe" "${TMPDIR:-/tmp}/mapkv-fuzz-probe.c"
  return $rc
}
if ! have_fuzzer; then
  echo "fuzz: clang with libFuzzer missing; installing (scripts/setup.sh)" >&2
  sh scripts/setup.sh
  have_fuzzer || {
    echo "fuzz: clang -fsanitize=fuzzer still fails" >&2
    exit 1
  }
fi

echo "fuzz: building into $dir"
gen=""
command -v ninja >/dev/null 2>&1 && gen="-G Ninja"
# shellcheck disable=SC2086
[ -f "$dir/CMakeCache.txt" ] || cmake -S . -B "$dir" $gen -DCMAKE_C_COMPILER=clang >/dev/null
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMAPKV_FUZZ=ON -DMAPKV_BUILD_TESTS=OFF -DMAPKV_BUILD_TOOLS=OFF \
  -DMAPKV_WERROR=ON >/dev/null
# shellcheck disable=SC2086
cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" --target $targets

scratch=$(mktemp -d "${TMPDIR:-/tmp}/mapkv-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT INT TERM
# Store files of the targets go to tmpfs when there is one.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export MAPKV_FUZZ_TMPDIR=/dev/shm
else
  export MAPKV_FUZZ_TMPDIR="$scratch"
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=""
summary=""
for t in $targets; do
  case $t in
  fuzz_open) max_len=16384 dict=tests/fuzz/mapkv.dict ;;
  fuzz_ops) max_len=2048 dict="" ;;
  fuzz_dumpfmt) max_len=16384 dict=tests/fuzz/dumpfmt.dict ;;
  *)
    echo "fuzz: unknown target $t" >&2
    exit 2
    ;;
  esac
  corpus=$scratch/corpus-$t
  mkdir -p "$corpus"
  cp tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  [ "$t" = fuzz_dumpfmt ] && cp tests/data/*.dump "$corpus"/
  artifacts=$dir/artifacts/$t
  mkdir -p "$artifacts"
  log=$dir/$t.log
  echo "fuzz: $t for $seconds s (max_len $max_len, $(ls "$corpus" | wc -l) seeds)"
  set +e
  # shellcheck disable=SC2086
  "$dir/fuzz/$t" -max_total_time="$seconds" -max_len="$max_len" \
    -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" ${dict:+-dict=$dict} "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  stats=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -n 1 |
    sed 's/^\(#[0-9]*\)[^c]*\(cov: [0-9]*\) \(ft: [0-9]*\) \(corp: [^ ]*\).*exec\/s: \([0-9]*\).*/\1 execs, \2, \3, \4, \5 exec\/s/')
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  summary="$summary
  $t: ${execs:-?} inputs run${stats:+; last status $stats}"
  if [ $rc -ne 0 ]; then
    failed="$failed $t"
    echo "fuzz: $t FAILED (exit $rc); log $log, reproducer in $artifacts/:" >&2
    ls -l "$artifacts" >&2 || true
    grep -E -A 40 "ERROR: |FUZZ CHECK FAILED|runtime error|deadly signal|Test unit written" "$log" |
      head -n 80 >&2 || true
  fi
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$t"
    cp "$corpus"/* "$FUZZ_KEEP_CORPUS/$t"/ 2>/dev/null || true
  fi
done

echo "fuzz: results:$summary"
if [ -n "$failed" ]; then
  echo "fuzz: FAILED:$failed" >&2
  exit 1
fi
echo "fuzz: no crash in $seconds s per target"
