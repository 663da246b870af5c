"""A second process: read-only opens alongside a writer (they see the state
committed when they open), the writer's lock, and a store inherited
through fork()."""
import multiprocessing as mp
import os

import mapkv
from mkvtest import fill, key, value


def reader_main(path, conn):
    """Opens path read-only; reports what it sees before and after the
    writer's next commits, then after reopening."""
    try:
        with mapkv.open(path, readonly=True) as db:
            conn.send(("opened", len(db), db.get(key(0))))
            conn.recv()  # the writer committed more meanwhile
            conn.send(("same", len(db), db.get(b"later"),
                       sorted(db) == sorted(key(i) for i in range(100))))
        with mapkv.open(path, readonly=True) as db:
            conn.send(("reopened", len(db), db.get(b"later")))
        try:
            mapkv.open(path)
        except mapkv.LockedError as e:
            conn.send(("locked", str(e)))
    except BaseException as e:  # reported to the parent
        conn.send(("error", repr(e)))


def test_reader_in_a_second_process(path):
    ctx = mp.get_context("spawn")
    db = mapkv.open(path, sync="commit")
    fill(db, 100)
    parent, child = ctx.Pipe()
    p = ctx.Process(target=reader_main, args=(path, child))
    p.start()
    try:
        assert parent.poll(60)
        assert parent.recv() == ("opened", 100, value(0))
        db[b"later"] = b"committed after the reader opened"
        parent.send("go")
        assert parent.recv() == ("same", 100, None, True)
        assert parent.recv() == ("reopened", 101,
                                 b"committed after the reader opened")
        kind, msg = parent.recv()
        assert kind == "locked" and "writing" in msg
    finally:
        p.join(60)
    assert p.exitcode == 0
    db.close()


def forked_child(db, conn):
    try:
        db[b"x"]
    except ValueError as e:
        conn.send(("refused", str(e)))
    try:
        db[b"from-child"] = b"must not be written"
    except ValueError:
        conn.send("write refused")
    conn.send(("closed", db.closed))
    db.close()  # forgets the parent's handle, touches nothing
    with mapkv.open(db.path, readonly=True) as own:
        conn.send(("own", own[b"x"]))
    del db
    conn.close()
    os._exit(0)


def test_store_inherited_through_fork(path):
    db = mapkv.open(path, sync="commit")
    db[b"x"] = b"parent"
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=forked_child, args=(db, child))
    p.start()
    kind, msg = parent.recv()
    assert kind == "refused" and "forked" in msg
    assert parent.recv() == "write refused"
    assert parent.recv() == ("closed", True)
    assert parent.recv() == ("own", b"parent")
    p.join(60)
    assert p.exitcode == 0
    # The parent's store is untouched and still works.
    assert not db.closed
    db[b"y"] = b"after the fork"
    assert b"from-child" not in db
    db.close()
    with mapkv.open(path) as db:
        assert dict(db.items()) == {b"x": b"parent", b"y": b"after the fork"}
        assert db.stat()["clean_open"] == 1
        db.verify()
