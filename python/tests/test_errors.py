"""Exceptions: one mapkv.Error subclass per code of MAPKV_ERRNO_MAP, OSError
for -errno codes, and each raised for real where Python can reach it."""
import ctypes
import ctypes.util
import errno
import os
import re
import socket
import struct

import pytest

import mapkv
from mapkv import _mapkv
from mkvtest import fill, flip_value, key, value

HEADER = os.path.join(os.path.dirname(__file__), "..", "..", "include",
                      "mapkv", "mapkv.h")


def header_codes():
    """{macro name: (code, text)} from the X-macro in mapkv.h."""
    with open(HEADER) as f:
        text = f.read()
    found = re.findall(r'X\((MAPKV_\w+),\s*(-\d+),\s*"([^"]*)"\)', text)
    assert len(found) >= 15
    return {name: (int(code), msg) for name, code, msg in found}


NAMES = {
    "MAPKV_NOTFOUND": "NotFoundError",
    "MAPKV_EINVAL": "InvalidArgumentError",
    "MAPKV_ENOTDB": "NotAStoreError",
    "MAPKV_EVERSION": "VersionError",
    "MAPKV_ETRUNCATED": "TruncatedError",
    "MAPKV_ECORRUPT": "CorruptError",
    "MAPKV_EKEYSIZE": "KeySizeError",
    "MAPKV_EVALSIZE": "ValueSizeError",
    "MAPKV_EREADONLY": "ReadOnlyError",
    "MAPKV_ELOCKED": "LockedError",
    "MAPKV_EFULL": "FullError",
    "MAPKV_EBUFSMALL": "BufferTooSmallError",
    "MAPKV_ECHANGED": "ChangedError",
    "MAPKV_ENOMEM": "OutOfMemoryError",
    "MAPKV_EMOVED": "MovedError",
    "MAPKV_EBUSY": "BusyError",
}


def test_one_class_per_code():
    codes = header_codes()
    assert set(codes) == set(NAMES), "a new code needs a name in NAMES"
    classes = [c for c in vars(mapkv).values()
               if isinstance(c, type) and issubclass(c, mapkv.Error)
               and c is not mapkv.Error]
    assert len(classes) == len(codes)
    for macro, (code, text) in codes.items():
        cls = getattr(mapkv, NAMES[macro])
        assert issubclass(cls, mapkv.Error)
        assert cls.code == code
        assert cls.__module__ == "mapkv"
        assert macro in cls.__doc__ and text in cls.__doc__.lower()
        exc = _mapkv._exception_for(code)
        assert type(exc) is cls
        assert exc.code == code
    assert mapkv.Error.code is None
    assert issubclass(mapkv.Error, Exception)


def test_builtin_bases():
    assert issubclass(mapkv.NotFoundError, KeyError)
    for cls in (mapkv.InvalidArgumentError, mapkv.KeySizeError,
                mapkv.ValueSizeError):
        assert issubclass(cls, ValueError)
    assert issubclass(mapkv.OutOfMemoryError, MemoryError)
    for cls in (mapkv.CorruptError, mapkv.LockedError, mapkv.ReadOnlyError,
                mapkv.NotAStoreError, mapkv.TruncatedError, mapkv.MovedError,
                mapkv.BusyError, mapkv.FullError):
        assert not issubclass(cls, (KeyError, ValueError, OSError))


def test_codes_no_longer_returned_have_no_class():
    # MAPKV_EMAP (-30714) is still defined in mapkv.h but never returned.
    assert "MAPKV_EMAP" not in header_codes()
    assert not hasattr(mapkv, "MappingError")
    assert type(_mapkv._exception_for(-30714)) is mapkv.Error


def test_errno_codes_are_oserror():
    for num, cls in ((errno.ENOENT, FileNotFoundError),
                     (errno.ENOSPC, OSError), (errno.EIO, OSError),
                     (errno.EACCES, PermissionError),
                     (errno.EISDIR, IsADirectoryError)):
        exc = _mapkv._exception_for(-num)
        assert type(exc) is cls
        assert exc.errno == num
    with pytest.raises(ValueError):
        _mapkv._exception_for(0)


def test_unknown_code_is_base_error():
    exc = _mapkv._exception_for(-39999)
    assert type(exc) is mapkv.Error


# ---- raised for real ----------------------------------------------------

def test_not_a_store(tmp_path):
    p = tmp_path / "garbage"
    p.write_bytes(os.urandom(8192))
    with pytest.raises(mapkv.NotAStoreError) as e:
        mapkv.open(str(p))
    assert "magic" in str(e.value)
    p.write_bytes(b"")
    with pytest.raises(mapkv.NotAStoreError, match="empty"):
        mapkv.open(str(p))


def test_not_a_regular_file(tmp_path):
    """A directory, a FIFO, a socket or a device is not a store: refused
    as a file that is not a store is (NotAStoreError, not an OSError),
    without blocking on the FIFO, and nothing is created."""
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    cases = [(str(tmp_path), "directory"), (str(fifo), "FIFO"),
             (str(tmp_path / "sock"), "socket"),
             ("/dev/null", "character device")]
    try:
        for p, kind in cases:
            for kw in ({}, {"readonly": True}, {"create": False},
                       {"salvage": True}):
                if p == "/dev/null" and not kw:
                    continue  # nothing is written to it, but be sure
                with pytest.raises(mapkv.NotAStoreError) as e:
                    mapkv.open(p, **kw)
                assert not isinstance(e.value, OSError)
                assert e.value.code == mapkv.NotAStoreError.code
                assert str(e.value) == "%s is not a regular file (a %s)" % (
                    p, kind)
            with pytest.raises(mapkv.NotAStoreError):
                mapkv.recover(p)
    finally:
        sock.close()
    assert sorted(os.listdir(str(tmp_path))) == ["fifo", "sock"]


def test_truncated(tmp_path):
    p = tmp_path / "short.mkv"
    p.write_bytes(b"MAPKV\0\x1a\n" + bytes(92))
    with pytest.raises(mapkv.TruncatedError) as e:
        mapkv.open(str(p))
    assert "shorter" in str(e.value)


def xxh3(data):
    lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or
                      "libxxhash.so.0")
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lib.XXH3_64bits(data, len(data))


def test_newer_version(path):
    with mapkv.open(path) as db:
        db[b"k"] = b"v"
    with open(path, "r+b") as f:
        for base in (0, 2048):
            f.seek(base)
            h = bytearray(f.read(128))
            h[8:12] = struct.pack("<I", mapkv.FORMAT_VERSION + 1)
            h[120:128] = struct.pack("<Q", xxh3(bytes(h[:120])))
            f.seek(base)
            f.write(h)
    with pytest.raises(mapkv.VersionError) as e:
        mapkv.open(path)
    assert "newer" in str(e.value)


def test_both_headers_damaged(path):
    with mapkv.open(path) as db:
        db[b"k"] = b"v"
    with open(path, "r+b") as f:
        for off in (30, 2048 + 30):
            # flipped, not overwritten: the byte (of the random file id)
            # may already be 0xff
            f.seek(off)
            b = f.read(1)[0]
            f.seek(off)
            f.write(bytes([b ^ 0xFF]))
    with pytest.raises(mapkv.CorruptError, match="both copies"):
        mapkv.open(path)


def test_damaged_record(path):
    """A record damaged in a cleanly closed store (below its sealed end):
    its key raises CorruptError through every read, the other keys read
    as they were, verify() lists the span, iteration skips the key."""
    with mapkv.open(path) as db:
        db[key(0)] = value(0)
        fill(db, 20, prefix=b"o")
    flip_value(path, key(0))
    for readonly in (False, True):
        with mapkv.open(path, readonly=readonly) as db:
            with pytest.raises(mapkv.CorruptError) as e:
                db[key(0)]
            assert str(e.value) == "record at offset 4096: checksum mismatch"
            assert e.value.code == mapkv.CorruptError.code
            with pytest.raises(mapkv.CorruptError):
                db.get(key(0), b"default")
            with pytest.raises(mapkv.CorruptError):
                key(0) in db
            with pytest.raises(mapkv.CorruptError):
                db.get_many([key(1, b"o"), key(0)])
            with db.read() as r:
                with pytest.raises(mapkv.CorruptError):
                    r[key(0)]
                assert bytes(r[key(1, b"o")]) == value(1)
            st = db.stat()
            assert st["clean_open"] == 1
            assert st["damaged_regions"] == 1
            assert st["first_damage_offset"] == 4096
            assert st["damaged_bytes"] == len(key(0)) + len(value(0)) + 30
            assert st["checksum_failures"] == 4  # get twice, get_many, view
            assert st["records"] == 21  # the damaged key is still a key
            for i in range(20):  # the rest is intact
                assert db[key(i, b"o")] == value(i)
            with pytest.raises(mapkv.CorruptError) as e:
                db.verify()
            damage = e.value.damage
            assert len(damage) == 1
            offset, length, reason = damage[0]
            assert (offset, length) == (4096, st["damaged_bytes"])
            assert reason == "checksum mismatch"
            assert str(e.value).startswith("1 damaged span")
            # An iteration skips the damaged record.
            assert sorted(db) == sorted(key(i, b"o") for i in range(20))
            assert len(list(db.values())) == 20


def test_changed_and_locked_are_real(path):
    with mapkv.open(path, sync="none") as db:
        fill(db, 5)
        it = iter(db)
        db.compact()
        with pytest.raises(mapkv.ChangedError):
            next(it)
        with pytest.raises(mapkv.LockedError):
            mapkv.open(path)


def test_moved(tmp_path):
    """A store file renamed or removed while open, or replaced by another
    file: sync(), compact() and close() raise MovedError; close() closes
    the store all the same, cleanly, in the file the store now is."""
    p = str(tmp_path / "m.mkv")
    db = mapkv.open(p, sync="none")
    db[b"k"] = b"v"
    os.rename(p, p + ".renamed")
    for call in (db.sync, db.compact):
        with pytest.raises(mapkv.MovedError) as e:
            call()
        assert str(e.value) == ("%s was removed while open: what is written "
                                "now goes to a file no path names" % p)
    db[b"k2"] = b"v2"
    assert db[b"k"] == b"v"
    with pytest.raises(mapkv.MovedError):
        db.close()
    assert db.closed
    db.close()  # closed already: nothing to do
    with mapkv.open(p + ".renamed") as db:
        assert db.stat()["clean_open"] == 1
        assert dict(db.items()) == {b"k": b"v", b"k2": b"v2"}

    db = mapkv.open(p)
    with open(p + ".other", "wb") as f:
        f.write(b"another file")
    os.rename(p + ".other", p)
    with pytest.raises(mapkv.MovedError, match="replaced by another file"):
        db.close()
    assert db.closed


def test_close_is_never_busy(path):
    """The library refuses to close a handle with open batches or cursors
    (BusyError); a Store ends its pending batches and iterators first."""
    db = mapkv.open(path, sync="none")
    fill(db, 3)
    b = db.batch()
    b[b"pending"] = b"1"
    it = iter(db)
    next(it)
    db.close()
    assert db.closed and not b.pending
    with pytest.raises(ValueError, match="closed"):
        next(it)
    with mapkv.open(path) as db:
        assert len(db) == 3 and b"pending" not in db


def test_error_messages_carry_context(db):
    with pytest.raises(mapkv.KeySizeError) as e:
        db[b"x" * 5000] = b""
    assert str(e.value) == "key of 5000 bytes exceeds the limit of 4096"
    with pytest.raises(FileNotFoundError) as e:
        mapkv.open(db.path + ".missing", create=False)
    assert e.value.errno == errno.ENOENT
    assert "No such file" in str(e.value)


def test_undecodable_path_in_a_message(tmp_path):
    missing = os.path.join(os.fsencode(str(tmp_path)), b"no\xffdir", b"s.mkv")
    with pytest.raises(FileNotFoundError) as e:
        mapkv.open(missing)
    assert os.fsencode(str(e.value)).find(b"no\xffdir") >= 0
