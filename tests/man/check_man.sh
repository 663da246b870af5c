#!/bin/sh
# check_man.sh — the man pages in man/: they render without a single groff
# warning (man --warnings, groff -ww), their version is the library's
# (mapkv --version, which prints mapkv_version(), and the version the build
# read from mapkv.h), mapkv.1 names every command, long option and exit
# status of `mapkv --help`, and mapkv.3 every function, option field,
# statistics field and error code of include/mapkv/mapkv.h.
#
# Usage: sh check_man.sh SOURCE_DIR MAPKV_BINARY VERSION
# Exit status 0 if every check passed.
set -u
if [ $# -ne 3 ]; then
  echo "usage: sh check_man.sh SOURCE_DIR MAPKV_BINARY VERSION" >&2
  exit 2
fi
src=$1 mapkv=$2 version=$3
man1=$src/man/mapkv.1
man3=$src/man/mapkv.3
header=$src/include/mapkv/mapkv.h
failed=0
fail() {
  echo "FAIL: $*" >&2
  failed=$((failed + 1))
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mapkv-man.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

if ! command -v man >/dev/null 2>&1 || ! command -v groff >/dev/null 2>&1; then
  echo "FAIL: man and groff are needed (Debian: man-db, groff-base; scripts/setup.sh installs them)" >&2
  exit 1
fi

# ---- every page renders without a warning -------------------------------------
for page in "$man1" "$man3"; do
  [ -s "$page" ] || { fail "$page is missing"; continue; }
  LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" \
    >"$tmp/out" 2>"$tmp/err" || fail "man -l $page failed"
  [ -s "$tmp/err" ] && fail "man --warnings -l $page: $(cat "$tmp/err")"
  [ -s "$tmp/out" ] || fail "man -l $page rendered nothing"
  groff -ww -z -man -Tutf8 "$page" 2>"$tmp/err" || fail "groff $page failed"
  [ -s "$tmp/err" ] && fail "groff -ww -man $page: $(cat "$tmp/err")"
done

# ---- one version everywhere --------------------------------------------------
tool=$("$mapkv" --version | awk '{ print $2 }')
[ "$tool" = "$version" ] ||
  fail "mapkv --version says '$tool', the build (mapkv.h) '$version'"
for page in "$man1" "$man3"; do
  th=$(sed -n 's/^\.TH [^"]*"mapkv \([^"]*\)".*/\1/p' "$page")
  [ "$th" = "$version" ] ||
    fail "$page is for version '$th', the library is $version (update its .TH line)"
done

# Text of a page with the roff escapes for '-' undone, one word a line.
words() { sed 's/\\-/-/g; s/\\f[BIRP]//g' "$1" | tr -c 'A-Za-z0-9_-' '\n' | sort -u; }
words "$man1" >"$tmp/words1"
words "$man3" >"$tmp/words3"
has() { grep -q -x -e "$2" "$1"; }

# ---- mapkv.1: every command, long option and exit status of the tool ------------
cmds=$("$mapkv" --help | sed -n '/^Commands:/,/^$/p' | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p')
[ -n "$cmds" ] || fail "no commands in mapkv --help"
# The tags of the COMMANDS section: the line after each .TP.
sed -n '/^\.SH COMMANDS/,/^\.SH /p' "$man1" | awk 'tp { print } { tp = ($0 == ".TP") }' >"$tmp/tags"
for c in $cmds; do
  grep -q "^\.B $c\( \|$\)" "$tmp/tags" || fail "mapkv.1 COMMANDS has no entry for $c"
  for o in $("$mapkv" "$c" --help | grep -o -e '--[a-z][a-z-]*' | sort -u); do
    has "$tmp/words1" "$o" || fail "mapkv.1 does not mention $c $o"
  done
done
for o in $("$mapkv" --help | grep -o -e '--[a-z][a-z-]*' | sort -u); do
  has "$tmp/words1" "$o" || fail "mapkv.1 does not mention $o"
done
codes=$("$mapkv" --help | sed -n '/^Exit status:/,$p' | sed -n 's/^  \([0-9]\)  .*/\1/p')
[ -n "$codes" ] || fail "no exit codes in mapkv --help"
sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' "$man1" >"$tmp/exit"
for n in $codes; do
  grep -q "^\.B $n$" "$tmp/exit" || fail "mapkv.1 EXIT STATUS lacks $n"
done
grep -q '^\.SH EXAMPLES' "$man1" || fail "mapkv.1 has no EXAMPLES"

# ---- mapkv.3: the whole API of mapkv.h ---------------------------------------------
funcs=$(grep -o '^MAPKV_API [^(]*(' "$header" | sed 's/.*[ *]\([a-z_0-9]*\)($/\1/')
[ -n "$funcs" ] || fail "no functions found in $header"
for f in $funcs; do
  has "$tmp/words3" "$f" || fail "mapkv.3 does not document $f()"
  sed -n '/^\.SH SYNOPSIS/,/^\.SH /p' "$man3" | grep -q "^\.BI\{0,1\} .*[ *]$f(" ||
    fail "mapkv.3 SYNOPSIS lacks $f()"
done
for st in mapkv_options mapkv_stats; do
  fields=$(sed -n "/^typedef struct $st {/,/^} $st;/p" "$header" |
    sed -n 's/^  [a-z_0-9]* \**\([a-z_0-9]*\);.*/\1/p')
  [ -n "$fields" ] || fail "no fields of $st found in $header"
  for f in $fields; do
    has "$tmp/words3" "$f" || fail "mapkv.3 does not describe $st.$f"
  done
done
errs=$(sed -n 's/^ *X(\(MAPKV_[A-Z]*\), .*/\1/p' "$header")
[ -n "$errs" ] || fail "no error codes found in $header"
for e in $errs; do
  grep -q "^\.B $e$" "$man3" || fail "mapkv.3 ERRORS lacks $e"
done
for s in "THREADS AND PROCESSES" EXAMPLES; do
  grep -q "^\.SH $s" "$man3" || fail "mapkv.3 has no $s"
done

if [ "$failed" -ne 0 ]; then
  echo "man pages: $failed check(s) failed" >&2
  exit 1
fi
echo "man pages: ok (version $version)"
