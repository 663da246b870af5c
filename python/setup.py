"""Builds the mapkv extension module (mapkv._mapkv).

The C library is compiled into the extension from ../src, so the package
needs nothing but a C compiler, the Python headers and xxHash (Debian:
build-essential python3-dev python3-setuptools libxxhash-dev):

    python3 -m venv --system-site-packages V
    V/bin/pip install --no-index --no-build-isolation ./python

CFLAGS in the environment is added to the compiler flags (for example
CFLAGS=-Werror, or sanitizer flags).
"""
import glob
import os
import re

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def rel(path):
    return os.path.relpath(path, HERE)


def version():
    with open(os.path.join(ROOT, "include", "mapkv", "mapkv.h")) as f:
        text = f.read()
    parts = [re.search(r"#define MAPKV_VERSION_%s (\d+)" % p, text).group(1)
             for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


library = sorted(glob.glob(os.path.join(ROOT, "src", "mmf", "*.c")) +
                 glob.glob(os.path.join(ROOT, "src", "store", "*.c")))
extension = sorted(glob.glob(os.path.join(HERE, "src", "*.c")))

setup(
    version=version(),
    ext_modules=[
        Extension(
            "mapkv._mapkv",
            sources=[rel(p) for p in extension + library],
            include_dirs=[rel(os.path.join(ROOT, "include")),
                          rel(os.path.join(ROOT, "src"))],
            define_macros=[("_GNU_SOURCE", None),
                           ("_FILE_OFFSET_BITS", "64")],
            extra_compile_args=["-std=c11", "-fvisibility=hidden", "-Wall",
                                "-Wextra", "-Wpedantic", "-Wshadow",
                                "-Wstrict-prototypes", "-Wvla"],
            libraries=["xxhash", "pthread"],
        )
    ],
)
