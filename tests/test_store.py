"""Store semantics over every backend: addresses, layers, TTL rules (fake clock), listing."""

from __future__ import annotations

import pytest

import prontodb
from prontodb.errors import InvalidAddressError, NotFoundError, UsageError, ValueTooLargeError


def test_set_get_bytes_and_str(store):
    store.set("p.n.k", b"\x00bin")
    store.set("p.n.s", "text é")
    assert store.get("p.n.k") == b"\x00bin"
    assert store.get("p.n.s") == "text é".encode()
    store.set("p.n.e", b"")
    assert store.get("p.n.e") == b""


def test_miss_raises_not_found_which_is_a_key_error(store):
    with pytest.raises(NotFoundError) as info:
        store.get("p.n.missing")
    assert isinstance(info.value, KeyError)
    assert "p.n.missing" in str(info.value)


def test_context_is_a_separate_entry(store):
    store.set("p.n.k", b"plain")
    store.set("p.n.k__dev", b"dev")
    assert store.get("p.n.k") == b"plain"
    assert store.get("p.n.k__dev") == b"dev"
    assert store.keys("p.n") == ["k", "k__dev"]


def test_order_independent_of_delimiter(store):
    for name in ["b", "a-b", "a", "a__z", "a__b", "A", "_x"]:
        store.set(f"p.n.{name}", b"")
    expected = ["A", "_x", "a", "a__b", "a__z", "a-b", "b"]
    assert store.keys("p.n") == expected
    piped = store.layer()
    piped.delim = "|"
    assert [k for k, _ in piped.scan("p|n")] == expected


def test_delete(store):
    store.set("p.n.k", b"1")
    assert store.delete("p.n.k") is True
    assert store.delete("p.n.k") is False


def test_partial_addresses_need_defaults(backend_path, backend_name, clock):
    with prontodb.open(backend_path, backend=backend_name, clock=clock) as s:
        with pytest.raises(InvalidAddressError, match="incomplete"):
            s.set("n.k", b"x")
        with pytest.raises(InvalidAddressError, match="incomplete"):
            s.set("k", b"x")
    with prontodb.open(backend_path, backend=backend_name, project="p", namespace="n") as s:
        s.set("k", b"1")
        s.set("m.k", b"2")
        assert s.get("p.n.k") == b"1"
        assert s.get("p.m.k") == b"2"


def test_scopes_and_patterns(store):
    for addr in ["a.x.k1", "a.x.k2", "a.y.k1", "b.x.k1"]:
        store.set(addr, addr.encode())
    assert store.keys() == ["a.x.k1", "a.x.k2", "a.y.k1", "b.x.k1"]
    assert store.keys("a") == ["x.k1", "x.k2", "y.k1"]
    assert store.keys("a.x", "*2") == ["k2"]
    assert store.keys("a", "*k1") == ["x.k1", "y.k1"]
    assert dict(store.scan("a.x")) == {"k1": b"a.x.k1", "k2": b"a.x.k2"}
    assert store.projects() == ["a", "b"]
    assert store.namespaces("a") == ["x", "y"]
    assert store.all_namespaces() == ["a.x", "a.y", "b.x"]
    with pytest.raises(InvalidAddressError):
        store.keys("a.x.k1")


def test_ttl_expiry_with_fake_clock(store, clock):
    store.set("p.n.k", b"v", ttl=10)
    assert store.ttl("p.n.k") == 10
    clock.advance(9.5)
    assert store.ttl("p.n.k") == 1
    assert store.get("p.n.k") == b"v"
    clock.advance(0.5)  # now == deadline: expired
    with pytest.raises(NotFoundError):
        store.get("p.n.k")
    assert store.keys() == []
    assert list(store.scan()) == []
    assert store.projects() == []
    assert store.count() == 0
    with pytest.raises(NotFoundError):
        store.ttl("p.n.k")


def test_ttl_units_and_bad_durations(store):
    store.set("p.n.k", b"v", ttl="15m")
    assert store.ttl("p.n.k") == 900
    for bad in (0, -1, "0", "x", "15x", "-5", "1.5"):
        with pytest.raises(prontodb.InvalidDurationError):
            store.set("p.n.bad", b"v", ttl=bad)
    with pytest.raises(NotFoundError):
        store.get("p.n.bad")


def test_plain_set_clears_ttl_unless_keep_ttl(store, clock):
    store.set("p.n.k", b"1", ttl=60)
    store.set("p.n.k", b"2", keep_ttl=True)
    assert store.ttl("p.n.k") == 60
    store.set("p.n.k", b"3")
    assert store.ttl("p.n.k") is None
    with pytest.raises(UsageError):
        store.set("p.n.k", b"4", ttl=5, keep_ttl=True)


def test_ttl_namespace_default(store, clock):
    store.create_cache("p.cache", "2m")
    assert store.caches()["p.cache"] == 120
    store.set("p.cache.k", b"v")
    assert store.ttl("p.cache.k") == 120
    store.set("p.cache.k2", b"v", ttl=5)
    assert store.ttl("p.cache.k2") == 5
    store.set("p.cache.k3", b"v", keep_ttl=True)  # new key: namespace default
    assert store.ttl("p.cache.k3") == 120
    store.create_cache("p.cache", 30)  # later writes only
    assert store.ttl("p.cache.k") == 120
    store.set("p.cache.k4", b"v")
    assert store.ttl("p.cache.k4") == 30
    assert store.drop_cache("p.cache") is True
    store.set("p.cache.k5", b"v")
    assert store.ttl("p.cache.k5") is None
    assert "p.cache" not in store.caches()


def test_pipe_cache_is_a_ttl_namespace_by_default(store):
    assert store.caches() == {"pipe.cache": 900}
    store.set("pipe.cache.x", b"v")
    assert store.ttl("pipe.cache.x") == 900


def test_expire_and_persist(store, clock):
    store.set("p.n.k", b"v")
    store.expire("p.n.k", 5)
    assert store.ttl("p.n.k") == 5
    store.persist("p.n.k")
    assert store.ttl("p.n.k") is None
    with pytest.raises(NotFoundError):
        store.expire("p.n.none", 5)
    with pytest.raises(NotFoundError):
        store.persist("p.n.none")


def test_expired_entry_delete_counts_as_miss(store, clock):
    store.set("p.n.k", b"v", ttl=1)
    clock.advance(2)
    assert store.delete("p.n.k") is False


def test_gc_removes_expired_in_every_layer(store, clock):
    other = store.layer(user="other", meta="m1")
    store.set("p.n.a", b"v", ttl=1)
    store.set("p.n.b", b"v")
    other.set("p.n.a", b"v", ttl=1)
    clock.advance(1)
    assert store.gc() == 2
    assert store.gc() == 0
    assert store.keys() == ["p.n.b"]
    from prontodb import keyspace

    assert len(list(store.backend.scan(keyspace.DATA))) == 1


def test_bounded_sweep_on_ttl_namespace_writes(store, clock):
    store.create_cache("p.c", 1)
    store.set_many([(f"p.c.k{i:03d}", b"v") for i in range(40)])
    clock.advance(2)
    from prontodb import keyspace

    before = len(list(store.backend.scan(keyspace.DATA)))
    store.set("p.c.new", b"v")
    after = len(list(store.backend.scan(keyspace.DATA)))
    assert before == 40
    assert before + 1 - after > 0  # some expired entries swept ...
    assert before + 1 - after <= 16  # ... but a bounded number
    assert store.get("p.c.new") == b"v"  # never the live one


def test_layers_are_isolated(store):
    bob = store.layer(user="bob")
    bob_m = store.layer(user="bob", meta="m")
    store.set("p.n.k", b"default")
    bob.set("p.n.k", b"bob")
    bob_m.set("p.n.k", b"bob-m")
    assert store.get("p.n.k") == b"default"
    assert bob.get("p.n.k") == b"bob"
    assert bob_m.get("p.n.k") == b"bob-m"
    bob_m.set("q.r.s", b"only-m")
    assert bob.projects() == ["p"]
    assert bob_m.projects() == ["p", "q"]
    assert store.keys() == ["p.n.k"]
    bob.create_cache("p.t", 10)
    assert "p.t" not in store.caches()


def test_set_many_is_all_or_nothing(store):
    with pytest.raises(InvalidAddressError):
        store.set_many([("p.n.a", b"1"), ("bad..addr", b"2")])
    assert store.keys() == []
    assert store.set_many([("p.n.a", b"1"), ("p.n.b", "2")], ttl=60) == 2
    assert store.ttl("p.n.b") == 60


def test_transaction_rolls_back(store):
    store.set("p.n.a", b"old")
    with pytest.raises(RuntimeError), store.transaction():
        store.set("p.n.a", b"new")
        store.set("p.n.b", b"new")
        raise RuntimeError
    assert store.get("p.n.a") == b"old"
    assert not store.exists("p.n.b")


def test_value_size_limit(backend_path, backend_name):
    with prontodb.open(backend_path, backend=backend_name, max_value_bytes=10) as s:
        s.set("p.n.ok", b"x" * 10)
        with pytest.raises(ValueTooLargeError):
            s.set("p.n.big", b"x" * 11)


def test_copy_and_move(store, clock):
    store.create_cache("d.c", 100)
    store.set("s.n.k", b"v", ttl=50)
    result = store.copy("s.n.k", "d.c.k")
    assert result.removed_source is False
    assert store.ttl("d.c.k") == 100
    store.copy("s.n.k", "d.n.k", keep_ttl=True)
    assert store.ttl("d.n.k") == 50
    store.move("s.n.k", "d.n.moved")
    assert not store.exists("s.n.k")
    assert store.get("d.n.moved") == b"v"
    with pytest.raises(NotFoundError):
        store.copy("s.n.k", "d.n.x")
    store.set("pipe.cache.1_abc_x", b"piped")
    assert store.copy("pipe.cache.1_abc_x", "d.n.home").removed_source is True
    assert not store.exists("pipe.cache.1_abc_x")
    store.set("pipe.cache.2_abc_x", b"piped")
    assert store.copy("pipe.cache.2_abc_x", "d.n.h2", keep=True).removed_source is False
    with pytest.raises(InvalidAddressError):
        store.copy("pipe.cache.2_abc_x", "bad..dst")
    assert store.exists("pipe.cache.2_abc_x")


def test_copy_between_backends(tmp_path):
    with prontodb.open(str(tmp_path / "a.sqlite")) as a, prontodb.open(str(tmp_path / "b.db")) as b:
        a.set("pipe.cache.k", b"v")
        assert a.copy("pipe.cache.k", "x.y.z", target=b).removed_source
        assert b.get("x.y.z") == b"v"
        assert not a.exists("pipe.cache.k")


def test_store_records_format_and_backend(backend_path, backend_name):
    from prontodb import keyspace

    with prontodb.open(backend_path, backend=backend_name) as s:
        assert s.backend.get(keyspace.INFO_FORMAT) == b"1"
        assert s.backend.get(keyspace.INFO_BACKEND) == backend_name.encode()


def test_bulk_writes_to_a_ttl_namespace_sweep_too(store, clock):
    from prontodb import keyspace

    store.create_cache("p.c", 1)
    store.set_many([(f"p.c.old{i:03d}", b"v") for i in range(40)])
    clock.advance(2)
    store.set_many([("p.c.new", b"v")])
    left = len(list(store.backend.scan(keyspace.DATA)))
    assert 41 - 16 <= left < 41  # a bounded number of expired entries went
    assert store.get("p.c.new") == b"v"
