"""Type stubs agree with the module; docstrings and signatures read well."""
import ast
import inspect
import os
import pydoc

import mapkv

STUB = os.path.join(os.path.dirname(mapkv.__file__), "__init__.pyi")


def stub_tree():
    with open(STUB) as f:
        return ast.parse(f.read())


def public(names):
    return {n for n in names if not n.startswith("_")}


def test_stub_names_match_the_module():
    tree = stub_tree()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
    assert public(names) == set(mapkv.__all__)


def test_stub_classes_match_the_types():
    for node in stub_tree().body:
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(mapkv, node.name)
        declared = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        declared |= {n.target.id for n in node.body
                     if isinstance(n, ast.AnnAssign)}
        for name in declared:
            if name == "damage":  # set on the instance by Store.verify()
                continue
            assert hasattr(cls, name), "%s.%s" % (node.name, name)
        if issubclass(cls, BaseException):
            continue
        runtime = public(vars(cls))
        assert runtime <= public(declared), (node.name,
                                             runtime - public(declared))


def test_signatures():
    sig = inspect.signature(mapkv.open)
    assert list(sig.parameters) == ["path", "create", "readonly", "sync",
                                    "expected_keys", "lock_timeout",
                                    "max_key_size", "max_value_size",
                                    "reserve", "salvage"]
    assert sig.parameters["sync"].default == "commit"
    for name in list(sig.parameters)[1:]:
        assert sig.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["lock_timeout"].default == 0
    assert sig.parameters["salvage"].default is False
    assert str(inspect.signature(mapkv.recover)) == \
        "(path, out=None, *, force=False, lock_timeout=0)"
    assert str(inspect.signature(mapkv.Store.get)) == \
        "(self, key, default=None, /)"
    assert str(inspect.signature(mapkv.Store.keys)) == "(self, /, prefix=b'')"
    assert str(inspect.signature(mapkv.ReadView.get)) == \
        "(self, key, default=None, /)"
    assert str(inspect.signature(mapkv.Batch.put)) == "(self, key, value, /)"


def test_help_reads_well():
    text = pydoc.render_doc(mapkv.Store, renderer=pydoc.plaintext)
    for needle in ("mapping of bytes keys to bytes values",
                   "get(self, key, default=None, /)",
                   "items(self, /, prefix=b'')", "batch(self, /)",
                   "read(self, /)", "compact(self, /)", "verify(self, /)",
                   "CorruptError", "BufferError", "sync_mode"):
        assert needle in text, needle
    for obj in (mapkv, mapkv.open, mapkv.recover, mapkv.Store, mapkv.Batch,
                mapkv.ReadView, mapkv.Iterator, mapkv.Error):
        assert obj.__doc__ and len(obj.__doc__) > 40, obj
    for cls in (mapkv.Store, mapkv.Batch, mapkv.ReadView):
        for name, member in vars(cls).items():
            if not name.startswith("_"):
                assert member.__doc__, "%s.%s" % (cls.__name__, name)
    text = pydoc.render_doc(mapkv.open, renderer=pydoc.plaintext)
    for needle in ("lock_timeout: seconds", "max_key_size, max_value_size",
                   "reserve:", "FullError", "salvage:", "NotAStoreError",
                   "CorruptError"):
        assert needle in text, needle
    text = pydoc.render_doc(mapkv.recover, renderer=pydoc.plaintext)
    for needle in ("recover(path, out=None, *, force=False, lock_timeout=0)",
                   "FileExistsError", "LockedError", "backup", "force"):
        assert needle in text, needle
    assert "import mapkv" in mapkv.__doc__
    assert mapkv.Store.__module__ == "mapkv"
    assert mapkv.__version__.count(".") == 2
