"""Backend.get_split (the large-value read path of Store.get) returns exactly ``get``'s bytes,
cut in two, on every engine: small and file-sized values, missing keys, inside transactions
and snapshots; and Store.get of large values with and without a deadline, old envelopes too."""

from __future__ import annotations

import os

import pytest

from prontodb import record

SIZES = [0, 1, 24, 25, 26, 1000, 70_000, 3_000_000]


@pytest.mark.parametrize("size", SIZES)
def test_same_bytes_as_get(open_backend, size):
    b = open_backend()
    value = os.urandom(size)
    b.put(b"k", value)
    assert b.get_split(b"k", 25) == (value[:25], value[25:])
    assert b.get_split(b"missing", 25) is None
    with b.snapshot():
        assert b.get_split(b"k", 25) == (value[:25], value[25:])
    with b.transaction():
        b.put(b"k", value[::-1])
        assert b.get_split(b"k", 25) == (value[::-1][:25], value[::-1][25:])
    assert b"".join(b.get_split(b"k", 9)) == value[::-1]


def test_store_get_large_values(store, clock):
    big = os.urandom(5_000_000)
    store.set("p.n.plain", big)
    store.set("p.n.ttl", big, ttl=60)
    assert store.get("p.n.plain") == big
    assert store.get("p.n.ttl") == big
    clock.advance(61)
    assert store.get("p.n.ttl", None) is None
    # An envelope of an earlier release (format 1) is still read whole.
    key = store._key(store.address("p.n.old"))
    store.backend.put(key, bytes([record.FORMAT_V1]) + bytes(8) + big)
    assert store.get("p.n.old") == big
    store.backend.put(key, bytes([record.FORMAT_V1]) + bytes(8) + b"tiny")
    assert store.get("p.n.old") == b"tiny"
