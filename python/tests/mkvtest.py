"""Helpers shared by the mapkv Python tests."""
import os


def fill(store, n, prefix=b"k", gen=0):
    """Puts n records key(i) -> value(i, gen) in one batch."""
    with store.batch() as b:
        for i in range(n):
            b[key(i, prefix)] = value(i, gen)


def key(i, prefix=b"k"):
    return prefix + b"%08d" % i


def value(i, gen=0, size=100):
    head = b"%08d:%04d:" % (i, gen)
    return (head * (size // len(head) + 1))[:size]


# ---- the file underneath (FORMAT.md) ------------------------------------

PAGE = 4096  # records start after the header page
REC_HEAD = 22  # marker, type, flags, key and value lengths, seq, prev
REC_OVERHEAD = 30  # the header and the checksum after the value


def records(path):
    """[(offset, key, value length)] of the records of the store file at
    path, in file order, as far as they decode (checksums unchecked)."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], PAGE
    while off + REC_OVERHEAD <= len(data) and data[off:off + 2] == b"\xb7\x6b":
        klen = int.from_bytes(data[off + 4:off + 6], "little")
        vlen = int.from_bytes(data[off + 6:off + 10], "little")
        out.append((off, data[off + REC_HEAD:off + REC_HEAD + klen], vlen))
        off += REC_OVERHEAD + klen + vlen
    return out


def record_of(path, k):
    """(offset, key, value length) of the newest record of key k."""
    return [r for r in records(path) if r[1] == k][-1]


def flip(path, offset):
    """Flips the bits of one byte of the file at path."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x55]))


def flip_value(path, k):
    """Flips a byte of the value of the newest record of key k."""
    off, kb, vlen = record_of(path, k)
    assert vlen > 0
    flip(path, off + REC_HEAD + len(kb) + vlen // 2)


def crash_after(path, write):
    """Opens the store at path in a child process (sync='none'), calls
    write(store) there, and ends the child without closing the store, as a
    crash does: the next open is not clean."""
    import mapkv

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            db = mapkv.open(path, sync="none")  # never closed
            write(db)
            code = 0
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
