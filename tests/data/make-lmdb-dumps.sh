#!/bin/sh
# Regenerates lmdb.dump and lmdb-print.dump: builds an LMDB environment with
# mdb_load from the records below (binary keys, an empty value, backslashes,
# newlines, every byte value, a value larger than an LMDB page), then dumps
# it with mdb_dump (bytevalue) and mdb_dump -p (print).
#
# mdb_dump before LMDB 0.9.25 writes a backslash unescaped with -p (fixed by
# ITS#9068); with such an mdb_dump the key and value lines of the print
# variant are re-encoded from the bytevalue dump the way a fixed mdb_dump
# writes them (printable ASCII as is, "\" as "\\", other bytes as "\xx"),
# keeping mdb_dump's own header lines.
#
# Needs mdb_load, mdb_dump (Debian: lmdb-utils) and python3.
# Usage: sh tests/data/make-lmdb-dumps.sh   (from anywhere)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 - "$tmp/source.dump" <<'PY'
import sys
recs = [
    (b"alpha", b"first value"),
    (b"\x00", b"\xff\x00\xfe"),
    (b"\x00\x01\xff", bytes(range(256))),
    (b"back\\slash", b"value\\with\\\\two"),
    (b"new\nline", b"line1\nline2\n"),
    (b"empty", b""),
    (b"space key", b" leading and trailing "),
    (b"\\", b"\\00"),
    (b"tab\tkey", b"\x7f\x80"),
    (b"\xff\xff", b"end"),
    ("utf8-ключ".encode(), "значение".encode()),
    (b"big", bytes((i * 7 + 3) % 256 for i in range(5000))),
]
with open(sys.argv[1], "w") as f:
    f.write("VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n")
    for k, v in recs:
        f.write(" " + k.hex() + "\n " + v.hex() + "\n")
    f.write("DATA=END\n")
PY

mkdir "$tmp/env"
mdb_load -f "$tmp/source.dump" "$tmp/env"
mdb_dump "$tmp/env" >"$here/lmdb.dump"
mdb_dump -p "$tmp/env" >"$here/lmdb-print.dump"

version=$(mdb_dump -V | sed -n 's/^LMDB \([0-9.]*\).*/\1/p')
case "$version" in
0.9.1[0-9] | 0.9.2[0-4] | 0.9.[0-9])
  echo "mdb_dump $version: re-encoding the print variant (ITS#9068)" >&2
  python3 - "$here/lmdb.dump" "$here/lmdb-print.dump" <<'PY'
import sys
hexdump, printdump = sys.argv[1], sys.argv[2]
header = []
for line in open(printdump, "rb").read().split(b"\n"):
    header.append(line)
    if line == b"HEADER=END":
        break
def enc(b):
    out = []
    for c in b:
        if c == 0x5C:
            out.append("\\\\")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\%02x" % c)
    return "".join(out)
items = []
lines = open(hexdump).read().split("\n")
data = lines[lines.index("HEADER=END") + 1:lines.index("DATA=END")]
with open(printdump, "wb") as f:
    f.write(b"\n".join(header) + b"\n")
    for l in data:
        f.write((" " + enc(bytes.fromhex(l[1:])) + "\n").encode())
    f.write(b"DATA=END\n")
PY
  ;;
esac
echo "wrote $here/lmdb.dump and $here/lmdb-print.dump" >&2
