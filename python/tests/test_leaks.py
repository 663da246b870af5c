"""No leaks over long loops: reference counts of arguments and results,
Python memory (tracemalloc, allocated blocks) and C heap (mallinfo2)."""
import ctypes
import gc
import os
import sys
import tracemalloc

import pytest

import mapkv
from mkvtest import fill, key, value

ROUNDS = 20000


def c_heap_bytes():
    """Bytes in use in the C heap (glibc), or None elsewhere."""
    class Mallinfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost")]
    try:
        libc = ctypes.CDLL(None)
        f = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    f.restype = Mallinfo2
    info = f()
    return info.uordblks + info.hblkhd


def workload(db, k, v, missing, rounds):
    for i in range(rounds):
        db[k] = v
        assert db[k] == v
        assert db.get(k) == v
        assert db.get(missing, None) is None
        assert k in db and missing not in db
        try:
            db[missing]
        except KeyError:
            pass
        try:
            del db[missing]
        except KeyError:
            pass
        try:
            db["str"]
        except TypeError:
            pass
        db.get_many([k, missing])
        with db.read() as r:
            mv = r[k]
            part = mv[1:3]
            assert part == v[1:3]
            r.get(missing)
        del part, mv
        with db.batch() as b:
            b[k] = v
            del b[missing]
        b = db.batch()
        b[missing] = v
        b.abort()
        try:
            with db.batch() as b:
                b[missing] = v
                raise RuntimeError
        except RuntimeError:
            pass
        if i % 50 == 0:
            for _ in db.items(prefix=b"pre"):
                pass
            db.update({missing: v})
            del db[missing]
            db.stat()


def test_reference_counts(db):
    k = b"pre:" + b"key-object" * 2
    v = bytearray(b"value-object" * 10)
    missing = b"pre:missing-key"
    fill(db, 100, prefix=b"pre")
    workload(db, k, v, missing, 100)  # warm up
    before = [sys.getrefcount(o) for o in (k, v, missing, db)]
    workload(db, k, v, missing, ROUNDS // 10)
    gc.collect()
    after = [sys.getrefcount(o) for o in (k, v, missing, db)]
    assert after == before


def test_results_are_not_held(db):
    db[b"key-1"] = b"v" * 50
    got = db[b"key-1"]
    assert sys.getrefcount(got) == 2  # `got` and getrefcount's argument
    with db.read() as r:
        mv = r[b"key-1"]
        # `mv`, the argument, and the view's list of handed-out memoryviews
        assert sys.getrefcount(mv) == 3
    assert sys.getrefcount(mv) == 2
    first = list(db.items())[0]
    assert sys.getrefcount(first) == 2
    k0 = first[0]
    assert sys.getrefcount(k0) == 3  # the tuple, k0 and the argument


def test_no_memory_growth_over_a_long_loop(path):
    db = mapkv.open(path, sync="none")
    k, v, missing = b"pre:k", b"v" * 100, b"pre:missing"
    fill(db, 100, prefix=b"pre")
    workload(db, k, v, missing, 2000)  # warm up: caches, free lists
    tracemalloc.start()
    try:
        # Two equal windows: a one-off allocation (a cache of the
        # interpreter growing once) shows in the first only, a leak in both.
        marks = []
        for _ in range(2):
            workload(db, k, v, missing, ROUNDS // 2)
            gc.collect()
            marks.append((tracemalloc.get_traced_memory()[0],
                          sys.getallocatedblocks(), c_heap_bytes()))
    finally:
        tracemalloc.stop()
    (mem1, blocks1, heap1), (mem2, blocks2, heap2) = marks
    assert mem2 - mem1 < 16 * 1024, (mem1, mem2)
    assert blocks2 - blocks1 < 100, (blocks1, blocks2)
    if heap1 is not None:
        # The store's own memory (index, scratch) may settle, not climb
        # with the number of operations.
        assert heap2 - heap1 < 64 * 1024, (heap1, heap2)
    db.close()


def test_no_leak_of_open_and_close(tmp_path):
    p = str(tmp_path / "s.mkv")
    with mapkv.open(p) as db:
        fill(db, 10)
    for _ in range(200):  # warm up
        with mapkv.open(p, readonly=True) as db:
            db[key(1)]
    gc.collect()
    heap0 = c_heap_bytes()
    blocks0 = sys.getallocatedblocks()
    for _ in range(2000):
        with mapkv.open(p, readonly=True) as db:
            assert db[key(1)] == value(1)
            try:
                mapkv.open(str(tmp_path / "missing"), create=False)
            except FileNotFoundError:
                pass
    gc.collect()
    assert sys.getallocatedblocks() - blocks0 < 500
    if heap0 is not None:
        assert c_heap_bytes() - heap0 < 256 * 1024


@pytest.mark.parametrize("dropped", ["view", "store_error"])
def test_exceptions_do_not_leak(db, dropped):
    db[b"k"] = b"v"
    gc.collect()
    blocks0 = sys.getallocatedblocks()
    for _ in range(ROUNDS):
        if dropped == "view":
            r = db.read()
            try:
                r[b"missing"]
            except KeyError:
                pass
            r.close()
            try:
                r[b"k"]
            except ValueError:
                pass
        else:
            try:
                db[b"x" * 5000] = b""
            except mapkv.KeySizeError:
                pass
    gc.collect()
    assert sys.getallocatedblocks() - blocks0 < 500


def test_no_leak_of_recover_and_open_options(tmp_path):
    p = str(tmp_path / "s.mkv")
    out = str(tmp_path / "out.mkv")
    with mapkv.open(p) as db:
        fill(db, 10)

    def rounds(n):
        for _ in range(n):
            info = mapkv.recover(p)  # intact: left alone
            assert info["found"]["records"] == 10
            assert mapkv.recover(p, out)["saved"] == 10
            os.remove(out)
            try:
                mapkv.recover(p, p)
            except FileExistsError:
                pass
            with mapkv.open(p, lock_timeout=0.5, max_key_size=100,
                            reserve=8 << 20, salvage=True) as db:
                assert db.stat()["max_key_size"] == 100
            for bad in ({"lock_timeout": -1}, {"reserve": -1},
                        {"max_key_size": "x"}):
                try:
                    mapkv.open(p, **bad)
                except (TypeError, ValueError):
                    pass

    rounds(20)  # warm up
    gc.collect()
    heap0 = c_heap_bytes()
    blocks0 = sys.getallocatedblocks()
    rounds(200)
    gc.collect()
    assert sys.getallocatedblocks() - blocks0 < 500
    if heap0 is not None:
        assert c_heap_bytes() - heap0 < 256 * 1024
