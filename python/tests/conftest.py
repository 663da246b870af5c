"""Fixtures of the mapkv Python tests.

The tests import mapkv from PYTHONPATH (the build tree's python/
directory, as ctest runs them) or from an installed package. Scratch files
go under MAPKV_TEST_TMPDIR/python when it is set (ctest sets it), else
under pytest's own temporary directory.
"""
import os

import pytest

import mapkv


def pytest_configure(config):
    base = os.environ.get("MAPKV_TEST_TMPDIR")
    if base and not config.option.basetemp:
        config.option.basetemp = os.path.join(base, "python")


@pytest.fixture
def path(tmp_path):
    """The path of a store that does not exist yet."""
    return str(tmp_path / "store.mkv")


@pytest.fixture
def db(path):
    """A new store, not durable per commit (fast), closed afterwards."""
    store = mapkv.open(path, sync="none")
    yield store
    store.close()

