#!/bin/sh
# test_cli.sh — runs the real mapkv binary through every command and exit
# code: help, usage errors, put/get/del/keys with text, binary (--hex) and
# empty data, values of several MiB from standard input and files, stat
# (text and JSON), writers that wait for the lock (--wait), two shells
# racing puts, dump/load round trips in both formats,
# the checked-in mdb_dump outputs (tests/data/lmdb*.dump), malformed dumps,
# verify/recover on a store damaged on purpose, compact, copy (also while
# another process writes the store), an address-space limit (ulimit -v), a
# closed pipe, and (when lmdb-utils is installed) live round trips through
# mdb_load/mdb_dump.
#
# Usage: sh test_cli.sh MAPKV_BINARY SCRATCH_DIR DATA_DIR
# Exit status 0 if every check passed.
set -u

if [ $# -ne 3 ]; then
  echo "usage: sh test_cli.sh MAPKV_BINARY SCRATCH_DIR DATA_DIR" >&2
  exit 2
fi
MAPKV=$1
T=$2
DATA=$3
rm -rf "$T"
mkdir -p "$T" || exit 1

passed=0
failed=0
fail() {
  echo "FAIL: $*" >&2
  failed=$((failed + 1))
}
pass() { passed=$((passed + 1)); }

# check DESCRIPTION COMMAND...: the command must succeed.
check() {
  desc=$1
  shift
  if "$@"; then pass; else fail "$desc"; fi
}

# run RC ARGS...: runs mapkv ARGS with stdout in $T/out and stderr in $T/err
# and checks the exit status; stdin is whatever the caller redirects.
run() {
  want=$1
  shift
  "$MAPKV" "$@" >"$T/out" 2>"$T/err"
  got=$?
  if [ "$got" -eq "$want" ]; then
    pass
    return 0
  fi
  fail "mapkv $* exited $got, expected $want"
  sed 's/^/    stderr: /' "$T/err" >&2
  return 1
}

# Output checks on the last run.
out_has() { grep -q -e "$1" "$T/out" || { fail "stdout lacks '$1'"; return 1; }; pass; }
err_has() { grep -q -e "$1" "$T/err" || { fail "stderr lacks '$1'"; sed 's/^/    stderr: /' "$T/err" >&2; return 1; }; pass; }
out_empty() { [ ! -s "$T/out" ] || { fail "stdout not empty"; return 1; }; pass; }
err_empty() { [ ! -s "$T/err" ] || { fail "stderr not empty: $(cat "$T/err")"; return 1; }; pass; }
out_is() { # the exact bytes of stdout, given as printf format
  printf "$1" >"$T/want"
  cmp -s "$T/out" "$T/want" || { fail "stdout is not the expected bytes ($1)"; return 1; }
  pass
}

# The lines of a dump that may legitimately differ between producers.
normalize() { grep -v -E '^(mapsize|maxreaders|db_pagesize)='; }
# The data of a dump, from HEADER=END on.
body() { sed -n '/^HEADER=END$/,$p'; }

echo "mapkv CLI tests: $MAPKV"

# ---- help -----------------------------------------------------------------
commands="put get del keys stat dump load verify recover compact upgrade copy"
run 0 --help && err_empty
for c in $commands; do out_has "^  $c "; done
run 0 help && out_has "^Commands:"
run 0 -V && out_has "^mapkv [0-9]"
for c in $commands; do
  run 0 "$c" --help && out_has "^usage: mapkv $c" && err_empty
  run 0 "$c" -h && out_has "^usage: mapkv $c"
done
run 0 help load && out_has "^usage: mapkv load"

# ---- usage errors: exit 2, a message and the usage line on stderr ----------
usage_err() {
  run 2 "$@" && err_has "usage: mapkv" && out_empty
}
usage_err
usage_err frobnicate db
usage_err --bogus
usage_err put
usage_err put "$T/u.db" k
usage_err put "$T/u.db" k v extra
usage_err put --bogus "$T/u.db" k v
usage_err get -q "$T/u.db" k
usage_err keys --prefix
usage_err stat "$T/u.db" extra
usage_err dump -f
usage_err recover -o
usage_err copy
usage_err copy "$T/u.db"
usage_err copy "$T/u.db" "$T/u2.db" extra
usage_err copy --bogus "$T/u.db" "$T/u2.db"
usage_err put --hex "$T/u.db" zz 00
err_has "not a hex string"
usage_err put --hex "$T/u.db" 0 00
err_has "odd number"
usage_err help nosuchcommand
for c in put del load recover compact; do
  for w in "" x -1 1e3 . 0x10 4294968 "1 s"; do
    usage_err "$c" --wait "$w" "$T/u.db" k v
  done
  err_has "not a number of seconds"
done
usage_err put --value-file "$T/u.in" "$T/u.db" k v
err_has "unexpected operand"
usage_err put --value-file "$T/u.in" "$T/u.db"
check "usage errors create no store" test ! -e "$T/u.db"

# ---- put / get / del --------------------------------------------------------
DB=$T/kv.db
run 0 put "$DB" greeting "hello world" && out_empty && err_empty
check "put creates the store" test -f "$DB"
run 0 get "$DB" greeting && out_is 'hello world'
run 0 put "$DB" greeting "hello again"
run 0 get "$DB" greeting && out_is 'hello again'
run 1 get "$DB" nosuchkey && err_has "^mapkv: .*not found" && out_empty
run 3 get "$T/missing.db" greeting && err_has "^mapkv: "
check "get creates no store" test ! -e "$T/missing.db"
run 3 del "$T/missing.db" greeting && err_has "^mapkv: "
run 0 put "$DB" doomed x
run 0 del "$DB" doomed
run 1 get "$DB" doomed && err_has "not found"
run 1 del "$DB" doomed && err_has "not found"

# Empty values and keys, keys starting with '-'.
run 0 put "$DB" empty ""
run 0 get "$DB" empty && out_is ''
run 0 put "$DB" "" "empty key"
run 0 get "$DB" "" && out_is 'empty key'
run 0 put "$DB" -- -dash "dash value"
run 0 get "$DB" -- -dash && out_is 'dash value'

# Binary data with --hex: NUL, newline, backslash, CR, 0xff.
run 0 put --hex "$DB" 00ff 000a5c0dff
run 0 get --hex "$DB" 00ff && out_is '000a5c0dff\n'
run 0 get --hex "$DB" 00FF && out_is '000a5c0dff\n'
run 0 get -x "$DB" 00ff && out_is '000a5c0dff\n'
printf '\000\n\\\r\377' >"$T/bin.want"
run 0 put --hex "$DB" 6b6579 000a5c0dff
run 0 get "$DB" key && check "raw get returns the exact bytes" cmp -s "$T/out" "$T/bin.want"
run 0 put --hex "$DB" 656d707479686578 ""
run 0 get --hex "$DB" 656d707479686578 && out_is '\n'

# ---- exit codes: 1 "no such key", 2 usage, 3 failure ------------------------
run 1 get "$DB" nosuchkey && err_has "key not found"
run 1 del "$DB" nosuchkey && err_has "key not found"
run 3 get "$T/missing.db" greeting && err_has "No such file"
run 3 del "$T/junk-for-exit.db" k
run 2 get "$DB"
printf 'not a store' >"$T/notastore.db"
run 3 get "$T/notastore.db" k && err_has "not a mapkv store"
run 3 put "$T/notastore.db" k v && err_has "not a mapkv store"

# ---- values from standard input and files, binary values out ----------------
# Several MiB holding NUL bytes, runs of zeros, and every byte value.
{
  head -c 1500000 /dev/urandom
  head -c 1000000 /dev/zero
  awk 'BEGIN { for (i = 0; i < 256; i++) printf "%c", i }'
  printf 'a\000b\000\n\r\\'
  head -c 2500000 /dev/urandom
} >"$T/big.bin"
size=$(wc -c <"$T/big.bin")
nonnul=$(tr -d '\000' <"$T/big.bin" | wc -c)
check "the test value is several MiB ($size bytes)" test "$size" -gt 5000000
check "the test value holds NUL bytes" test "$nonnul" -lt "$size"
SDB=$T/stdin.db
run 0 put "$SDB" big - <"$T/big.bin" && out_empty && err_empty
run 0 get "$SDB" big && check "put KEY - <file, get: the same bytes" cmp -s "$T/out" "$T/big.bin"
cat "$T/big.bin" | "$MAPKV" put "$SDB" piped - || fail "put from a pipe"
"$MAPKV" get "$SDB" piped | cmp -s - "$T/big.bin" || fail "put from a pipe, get into a pipe: the same bytes"
pass
run 0 put --value-file "$T/big.bin" "$SDB" fromfile
run 0 get "$SDB" fromfile && check "put --value-file, get: the same bytes" cmp -s "$T/out" "$T/big.bin"
run 0 put -f - "$SDB" dashfile <"$T/big.bin"
run 0 get "$SDB" dashfile && check "put --value-file -: standard input" cmp -s "$T/out" "$T/big.bin"
run 0 put --hex "$SDB" 00ff00 - <"$T/big.bin"
run 0 get --hex "$SDB" 00ff00
check "--hex: the key in hex, the value from standard input as it is" \
  test "$(tr -d '\n' <"$T/out" | wc -c)" -eq $((2 * size))
run 0 put "$SDB" empty - </dev/null
run 0 get "$SDB" empty && out_is ''
printf -- - | "$MAPKV" put "$SDB" dash - || fail "put of a literal '-' from standard input"
run 0 get "$SDB" dash && out_is '-'
run 0 put "$SDB" nul - <"$T/bin.want"
run 0 get "$SDB" nul && check "a short binary value from standard input" cmp -s "$T/out" "$T/bin.want"
run 3 put --value-file "$T/nosuchfile" "$SDB" k && err_has "nosuchfile"
run 3 put --value-file "$T" "$SDB" k && err_has "Is a directory"
run 1 get "$SDB" k
run 0 verify "$SDB"

# ---- keys -------------------------------------------------------------------
KDB=$T/keys.db
for k in user:1 user:2 user:10 item:1 us; do "$MAPKV" put "$KDB" "$k" v || fail "put $k"; done
run 0 keys "$KDB"
check "keys lists every key" test "$(sort "$T/out" | tr '\n' ' ')" = "item:1 us user:1 user:10 user:2 "
run 0 keys --prefix user: "$KDB"
check "keys --prefix" test "$(sort "$T/out" | tr '\n' ' ')" = "user:1 user:10 user:2 "
run 0 keys --prefix nothing "$KDB" && out_empty
run 0 keys --hex --prefix 7573 "$KDB"
check "keys --hex --prefix" test "$(sort "$T/out" | tr '\n' ' ')" = "7573 757365723a31 757365723a3130 757365723a32 "
run 0 keys --hex "$DB" && out_has '^00ff$'
run 3 keys "$T/missing.db"

# ---- stat -------------------------------------------------------------------
run 0 stat "$KDB" && out_has '^records: *5$' && out_has '^format version: *2$' &&
  out_has '^last close: *clean$' && out_has '^batches indexed: *5$' &&
  out_has '^checksum failures: *0$'
run 0 stat --json "$KDB"
check "stat --json is one line" test "$(wc -l <"$T/out")" -eq 1
if command -v python3 >/dev/null 2>&1 && python3 -c 'import json' >/dev/null 2>&1; then
  check "stat --json parses" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["records"] == 5, d
assert d["clean_open"] is True, d
assert d["recovered_batches"] == 5, d
assert d["writer_pid"] == 0, d
for k in ("format_version", "records", "live_bytes", "dead_bytes", "data_end",
          "file_size", "mapped_size", "reserved_size", "index_slots",
          "index_bytes", "last_seq", "generation", "recovered_batches",
          "dropped_tail_bytes", "dropped_tail_records", "damaged_regions",
          "damaged_bytes", "first_damage_offset", "checksum_failures"):
    assert isinstance(d[k], int) and not isinstance(d[k], bool), k
' "$T/out"
else
  echo "note: python3 not found; checking stat --json with grep"
  out_has '^{"format_version":1,.*"records":5,.*"clean_open":true.*}$'
fi
run 3 stat "$T/missing.db"
printf 'not a store at all' >"$T/junk.db"
run 3 stat "$T/junk.db" && err_has "^mapkv: "

# ---- dump / load round trips --------------------------------------------------
BDB=$T/bin.db
for kv in "00 ff00fe" "0a 0d0a" "5c 5c5c" "5c3030 5c" "ff 00" "20 20" \
  "6e6f76616c7565 ''" "7072696e74 2148656c6c6f7e7f80" "0001020304 0a5c0a"; do
  eval "set -- $kv"
  "$MAPKV" put --hex "$BDB" "$1" "$2" || fail "put --hex $kv"
done
run 0 dump "$BDB" && cp "$T/out" "$T/bin.dump"
check "dump header" test "$(sed -n '1,3p;5p' "$T/bin.dump" | tr '\n' ' ')" = "VERSION=3 format=bytevalue type=btree HEADER=END "
check "dump mapsize hint" grep -q '^mapsize=[0-9]*$' "$T/bin.dump"
run 0 dump --no-mapsize "$BDB"
check "dump --no-mapsize" test "$(sed -n '1,4p' "$T/out" | tr '\n' ' ')" = "VERSION=3 format=bytevalue type=btree HEADER=END "
check "dump ends with DATA=END" test "$(tail -n 1 "$T/bin.dump")" = "DATA=END"
check "empty value is one space" grep -q '^ $' "$T/bin.dump"
check "bytevalue is lowercase hex" grep -q '^ 2148656c6c6f7e7f80$' "$T/bin.dump"
run 0 dump -p "$BDB" && cp "$T/out" "$T/bin-print.dump"
check "print format header" test "$(sed -n 2p "$T/bin-print.dump")" = "format=print"
check "print escapes" grep -q '^ !Hello~\\7f\\80$' "$T/bin-print.dump"
check "print escapes backslash" grep -q '^ \\\\\\\\$' "$T/bin-print.dump"
check "print escapes newline" grep -q '^ \\0a\\\\\\0a$' "$T/bin-print.dump"

run 0 load "$T/bin2.db" <"$T/bin.dump" && out_empty && err_empty
run 0 dump "$T/bin2.db"
check "bytevalue round trip is byte-exact" cmp -s "$T/out" "$T/bin.dump"
run 0 load -f "$T/bin-print.dump" "$T/bin3.db"
run 0 dump "$T/bin3.db"
check "print round trip is byte-exact" cmp -s "$T/out" "$T/bin.dump"
run 0 dump -p -f "$T/bin3-print.dump" "$T/bin3.db" && out_empty
check "dump -f writes the file" cmp -s "$T/bin3-print.dump" "$T/bin-print.dump"
run 0 get --hex "$T/bin3.db" 5c3030 && out_is '5c\n'
run 0 get "$T/bin3.db" "$(printf 'novalue')" && out_is ''
run 0 get --hex "$T/bin3.db" 0001020304 && out_is '0a5c0a\n'
# load into an existing store replaces values
printf 'VERSION=3\nformat=print\nHEADER=END\n \\ff\n new\nDATA=END\n' >"$T/upd.dump"
run 0 load -f "$T/upd.dump" "$T/bin3.db"
run 0 get --hex "$T/bin3.db" ff && out_is '6e6577\n'
run 3 load -f "$T/nosuchfile" "$T/bin4.db" && err_has "nosuchfile"
run 3 dump "$T/missing.db"
check "dump creates no store" test ! -e "$T/missing.db"

# ---- the mdb_dump outputs checked in under tests/data --------------------------
LDB=$T/lmdb.db
run 0 load -f "$DATA/lmdb.dump" "$LDB"
run 0 get --hex "$LDB" 00 && out_is 'ff00fe\n'
run 0 get "$LDB" empty && out_is ''
run 0 get "$LDB" "back\\slash" && out_is 'value\\with\\\\two'
run 0 get --hex "$LDB" 6e65770a6c696e65 && out_is '6c696e65310a6c696e65320a\n'
run 0 get --hex "$LDB" 5c && out_is '5c3030\n'
run 0 get --hex "$LDB" 0001ff
check "every byte value" test "$(cat "$T/out")" = "$(awk 'BEGIN { for (i = 0; i < 256; i++) printf "%02x", i; print "" }')"
run 0 get "$LDB" big
check "5000-byte value" test "$(wc -c <"$T/out")" -eq 5000
run 0 keys "$LDB"
run 0 stat --json "$LDB" && out_has '"records":12,'
run 0 dump "$LDB"
normalize <"$T/out" >"$T/a"
normalize <"$DATA/lmdb.dump" >"$T/b"
check "re-dump equals mdb_dump output (bytevalue)" cmp -s "$T/a" "$T/b"
run 0 dump -p "$LDB"
normalize <"$T/out" >"$T/a"
normalize <"$DATA/lmdb-print.dump" >"$T/b"
check "re-dump equals mdb_dump -p output (print)" cmp -s "$T/a" "$T/b"
run 0 load -f "$DATA/lmdb-print.dump" "$T/lmdb-print.db"
"$MAPKV" dump "$T/lmdb-print.db" >"$T/a"
"$MAPKV" dump "$LDB" >"$T/b"
check "print and bytevalue fixtures load the same records" cmp -s "$T/a" "$T/b"

# ---- malformed dumps: exit 1 with the line number, never a crash -------------
bad() { # bad NAME EXPECTED-STDERR-PATTERN PRINTF-FORMAT
  printf "$3" >"$T/bad-$1.dump"
  run 3 load -f "$T/bad-$1.dump" "$T/bad-$1.db" && err_has "$2"
}
bad empty 'empty input' ''
bad noheaderend 'no HEADER=END' 'VERSION=3\nformat=bytevalue\n'
bad noversion 'no VERSION' 'format=bytevalue\nHEADER=END\n 61\n 62\nDATA=END\n'
bad version 'line 1: unsupported dump version' 'VERSION=9\nHEADER=END\nDATA=END\n'
bad format 'line 2: unknown format' 'VERSION=3\nformat=json\nHEADER=END\nDATA=END\n'
bad nonhex 'line 6, column 3: .g. is not a hex digit' 'VERSION=3\nHEADER=END\n 61\n 62\n 63\n 6g\nDATA=END\n'
bad odd 'line 4: odd number of hex digits' 'VERSION=3\nHEADER=END\n 61\n 626\nDATA=END\n'
bad novalue 'line 4: DATA=END after a key' 'VERSION=3\nHEADER=END\n 61\nDATA=END\n'
bad truncated 'line 4: the input ends without DATA=END' 'VERSION=3\nHEADER=END\n 61\n 62\n'
bad keyend 'line 3: the input ends after a key' 'VERSION=3\nHEADER=END\n 61\n'
bad nospace 'line 3: expected a key line' 'VERSION=3\nHEADER=END\n61\n62\nDATA=END\n'
bad emptyline 'line 4: empty line' 'VERSION=3\nHEADER=END\n 61\n\nDATA=END\n'
bad escape 'line 4, column 3: bad escape' 'VERSION=3\nformat=print\nHEADER=END\n a\\5\n b\nDATA=END\n'
bad crlf 'line 1: carriage return' 'VERSION=3\r\nHEADER=END\r\n'
bad second 'line 6: a second database' 'VERSION=3\nHEADER=END\n 61\n 62\nDATA=END\nVERSION=3\nHEADER=END\nDATA=END\n'
bad trailing 'line 4: unexpected data after DATA=END' 'VERSION=3\nHEADER=END\nDATA=END\ngarbage\n'
check "a bad header creates no store" test ! -e "$T/bad-version.db"
# The records before a bad line are loaded.
run 0 get "$T/bad-nonhex.db" a && out_is 'b'
run 1 get "$T/bad-nonhex.db" c
# Binary garbage (a store file) as a dump.
run 3 load -f "$KDB" "$T/bad-binary.db" && err_has 'line 1'
# A key over the format's limit (65535 bytes).
awk 'BEGIN { printf "VERSION=3\nHEADER=END\n "; for (i = 0; i < 65536; i++) printf "61"; printf "\n 62\nDATA=END\n" }' >"$T/bad-bigkey.dump"
run 3 load -f "$T/bad-bigkey.dump" "$T/bad-bigkey.db" && err_has 'line 3: key'
# Header keywords from other producers are ignored.
printf 'VERSION=3\nformat=bytevalue\ndatabase=sub\ntype=hash\nmapsize=1\nmaxreaders=1\ndb_pagesize=4096\nduplicates=0\nHEADER=END\n 61\n 62\nDATA=END\n' >"$T/kw.dump"
run 0 load -f "$T/kw.dump" "$T/kw.db" && err_empty
run 0 get "$T/kw.db" a && out_is 'b'

# ---- verify / recover on a damaged store -------------------------------------
# Three puts of 2-byte keys and 6-byte values: records of 30 + 2 + 6 = 38
# bytes from offset 4096 (FORMAT.md: 22-byte record header, key, value,
# 8-byte checksum). The second record is at 4134; its value at 4134 + 22 + 2.
VDB=$T/damaged.db
"$MAPKV" put "$VDB" k1 value1 && "$MAPKV" put "$VDB" k2 value2 &&
  "$MAPKV" put "$VDB" k3 value3 || fail "building $VDB"
run 0 verify "$VDB" && out_has ': ok' && out_has '3 records'
cp "$VDB" "$T/intact.db"
printf 'X' | dd of="$VDB" bs=1 seek=4158 count=1 conv=notrunc 2>/dev/null
run 1 verify "$VDB" && out_has 'offset 4134' && out_has 'DAMAGED' && out_has 'checksum'
run 3 get "$VDB" k2 && err_has 'offset 4134'
run 0 stat "$VDB" && out_has '^last close: *clean$' && out_has '^damage: *1 region' &&
  out_has '^damaged keys: *1$'
run 0 get "$VDB" k3 && out_is 'value3'
run 3 dump "$VDB" && err_has 'damaged'
run 3 verify "$T/missing.db"
run 3 recover "$T/missing.db"
# recover -o: the intact records into a new store, the damaged one untouched.
cp "$VDB" "$T/damaged-copy.db"
run 0 recover -o "$T/saved.db" "$VDB" && out_has 'recovered 2 records' && out_has '1 damaged region'
check "recover -o leaves DB unchanged" cmp -s "$VDB" "$T/damaged-copy.db"
run 0 verify "$T/saved.db"
run 0 get "$T/saved.db" k1 && out_is 'value1'
run 0 get "$T/saved.db" k3 && out_is 'value3'
run 1 get "$T/saved.db" k2
run 3 recover -o "$T/saved.db" "$VDB" && err_has 'exists'
# recover in place: the original is kept as DB.damaged-<time>.
run 0 recover "$VDB" && out_has 'recovered 2 records' && out_has 'damaged-'
check "the damaged original is kept" cmp -s "$VDB".damaged-* "$T/damaged-copy.db"
check "no temporary file is left" test -z "$(ls "$VDB".recovering.* 2>/dev/null)"
run 0 verify "$VDB"
run 0 get "$VDB" k3 && out_is 'value3'
run 0 recover -o "$T/saved2.db" "$T/intact.db" && out_has 'recovered 3 records' && out_has 'left behind: 0'
# recover in place of a store with no damage: nothing done, and said so.
cp "$T/intact.db" "$T/intact-copy.db"
run 0 recover "$T/intact.db" && out_has 'no damage found' && out_has 'unchanged'
check "recover of an intact store changes nothing" cmp -s "$T/intact.db" "$T/intact-copy.db"
check "recover of an intact store keeps no copy" test -z "$(ls "$T"/intact.db.* 2>/dev/null)"
run 0 recover --force "$T/intact.db" && out_has 'recovered 3 records' && out_has 'orig-'
check "recover --force keeps the original" cmp -s "$T"/intact.db.orig-* "$T/intact-copy.db"
rm -f "$T"/intact.db.orig-*

# ---- damage that is not a torn write: refused, never dropped -----------------
# A cleanly closed store cut short: verify says so (exit 1), writers are
# refused with nothing changed, recover salvages what is there.
TDB=$T/trunc.db
for i in 1 2 3 4 5 6 7 8 9; do "$MAPKV" put "$TDB" "key$i" "value-$i" || fail "building $TDB"; done
truncate -s 4250 "$TDB"
cp "$TDB" "$T/trunc-copy.db"
run 1 verify "$TDB" && out_has 'truncated' && out_has 'DAMAGED'
run 3 put "$TDB" key10 v && err_has 'truncated'
run 3 get "$TDB" key1 && err_has 'truncated'
check "a truncated store is not written to" cmp -s "$TDB" "$T/trunc-copy.db"
run 0 recover "$TDB" && out_has 'recovered 3 records' && out_has 'shorter than its header'
run 0 get "$TDB" key1 && out_is 'value-1'
run 0 put "$TDB" key10 v
# A header from another store over this store's log: every record fails
# its checksum. Refused, not zeroed.
HDB=$T/otherhdr.db
"$MAPKV" put "$T/other.db" a b || fail "building other.db"
for i in 1 2 3 4 5; do "$MAPKV" put "$HDB" "key$i" "value-$i" || fail "building $HDB"; done
dd if="$T/other.db" of="$HDB" bs=4096 count=1 conv=notrunc 2>/dev/null
cp "$HDB" "$T/otherhdr-copy.db"
run 1 verify "$HDB" && out_has 'DAMAGED'
run 3 put "$HDB" x y && err_has 'fail their checksums'
run 3 get "$HDB" key1
check "a store whose header is not its own is not written to" cmp -s "$HDB" "$T/otherhdr-copy.db"

# ---- files that are not stores, links, permissions, leftovers ---------------
mkfifo "$T/fifo" 2>/dev/null && {
  # A FIFO is refused at once (an open of it would wait for a writer).
  if command -v timeout >/dev/null 2>&1; then
    timeout 10 "$MAPKV" get "$T/fifo" k >"$T/out" 2>"$T/err"
    got=$?
    check "get on a FIFO does not hang (exit $got)" test "$got" -eq 3
    err_has 'not a regular file' && err_has 'FIFO'
    timeout 10 "$MAPKV" put "$T/fifo" k v >"$T/out" 2>"$T/err"
    check "put on a FIFO is refused" test "$?" -eq 3
  fi
}
run 3 get "$T" k && err_has 'not a regular file'
run 3 get /dev/null k && err_has 'not a regular file'
# A symbolic link names the store it points at: compact and recover replace
# the target in its own directory and the link stays a link.
mkdir -p "$T/real"
run 0 put "$T/real/store.db" k1 v1
ln -s real/store.db "$T/link.db"
run 0 put "$T/link.db" k2 v2
run 0 put "$T/link.db" k2 v3
run 0 compact "$T/link.db"
check "compact keeps the link a link" test -L "$T/link.db"
check "compact leaves nothing beside the link" test -z "$(ls "$T"/link.db.* 2>/dev/null)"
run 0 get "$T/real/store.db" k2 && out_is 'v3'
run 0 recover --force "$T/link.db"
check "recover keeps the link a link" test -L "$T/link.db"
run 0 get "$T/link.db" k1 && out_is 'v1'
check "recover's copy of the original is beside the target" test -n "$(ls "$T"/real/store.db.orig-* 2>/dev/null)"
# Compaction and recovery keep the mode (and, as root, the owner).
PDB=$T/perm.db
run 0 put "$PDB" k v
chmod 0600 "$PDB"
if [ "$(id -u)" = 0 ] && chown nobody "$PDB" 2>/dev/null; then owner=nobody; else owner=$(id -un); fi
run 0 compact "$PDB"
check "compact keeps mode 0600" test "$(stat -c %a "$PDB")" = 600
check "compact keeps the owner" test "$(stat -c %U "$PDB")" = "$owner"
run 0 recover --force "$PDB"
check "recover keeps mode 0600" test "$(stat -c %a "$PDB")" = 600
check "recover keeps the owner" test "$(stat -c %U "$PDB")" = "$owner"
# Leftovers of killed creates and recoveries (named for their process) are
# removed by the next writable open when that process is gone; those of a
# live process are not.
LDB=$T/left.db
run 0 put "$LDB" k v
sh -c 'exit 0' & dead=$!; wait $dead
for what in creating recovering copying; do
  : >"$LDB.$what.$dead.0123456789abcdef"
done
: >"$LDB.creating.$$.0123456789abcdef"
: >"$LDB.creating.$dead.notours"
run 0 put "$LDB" k2 v2
check "leftovers of a dead process are removed" test -z "$(ls "$LDB".*."$dead".0123456789abcdef 2>/dev/null)"
check "a live process's temporary file is kept" test -e "$LDB.creating.$$.0123456789abcdef"
check "files of other names are kept" test -e "$LDB.creating.$dead.notours"
rm -f "$LDB".creating.*
# kill -9 of a recover in progress leaves the store and, at most, a
# temporary file that the next writable open removes.
KDB2=$T/killed.db
awk 'BEGIN { printf "VERSION=3\nHEADER=END\n"; for (i = 0; i < 200000; i++) printf " %08x\n 76616c7565\n", i; printf "DATA=END\n" }' >"$T/killed.dump"
run 0 load -f "$T/killed.dump" "$KDB2"
cp "$KDB2" "$T/killed-copy.db"
"$MAPKV" recover --force "$KDB2" >/dev/null 2>&1 &
kpid=$!
i=0
while [ $i -lt 500 ] && [ -z "$(ls "$KDB2".recovering.* 2>/dev/null)" ]; do
  sleep 0.01
  i=$((i + 1))
done
kill -9 $kpid 2>/dev/null
wait $kpid 2>/dev/null
check "the recover was killed while it wrote" test -n "$(ls "$KDB2".recovering.* 2>/dev/null)"
check "a killed recover leaves the store readable" "$MAPKV" verify "$KDB2" >/dev/null
run 0 put "$KDB2" after kill
check "no temporary file of the killed recover is left" test -z "$(ls "$KDB2".recovering.* 2>/dev/null)"
run 0 get --hex "$KDB2" 00000007 && out_has '^76616c7565$'
check "the killed recover left the store as it was" "$MAPKV" verify "$KDB2" >/dev/null

# ---- limits that travel with the store --------------------------------------
# A store the tool creates takes keys and values up to the format's limits,
# and records them in its header, so that every later open (the tool's and
# an application's) enforces the same.
run 0 stat "$KDB" && out_has '^key limit: *65535$' && out_has '^value limit: *2147483647$'
run 0 stat --json "$KDB" && out_has '"max_key_size":65535' && out_has '"damaged_keys":0'

# ---- compact -------------------------------------------------------------------
CDB=$T/compact.db
awk 'BEGIN { printf "VERSION=3\nformat=print\nHEADER=END\n";
  v = ""; for (i = 0; i < 50; i++) v = v "0123456789";
  for (i = 0; i < 3000; i++) printf " samekey\n %s%d\n", v, i;
  printf " other\n x\nDATA=END\n" }' >"$T/overwrite.dump"
run 0 load -f "$T/overwrite.dump" "$CDB"
before=$(wc -c <"$CDB")
run 0 compact "$CDB" && out_has 'bytes before' && out_has "$before bytes before"
after=$(wc -c <"$CDB")
check "compact shrinks the file ($before -> $after)" test "$after" -lt "$before"
run 0 stat "$CDB" && out_has '^records: *2$' && out_has '^dead bytes: *0$'
run 0 get "$CDB" other && out_is 'x'
run 0 verify "$CDB"
run 3 compact "$T/missing.db"

# ---- copy ------------------------------------------------------------------------
YDB=$T/copy-src.db
run 0 load -f "$T/overwrite.dump" "$YDB"
chmod 0640 "$YDB"
run 0 copy "$YDB" "$T/copy1.db" && out_has "^copied $YDB to $T/copy1.db: 2 records" && err_empty
run 0 verify "$T/copy1.db"
run 0 get "$T/copy1.db" other && out_is 'x'
check "copy keeps the mode" test "$(stat -c %a "$T/copy1.db")" = 640
check "a copy keeps the dead records" test "$(wc -c <"$T/copy1.db")" -gt 1000000
run 0 stat "$T/copy1.db" && out_has '^generation: *0$' && out_has '^last close: *clean$'
# An existing DST: exit 3 and left alone, unless --force.
printf 'precious' >"$T/copy2.db"
run 3 copy "$YDB" "$T/copy2.db" && err_has 'exists' && err_has 'force' && out_empty
check "copy leaves an existing DST alone" test "$(cat "$T/copy2.db")" = precious
run 0 copy --force "$YDB" "$T/copy2.db"
run 0 get "$T/copy2.db" samekey && out_has '2999$'
# -c: only the live records, as compact writes them.
run 0 copy -c "$YDB" "$T/copy3.db" && out_has '2 records' && out_has 'dead bytes left out'
run 0 stat "$T/copy3.db" && out_has '^records: *2$' && out_has '^dead bytes: *0$' &&
  out_has '^generation: *1$'
check "copy -c drops the dead records" test "$(wc -c <"$T/copy3.db")" -lt 100000
run 0 copy --compact -f "$YDB" "$T/copy3.db"
run 0 verify "$T/copy3.db"
# Failures: exit 3, nothing made.
run 3 copy "$T/missing.db" "$T/copy4.db"
run 3 copy "$YDB" "$T/nodir/copy4.db" && err_has 'directory'
check "a failed copy makes no directory" test ! -e "$T/nodir"
run 3 copy "$T/damaged-copy.db" "$T/copy4.db" && err_has 'damaged'
run 3 copy -c "$T/damaged-copy.db" "$T/copy4.db" && err_has 'damaged'
run 3 copy --force "$YDB" "$YDB" && err_has 'the store itself'
run 0 verify "$YDB"
check "failed copies make nothing" test ! -e "$T/copy4.db"
check "copies leave no temporary file" test -z "$(ls "$T"/copy*.db.* 2>/dev/null)"

# A copy while another process writes the store: a load reading from a
# FIFO commits each 10000 records as one batch and holds the store open for
# writing until its input ends. It reads its input in blocks of 64 KiB, so
# it is sent 1000 records (76 KiB) more than the batches it is expected to
# have committed. Each copy holds the batches committed when it opened the
# store: the first records of the input, byte for byte.
HOT=$T/hot.db
awk 'BEGIN { for (i = 0; i < 50000; i++) printf " %08x\n %064x\n", i, i * 7 }' >"$T/hot.body"
rm -f "$T/hotfifo"
mkfifo "$T/hotfifo" || fail "mkfifo"
"$MAPKV" load -f "$T/hotfifo" "$HOT" >"$T/hot.out" 2>"$T/hot.err" &
hot=$!
exec 8>"$T/hotfifo"
printf 'VERSION=3\nHEADER=END\n' >&8
records_of() { # records_of DB: the records a read-only open of DB finds
  "$MAPKV" stat --json "$1" 2>/dev/null | sed -n 's/.*"records":\([0-9]*\),.*/\1/p'
}
part=1 from=1
while [ $part -le 4 ]; do
  sed -n "$from,$((2 * (10000 * part + 1000)))p" "$T/hot.body" >&8
  from=$((2 * (10000 * part + 1000) + 1))
  n=$((part * 10000))
  i=0
  while [ "$(records_of "$HOT")" != $n ] && [ $i -lt 400 ]; do
    sleep 0.025
    i=$((i + 1))
  done
  check "the load committed $n records" test "$(records_of "$HOT")" = $n
  check "the load holds the store open for writing" kill -0 $hot
  if [ $((part % 2)) = 1 ]; then flag=--force; else flag=-cf; fi
  run 0 copy $flag "$HOT" "$T/hot-copy.db"
  got=$(records_of "$T/hot-copy.db")
  check "copy $part holds $n records (it holds $got)" test "$got" = $n
  "$MAPKV" dump "$T/hot-copy.db" | body | sed '1d;$d' >"$T/hot.got"
  head -n $((2 * n)) "$T/hot.body" >"$T/hot.want"
  check "copy $part holds the first $n records of the input" cmp -s "$T/hot.got" "$T/hot.want"
  run 0 verify "$T/hot-copy.db"
  part=$((part + 1))
done
sed -n "$from,\$p" "$T/hot.body" >&8
printf 'DATA=END\n' >&8
exec 8>&-
wait $hot || fail "the load failed: $(cat "$T/hot.err")"
run 0 copy -f "$HOT" "$T/hot-copy.db"
check "the last copy holds every record" test "$(records_of "$T/hot-copy.db")" = 50000
check "copies while the store was written leave no temporary file" test -z "$(ls "$T"/hot-copy.db.* 2>/dev/null)"

# ---- an address-space limit (ulimit -v) -----------------------------------------
# The default reservation (64 GiB) is more than the limit allows: a smaller
# one is taken. Under a limit that leaves no room for any, the create fails
# and leaves no file. (A sanitizer's build cannot start under a limit; a
# shell without ulimit -v skips this.)
# shellcheck disable=SC3045
if (ulimit -v 2000000 && "$MAPKV" --version) >/dev/null 2>&1; then
  (ulimit -v 2000000 && "$MAPKV" put "$T/ulimit.db" k v) >"$T/out" 2>"$T/err"
  check "a put into a new store under ulimit -v 2000000 works ($(cat "$T/err"))" test $? = 0
  (ulimit -v 2000000 && "$MAPKV" put "$T/ulimit.db" k2 v2) >"$T/out" 2>"$T/err"
  check "a put into the store under ulimit -v 2000000 works ($(cat "$T/err"))" test $? = 0
  run 0 get "$T/ulimit.db" k2 && out_is 'v2'
  lim=8192 found=0 started=0
  while [ $lim -ge 1024 ] && [ $found = 0 ]; do
    if (ulimit -v $lim && "$MAPKV" --version) >/dev/null 2>&1; then
      started=1
      (ulimit -v $lim && "$MAPKV" put "$T/nomap.db" k v) >"$T/out" 2>"$T/err"
      got=$?
      if [ $got != 0 ]; then
        found=1
        check "a create that cannot map the store exits 3 (got $got)" test $got = 3
        err_has 'address space'
        check "a create that failed leaves no file" test -z "$(ls "$T"/nomap.db* 2>/dev/null)"
      fi
      rm -f "$T/nomap.db"
    fi
    lim=$((lim - 256))
  done
  if [ $started = 1 ]; then
    check "a limit under which mapkv starts but no store can be mapped" test $found = 1
  else
    echo "skip: a create under a few MiB of address space (mapkv does not start under 8 MiB: valgrind?)"
  fi
else
  echo "skip: ulimit -v (mapkv does not start under an address-space limit: a sanitizer build?)"
fi

# ---- writers that wait (--wait) ---------------------------------------------------
# A load reading from a FIFO holds WDB open for writing until its input
# ends. It reads its input in blocks of 64 KiB: the holder is sent more than
# that before it is expected to hold the lock.
WDB=$T/wait.db
run 0 put "$WDB" k0 v0
awk 'BEGIN { printf "VERSION=3\nHEADER=END\n 686f6c646572\n 7761732068657265\n";
  for (i = 0; i < 3000; i++) printf " %08x\n %064x\n", i, i }' >"$T/hold.dump"
hold() { # hold [DB]: start the holder and wait until DB (WDB) is locked
  HDB=${1:-$WDB}
  rm -f "$T/fifo"
  mkfifo "$T/fifo" || fail "mkfifo"
  "$MAPKV" load -f "$T/fifo" "$HDB" >"$T/hold.out" 2>"$T/hold.err" &
  holder=$!
  exec 9>"$T/fifo"
  cat "$T/hold.dump" >&9
  i=0
  while flock -n -x "$HDB" true 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 200 ] || { fail "the holder never locked $HDB"; break; }
    sleep 0.05
  done
}
release() { # release: end the holder's input; it commits and closes
  printf 'DATA=END\n' >&9
  exec 9>&-
  wait "$holder" || fail "the holder failed: $(cat "$T/hold.err")"
}
hold
for c in "put $WDB k1 v1" "del $WDB k0" "load -f $T/kw.dump $WDB" "compact $WDB" \
  "recover $WDB"; do
  # shellcheck disable=SC2086
  run 3 $c && err_has "open for writing by another process" && err_has "wait"
done
run 3 put --wait 0.3 "$WDB" k1 v1 && err_has "waited 300 ms"
run 3 recover --wait 0.2 "$WDB" && err_has "another process"
# Readers never wait.
run 0 get "$WDB" k0 && out_is 'v0'
# Every writing command waits for the holder to close, then does its work.
# (Without the holder's end of the FIFO, fd 9, or the holder never ends.)
"$MAPKV" put --wait 30 "$WDB" k1 v1 2>"$T/w-put.err" 9>&- & w_put=$!
"$MAPKV" del -w 30 "$WDB" k0 2>"$T/w-del.err" 9>&- & w_del=$!
"$MAPKV" load --wait 30 -f "$T/kw.dump" "$WDB" 2>"$T/w-load.err" 9>&- & w_load=$!
"$MAPKV" compact --wait 30 "$WDB" >/dev/null 2>"$T/w-compact.err" 9>&- &
w_compact=$!
"$MAPKV" recover --wait 30 "$WDB" >/dev/null 2>"$T/w-recover.err" 9>&- &
w_recover=$!
sleep 0.5
for p in $w_put $w_del $w_load $w_compact $w_recover; do
  check "a writer waits while the store is held" kill -0 "$p"
done
release
for w in put del load compact recover; do
  eval "p=\$w_$w"
  wait "$p"
  rc=$?
  check "$w --wait succeeds once the holder closed (exit $rc: $(cat "$T/w-$w.err"))" test "$rc" -eq 0
done
run 0 get "$WDB" holder && out_is 'was here'
run 0 get "$WDB" k1 && out_is 'v1'
run 1 get "$WDB" k0
run 0 get "$WDB" a && out_is 'b'
run 0 verify "$WDB"
rm -f "$WDB".damaged-*

# ---- stat in words: a clean close, a writer at work, a crash ------------------
XDB=$T/crash.db
"$MAPKV" put "$XDB" k1 value1 && "$MAPKV" put "$XDB" k2 value2 &&
  "$MAPKV" put "$XDB" k3 value3 || fail "building $XDB"
run 0 stat "$XDB" && out_has '^last close: *clean$' &&
  out_has '^batches indexed: *3$' && out_has '^recovery: *not needed'
check "stat after a clean close does not speak of recovered batches" \
  test "$(grep -c -i -e recovered -e dropped -e damage "$T/out")" = 0
hold "$XDB"
run 0 stat "$XDB" &&
  out_has "^last close: *still open: process $holder has the store open for writing"
run 0 stat --json "$XDB" && out_has "\"writer_pid\":$holder," && out_has '"clean_open":false'
kill -9 "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
exec 9>&-
run 0 stat "$XDB" && out_has '^last close: *not clean: the last writer did not close' &&
  out_has '^batches recovered: *3$' && out_has '^recovery: *every batch intact' &&
  out_has '^dropped tail bytes: *0$' && out_has '^damaged regions: *0$'
run 0 stat --json "$XDB" && out_has '"writer_pid":0,' && out_has '"clean_open":false' &&
  out_has '"recovered_batches":3,'
# Damage in the middle of a store left by a crash (the second record's value).
printf 'X' | dd of="$XDB" bs=1 seek=4146 count=1 conv=notrunc 2>/dev/null
run 0 stat "$XDB" && out_has '^last close: *not clean' && out_has '^batches recovered: *2$' &&
  out_has '^recovery: *1 damaged region(s) of [0-9]* bytes skipped, the first at offset 4134' &&
  out_has '^damaged regions: *1$' && out_has '^first damage offset: *4134$'
run 0 stat --json "$XDB" && out_has '"damaged_regions":1,' && out_has '"first_damage_offset":4134,'

# Two shells racing 300 puts each with --wait lose nothing
# (MAPKV_CLI_RACE_PUTS=N for another number).
RDB=$T/race.db
puts=${MAPKV_CLI_RACE_PUTS:-300}
racer() { # racer NAME: $puts puts; the failures go to $T/race-NAME.fails
  n=0 bad=0
  while [ $n -lt "$puts" ]; do
    "$MAPKV" put --wait 10 "$RDB" "$1:$n" "value of $1 $n" 2>>"$T/race-$1.err" ||
      bad=$((bad + 1))
    n=$((n + 1))
  done
  echo $bad >"$T/race-$1.fails"
}
racer a &
race_a=$!
racer b &
race_b=$!
wait $race_a
wait $race_b
check "racing writers: no put of shell a failed ($(cat "$T/race-a.err"))" test "$(cat "$T/race-a.fails")" = 0
check "racing writers: no put of shell b failed ($(cat "$T/race-b.err"))" test "$(cat "$T/race-b.fails")" = 0
run 0 stat --json "$RDB" && out_has "\"records\":$((2 * puts)),"
"$MAPKV" dump -p "$RDB" | body | sed -n 's/^ //p' | paste - - | sort >"$T/race.got"
awk -v n="$puts" 'BEGIN { for (i = 0; i < n; i++) { printf "a:%d\tvalue of a %d\n", i, i;
  printf "b:%d\tvalue of b %d\n", i, i } }' | sort >"$T/race.want"
check "racing writers: all $((2 * puts)) records with their values" cmp -s "$T/race.got" "$T/race.want"
run 0 verify "$RDB"

# ---- a larger store; a reader that goes away: dump exits 3 quietly ------------
PDB=$T/pipe.db
# 20000 records of 64-byte values: more than mdb_load's default 1 MiB map.
awk 'BEGIN { printf "VERSION=3\nHEADER=END\n";
  v = "00112233445566778899aabbccddeeff";
  for (i = 0; i < 20000; i++) printf " %08x\n %s%s%s%s\n", i, v, v, v, v;
  printf "DATA=END\n" }' >"$T/pipe.dump"
run 0 load -f "$T/pipe.dump" "$PDB"
run 0 dump "$PDB"
body <"$T/out" >"$T/a"
body <"$T/pipe.dump" >"$T/b"
check "20000-record round trip" cmp -s "$T/a" "$T/b"
rc=$( { "$MAPKV" dump "$PDB" 2>"$T/pipe.err"; echo $? >"$T/pipe.rc"; } | head -n 1 >/dev/null; cat "$T/pipe.rc")
check "dump into a closed pipe exits 3 (got $rc)" test "$rc" = 3
check "dump into a closed pipe is quiet" test ! -s "$T/pipe.err"

# ---- live round trips with LMDB's tools -----------------------------------------
if command -v mdb_load >/dev/null 2>&1 && command -v mdb_dump >/dev/null 2>&1; then
  mkdir "$T/env1" "$T/env2"
  if mdb_load -f "$DATA/lmdb.dump" "$T/env1" 2>"$T/mdb.err"; then
    # mdb_dump | mapkv load
    mdb_dump "$T/env1" >"$T/live.dump"
    run 0 load -f "$T/live.dump" "$T/live.db"
    run 0 dump "$T/live.db"
    normalize <"$T/out" >"$T/a"
    normalize <"$T/live.dump" >"$T/b"
    check "mdb_dump | mapkv load | mapkv dump is byte-exact" cmp -s "$T/a" "$T/b"
    # mapkv dump | mdb_load (mdb_load reads stdin; -f - is no stdin there)
    if "$MAPKV" dump "$T/live.db" | mdb_load "$T/env2" 2>"$T/mdb.err"; then
      pass
      mdb_dump "$T/env2" | normalize >"$T/a"
      check "mapkv dump | mdb_load keeps every byte" cmp -s "$T/a" "$T/b"
    else
      fail "mapkv dump | mdb_load: $(cat "$T/mdb.err")"
    fi
    # The print format through LMDB's tools: LMDB before 0.9.25 mishandles
    # backslashes in it (ITS#9068) and the data has backslashes.
    lv=$(mdb_dump -V 2>/dev/null | sed -n 's/^LMDB \([0-9.]*\).*/\1/p')
    case "$lv" in
    0.9.[0-9] | 0.9.1[0-9] | 0.9.2[0-4] | "")
      echo "skip: print-format round trips with mdb_load/mdb_dump (LMDB '$lv' predates the backslash fix ITS#9068 of 0.9.25)"
      ;;
    *)
      mkdir "$T/env3"
      mdb_dump -p "$T/env1" >"$T/live-print.dump"
      run 0 load -f "$T/live-print.dump" "$T/live-print.db"
      "$MAPKV" dump "$T/live-print.db" | normalize >"$T/a"
      check "mdb_dump -p | mapkv load" cmp -s "$T/a" "$T/b"
      if "$MAPKV" dump -p "$T/live.db" | mdb_load "$T/env3" 2>"$T/mdb.err"; then
        mdb_dump "$T/env3" | normalize >"$T/a"
        check "mapkv dump -p | mdb_load keeps every byte" cmp -s "$T/a" "$T/b"
      else
        fail "mapkv dump -p | mdb_load: $(cat "$T/mdb.err")"
      fi
      ;;
    esac
    # A larger store: mdb_load needs the mapsize hint of mapkv's dump.
    mkdir "$T/env4"
    if "$MAPKV" dump "$PDB" | mdb_load "$T/env4" 2>"$T/mdb.err"; then
      # The keys are 4-byte big-endian counters: LMDB's key order is the
      # order they were loaded in.
      mdb_dump "$T/env4" | body >"$T/a"
      body <"$T/pipe.dump" >"$T/b"
      check "mapkv dump | mdb_load, 20000 records" cmp -s "$T/a" "$T/b"
    else
      fail "mapkv dump | mdb_load, 20000 records: $(cat "$T/mdb.err")"
    fi
  else
    fail "mdb_load of $DATA/lmdb.dump: $(cat "$T/mdb.err")"
  fi
else
  echo "skip: live round trips with mdb_load/mdb_dump (lmdb-utils not installed)"
fi

echo "mapkv CLI tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
