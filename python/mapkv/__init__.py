"""mapkv: an embedded key-value store on a memory-mapped file.

See help(mapkv.open) and help(mapkv.Store).
"""
from mapkv import _mapkv
from mapkv._mapkv import *  # noqa: F401,F403
from mapkv._mapkv import __version__  # noqa: F401

__doc__ = _mapkv.__doc__
__all__ = [name for name in dir(_mapkv) if not name.startswith("_")]
