#!/usr/bin/env python3
"""bench.py: mapkv from Python against the peers a Python program would
reach for, in one run, on the same data.

    PYTHONPATH=build/python python3 python/bench.py            # 1M records
    PYTHONPATH=build/python python3 python/bench.py --num 200000 --repeat 1
    PYTHONPATH=build/python python3 python/bench.py --quick     # smoke test

Peers, each skipped when not installed: py-lmdb (Debian python3-lmdb),
plyvel (LevelDB, python3-plyvel), dbm.gnu (python3-gdbm), and a dict (the
interpreter's own floor for a loop of lookups).

Data: record i has the key b"%016x" % (2 * i) (16 bytes) and a 100-byte
value, one of 4096 random patterns; keys and values are made before any
timing. Workloads, each a plain Python loop:

  fill     every record once in a random order, in batches of 1000, not
           durable per commit: mapkv sync='none' and Batch; LMDB one write
           transaction per batch (sync=False, metasync=False, writemap=True);
           LevelDB WriteBatch (sync=False); dbm.gnu and dict plain stores
           (no batches)
  get      --num gets of random present keys: mapkv db[k]; LMDB txn.get(k)
           in one read transaction with buffers=True (a zero-copy buffer, the
           fastest py-lmdb get); LevelDB db.get(k); dbm.gnu db[k]; dict d[k].
           Rows for mapkv's other ways to get: db.get(k), r[k] in a read
           view (zero-copy memoryview), get_many() of 32 keys a call; and
           the dict's loop over its own key objects (hashes cached, keys
           compared by identity: the interpreter's best case).
           The keys are new bytes objects (equal to the stored keys, their
           hashes not yet computed), as keys a program reads or builds are
  get+format  the same gets with each key formatted in the loop
           (b"%016x" % i), a loop whose own cost is closer to a program's
  big      one get of a value of 100 B, 64 KiB, 1 MiB and 16 MiB, timed per
           call (median of many): mapkv r[k] (zero-copy) and db[k] (a copy),
           LMDB buffers=True; and the memory one result holds (tracemalloc)

Every get's result is checked once outside the timed loops (a sample of
the keys). Each figure is the median of --repeat rounds; the stores take
turns within a round. The report prints the machine and its load.
"""
import argparse
import gc
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc

# This directory holds the package's sources, not its build: take mapkv
# from PYTHONPATH or from the installed package instead.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
import mapkv  # noqa: E402

try:
    import lmdb
except ImportError:
    lmdb = None
try:
    import plyvel
except ImportError:
    plyvel = None
try:
    import dbm.gnu as gdbm
except ImportError:
    gdbm = None

BATCH = 1000


def make_data(n, seed):
    rng = random.Random(seed)
    patterns = [rng.randbytes(100) for _ in range(4096)]
    keys = [b"%016x" % (2 * i) for i in range(n)]
    values = [patterns[i & 4095] for i in range(n)]
    order = list(range(n))
    rng.shuffle(order)
    fill_keys = [keys[i] for i in order]
    fill_values = [values[i] for i in order]
    # The keys to get are new objects (equal to the stored keys, not the
    # same objects, their hashes not computed yet), as keys that a program
    # reads or builds are.
    nums = [2 * rng.randrange(n) for _ in range(n)]
    gets = [b"%016x" % i for i in nums]
    expect = dict(zip(keys, values))
    return fill_keys, fill_values, gets, nums, expect


def timed(fn):
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def chunks(keys, values):
    for i in range(0, len(keys), BATCH):
        yield keys[i:i + BATCH], values[i:i + BATCH]


def check(get, gets, expect, sample=2000):
    for k in gets[:sample]:
        got = get(k)
        if bytes(got) != expect[k]:
            raise AssertionError("wrong value for %r" % k)


# ---- one adapter per store: fill, then the get loops ------------------

class Mapkv:
    name = "mapkv"

    def __init__(self, d, n):
        self.path = os.path.join(d, "store.mkv")
        self.n = n

    def fill(self, keys, values):
        db = self.db = mapkv.open(self.path, sync="none",
                                  expected_keys=self.n)

        def run():
            for ks, vs in chunks(keys, values):
                with db.batch() as b:
                    for k, v in zip(ks, vs):
                        b[k] = v
        return timed(run)

    def gets(self, gets, nums, expect):
        db = self.db
        check(db.__getitem__, gets, expect)

        def subscript():
            for k in gets:
                db[k]

        def formatted():
            for i in nums:
                db[b"%016x" % i]

        def get():
            g = db.get
            for k in gets:
                g(k)

        def view():
            with db.read() as r:
                for k in gets:
                    r[k]

        def many():
            gm = db.get_many
            for i in range(0, len(gets), 32):
                gm(gets[i:i + 32])

        with db.read() as r:
            check(r.__getitem__, gets, expect)
        return {"get": timed(subscript), "get+format": timed(formatted),
                "get:db.get(k)": timed(get),
                "get:read view r[k]": timed(view),
                "get:get_many(32 keys)": timed(many)}

    def close(self):
        self.db.close()


class Lmdb:
    name = "py-lmdb"

    def __init__(self, d, n):
        self.path = os.path.join(d, "lmdb")
        self.map_size = max(1 << 30, 4 * n * 116)

    def fill(self, keys, values):
        env = self.env = lmdb.open(self.path, map_size=self.map_size,
                                   sync=False, metasync=False, writemap=True,
                                   readahead=False, lock=True)

        def run():
            for ks, vs in chunks(keys, values):
                with env.begin(write=True) as txn:
                    put = txn.put
                    for k, v in zip(ks, vs):
                        put(k, v)
        return timed(run)

    def gets(self, gets, nums, expect):
        with self.env.begin(buffers=True) as txn:
            check(txn.get, gets, expect)

            def run():
                get = txn.get
                for k in gets:
                    get(k)

            def formatted():
                get = txn.get
                for i in nums:
                    get(b"%016x" % i)
            return {"get": timed(run), "get+format": timed(formatted)}

    def close(self):
        self.env.close()


class Leveldb:
    name = "plyvel (LevelDB)"

    def __init__(self, d, n):
        self.path = os.path.join(d, "leveldb")

    def fill(self, keys, values):
        db = self.db = plyvel.DB(self.path, create_if_missing=True,
                                 write_buffer_size=64 << 20,
                                 lru_cache_size=256 << 20,
                                 bloom_filter_bits=10, compression=None)

        def run():
            for ks, vs in chunks(keys, values):
                with db.write_batch(sync=False) as wb:
                    put = wb.put
                    for k, v in zip(ks, vs):
                        put(k, v)
        return timed(run)

    def gets(self, gets, nums, expect):
        db = self.db
        check(db.get, gets, expect)

        def run():
            get = db.get
            for k in gets:
                get(k)

        def formatted():
            get = db.get
            for i in nums:
                get(b"%016x" % i)
        return {"get": timed(run), "get+format": timed(formatted)}

    def close(self):
        self.db.close()


class Gdbm:
    name = "dbm.gnu"

    def __init__(self, d, n):
        self.path = os.path.join(d, "gdbm")

    def fill(self, keys, values):
        db = self.db = gdbm.open(self.path, "nfu")

        def run():
            for k, v in zip(keys, values):
                db[k] = v
        return timed(run)

    def gets(self, gets, nums, expect):
        db = self.db
        check(db.__getitem__, gets, expect)

        def run():
            for k in gets:
                db[k]

        def formatted():
            for i in nums:
                db[b"%016x" % i]
        return {"get": timed(run), "get+format": timed(formatted)}

    def close(self):
        self.db.close()


class Dict:
    name = "dict"

    def __init__(self, d, n):
        pass

    def fill(self, keys, values):
        d = self.d = {}

        def run():
            for k, v in zip(keys, values):
                d[k] = v
        return timed(run)

    def gets(self, gets, nums, expect):
        d = self.d
        check(d.__getitem__, gets, expect)
        stored = {k: k for k in d}
        same = [stored[k] for k in gets]

        def run():
            for k in gets:
                d[k]

        def formatted():
            for i in nums:
                d[b"%016x" % i]

        def run_same():
            for k in same:
                d[k]
        return {"get": timed(run), "get+format": timed(formatted),
                "get:the stored key objects": timed(run_same)}

    def close(self):
        self.d = None


def stores():
    out = [Mapkv]
    if lmdb is not None:
        out.append(Lmdb)
    if plyvel is not None:
        out.append(Leveldb)
    if gdbm is not None:
        out.append(Gdbm)
    out.append(Dict)
    return out


# ---- big values ------------------------------------------------------

BIG_SIZES = [100, 64 << 10, 1 << 20, 16 << 20]


def per_call(fn, calls):
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def allocated(fn):
    """Bytes of Python memory that one call's result holds."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del result
    return grown


def big_values(d, calls):
    rng = random.Random(7)
    vals = {size: rng.randbytes(size) for size in BIG_SIZES}
    rows, mem = {}, {}
    path = os.path.join(d, "big.mkv")
    with mapkv.open(path, sync="none") as db:
        for size, v in vals.items():
            db[b"v%d" % size] = v
        with db.read() as r:
            for size, v in vals.items():
                k = b"v%d" % size
                assert r[k] == v
                rows.setdefault("mapkv r[k] (memoryview)", {})[size] = \
                    per_call(lambda: r[k], calls)
                mem.setdefault("mapkv r[k] (memoryview)", {})[size] = \
                    allocated(lambda: r[k])
        for size in vals:
            k = b"v%d" % size
            rows.setdefault("mapkv db[k] (bytes, a copy)", {})[size] = \
                per_call(lambda: db[k], max(20, calls // 10))
            mem.setdefault("mapkv db[k] (bytes, a copy)", {})[size] = \
                allocated(lambda: db[k])
    if lmdb is not None:
        env = lmdb.open(os.path.join(d, "big-lmdb"), map_size=1 << 30,
                        sync=False, metasync=False)
        with env.begin(write=True) as txn:
            for size, v in vals.items():
                txn.put(b"v%d" % size, v)
        with env.begin(buffers=True) as txn:
            for size, v in vals.items():
                k = b"v%d" % size
                assert bytes(txn.get(k)) == v
                rows.setdefault("py-lmdb get, buffers=True", {})[size] = \
                    per_call(lambda: txn.get(k), calls)
        env.close()
    os.unlink(path)
    return rows, mem


# ---- the run -----------------------------------------------------------

def fmt_rate(n, seconds):
    return "%.0fK/s" % (n / seconds / 1000)


def fmt_time(s):
    if s < 1e-6:
        return "%.0f ns" % (s * 1e9)
    if s < 1e-3:
        return "%.1f us" % (s * 1e6)
    return "%.2f ms" % (s * 1e3)


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores, Linux %s, Python %s, load at start %.2f %.2f %.2f" % (
        cpu, os.cpu_count(), platform.release(), platform.python_version(),
        *os.getloadavg())


def versions():
    v = ["mapkv %s" % mapkv.__version__]
    if lmdb is not None:
        v.append("py-lmdb %s (LMDB %s)" % (lmdb.__version__,
                                           ".".join(map(str, lmdb.version()))))
    if plyvel is not None:
        v.append("plyvel %s" % plyvel.__version__)
    if gdbm is not None:
        v.append("dbm.gnu")
    return ", ".join(v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num", type=int, default=1000000,
                    help="records, and gets (default 1000000)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds; each figure is the median (default 3)")
    ap.add_argument("--big-calls", type=int, default=200,
                    help="timed calls per big-value size (default 200)")
    ap.add_argument("--dir", help="scratch directory (default: a new one "
                    "under $TMPDIR, removed afterwards)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--quick", action="store_true",
                    help="2000 records, 1 round, few big-value calls: a "
                    "check that every workload runs and reads right (the "
                    "ctest test python_bench_quick), not a measurement")
    args = ap.parse_args(argv)
    if args.quick:
        args.num, args.repeat, args.big_calls = 2000, 1, 3

    n = args.num
    print("bench.py --num %d --repeat %d" % (n, args.repeat))
    print("machine: %s" % machine())
    print("stores: %s" % versions())
    fill_keys, fill_values, gets, nums, expect = make_data(n, args.seed)
    results = {}  # (store, workload) -> [seconds per round]
    for rnd in range(args.repeat):
        for cls in stores():
            d = tempfile.mkdtemp(prefix="mapkv-pybench.", dir=args.dir)
            try:
                s = cls(d, n)
                results.setdefault((s.name, "fill"), []).append(
                    s.fill(fill_keys, fill_values))
                for w, t in s.gets(gets, nums, expect).items():
                    results.setdefault((s.name, w), []).append(t)
                s.close()
            finally:
                shutil.rmtree(d, ignore_errors=True)
        print("round %d of %d done, load %.2f"
              % (rnd + 1, args.repeat, os.getloadavg()[0]), file=sys.stderr)

    med = {k: statistics.median(v) for k, v in results.items()}
    names = [c.name for c in stores()]

    def rounds(key):
        return " ".join(fmt_rate(n, t) for t in results[key])

    print()
    print("| workload | store | ops/s | mapkv ÷ store | rounds |")
    print("|---|---|---:|---:|---|")
    for w in ("fill", "get", "get+format"):
        base = med[("mapkv", w)]
        for name in names:
            t = med[(name, w)]
            print("| %s | %s | %s | %.2f | %s |"
                  % (w, name, fmt_rate(n, t), t / base, rounds((name, w))))
        if w == "get":
            for (name, wl), t in sorted(med.items()):
                if wl.startswith("get:"):
                    print("| get | %s, %s | %s | %.2f | %s |"
                          % (name, wl[4:], fmt_rate(n, t), t / base,
                             rounds((name, wl))))

    d = tempfile.mkdtemp(prefix="mapkv-pybench.", dir=args.dir)
    try:
        big, mem = big_values(d, args.big_calls)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    sizes = " | ".join(("%d B" % s if s < 1024 else "%d KiB" % (s >> 10)
                        if s < 1 << 20 else "%d MiB" % (s >> 20))
                       for s in BIG_SIZES)
    print()
    print("| time of one get of a value of | %s |" % sizes)
    print("|---|" + "---:|" * len(BIG_SIZES))
    for row, by_size in big.items():
        print("| %s | " % row +
              " | ".join(fmt_time(by_size[s]) for s in BIG_SIZES) + " |")
    print()
    print("| memory one get's result holds, value of | %s |" % sizes)
    print("|---|" + "---:|" * len(BIG_SIZES))
    for row, by_size in mem.items():
        print("| %s | " % row +
              " | ".join("%d B" % by_size[s] for s in BIG_SIZES) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
