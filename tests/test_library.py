"""The library used the way a diskcache / sqlitedict / shelve user would use a store: paths as
pathlib.Path, the mapping protocol, TTLs as floats and timedeltas, a dict for set_many. Every
test runs on every engine (the ``store`` fixture of conftest is parametrized over them)."""

from __future__ import annotations

import array
import pathlib
from datetime import timedelta

import pytest

import prontodb
from prontodb import InvalidDurationError, NotFoundError, UsageError
from tests.conftest import EXTENSIONS, store_path


def test_open_takes_a_pathlib_path(tmp_path, file_backend_name):
    where = tmp_path / "sub" / f"cache{EXTENSIONS[file_backend_name]}"
    with prontodb.open(where) as store:
        store["app.users.alice"] = b"admin"
        assert store.engine == file_backend_name
        assert store.location == str(where)
    with prontodb.open(pathlib.PurePosixPath(where), create=False) as again:
        assert again["app.users.alice"] == b"admin"


def test_open_refuses_something_that_is_not_a_path():
    with pytest.raises(UsageError) as caught:
        prontodb.open(42)  # type: ignore[arg-type]
    assert caught.value.argument == "path"
    assert "path must be a str or os.PathLike" in str(caught.value)


def test_repr_shows_engine_and_location(store, backend_name):
    text = repr(store)
    assert f"engine={backend_name!r}" in text
    assert repr(store.location) in text
    assert store.engine == backend_name
    assert store.location == store.backend.path


def test_mapping_protocol(store):
    assert len(store) == 0
    assert "app.users.alice" not in store
    store["app.users.alice"] = b"admin"
    store["app.users.bob"] = "user"  # str is stored as UTF-8
    store["app.config.mode"] = bytearray(b"fast")
    assert store["app.users.alice"] == b"admin"
    assert store["app.users.bob"] == b"user"
    assert "app.users.alice" in store
    assert len(store) == 3
    assert list(store) == ["app.config.mode", "app.users.alice", "app.users.bob"]
    assert dict(store.items()) == {
        "app.config.mode": b"fast",
        "app.users.alice": b"admin",
        "app.users.bob": b"user",
    }
    assert list(store.values()) == [b"fast", b"admin", b"user"]
    assert store.keys() == list(store)  # keys() without a scope: every full address
    del store["app.users.bob"]
    assert "app.users.bob" not in store
    assert len(store) == 2


def test_a_miss_is_a_key_error(store):
    with pytest.raises(KeyError):
        store["app.users.nobody"]
    with pytest.raises(KeyError):
        del store["app.users.nobody"]
    with pytest.raises(NotFoundError):
        store.get("app.users.nobody")


def test_get_with_a_default(store):
    store["app.users.alice"] = b"admin"
    assert store.get("app.users.alice", b"none") == b"admin"
    assert store.get("app.users.nobody", b"none") == b"none"
    assert store.get("app.users.nobody", None) is None


def test_contains_is_false_for_what_is_not_an_address(store):
    store["app.users.alice"] = b"admin"
    assert 42 not in store
    assert None not in store
    with pytest.raises(prontodb.InvalidAddressError):
        "not an address!" in store  # noqa: B015 - the membership test is what raises


def test_an_empty_store_is_still_truthy(store):
    assert store
    assert bool(store) is True


def test_expired_entries_are_not_in_the_mapping(store, clock):
    store.set("app.sessions.s1", b"x", ttl=timedelta(seconds=30))
    store["app.sessions.s2"] = b"y"
    clock.advance(31)
    assert "app.sessions.s1" not in store
    assert list(store) == ["app.sessions.s2"]
    assert len(store) == 1
    assert store.get("app.sessions.s1", "gone") == "gone"
    with pytest.raises(KeyError):
        del store["app.sessions.s1"]


def test_float_ttl_keeps_milliseconds(store, clock):
    store.set("app.sessions.s", b"x", ttl=1.5)
    assert store.get_entry("app.sessions.s").expires_at == pytest.approx(clock.now + 1.5)
    assert store.ttl("app.sessions.s") == 2  # whole seconds, rounded up
    clock.advance(1.499)
    assert "app.sessions.s" in store
    clock.advance(0.001)
    assert "app.sessions.s" not in store


def test_timedelta_ttl(store, clock):
    store.set("app.sessions.s", b"x", ttl=timedelta(minutes=5))
    assert store.ttl("app.sessions.s") == 300
    store.expire("app.sessions.s", timedelta(milliseconds=250))
    assert store.ttl("app.sessions.s") == 1
    clock.advance(0.25)
    assert "app.sessions.s" not in store


def test_expire_takes_a_float(store, clock):
    store["app.sessions.s"] = b"x"
    store.expire("app.sessions.s", 2.5)
    assert store.get_entry("app.sessions.s").expires_at == pytest.approx(clock.now + 2.5)
    clock.advance(2.5)
    assert "app.sessions.s" not in store


def test_duration_strings_still_work(store):
    store.set("app.sessions.s", b"x", ttl="1h30m")
    assert store.ttl("app.sessions.s") == 5400


def test_create_cache_takes_a_timedelta_and_whole_seconds_only(store, clock):
    assert store.create_cache("app.sessions", timedelta(minutes=2)) == 120
    store["app.sessions.s"] = b"x"
    assert store.ttl("app.sessions.s") == 120
    with pytest.raises(InvalidDurationError) as caught:
        store.create_cache("app.sessions", 1.5)
    assert caught.value.rule == "whole seconds"
    assert caught.value.argument == "seconds"


@pytest.mark.parametrize(
    ("ttl", "rule"),
    [
        (0, "not positive"),
        (-1.5, "not positive"),
        (timedelta(0), "not positive"),
        (timedelta(seconds=-1), "not positive"),
        (0.0001, "too small"),
        (float("nan"), "malformed"),
        (float("inf"), "too large"),
        (1e15, "too large"),
        (timedelta(days=999_999_999), "too large"),
        (True, "malformed"),
        ([5], "malformed"),
        ("5 minutes", "malformed"),
    ],
)
def test_bad_ttls_are_refused_with_the_rule(store, ttl, rule):
    with pytest.raises(InvalidDurationError) as caught:
        store.set("app.sessions.s", b"x", ttl=ttl)
    assert caught.value.rule == rule
    assert caught.value.argument == "ttl"
    assert "--" not in str(caught.value)
    assert "app.sessions.s" not in store  # nothing written
    with pytest.raises(InvalidDurationError):
        store.set_many({"app.sessions.s": b"x"}, ttl=ttl)
    assert "app.sessions.s" not in store


def test_ttl_and_keep_ttl_name_python_arguments(store):
    with pytest.raises(UsageError) as caught:
        store.set("app.sessions.s", b"x", ttl=5, keep_ttl=True)
    assert str(caught.value) == "ttl and keep_ttl cannot be combined"
    assert caught.value.argument == ("ttl", "keep_ttl")
    assert caught.value.rule == "exclusive"


def test_set_many_takes_a_dict(store, clock):
    written = store.set_many(
        {"app.users.alice": b"admin", "app.users.bob": "user"}, ttl=timedelta(hours=1)
    )
    assert written == 2
    assert dict(store.items()) == {"app.users.alice": b"admin", "app.users.bob": b"user"}
    assert store.ttl("app.users.bob") == 3600


def test_set_many_takes_pairs_from_a_generator_and_partial_addresses(tmp_path, backend_name):
    path = store_path(tmp_path, backend_name)
    with prontodb.open(path, backend=backend_name, project="app", namespace="users") as store:
        assert store.set_many((f"u{i}", str(i)) for i in range(3)) == 3
        assert store["u2"] == b"2"
        assert list(store) == ["app.users.u0", "app.users.u1", "app.users.u2"]


def test_set_many_refuses_what_is_not_pairs(store):
    with pytest.raises(UsageError) as caught:
        store.set_many([("app.users.alice", b"a"), ("app.users.bob", b"b", b"extra")])
    assert caught.value.argument == "pairs"
    assert "item 1" in str(caught.value)
    assert len(store) == 0


def test_values_may_be_any_bytes_like(store):
    store["app.blobs.view"] = memoryview(b"abcdef")[2:4]
    store["app.blobs.array"] = array.array("B", [1, 2, 3])
    store.set_many({"app.blobs.ba": bytearray(b"z")})
    assert store["app.blobs.view"] == b"cd"
    assert store["app.blobs.array"] == b"\x01\x02\x03"
    assert store["app.blobs.ba"] == b"z"
    with pytest.raises(UsageError) as caught:
        store["app.blobs.bad"] = 42  # type: ignore[assignment]
    assert caught.value.argument == "value"


def test_iteration_streams_a_chunk_at_a_time(store):
    """A store bigger than one listing chunk: taking the first address reads one chunk of the
    backend scan, not the whole store."""
    from prontodb.store import _CHUNK

    total = 3 * _CHUNK + 7
    store.set_many({f"big.items.k{i:05d}": b"v" for i in range(total)})
    pulled = 0
    scan = store.backend.scan

    def counting_scan(*args, **kwargs):
        nonlocal pulled
        for row in scan(*args, **kwargs):
            pulled += 1
            yield row

    store.backend.scan = counting_scan  # type: ignore[method-assign]
    try:
        addresses = iter(store)
        assert next(addresses) == "big.items.k00000"
        assert pulled <= _CHUNK
        items = store.items()
        assert next(items) == ("big.items.k00000", b"v")
        assert pulled <= 2 * _CHUNK
        rest = list(addresses)
    finally:
        del store.backend.scan
    assert len(rest) == total - 1
    assert rest == sorted(rest)
    assert len(store) == total


def test_json_view(store):
    docs = prontodb.JsonStore(store)
    docs["app.profiles.alice"] = {"name": "Alice", "roles": ["admin"], "n": 1.5, "ok": None}
    assert docs["app.profiles.alice"] == {"name": "Alice", "roles": ["admin"], "n": 1.5, "ok": None}
    assert store["app.profiles.alice"] == b'{"name":"Alice","roles":["admin"],"n":1.5,"ok":null}'
    docs.set_many({"app.flags.beta": True, "app.flags.name": "é"})
    assert store["app.flags.name"] == '"é"'.encode()
    assert dict(docs.items("app.flags")) == {"beta": True, "name": "é"}
    assert docs.get("app.flags.none", 0) == 0
    assert "app.flags.beta" in docs and len(docs) == 3
    with pytest.raises(KeyError):
        docs["app.flags.none"]
    for bad in ({1, 2}, b"bytes", float("nan"), object()):
        with pytest.raises(UsageError) as caught:
            docs["app.flags.bad"] = bad
        assert (caught.value.argument, caught.value.rule) == ("value", "json")
    assert "app.flags.bad" not in store
    store["app.raw.blob"] = b"\xff not json"
    with pytest.raises(prontodb.DataFormatError, match="app.raw.blob"):
        docs["app.raw.blob"]


def test_async_store_serializes_concurrent_calls(tmp_path, backend_name):
    """Concurrent tasks on one AsyncStore: each write runs a transaction (a TTL namespace
    sweeps), which several threads on one Store at once would break; one worker never does."""
    import asyncio

    path = store_path(tmp_path, backend_name)

    async def main() -> tuple[int, bytes | None, int | None]:
        async with await prontodb.AsyncStore.open(path, backend=backend_name) as astore:
            await astore.run(astore.store.create_cache, "app.jobs", 60)
            await asyncio.gather(
                *(astore.set(f"app.jobs.j{i:03d}", b"queued") for i in range(200)),
                *(astore.get(f"app.jobs.j{i:03d}", None) for i in range(200)),
            )
            await astore.set_many({"app.jobs.extra": b"x"}, ttl=timedelta(seconds=5))
            return (
                await astore.count("app.jobs"),
                await astore.get("app.jobs.none", None),
                await astore.ttl("app.jobs.extra"),
            )

    assert asyncio.run(main()) == (201, None, 5)


def test_scan_bulk_and_one_at_a_time_chunks_agree_with_entries(store, clock):
    """scan() and keys() decode whole chunks in bulk when every entry in them has no deadline
    and no context; a chunk holding one entry that has either goes one entry at a time. Both
    paths, side by side in one listing, give what entries() gives."""
    from prontodb.address import Address
    from prontodb.store import _CHUNK

    total = 3 * _CHUNK
    store.set_many({f"mix.ns.k{i:05d}": b"v%d" % i for i in range(total)})
    # the second chunk: one entry with a deadline (and one that has expired); the third: one
    # entry with a context; the first stays plain
    store.set(f"mix.ns.k{_CHUNK + 10:05d}", b"ttl", ttl=60)
    store.set(f"mix.ns.k{_CHUNK + 20:05d}", b"gone", ttl=1)
    store.set(Address("mix", "ns", f"k{2 * _CHUNK + 5:05d}", "ctx"), b"in context")
    clock.advance(2)
    expected = [(e.address.relative(2, "."), e.value) for e in store.entries("mix.ns")]
    assert len(expected) == total  # one expired, one added in a context
    assert list(store.scan("mix.ns")) == expected
    assert store.keys("mix.ns") == [name for name, _ in expected]
    assert list(store.scan("mix.ns", "k0000*")) == [p for p in expected if p[0][:5] == "k0000"]
