"""mapkv.open() and the Store: the mapping protocol, iteration, maintenance,
bytes-like arguments, use after close."""
import array
import mmap
import os
import pathlib
import threading
import time

import pytest

import mapkv
from mkvtest import fill, key, value


# ---- open ---------------------------------------------------------------

def test_open_creates_and_reopens(path):
    with mapkv.open(path) as db:
        assert isinstance(db, mapkv.Store)
        assert not db.closed and not db.readonly
        assert db.path == path
        assert db.sync_mode == "commit"
        db[b"k"] = b"v"
    assert db.closed
    assert os.path.getsize(path) >= 4096
    with mapkv.open(path) as db:
        assert db[b"k"] == b"v"


def test_open_accepts_path_like_and_bytes(tmp_path):
    p = tmp_path / "p.mkv"
    with mapkv.open(p) as db:
        assert db.path == str(p)
        db[b"a"] = b"1"
    with mapkv.open(os.fsencode(str(p))) as db:
        assert db.path == os.fsencode(str(p))
        assert db[b"a"] == b"1"
    with mapkv.open(pathlib.PurePath(str(p))) as db:
        assert db[b"a"] == b"1"


def test_open_without_create_needs_the_file(path):
    with pytest.raises(FileNotFoundError) as e:
        mapkv.open(path, create=False)
    assert e.value.errno == 2
    assert path in str(e.value)
    assert not os.path.exists(path)


def test_readonly_open(path):
    with pytest.raises(FileNotFoundError):
        mapkv.open(path, readonly=True)
    with mapkv.open(path) as db:
        db[b"k"] = b"v"
    with mapkv.open(path, readonly=True) as ro:
        assert ro.readonly
        assert ro[b"k"] == b"v"
        with pytest.raises(mapkv.ReadOnlyError) as e:
            ro[b"k"] = b"w"
        assert e.value.code == mapkv.ReadOnlyError.code
        with pytest.raises(mapkv.ReadOnlyError):
            del ro[b"k"]
        with pytest.raises(mapkv.ReadOnlyError):
            ro.batch()
        with pytest.raises(mapkv.ReadOnlyError):
            ro.compact()
        with pytest.raises(mapkv.ReadOnlyError):
            ro.sync()
        with pytest.raises(mapkv.ReadOnlyError):
            ro.update({b"a": b"b"})
        assert ro[b"k"] == b"v"


def test_sync_modes(tmp_path):
    for mode in ("commit", "none", "explicit"):
        p = str(tmp_path / (mode + ".mkv"))
        with mapkv.open(p, sync=mode) as db:
            assert db.sync_mode == mode
            db[b"k"] = mode.encode()
            db.sync()
        with mapkv.open(p, readonly=True) as db:
            assert db[b"k"] == mode.encode()


def test_open_argument_errors(path):
    with pytest.raises(ValueError, match="sync must be"):
        mapkv.open(path, sync="always")
    with pytest.raises(TypeError):
        mapkv.open(path, "commit")  # options are keyword-only
    with pytest.raises(TypeError):
        mapkv.open(path, expected_keys="10")
    with pytest.raises(ValueError):
        mapkv.open(path, expected_keys=-1)
    with pytest.raises(mapkv.InvalidArgumentError) as e:
        mapkv.open(path, expected_keys=1 << 60)
    assert "expected_keys" in str(e.value)
    assert isinstance(e.value, ValueError)
    with pytest.raises(ValueError):
        mapkv.open(path + "\0x")
    with pytest.raises(TypeError):
        mapkv.open(12345.0)
    assert not os.path.exists(path)


def test_expected_keys_sizes_the_index(tmp_path):
    with mapkv.open(str(tmp_path / "a.mkv"), sync="none") as small, \
            mapkv.open(str(tmp_path / "b.mkv"), sync="none",
                       expected_keys=100000) as big:
        assert big.stat()["index_slots"] >= 100000
        assert small.stat()["index_slots"] < big.stat()["index_slots"]


def test_second_writer_is_locked_out(path):
    with mapkv.open(path) as db:
        with pytest.raises(mapkv.LockedError) as e:
            mapkv.open(path)
        assert "writing" in str(e.value)
        db[b"k"] = b"v"
        with mapkv.open(path, readonly=True) as ro:
            assert ro[b"k"] == b"v"


def test_lock_timeout_waits_for_the_other_writer(path):
    holder = mapkv.open(path)
    start = time.monotonic()
    with pytest.raises(mapkv.LockedError):
        mapkv.open(path, lock_timeout=0.2)
    assert time.monotonic() - start >= 0.2
    with pytest.raises(mapkv.LockedError):
        mapkv.open(path, lock_timeout=0)  # the default: at once
    with mapkv.open(path, readonly=True, lock_timeout=60) as ro:
        assert len(ro) == 0  # read-only opens take no lock, never wait
    closer = threading.Timer(0.3, holder.close)  # the GIL is released
    closer.start()
    try:
        start = time.monotonic()
        with mapkv.open(path, lock_timeout=60) as db:
            waited = time.monotonic() - start
            db[b"k"] = b"v"
    finally:
        closer.join()
    assert holder.closed
    assert 0.2 <= waited < 60


def test_lock_timeout_argument(path):
    for bad in (-1, -0.001, float("nan"), float("inf"), 1e12):
        with pytest.raises(ValueError, match="lock_timeout"):
            mapkv.open(path, lock_timeout=bad)
    for bad in ("1", None, b"1"):
        with pytest.raises(TypeError, match="lock_timeout"):
            mapkv.open(path, lock_timeout=bad)
    assert not os.path.exists(path)
    with mapkv.open(path, lock_timeout=0.0001) as db:  # rounded up to 1 ms
        db[b"k"] = b"v"
    with mapkv.open(path, lock_timeout=4294967):
        pass


def test_limits_travel_with_the_store(tmp_path):
    p = str(tmp_path / "limits.mkv")
    with mapkv.open(p, max_key_size=16, max_value_size=100) as db:
        st = db.stat()
        assert (st["max_key_size"], st["max_value_size"]) == (16, 100)
        db[b"k" * 16] = bytes(100)
        with pytest.raises(mapkv.KeySizeError,
                           match="key of 17 bytes exceeds the limit of 16"):
            db[b"k" * 17] = b""
        with pytest.raises(mapkv.ValueSizeError):
            db[b"v"] = bytes(101)
        with pytest.raises(mapkv.KeySizeError):
            with db.batch() as b:
                b[b"k" * 17] = b""
    # 0 (the default) is the store's limits; larger asks get them too
    for kw in ({}, {"max_key_size": 1000, "max_value_size": 1 << 20},
               {"readonly": True}):
        with mapkv.open(p, **kw) as db:
            st = db.stat()
            assert (st["max_key_size"], st["max_value_size"]) == (16, 100)
            if not db.readonly:
                with pytest.raises(mapkv.KeySizeError):
                    db[b"k" * 17] = b""
    # smaller ones lower the limits of this Store only
    with mapkv.open(p, max_key_size=8) as db:
        st = db.stat()
        assert (st["max_key_size"], st["max_value_size"]) == (8, 100)
        with pytest.raises(mapkv.KeySizeError):
            db[b"k" * 9] = b""
        assert db[b"k" * 16] == bytes(100)
    with mapkv.open(p) as db:
        assert db.stat()["max_key_size"] == 16
    # the format's limits
    big = str(tmp_path / "big.mkv")
    with mapkv.open(big, max_key_size=mapkv.KEY_MAX,
                    max_value_size=mapkv.VALUE_MAX, sync="none") as db:
        st = db.stat()
        assert (st["max_key_size"], st["max_value_size"]) == \
            (mapkv.KEY_MAX, mapkv.VALUE_MAX)
        db[b"k" * mapkv.KEY_MAX] = b"v"
        with pytest.raises(mapkv.KeySizeError):
            db[b"k" * (mapkv.KEY_MAX + 1)] = b"v"
    bad = str(tmp_path / "bad.mkv")
    with pytest.raises(mapkv.InvalidArgumentError, match="max_key_size"):
        mapkv.open(bad, max_key_size=mapkv.KEY_MAX + 1)
    with pytest.raises(mapkv.InvalidArgumentError, match="max_value_size"):
        mapkv.open(bad, max_value_size=mapkv.VALUE_MAX + 1)
    for name in ("max_key_size", "max_value_size", "reserve"):
        with pytest.raises(ValueError, match=name):
            mapkv.open(bad, **{name: -1})
        with pytest.raises(ValueError, match=name):
            mapkv.open(bad, **{name: 1 << 64})
        with pytest.raises(TypeError, match=name):
            mapkv.open(bad, **{name: "16"})
    with pytest.raises(ValueError, match="max_key_size"):
        mapkv.open(bad, max_key_size=1 << 32)
    assert not os.path.exists(bad)


def test_reserve_bounds_the_file(path):
    with mapkv.open(path, sync="none", reserve=2 << 20) as db:
        assert db.stat()["reserved_size"] == 2 << 20
        n = 0
        with pytest.raises(mapkv.FullError) as e:
            while n < 10000:
                db[key(n)] = value(n, size=1000)
                n += 1
        assert "address reservation (reopen with a larger reserve)" in \
            str(e.value)
        assert e.value.code == mapkv.FullError.code
        assert 1000 < n < 2100
        assert len(db) == n and key(n) not in db  # nothing written
        assert db[key(n - 1)] == value(n - 1, size=1000)
        st = db.stat()
        assert st["file_size"] <= 2 << 20
        with pytest.raises(mapkv.FullError):
            db.update({key(n): value(n, size=1000)})
    with mapkv.open(path, reserve=64 << 20) as db:  # a larger reserve
        assert len(db) == n
        db[key(n)] = value(n, size=1000)
        assert db.stat()["reserved_size"] == 64 << 20
    with pytest.raises(mapkv.InvalidArgumentError, match="reservation"):
        mapkv.open(path + "2", reserve=4096)  # below the initial size
    with pytest.raises(mapkv.InvalidArgumentError, match="must not exceed"):
        mapkv.open(path + "2", reserve=(1 << 40) + 1)


def test_salvage_open_is_read_only(path):
    with pytest.raises(FileNotFoundError):
        mapkv.open(path, salvage=True)  # never creates
    with mapkv.open(path) as db:
        fill(db, 10)
    with mapkv.open(path, salvage=True) as db:
        assert db.readonly and "readonly" in repr(db)
        assert dict(db.items()) == {key(i): value(i) for i in range(10)}
        assert db.verify() is None
        with pytest.raises(mapkv.ReadOnlyError):
            db[b"k"] = b"v"
        with pytest.raises(mapkv.ReadOnlyError):
            db.compact()
    with mapkv.open(path, salvage=True, readonly=False) as db:
        assert db.readonly


# ---- the mapping protocol -----------------------------------------------

def test_get_set_delete(db):
    db[b"alpha"] = b"1"
    db[b"beta"] = b"22"
    assert db[b"alpha"] == b"1"
    assert type(db[b"alpha"]) is bytes
    assert db.get(b"beta") == b"22"
    assert db.get(b"gamma") is None
    sentinel = object()
    assert db.get(b"gamma", sentinel) is sentinel
    assert db.get(b"alpha", sentinel) == b"1"
    assert b"alpha" in db and b"gamma" not in db
    assert len(db) == 2
    db[b"alpha"] = b"replaced"
    assert db[b"alpha"] == b"replaced"
    assert len(db) == 2
    del db[b"alpha"]
    assert b"alpha" not in db
    assert len(db) == 1
    with pytest.raises(KeyError) as e:
        db[b"alpha"]
    assert e.value.args == (b"alpha",)
    assert isinstance(e.value, mapkv.NotFoundError)
    assert isinstance(e.value, mapkv.Error)
    with pytest.raises(KeyError) as e:
        del db[b"alpha"]
    assert e.value.args == (b"alpha",)


def test_get_arguments(db):
    with pytest.raises(TypeError):
        db.get()
    with pytest.raises(TypeError):
        db.get(b"a", None, None)


def test_empty_key_and_value(db):
    db[b""] = b""
    assert db[b""] == b""
    assert b"" in db
    db[b"e"] = b""
    assert db.get(b"e", 1) == b""
    assert sorted(db.items()) == [(b"", b""), (b"e", b"")]


def test_binary_keys_and_values(db):
    k = bytes(range(256))
    v = bytes(range(255, -1, -1)) * 40
    db[k] = v
    assert db[k] == v
    assert k[:-1] not in db


def test_large_value(db):
    big = os.urandom(8 << 20)
    db[b"big"] = big
    assert db[b"big"] == big


def test_size_limits(db):
    with pytest.raises(mapkv.KeySizeError) as e:
        db[b"k" * 4097] = b"v"
    assert isinstance(e.value, ValueError)
    assert "4097" in str(e.value)
    db[b"k" * 4096] = b"v"
    assert db[b"k" * 4096] == b"v"
    with pytest.raises(mapkv.ValueSizeError):
        db[b"v"] = bytes((64 << 20) + 1)
    assert b"v" not in db


def test_bytes_like_inputs(db):
    db[bytearray(b"ba")] = bytearray(b"bytearray value")
    db[memoryview(b"mv")] = memoryview(b"memoryview value")
    db[array.array("B", b"ar")] = array.array("B", b"array value")
    db[memoryview(b"xxslicexx")[2:7]] = b"slice"

    class B(bytes):
        pass

    db[B(b"sub")] = B(b"subclass value")
    assert db[b"ba"] == b"bytearray value"
    assert db[bytearray(b"mv")] == b"memoryview value"
    assert db[memoryview(b"ar")] == b"array value"
    assert db[b"slice"] == b"slice"
    assert db[B(b"sub")] == b"subclass value"
    assert b"sub" in db and bytearray(b"ba") in db
    assert db.get(memoryview(b"ba")) == b"bytearray value"
    # A multi-byte format counts its raw bytes.
    db[b"ints"] = array.array("i", [1, 2])
    assert db[b"ints"] == array.array("i", [1, 2]).tobytes()
    with mmap.mmap(-1, 16) as m:
        m[:5] = b"mmap!"
        db[m[:5]] = m
        assert db[b"mmap!"] == b"mmap!" + bytes(11)
    del db[bytearray(b"ba")]
    assert b"ba" not in db


def test_str_and_other_types_refused(db):
    db[b"k"] = b"v"
    calls = [
        lambda: db["k"],
        lambda: db.__setitem__("k", b"v"),
        lambda: db.__setitem__(b"k", "v"),
        lambda: db.__delitem__("k"),
        lambda: "k" in db,
        lambda: db.get("k"),
        lambda: db.get_many(["k"]),
        lambda: db.get_many("k"),
        lambda: db.get_many(b"k"),
        lambda: db.keys(prefix="k"),
        lambda: db.update({"k": b"v"}),
        lambda: db[1],
        lambda: db[None],
        lambda: db.__setitem__(b"k", 5),
    ]
    for call in calls:
        with pytest.raises(TypeError):
            call()
    with pytest.raises(TypeError, match="not str"):
        db["k"]
    assert db[b"k"] == b"v"
    assert len(db) == 1


def test_non_contiguous_buffer_refused(db):
    strided = memoryview(b"abcdef")[::2]
    with pytest.raises(BufferError):
        db[strided] = b"v"
    assert len(db) == 0


def test_get_many(db):
    fill(db, 100)
    keys = [key(i) for i in range(0, 120, 3)]
    got = db.get_many(keys)
    assert got == [value(i) if i < 100 else None for i in range(0, 120, 3)]
    assert db.get_many(keys, b"-")[-1] == b"-"
    assert db.get_many([]) == []
    assert db.get_many((bytearray(key(1)), memoryview(key(2)))) == \
        [value(1), value(2)]
    assert db.get_many(iter([key(5)])) == [value(5)]
    with pytest.raises(TypeError):
        db.get_many()
    with pytest.raises(TypeError):
        db.get_many(5)


def test_update(db):
    db.update({b"a": b"1", b"b": b"2"})
    db.update([(b"c", b"3"), (bytearray(b"d"), memoryview(b"4"))])
    db.update(((k, v) for k, v in [(b"e", b"5")]))
    db.update()
    assert sorted(db.items()) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3"),
                                  (b"d", b"4"), (b"e", b"5")]

    class M:
        def keys(self):
            return [b"m"]

        def items(self):
            return [(b"m", b"mapping")]

    db.update(M())
    assert db[b"m"] == b"mapping"
    # All or nothing: a bad pair aborts the whole update.
    with pytest.raises(ValueError):
        db.update([(b"x", b"1"), (b"y",)])
    with pytest.raises(TypeError):
        db.update([(b"x", b"1"), (b"y", "str")])
    with pytest.raises(TypeError):
        db.update([(b"x", b"1"), 5])

    def gen():
        yield (b"x", b"1")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.update(gen())
    assert b"x" not in db
    with pytest.raises(TypeError):
        db.update({}, {})


def test_update_closing_the_store_midway(path):
    db = mapkv.open(path, sync="none")

    def gen():
        yield (b"a", b"1")
        db.close()
        yield (b"b", b"2")

    with pytest.raises(ValueError):
        db.update(gen())
    with mapkv.open(path) as db2:
        assert len(db2) == 0


# ---- iteration ----------------------------------------------------------

def test_iteration(db):
    fill(db, 50, prefix=b"a:")
    fill(db, 30, prefix=b"b:")
    assert sorted(db) == sorted(key(i, b"a:") for i in range(50)) + \
        sorted(key(i, b"b:") for i in range(30))
    assert sorted(db.keys()) == sorted(db)
    assert sorted(db.keys(prefix=b"b:")) == [key(i, b"b:") for i in range(30)]
    assert sorted(db.keys(b"b:")) == [key(i, b"b:") for i in range(30)]
    assert sorted(db.values(prefix=b"a:")) == sorted(value(i)
                                                     for i in range(50))
    assert dict(db.items(prefix=bytearray(b"a:"))) == \
        {key(i, b"a:"): value(i) for i in range(50)}
    assert list(db.keys(prefix=b"zz")) == []
    assert len(list(db.items(prefix=b""))) == 80
    it = db.keys(prefix=b"b:")
    assert iter(it) is it
    assert isinstance(it, mapkv.Iterator)
    assert "keys" in repr(it)
    assert len(list(it)) == 30
    assert list(it) == []
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(TypeError):
        db.keys(b"a", b"b")
    with pytest.raises(TypeError):
        db.items(start=b"a")


def test_iteration_sees_the_state_at_its_start(db):
    fill(db, 10)
    it = db.items()
    first = next(it)
    db[b"new"] = b"added after the start"
    del db[key(9)]
    db[key(8)] = b"replaced"
    rest = dict(it)
    rest[first[0]] = first[1]
    assert b"new" not in rest
    assert key(9) not in rest
    assert key(8) not in rest  # newest value committed after the start
    assert len(rest) == 8


def test_iterator_after_compaction_raises_changed(db):
    fill(db, 100)
    it = db.keys()
    next(it)
    db.compact()
    with pytest.raises(mapkv.ChangedError) as e:
        list(it)
    assert "compacted" in str(e.value)
    assert list(it) == []  # ended


def test_iterator_after_close(path):
    db = mapkv.open(path, sync="none")
    fill(db, 10)
    it = db.keys()
    next(it)
    untouched = db.values()
    db.close()
    with pytest.raises(ValueError, match="closed"):
        next(it)
    with pytest.raises(ValueError, match="closed"):
        next(untouched)


# ---- maintenance --------------------------------------------------------

def test_stat(db):
    st = db.stat()
    assert st["records"] == 0
    fill(db, 10)
    db[key(0)] = b"x"
    st = db.stat()
    assert set(st) == {
        "records", "live_bytes", "dead_bytes", "data_end", "file_size",
        "mapped_size", "reserved_size", "index_slots", "index_bytes",
        "last_seq", "generation", "format_version", "clean_open",
        "max_key_size", "max_value_size",
        "recovered_batches", "dropped_tail_bytes", "dropped_tail_records",
        "damaged_regions", "damaged_bytes", "first_damage_offset",
        "damaged_keys", "truncated_bytes", "checksum_failures"}
    assert all(type(v) is int for v in st.values())
    assert st["records"] == 10
    assert st["format_version"] == mapkv.FORMAT_VERSION
    assert st["dead_bytes"] > 0
    assert st["last_seq"] == 12  # 10 puts + a commit record, then 1 put
    assert st["generation"] == 0
    assert st["data_end"] <= st["file_size"]
    assert (st["max_key_size"], st["max_value_size"]) == (4096, 64 << 20)
    for name in ("damaged_regions", "damaged_bytes", "first_damage_offset",
                 "damaged_keys", "truncated_bytes", "checksum_failures",
                 "dropped_tail_bytes", "dropped_tail_records"):
        assert st[name] == 0, name


def test_compact(db):
    fill(db, 1000)
    for i in range(0, 1000, 2):
        del db[key(i)]
    before = db.stat()
    db.compact()
    after = db.stat()
    assert after["generation"] == before["generation"] + 1
    assert after["dead_bytes"] == 0
    assert after["records"] == 500
    assert after["data_end"] < before["data_end"]
    assert dict(db.items()) == {key(i): value(i) for i in range(1, 1000, 2)}
    db[b"after"] = b"compaction"
    assert db[b"after"] == b"compaction"


def test_verify_intact(db):
    fill(db, 100)
    assert db.verify() is None


def test_context_manager_and_repr(path):
    with mapkv.open(path) as db:
        assert repr(db) == "<mapkv.Store %r>" % path
        with db as same:
            assert same is db
        assert db.closed  # the inner with closed it
    assert repr(db) == "<mapkv.Store %r closed>" % path
    with mapkv.open(path, readonly=True) as ro:
        assert "readonly" in repr(ro)


def test_close_is_idempotent_and_store_dealloc_closes(path):
    db = mapkv.open(path)
    db[b"k"] = b"v"
    db.close()
    db.close()
    db = mapkv.open(path)  # the lock was released
    db[b"k2"] = b"v2"
    del db  # closes through deallocation
    with mapkv.open(path) as db:
        assert db[b"k2"] == b"v2"
        assert db.stat()["clean_open"] == 1


def test_use_after_close(path):
    db = mapkv.open(path)
    db[b"k"] = b"v"
    db.close()
    calls = [
        lambda: db[b"k"],
        lambda: db.__setitem__(b"k", b"v"),
        lambda: db.__delitem__(b"k"),
        lambda: b"k" in db,
        lambda: len(db),
        lambda: db.get(b"k"),
        lambda: db.get_many([b"k"]),
        lambda: db.update({}),
        lambda: db.keys(),
        lambda: db.values(),
        lambda: db.items(),
        lambda: iter(db),
        lambda: db.batch(),
        lambda: db.read(),
        lambda: db.stat(),
        lambda: db.verify(),
        lambda: db.compact(),
        lambda: db.sync(),
        lambda: db.__enter__(),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="closed store"):
            call()
    assert db.closed


def test_store_cannot_be_made_directly():
    with pytest.raises(TypeError):
        mapkv.Store()
