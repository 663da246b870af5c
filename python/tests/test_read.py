"""Store.read(): zero-copy memoryviews of mapped bytes, valid inside their
block; the store pinned while any of them (or anything made from them) is
alive."""
import gc
import os
import struct
import tracemalloc

import pytest

import mapkv
from mkvtest import fill, key, value


def test_read_view_returns_readonly_memoryviews(db):
    fill(db, 10)
    with db.read() as r:
        assert isinstance(r, mapkv.ReadView)
        mv = r[key(3)]
        assert type(mv) is memoryview
        assert mv.readonly
        assert mv.format == "B" and mv.itemsize == 1 and mv.ndim == 1
        assert mv.nbytes == len(value(3))
        assert mv == value(3)
        assert bytes(mv) == value(3)
        assert mv[0] == value(3)[0]
        assert mv.obj is r
        with pytest.raises(TypeError):
            mv[0] = 1
        assert r.get(key(4)) == value(4)
        assert r.get(b"missing") is None
        assert r.get(b"missing", 7) == 7
        assert key(5) in r and b"missing" not in r
        with pytest.raises(KeyError) as e:
            r[b"missing"]
        assert e.value.args == (b"missing",)
        assert isinstance(e.value, mapkv.NotFoundError)
        assert r.exports == 2
        assert not r.closed
    assert r.closed
    assert r.exports == 0


def test_views_are_released_at_the_end_of_the_block(db):
    db[b"k"] = b"value"
    with db.read() as r:
        mv = r[b"k"]
        kept = r.get(b"k")
    for view in (mv, kept):
        with pytest.raises(ValueError, match="released"):
            bytes(view)
        with pytest.raises(ValueError):
            view[0]
        with pytest.raises(ValueError):
            len(view)
    with pytest.raises(ValueError, match="ended"):
        r[b"k"]
    with pytest.raises(ValueError, match="ended"):
        r.get(b"k")
    with pytest.raises(ValueError, match="ended"):
        b"k" in r
    with pytest.raises(ValueError, match="ended"):
        with r:
            pass
    db.compact()  # nothing pins the store any more
    db.close()


def test_slice_outlives_the_block_and_pins_the_store(path):
    db = mapkv.open(path, sync="none")
    db[b"k"] = b"0123456789"
    with db.read() as r:
        mv = r[b"k"]
        part = mv[2:6]
        whole = memoryview(mv)
    with pytest.raises(ValueError):
        mv[0]
    # The slice and the memoryview of a memoryview share the export: they
    # stay valid, and the bytes stay mapped while they live.
    assert bytes(part) == b"2345"
    assert bytes(whole) == b"0123456789"
    assert r.exports == 1
    with pytest.raises(BufferError, match="compact"):
        db.compact()
    with pytest.raises(BufferError, match="close"):
        db.close()
    assert not db.closed
    db[b"k"] = b"overwritten"  # records are never rewritten in place
    assert bytes(part) == b"2345"
    del part
    assert r.exports == 1
    del whole
    assert r.exports == 0
    db.compact()
    db.close()


def test_view_exported_again_keeps_the_store_pinned(db):
    db[b"k"] = b"abcd"
    with db.read() as r:
        mv = r[b"k"]
        it = struct.iter_unpack("B", mv)  # holds a buffer of mv itself
        assert next(it) == (ord("a"),)
    # mv could not be released (it has an export of its own): it stays
    # valid, and so does the mapping.
    assert bytes(mv) == b"abcd"
    assert next(it) == (ord("b"),)
    with pytest.raises(BufferError):
        db.compact()
    del it
    del mv
    gc.collect()
    assert r.exports == 0
    db.compact()


def test_open_view_pins_the_store(path):
    db = mapkv.open(path, sync="none")
    db[b"k"] = b"v"
    r = db.read()
    with pytest.raises(BufferError):
        db.compact()
    with pytest.raises(BufferError):
        db.close()
    assert r[b"k"] == b"v"
    r.close()
    r.close()  # idempotent
    db.compact()
    db.close()


def test_dropped_views_release_their_pin(db):
    db[b"k"] = b"v"
    r = db.read()
    mv = r[b"k"]
    del r, mv  # a cycle: the view keeps its memoryviews, they refer to it
    gc.collect()
    db.compact()
    r = db.read()
    r[b"k"]
    del r
    gc.collect()
    db.compact()


def test_read_view_refuses_other_buffer_requests(db):
    db[b"k"] = b"v"
    with db.read() as r:
        with pytest.raises(BufferError):
            memoryview(r)
        with pytest.raises(BufferError):
            bytes(r)
        with pytest.raises(TypeError):
            r[b"k"] = b"w"
        with pytest.raises(TypeError):
            r["k"]
        with pytest.raises(TypeError):
            r.get()
        assert r.exports == 0


def test_reads_see_commits_made_during_the_view(db):
    db[b"k"] = b"old"
    with db.read() as r:
        old = r[b"k"]
        db[b"k"] = b"new"
        db[b"other"] = b"x"
        assert bytes(r[b"k"]) == b"new"
        assert bytes(old) == b"old"
        assert b"other" in r
        del db[b"k"]
        assert r.get(b"k") is None


def test_empty_value_view(db):
    db[b"e"] = b""
    with db.read() as r:
        mv = r[b"e"]
        assert len(mv) == 0 and bytes(mv) == b""


def test_many_views_in_one_block(db):
    fill(db, 2000)
    with db.read() as r:
        kept = [r[key(i)] for i in range(0, 2000, 10)]
        for i in range(2000):
            assert r[key(i)] == value(i)
        # Views nobody holds are dropped as the view's list grows: the
        # count stays near the live ones, not the 2200 handed out.
        assert len(kept) <= r.exports < 1000
        assert all(bytes(v) == value(i * 10) for i, v in enumerate(kept))
    assert r.exports == 0
    with pytest.raises(ValueError):
        bytes(kept[0])


def test_zero_copy_of_a_large_value(db):
    big = os.urandom(16 << 20)
    db[b"big"] = big
    with db.read() as r:
        r[b"big"]  # warm up
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            mv = r[b"big"]
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert mv.nbytes == len(big)
        assert grown < 4096, grown  # the memoryview, not the 16 MiB
        assert mv[-100:] == big[-100:]
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            copy = db[b"big"]
            grown_copy = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert copy == big
        assert grown_copy >= len(big)


def test_read_view_on_readonly_store(path):
    with mapkv.open(path) as db:
        db[b"k"] = b"v"
    with mapkv.open(path, readonly=True) as ro:
        with ro.read() as r:
            assert bytes(r[b"k"]) == b"v"


def test_repr(db):
    with db.read() as r:
        assert "open" in repr(r)
    assert "ended" in repr(r)
