"""Helpers shared by the mapkv Python tests."""


def fill(store, n, prefix=b"k", gen=0):
    """Puts n records key(i) -> value(i, gen) in one batch."""
    with store.batch() as b:
        for i in range(n):
            b[key(i, prefix)] = value(i, gen)


def key(i, prefix=b"k"):
    return prefix + b"%08d" % i


def value(i, gen=0, size=100):
    head = b"%08d:%04d:" % (i, gen)
    return (head * (size // len(head) + 1))[:size]
