"""Backend.put_counted, the store revision's hot path (one committed set), on every engine:
the counter rises by one per call, the entry is built for that number, a damaged counter
writes nothing, and inside a transaction it joins it (all or nothing)."""

from __future__ import annotations

import pytest

from prontodb import keyspace, record
from prontodb.errors import CorruptStoreError

COUNTER = keyspace.INFO_REVISION


def test_counter_rises_and_entry_is_built_for_it(open_backend):
    b = open_backend()
    assert b.put_counted(COUNTER, b"D\x00a", lambda n, _: b"v%d" % n) == 1
    assert b.put_counted(COUNTER, b"D\x00b", lambda n, _: b"v%d" % n) == 2
    assert b.get(COUNTER) == b"2"
    assert b.get(b"D\x00a") == b"v1"
    assert b.get(b"D\x00b") == b"v2"
    # Another handle sees (and continues) the same counter.
    other = open_backend()
    assert other.put_counted(COUNTER, b"D\x00a", lambda n, _: b"w%d" % n) == 3
    assert b.get(b"D\x00a") == b"w3"


def test_existing_counter_is_continued(open_backend):
    b = open_backend()
    b.put(COUNTER, b"41")
    assert b.put_counted(COUNTER, b"D\x00k", lambda n, _: b"v") == 42
    assert b.get(COUNTER) == b"42"


@pytest.mark.parametrize("bad", [b"x1", b"-3", b"", b"1 2", "٣".encode()])
def test_damaged_counter_writes_nothing(open_backend, bad):
    b = open_backend()
    b.put(COUNTER, bad)
    with pytest.raises(CorruptStoreError, match="counter"):
        b.put_counted(COUNTER, b"D\x00k", lambda n, _: b"v")
    assert b.get(b"D\x00k") is None
    assert b.get(COUNTER) == bad


def test_failing_build_writes_nothing(open_backend):
    b = open_backend()
    b.put_counted(COUNTER, b"D\x00k", lambda n, _: b"old")

    def build(n: int, found: bytes | None) -> bytes:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        b.put_counted(COUNTER, b"D\x00k", build)
    assert b.get(COUNTER) == b"1"
    assert b.get(b"D\x00k") == b"old"


def test_failing_build_inside_a_transaction_undoes_only_itself(open_backend):
    # sqlite writes the counter row before it builds the entry row, in one statement: a
    # failing build must take the counter row back with it, and leave the transaction usable.
    b = open_backend()

    def build(n: int, found: bytes | None) -> bytes:
        raise ValueError("no")

    with b.transaction():
        assert b.put_counted(COUNTER, b"D\x00a", lambda n, _: b"a") == 1
        with pytest.raises(ValueError, match="no"):
            b.put_counted(COUNTER, b"D\x00b", build)
        assert b.get(COUNTER) == b"1"
        assert b.put_counted(COUNTER, b"D\x00c", lambda n, _: b"c%d" % n) == 2
    assert b.get(COUNTER) == b"2"
    assert b.get(b"D\x00b") is None
    assert b.get(b"D\x00c") == b"c2"


def test_joins_an_open_transaction(open_backend):
    b = open_backend()
    with pytest.raises(RuntimeError), b.transaction():
        assert b.put_counted(COUNTER, b"D\x00a", lambda n, _: b"a") == 1
        assert b.put_counted(COUNTER, b"D\x00b", lambda n, _: b"b") == 2
        assert b.get(b"D\x00b") == b"b"
        raise RuntimeError
    assert b.get(COUNTER) is None
    assert b.get(b"D\x00a") is None
    with b.transaction():
        b.put_counted(COUNTER, b"D\x00a", lambda n, _: b"a")
        b.put_counted(COUNTER, b"D\x00b", lambda n, _: b"b")
    assert b.get(COUNTER) == b"2"


def test_large_value(open_backend):
    b = open_backend()
    big = bytes(range(256)) * 40_000
    b.put_counted(COUNTER, b"D\x00big", lambda n, _: record.pack(big, None, n, 7))
    assert record.unpack(b.get(b"D\x00big")) == record.Record(big, None, 1, 7)


def test_store_set_versions_grow_and_damaged_revision_is_reported(store):
    store.set("p.n.a", b"1")
    store.set("p.n.b", b"2", ttl=60)
    assert store.entry("p.n.a").version == 1
    assert store.entry("p.n.b").version == 2
    assert store.revision() == 2
    store.backend.put(COUNTER, b"garbage")
    with pytest.raises(CorruptStoreError):
        store.set("p.n.a", b"3")
    with pytest.raises(CorruptStoreError):
        store.revision()
    assert store.get("p.n.a") == b"1"


def test_also_is_read_in_the_same_transaction(open_backend):
    b = open_backend()
    seen = []

    def build(n: int, found: bytes | None) -> bytes:
        seen.append(found)
        return b"v"

    b.put_counted(COUNTER, b"D\x00k", build, also=b"T\x00x")
    b.put(b"T\x00x", b"60")
    b.put_counted(COUNTER, b"D\x00k", build, also=b"T\x00x")
    b.put_counted(COUNTER, b"D\x00k", build)
    assert seen[-3:] == [None, b"60", None]


def test_the_base_guards_hold_for_every_engine(open_backend):
    """put_counted and get_split are public methods of the base class: a write in a snapshot
    and any use after close are refused the same way on every engine (engines override only
    the primitives _put_counted/_get_split)."""
    from prontodb.errors import BackendError, UsageError

    b = open_backend()
    b.put(b"D\x00k", b"headbody")
    with b.snapshot():
        assert b.get_split(b"D\x00k", 4) == (b"head", b"body")
        with pytest.raises(UsageError):
            b.put_counted(COUNTER, b"D\x00k", lambda n, _: b"v")
    assert b.get(COUNTER) is None
    b.close()
    with pytest.raises(BackendError, match="closed"):
        b.get_split(b"D\x00k", 4)
    with pytest.raises(BackendError, match="closed"):
        b.put_counted(COUNTER, b"D\x00k", lambda n, _: b"v")
