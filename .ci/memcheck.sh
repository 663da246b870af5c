#!/bin/sh
# memcheck.sh — the ctest suite once under valgrind memcheck: no memory error
# (invalid access, use of uninitialised bytes, bad free, fd misuse) in any
# process, and no definite or indirect leak in any process a test starts.
#
# Usage: sh .ci/memcheck.sh   (BUILD_DIR overrides build-valgrind)
#
# How each ctest test runs:
#  - every test binary tests/<name> (the cmocka suites): under valgrind, with
#    the environment ctest gives it;
#  - cli: tests/cli/test_cli.sh with every invocation of the mapkv tool under
#    valgrind (a wrapper script stands in for the binary), with 40 racing
#    puts a shell instead of 300 (each run of the tool under valgrind takes
#    about a second);
#  - bench_quick: mapkv-bench --quick under valgrind;
#  - install_consumer: skipped — it configures, builds and runs a consumer of
#    the installed package through cmake and cc (packaging, not memory use);
#    the other CI stages run it;
#  - man_pages: skipped — it renders the man pages with groff and compares
#    them with the tool's help, whose every path the cli test runs under
#    valgrind;
#  - python, python_pip, python_bench_quick: skipped — the Python
#    extension's tests run the interpreter, whose own allocations valgrind
#    cannot tell from the extension's; the sanitize stage runs them with
#    the extension and the library under ASan+UBSan instead
#    (python/CMakeLists.txt).
# A ctest test of any other kind is reported as not covered (and fails).
#
# Forked children: several suites fork (the lock, crash and store tests).
# A forked child inherits its parent's heap, and valgrind checks leaks again
# when the child exits, where the parent's live objects can look lost (the
# child's copy of the stack no longer points at them). So leaks are not
# errors to valgrind here (--errors-for-leak-kinds=none, which would change
# the children's exit status that the tests check); instead the log of each
# top-level process must show no definite or indirect leak, and every log,
# children's included, must show 0 errors.
#
# Valgrind 3.19 limits: see .ci/valgrind-shim.c, preloaded into every
# process valgrind runs here (it only reshapes address-space reservations).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${BUILD_DIR:-build-valgrind}
case $dir in /*) ;; *) dir=$root/$dir ;; esac

command -v valgrind >/dev/null 2>&1 || {
  echo "memcheck: valgrind is not installed (sh scripts/setup.sh)" >&2
  exit 1
}
echo "memcheck: building $dir"
BUILD_DIR=$dir sh scripts/build.sh -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMAPKV_SANITIZE=OFF -DMAPKV_FUZZ=OFF -DMAPKV_TSAN=OFF >/dev/null
shim=$dir/valgrind-shim.so
cc -O2 -shared -fPIC -o "$shim" .ci/valgrind-shim.c -ldl

logs=$dir/memcheck
rm -rf "$logs"
mkdir -p "$logs" "$dir/tests/tmp"
allowed_failures=""
vg_opts="--error-exitcode=99 --leak-check=full --errors-for-leak-kinds=none
  --show-leak-kinds=definite,indirect --track-fds=no --num-callers=30
"
failed=""
note_fail() {
  echo "memcheck: FAIL: $*" >&2
  failed="$failed
  $*"
}

# check_logs NAME TOPLEVEL_LOG...: errors in any log of NAME, leaks in the
# top-level ones.
check_logs() {
  name=$1
  shift
  for f in "$logs/$name".*.log; do
    [ -e "$f" ] || continue
    if grep -q "ERROR SUMMARY: [1-9]" "$f"; then
      note_fail "$name: memory errors, see $f"
      sed -n '/^==[0-9]*== [A-Z][a-z]/,$p' "$f" | head -n 60 >&2
    fi
    if grep -q "aspacem.*assertion failed\|valgrind: the 'impossible' happened" "$f"; then
      note_fail "$name: valgrind itself failed, see $f"
    fi
  done
  for f in "$@"; do
    [ -e "$f" ] || {
      note_fail "$name: no valgrind log $f"
      continue
    }
    if grep -Eq "(definitely|indirectly) lost: [1-9]" "$f"; then
      note_fail "$name: leaks, see $f"
      grep -A 25 "are definitely lost\|are indirectly lost" "$f" | head -n 80 >&2
    fi
  done
}

# run_binary NAME: one cmocka suite under valgrind.
run_binary() {
  name=$1
  start=$(date +%s)
  set +e
  # shellcheck disable=SC2086
  MAPKV_TEST_TMPDIR=$dir/tests/tmp MAPKV_TEST_DATA=$root/tests/data LD_PRELOAD=$shim valgrind $vg_opts \
    --log-file="$logs/$name.%p.log" "$dir/tests/$name" >"$logs/$name.out" 2>&1 &
  pid=$!
  wait $pid
  rc=$?
  set -e
  unexpected=""
  for t in $(sed -n 's/^\[  FAILED  \] \(test_[A-Za-z0-9_]*\)$/\1/p' "$logs/$name.out" | sort -u); do
    case " $allowed_failures " in
    *" $name:$t "*) echo "memcheck: $name: $t fails under valgrind only (tolerated, see .ci/memcheck.sh)" ;;
    *) unexpected="$unexpected $t" ;;
    esac
  done
  if [ $rc -eq 99 ]; then
    note_fail "$name: valgrind reported errors"
  elif [ $rc -ne 0 ] && { [ -n "$unexpected" ] || [ $rc -gt 90 ]; }; then
    note_fail "$name: exit status $rc, failing:${unexpected:- (none listed)}"
    tail -n 30 "$logs/$name.out" >&2
  fi
  check_logs "$name" "$logs/$name.$pid.log"
  echo "memcheck: $name done in $(($(date +%s) - start)) s (exit $rc)"
}

# The tests ctest knows.
tests=$(cd "$dir" && ctest -N | sed -n 's/^ *Test *#[0-9]*: *//p')
for name in $tests; do
  case $name in
  install_consumer)
    echo "memcheck: $name skipped (packaging test: cmake and cc, see .ci/memcheck.sh)"
    ;;
  man_pages)
    echo "memcheck: $name skipped (documentation test: groff, see .ci/memcheck.sh)"
    ;;
  python | python_pip | python_bench_quick)
    echo "memcheck: $name skipped (the Python tests run under ASan in the sanitize stage, see .ci/memcheck.sh)"
    ;;
  cli)
    start=$(date +%s)
    wrap=$logs/mapkv-under-valgrind
    cat >"$wrap" <<EOF
#!/bin/sh
LD_PRELOAD=$shim exec valgrind $(echo $vg_opts) --log-file=$logs/cli.%p.log $dir/bin/mapkv "\$@"
EOF
    chmod +x "$wrap"
    if ! MAPKV_CLI_RACE_PUTS=40 sh tests/cli/test_cli.sh "$wrap" "$dir/tests/cli_tmp_memcheck" \
      "$root/tests/data" >"$logs/cli.out" 2>&1; then
      note_fail "cli: test_cli.sh failed under valgrind"
      grep "FAIL" "$logs/cli.out" | head -n 30 >&2
    fi
    # Every log is a top-level process (the tool does not fork).
    check_logs cli "$logs"/cli.*.log
    echo "memcheck: cli done in $(($(date +%s) - start)) s ($(ls "$logs"/cli.*.log | wc -l) runs of the tool)"
    ;;
  bench_quick)
    start=$(date +%s)
    set +e
    # shellcheck disable=SC2086
    LD_PRELOAD=$shim valgrind $vg_opts --log-file="$logs/bench_quick.%p.log" \
      "$dir/bin/mapkv-bench" --quick --dir "$dir/tests/tmp/bench_quick_memcheck" \
      >"$logs/bench_quick.out" 2>&1 &
    pid=$!
    wait $pid
    rc=$?
    set -e
    [ $rc -eq 0 ] || {
      note_fail "bench_quick: exit status $rc"
      tail -n 20 "$logs/bench_quick.out" >&2
    }
    check_logs bench_quick "$logs/bench_quick.$pid.log"
    echo "memcheck: bench_quick done in $(($(date +%s) - start)) s"
    ;;
  *)
    if [ -x "$dir/tests/$name" ]; then
      run_binary "$name"
    else
      note_fail "$name: a ctest test this script does not know how to run"
    fi
    ;;
  esac
done

if [ -n "$failed" ]; then
  echo "memcheck: FAILED:$failed" >&2
  exit 1
fi
echo "memcheck: passed (logs in $logs)"
