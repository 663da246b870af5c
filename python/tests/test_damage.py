"""Damage and recovery as FORMAT.md ("Recovery") tells them, seen from
Python: damage below the sealed end (a cleanly closed store, or what a
writer's open checked) answers CorruptError for the keys it cost, never an
older value; a write a crash lost keeps the previous values; files cut
short or with damage after their data are refused (TruncatedError,
CorruptError) but for a salvage open; mapkv.recover() salvages."""
import os
import shutil

import pytest

import mapkv
from mkvtest import (crash_after, fill, flip, flip_value, key, record_of,
                     records, value)

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data")


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def answers(db, keys):
    """{key: value, or the name of the exception a get raises}"""
    out = {}
    for k in keys:
        try:
            out[k] = db[k]
        except mapkv.Error as e:
            out[k] = type(e).__name__
    return out


def four_writes(db):
    db[b"a"] = b"old"
    db[b"b"] = b"x"
    db[b"a"] = b"new"
    db[b"c"] = b"y"


# ---- below the sealed end: CorruptError, never an older value -----------

@pytest.mark.parametrize("where", ["value", "key"])
def test_damaged_newest_write_never_shows_the_older_value(path, where):
    with mapkv.open(path) as db:
        four_writes(db)
    off, k, vlen = record_of(path, b"a")
    # a value byte; or the key byte itself (the key is then found through
    # the record's link to the key's previous record)
    flip(path, off + 22 + (1 + 1 if where == "value" else 0))
    # read-only, writable, and after that writer's clean close: a writer's
    # open seals nothing away, every open reports the same damage
    for readonly in (True, False, False):
        with mapkv.open(path, readonly=readonly) as db:
            assert answers(db, [b"a", b"b", b"c"]) == {
                b"a": "CorruptError", b"b": b"x", b"c": b"y"}
            with pytest.raises(mapkv.CorruptError, match="lost to damage"):
                db.get(b"a")
            with pytest.raises(mapkv.CorruptError):
                b"a" in db
            st = db.stat()
            assert st["clean_open"] == 1
            assert st["damaged_keys"] == 1
            assert (st["damaged_regions"], st["first_damage_offset"]) == \
                (1, off)
            assert sorted(db) == [b"b", b"c"]
            with pytest.raises(mapkv.CorruptError) as e:
                db.verify()
            assert [d[:2] for d in e.value.damage] == [(off, 34)]
            if not readonly:
                # compaction would drop the damage without a trace
                with pytest.raises(mapkv.CorruptError, match="compaction"):
                    db.compact()


def test_writing_a_damaged_key_again(path):
    with mapkv.open(path) as db:
        four_writes(db)
        db[b"d"] = b"z"
    flip_value(path, b"a")
    flip_value(path, b"d")
    with mapkv.open(path) as db:
        assert db.stat()["damaged_keys"] == 2
        db[b"a"] = b"fixed"
        del db[b"d"]
        assert db[b"a"] == b"fixed" and b"d" not in db
        assert db.stat()["damaged_keys"] == 2  # what the open found
    with mapkv.open(path) as db:
        assert answers(db, [b"a", b"b", b"c", b"d"]) == {
            b"a": b"fixed", b"b": b"x", b"c": b"y", b"d": "NotFoundError"}
        st = db.stat()
        assert st["damaged_keys"] == 0  # every key reads
        assert st["damaged_regions"] == 2  # the damage stays in the file
        with pytest.raises(mapkv.CorruptError):
            db.verify()


def test_damaged_batch_costs_all_its_keys(path):
    with mapkv.open(path) as db:
        db[b"a"] = b"before"
        db.update({b"a": b"1", b"b": b"2", b"c": b"3"})
        db[b"d"] = b"4"
    flip_value(path, b"b")  # one record of the three-key batch
    with mapkv.open(path) as db:
        assert answers(db, [b"a", b"b", b"c", b"d"]) == {
            b"a": "CorruptError", b"b": "CorruptError", b"c": "CorruptError",
            b"d": b"4"}
        assert db.stat()["damaged_keys"] == 3
        assert db.get_many([b"d", b"zz"]) == [b"4", None]
        with pytest.raises(mapkv.CorruptError):
            db.get_many([b"d", b"a"])
        assert list(db.items()) == [(b"d", b"4")]


# ---- after a crash ------------------------------------------------------

def test_write_a_crash_lost_keeps_the_previous_value(path):
    """Above the sealed end, in a store whose writer died (sync='none'), a
    damaged batch in the middle is a write that never reached the disk:
    skipped, its key keeps its previous value, for every open."""
    crash_after(path, four_writes)
    flip_value(path, b"a")  # the newest a, followed by an intact batch
    # read-only, writable, and after that writer's clean close
    for readonly, clean in ((True, 0), (False, 0), (False, 1)):
        with mapkv.open(path, readonly=readonly) as db:
            assert answers(db, [b"a", b"b", b"c"]) == {
                b"a": b"old", b"b": b"x", b"c": b"y"}
            st = db.stat()
            assert st["damaged_regions"] == 1 and st["damaged_keys"] == 0
            assert st["clean_open"] == clean


def test_damage_below_a_crashed_writers_sealed_end(path):
    """A writer's open seals what it recovered: damage there, found after
    that writer died, is damage (CorruptError), not a lost write."""
    with mapkv.open(path) as db:
        db[b"a"] = b"old"
        db[b"b"] = b"x"
        db[b"a"] = b"new"

    def more(db):
        db[b"c"] = b"y"
        db[b"d"] = b"z"

    crash_after(path, more)
    flip_value(path, b"a")
    for readonly in (True, False):
        with mapkv.open(path, readonly=readonly) as db:
            assert answers(db, [b"a", b"b", b"c", b"d"]) == {
                b"a": "CorruptError", b"b": b"x", b"c": b"y", b"d": b"z"}
            assert db.stat()["clean_open"] == 0
            assert db.stat()["damaged_keys"] == 1


def test_torn_last_write_is_dropped(path):
    crash_after(path, four_writes)
    flip_value(path, b"c")  # the last record: a torn write
    with mapkv.open(path) as db:
        assert answers(db, [b"a", b"b", b"c"]) == {
            b"a": b"new", b"b": b"x", b"c": "NotFoundError"}
        st = db.stat()
        assert st["dropped_tail_bytes"] == 32
        assert st["damaged_regions"] == 0 and st["damaged_keys"] == 0
        assert db.verify() is None  # the writer zeroed the tail
        db[b"c"] = b"again"
    with mapkv.open(path) as db:
        assert db[b"c"] == b"again"


def test_tail_of_damaged_records_is_refused(tmp_path):
    """Records after the data that fail their checksums but are sound in
    structure, as many as pass or more, are damage, not an interrupted
    write: every open but a salvage open refuses, changing nothing."""
    p = str(tmp_path / "tail.mkv")

    def six(db):
        fill(db, 3)
        for i in range(3, 6):
            db[key(i)] = value(i)

    crash_after(p, six)
    for i in range(3, 6):
        flip_value(p, key(i))
    before = read_all(p)
    for readonly in (False, True):
        with pytest.raises(mapkv.CorruptError) as e:
            mapkv.open(p, readonly=readonly)
        assert "3 records fail their checksums" in str(e.value)
    assert read_all(p) == before
    with mapkv.open(p, salvage=True) as db:
        assert dict(db.items()) == {key(i): value(i) for i in range(3)}
        with pytest.raises(mapkv.CorruptError):
            db.verify()
    info = mapkv.recover(p, str(tmp_path / "saved.mkv"))
    assert (info["saved"], info["damaged"], info["backup"]) == (3, True, None)
    assert read_all(p) == before
    with mapkv.open(str(tmp_path / "saved.mkv")) as db:
        assert dict(db.items()) == {key(i): value(i) for i in range(3)}
        assert db.verify() is None


# ---- a file cut short ---------------------------------------------------

def test_truncated_clean_store(tmp_path):
    p = str(tmp_path / "cut.mkv")
    with mapkv.open(p) as db:
        for i in range(10):
            db[key(i)] = value(i)
    data_end = records(p)[-1][0] + 30 + len(key(9)) + len(value(9))
    cut = records(p)[6][0] + 5  # inside the seventh record
    with open(p, "r+b") as f:
        f.truncate(cut)
    before = read_all(p)
    for readonly in (False, True):
        with pytest.raises(mapkv.TruncatedError, match="truncated"):
            mapkv.open(p, readonly=readonly)
    assert read_all(p) == before
    with mapkv.open(p, salvage=True) as db:
        assert dict(db.items()) == {key(i): value(i) for i in range(6)}
        assert db.stat()["truncated_bytes"] == data_end - cut
        with pytest.raises(mapkv.CorruptError) as e:
            db.verify()
        assert "truncated" in e.value.damage[-1][2]
    info = mapkv.recover(p)  # in place
    assert info["rewritten"] and info["damaged"]
    assert (info["saved"], info["lost"]) == (6, 0)
    assert info["found"]["truncated_bytes"] == data_end - cut
    assert ".damaged-" in info["backup"]
    assert os.path.dirname(info["backup"]) == str(tmp_path)
    assert read_all(info["backup"]) == before  # kept, never removed
    with mapkv.open(p) as db:
        assert dict(db.items()) == {key(i): value(i) for i in range(6)}
        assert db.verify() is None


# ---- mapkv.recover() ----------------------------------------------------

def test_recover_a_damaged_store(tmp_path):
    p = str(tmp_path / "d.mkv")
    with mapkv.open(p) as db:
        four_writes(db)
        fill(db, 10)
    flip_value(p, b"a")
    before = read_all(p)
    out = str(tmp_path / "out.mkv")
    info = mapkv.recover(p, out)
    assert info["rewritten"] and info["damaged"] and info["backup"] is None
    assert info["saved"] == 12  # b, c and fill's ten; a is left behind
    assert info["found"]["damaged_keys"] == 1
    assert read_all(p) == before  # the source is not changed
    with mapkv.open(out) as db:
        assert b"a" not in db and db[b"b"] == b"x" and len(db) == 12
        assert db.stat()["damaged_regions"] == 0
    with pytest.raises(FileExistsError):
        mapkv.recover(p, out)
    # in place, with path-likes and bytes
    info = mapkv.recover(os.fsencode(p))
    assert isinstance(info["backup"], bytes)
    assert info["backup"].startswith(os.fsencode(p) + b".damaged-")
    assert read_all(info["backup"]) == before
    with mapkv.open(p) as db:
        assert len(db) == 12 and db.verify() is None


def test_recover_leaves_an_intact_store_alone(tmp_path):
    p = tmp_path / "ok.mkv"
    with mapkv.open(p) as db:
        fill(db, 5)
    info = mapkv.recover(p)
    assert info["rewritten"] is False and info["damaged"] is False
    assert info["backup"] is None and info["found"]["records"] == 5
    assert sorted(os.listdir(str(tmp_path))) == ["ok.mkv"]
    info = mapkv.recover(p, force=True)
    assert info["rewritten"] is True and info["saved"] == 5
    assert ".orig-" in info["backup"]
    with mapkv.open(p) as db:
        assert len(db) == 5


def test_recover_waits_for_the_writer(tmp_path):
    p = str(tmp_path / "w.mkv")
    db = mapkv.open(p)
    db[b"k"] = b"v"
    with pytest.raises(mapkv.LockedError):
        mapkv.recover(p)
    with pytest.raises(mapkv.LockedError):
        mapkv.recover(p, lock_timeout=0.1)
    # into a new store needs no lock
    assert mapkv.recover(p, p + ".copy")["saved"] == 1
    db.close()
    assert mapkv.recover(p, lock_timeout=1)["rewritten"] is False
    with pytest.raises(FileNotFoundError):
        mapkv.recover(str(tmp_path / "missing.mkv"))
    with pytest.raises(ValueError, match="lock_timeout"):
        mapkv.recover(p, lock_timeout=-1)
    with pytest.raises(TypeError):
        mapkv.recover(p, None, True)  # force is keyword-only


def test_version_1_store(tmp_path):
    """A store of format version 1 opens read-only; a writable open says
    to upgrade it, which recover() does in place."""
    p = str(tmp_path / "v1.mkv")
    shutil.copy(os.path.join(DATA, "overlong-record.mkv"), p)
    with mapkv.open(p, readonly=True) as db:
        assert db.stat()["format_version"] == 1
        assert len(db) == 6 and len(list(db)) == 6
    with pytest.raises(mapkv.VersionError, match="upgrade"):
        mapkv.open(p)
    info = mapkv.recover(p)
    assert info["rewritten"] and info["saved"] == 6
    assert info["found"]["format_version"] == 1
    assert os.path.exists(info["backup"])
    with mapkv.open(p) as db:
        assert db.stat()["format_version"] == mapkv.FORMAT_VERSION
        assert len(db) == 6
        db[b"new"] = b"written in version 2"
