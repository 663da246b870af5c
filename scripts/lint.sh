#!/bin/sh
# lint.sh — the checks CI runs on the sources beside the tests:
#   format   every C file under src, include, tools, tests (and python/) as
#            .clang-format says (clang-format --dry-run -Werror);
#   analyze  the clang static analyzer (scan-build) over the library: no
#            finding;
#   coverage the suite built with gcov (gcc), and its line coverage of the
#            library printed, per file and in all (gcovr).
# Usage: sh scripts/lint.sh [format] [analyze] [coverage]   (default: all)
set -eu
cd "$(dirname "$0")/.."
steps=${*:-format analyze coverage}
for step in $steps; do
  case $step in
  format)
    echo "== format (clang-format --dry-run -Werror)"
    files=$(find src include tools tests python -name '*.[ch]' -not -path '*/build*' 2>/dev/null | sort)
    # shellcheck disable=SC2086
    clang-format --dry-run -Werror $files
    echo "format: $(echo "$files" | wc -l) files as .clang-format says"
    ;;
  analyze)
    echo "== analyze (scan-build over the library)"
    dir=${BUILD_DIR:-build-ci-analyze}
    rm -rf "$dir"
    scan-build -o "$dir/report" --status-bugs cmake -S . -B "$dir/build" \
      -DMAPKV_BUILD_TESTS=OFF -DMAPKV_BUILD_TOOLS=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
    scan-build -o "$dir/report" --status-bugs cmake --build "$dir/build" -j 2 |
      grep -E 'scan-build:|warning:' || true
    # --status-bugs made the build fail above on any finding (set -e)
    ;;
  coverage)
    echo "== coverage (gcov, gcovr)"
    dir=${BUILD_DIR:-build-ci-coverage}
    BUILD_DIR=$dir sh scripts/build.sh -DMAPKV_COVERAGE=ON -DCMAKE_BUILD_TYPE=Debug
    # The tests of the library; the packaging, documentation, benchmark
    # and Python checks add nothing to its coverage.
    (cd "$dir" && ctest -j 2 --output-on-failure -E 'install_consumer|man_pages|bench_quick|python')
    gcovr -r . --filter 'src/' "$dir"
    ;;
  *)
    echo "lint.sh: unknown step $step" >&2
    exit 2
    ;;
  esac
done
