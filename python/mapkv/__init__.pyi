"""Type stubs of mapkv (the extension module mapkv._mapkv)."""
import os
import sys
from types import TracebackType
from typing import (Any, Dict, Iterable, Iterator as _Iterator, List, Literal,
                    Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union,
                    overload)

if sys.version_info >= (3, 12):
    from collections.abc import Buffer as _Buffer
else:
    from typing_extensions import Buffer as _Buffer  # only for type checkers

__version__: str
FORMAT_VERSION: int
KEY_MAX: int
VALUE_MAX: int

_T = TypeVar("_T")
_StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
#: bytes, bytearray, memoryview, or anything else exporting a buffer (not str)
_BytesLike = _Buffer
_SyncMode = Literal["commit", "none", "explicit"]


def open(path: _StrPath, *, create: bool = ..., readonly: bool = ...,
         sync: _SyncMode = ..., expected_keys: int = ...,
         lock_timeout: float = ..., max_key_size: int = ...,
         max_value_size: int = ..., reserve: int = ...,
         salvage: bool = ...) -> "Store":
    """Open (or create) the store in the file at path."""


def recover(path: _StrPath, out: Optional[_StrPath] = ..., *,
            force: bool = ..., lock_timeout: float = ...) -> Dict[str, Any]:
    """Salvage the intact records of the store at path into a new store
    (out, or in place keeping the original as a backup). The dict has
    saved: int, lost: int, rewritten: bool, damaged: bool,
    backup: Optional[str | bytes] and found: Dict[str, int] (stat())."""


class Store:
    """An open store: a mapping of bytes keys to bytes values."""
    @property
    def path(self) -> Union[str, bytes]: ...
    @property
    def readonly(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def sync_mode(self) -> _SyncMode: ...

    def __getitem__(self, key: _BytesLike) -> bytes: ...
    def __setitem__(self, key: _BytesLike, value: _BytesLike) -> None: ...
    def __delitem__(self, key: _BytesLike) -> None: ...
    def __contains__(self, key: object) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> "Iterator[bytes]": ...
    @overload
    def get(self, key: _BytesLike) -> Optional[bytes]: ...
    @overload
    def get(self, key: _BytesLike, default: _T) -> Union[bytes, _T]: ...
    @overload
    def get_many(self, keys: Sequence[_BytesLike]) -> List[Optional[bytes]]: ...
    @overload
    def get_many(self, keys: Sequence[_BytesLike],
                 default: _T) -> List[Union[bytes, _T]]: ...
    def update(self, other: Union[Mapping[_BytesLike, _BytesLike],
                                  Iterable[Tuple[_BytesLike, _BytesLike]]] = ...,
               /) -> None: ...
    def keys(self, prefix: _BytesLike = ...) -> "Iterator[bytes]": ...
    def values(self, prefix: _BytesLike = ...) -> "Iterator[bytes]": ...
    def items(self,
              prefix: _BytesLike = ...) -> "Iterator[Tuple[bytes, bytes]]": ...
    def batch(self) -> "Batch": ...
    def read(self) -> "ReadView": ...
    def stat(self) -> Dict[str, int]: ...
    def verify(self) -> None: ...
    def compact(self) -> None: ...
    def sync(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Store": ...
    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None: ...


class Batch:
    """An atomic write batch (Store.batch())."""
    @property
    def pending(self) -> bool: ...
    def __setitem__(self, key: _BytesLike, value: _BytesLike) -> None: ...
    def __delitem__(self, key: _BytesLike) -> None: ...
    def __len__(self) -> int: ...
    def put(self, key: _BytesLike, value: _BytesLike, /) -> None: ...
    def delete(self, key: _BytesLike, /) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...
    def __enter__(self) -> "Batch": ...
    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None: ...


class ReadView:
    """Zero-copy reads (Store.read()): r[key] is a memoryview."""
    @property
    def closed(self) -> bool: ...
    @property
    def exports(self) -> int: ...
    def __getitem__(self, key: _BytesLike) -> memoryview: ...
    def __contains__(self, key: object) -> bool: ...
    @overload
    def get(self, key: _BytesLike) -> Optional[memoryview]: ...
    @overload
    def get(self, key: _BytesLike, default: _T) -> Union[memoryview, _T]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "ReadView": ...
    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None: ...


class Iterator(_Iterator[_T]):
    """Keys, values or items of a store, in file order."""
    def __iter__(self) -> "Iterator[_T]": ...
    def __next__(self) -> _T: ...


class Error(Exception):
    """Base class of mapkv's errors; `code` is the C library's code."""
    code: Optional[int]

class NotFoundError(Error, KeyError):
    code: int
class InvalidArgumentError(Error, ValueError):
    code: int
class NotAStoreError(Error):
    code: int
class VersionError(Error):
    code: int
class TruncatedError(Error):
    code: int
class CorruptError(Error):
    code: int
    #: set by Store.verify(): every damaged span as (offset, length, reason)
    damage: List[Tuple[int, int, str]]
class KeySizeError(Error, ValueError):
    code: int
class ValueSizeError(Error, ValueError):
    code: int
class ReadOnlyError(Error):
    code: int
class LockedError(Error):
    code: int
class FullError(Error):
    code: int
class BufferTooSmallError(Error):
    code: int
class ChangedError(Error):
    code: int
class OutOfMemoryError(Error, MemoryError):
    code: int
class MovedError(Error):
    code: int
class BusyError(Error):
    code: int
