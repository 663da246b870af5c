"""Store.batch(): atomic batches, commit and abort, use after the end."""
import pytest

import mapkv
from mkvtest import fill, key, value


def test_batch_commits_at_the_end_of_its_block(db):
    db[b"gone"] = b"x"
    with db.batch() as b:
        assert isinstance(b, mapkv.Batch)
        b[b"a"] = b"1"
        b.put(b"b", bytearray(b"2"))
        del b[b"gone"]
        b.delete(b"never-there")  # deleting a missing key is no error
        assert len(b) == 4
        assert b.pending
        # Nothing is visible before the commit.
        assert b"a" not in db and b"gone" in db
    assert not b.pending
    assert db[b"a"] == b"1" and db[b"b"] == b"2"
    assert b"gone" not in db
    assert "committed" in repr(b)


def test_batch_that_raises_is_aborted(db):
    db[b"keep"] = b"old"
    with pytest.raises(RuntimeError, match="boom"):
        with db.batch() as b:
            b[b"keep"] = b"new"
            b[b"added"] = b"1"
            raise RuntimeError("boom")
    assert db[b"keep"] == b"old"
    assert b"added" not in db
    assert not b.pending
    with pytest.raises(ValueError, match="aborted"):
        b[b"x"] = b"y"


def test_batch_last_operation_on_a_key_wins(db):
    with db.batch() as b:
        b[b"k"] = b"1"
        b[b"k"] = b"2"
        del b[b"j"]
        b[b"j"] = b"3"
    assert db[b"k"] == b"2" and db[b"j"] == b"3"
    with db.batch() as b:
        b[b"k"] = b"4"
        del b[b"k"]
    assert b"k" not in db


def test_explicit_commit_and_abort(db):
    b = db.batch()
    b[b"a"] = b"1"
    assert b.commit() is None
    assert db[b"a"] == b"1"
    with pytest.raises(ValueError, match="committed"):
        b.commit()
    with pytest.raises(ValueError, match="committed"):
        b.put(b"x", b"y")
    with pytest.raises(ValueError, match="committed"):
        b.delete(b"x")
    with pytest.raises(ValueError):
        with b:
            pass
    b = db.batch()
    b[b"z"] = b"1"
    b.abort()
    assert b"z" not in db
    with pytest.raises(ValueError, match="aborted"):
        b.abort()


def test_batch_committed_inside_its_block(db):
    with db.batch() as b:
        b[b"a"] = b"1"
        b.commit()
    assert db[b"a"] == b"1"
    with pytest.raises(KeyError):
        with db.batch() as b:
            b[b"c"] = b"1"
            b.abort()
            raise KeyError("the block's own exception goes through")
    assert b"c" not in db


def test_empty_batch(db):
    with db.batch() as b:
        pass
    assert len(b) == 0
    assert db.stat()["last_seq"] == 0


def test_dropped_batch_is_aborted(db):
    b = db.batch()
    b[b"a"] = b"1"
    del b
    assert b"a" not in db
    assert db.stat()["last_seq"] == 0


def test_batch_argument_errors_leave_it_usable(db):
    with db.batch() as b:
        with pytest.raises(TypeError):
            b["str"] = b"v"
        with pytest.raises(TypeError):
            b[b"k"] = "str"
        with pytest.raises(TypeError):
            del b["str"]
        with pytest.raises(mapkv.KeySizeError):
            b[b"k" * 5000] = b"v"
        with pytest.raises(mapkv.ValueSizeError):
            b[b"k"] = bytes((64 << 20) + 1)
        with pytest.raises(TypeError):
            b.put(b"k")
        b[memoryview(b"ok")] = memoryview(b"fine")
        assert len(b) == 1
    assert dict(db.items()) == {b"ok": b"fine"}


def test_large_batch(db):
    fill(db, 20000)
    assert len(db) == 20000
    assert db[key(12345)] == value(12345)
    st = db.stat()
    assert st["last_seq"] == 20001  # one commit record


def test_batch_aborted_by_store_close(path):
    db = mapkv.open(path, sync="none")
    b = db.batch()
    b[b"a"] = b"1"
    db.close()
    assert not b.pending
    with pytest.raises(ValueError, match="close of its store"):
        b.commit()
    with pytest.raises(ValueError):
        b[b"x"] = b"y"
    with mapkv.open(path) as db:
        assert b"a" not in db


def test_durable_batch(path):
    with mapkv.open(path, sync="commit") as db:
        with db.batch() as b:
            for i in range(100):
                b[key(i)] = value(i)
    with mapkv.open(path, readonly=True) as db:
        assert len(db) == 100 and db[key(99)] == value(99)


def test_batch_block_whose_store_was_closed(path):
    db = mapkv.open(path, sync="none")
    with pytest.raises(ValueError, match="close of its store"):
        with db.batch() as b:
            b[b"a"] = b"1"
            db.close()
    with mapkv.open(path) as db:
        assert b"a" not in db
