"""Exceptions: one mapkv.Error subclass per code of MAPKV_ERRNO_MAP, OSError
for -errno codes, and each raised for real where Python can reach it."""
import ctypes
import ctypes.util
import errno
import os
import re
import struct

import pytest

import mapkv
from mapkv import _mapkv
from mkvtest import fill, key, value

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
    "MAPKV_EMAP": "MappingError",
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
    for cls in (mapkv.CorruptError, mapkv.LockedError, mapkv.ReadOnlyError):
        assert not issubclass(cls, (KeyError, ValueError, OSError))


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


def test_directory_is_oserror(tmp_path):
    with pytest.raises(IsADirectoryError):
        mapkv.open(str(tmp_path))


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
            f.seek(off)
            f.write(b"\xff")
    with pytest.raises(mapkv.CorruptError, match="both copies"):
        mapkv.open(path)


def damage_value_of_first_record(path, klen):
    with open(path, "r+b") as f:
        f.seek(4096 + 16 + klen + 3)  # a byte of the first record's value
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x55]))


def test_damaged_record(path):
    with mapkv.open(path) as db:
        db[key(0)] = value(0)
        fill(db, 20, prefix=b"o")
    damage_value_of_first_record(path, len(key(0)))
    with mapkv.open(path) as db:
        with pytest.raises(mapkv.CorruptError) as e:
            db[key(0)]
        assert "checksum" in str(e.value)
        with pytest.raises(mapkv.CorruptError):
            db.get(key(0))
        with db.read() as r:
            with pytest.raises(mapkv.CorruptError):
                r[key(0)]
        assert db.stat()["checksum_failures"] == 3
        assert db[key(5, b"o")] == value(5)  # the rest is intact
        with pytest.raises(mapkv.CorruptError) as e:
            db.verify()
        damage = e.value.damage
        assert len(damage) == 1
        offset, length, reason = damage[0]
        assert offset == 4096 and length > 0 and reason
        assert "1 damaged span" in str(e.value)
        # An iteration skips the damaged record.
        assert sorted(db) == sorted(key(i, b"o") for i in range(20))


def test_changed_and_locked_are_real(path):
    with mapkv.open(path, sync="none") as db:
        fill(db, 5)
        it = iter(db)
        db.compact()
        with pytest.raises(mapkv.ChangedError):
            next(it)
        with pytest.raises(mapkv.LockedError):
            mapkv.open(path)


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
