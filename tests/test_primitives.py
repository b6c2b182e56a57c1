"""Versions, conditional writes, counters, watch and bulk delete, over every backend (fake
clock, no sleeping)."""

from __future__ import annotations

import pytest

from prontodb import keyspace, record
from prontodb.errors import (
    CounterOverflowError,
    InvalidAddressError,
    NotACounterError,
    NotFoundError,
    UsageError,
)
from prontodb.store import COUNTER_MAX, COUNTER_MIN, WatchEvent

# -- revisions and versions -------------------------------------------------------------------


def test_every_write_raises_the_revision_and_stamps_the_entry(store, clock):
    assert store.revision() == 0
    store.set("p.n.a", b"1")
    first = store.entry("p.n.a")
    assert (first.value, first.version, first.written_at) == (b"1", 1, clock.now)
    clock.advance(2.5)
    store.set("p.n.b", b"2")
    store.set("p.n.a", b"3")
    again = store.entry("p.n.a")
    assert again.version == 3 and again.written_at == clock.now
    assert store.revision() == 3
    store.expire("p.n.a", 60)
    assert store.entry("p.n.a").version == 4 == store.revision()
    store.persist("p.n.a")
    store.delete("p.n.b")
    store.set_many([("p.n.c", b"c"), ("p.n.d", b"d")])
    store.create_cache("p.tmp", 60)
    store.drop_cache("p.tmp")
    assert store.revision() == 9
    # one bulk write is one revision: all of its entries share it
    assert store.entry("p.n.c").version == store.entry("p.n.d").version == 7


def test_a_write_that_changes_nothing_leaves_the_revision(store):
    store.set("p.n.a", b"1")
    assert store.delete("p.n.missing") is False
    assert store.set("p.n.a", b"2", only_if_absent=True) is False
    assert store.drop_cache("p.none") is False
    assert store.revision() == 1


def test_versions_never_repeat_for_a_recreated_entry(store):
    store.set("p.n.a", b"1")
    old = store.entry("p.n.a").version
    store.delete("p.n.a")
    store.set("p.n.a", b"1")
    assert store.entry("p.n.a").version > old


def test_listings_carry_version_and_write_time(store, clock):
    store.set("p.n.a", b"1")
    store.set("p.n.b", b"2", ttl=60)
    found = {str(e.address): (e.version, e.written_at) for e in store.entries("p.n")}
    assert found == {"p.n.a": (1, clock.now), "p.n.b": (2, clock.now)}
    assert list(store.scan("p.n")) == [("a", b"1"), ("b", b"2")]


def test_revision_lives_in_the_store_facts_keyspace(store):
    store.set("p.n.a", b"1")
    assert store.backend.get(keyspace.INFO_REVISION) == b"1"
    assert store.envelope_formats() == {2: 1}


def test_write_unit_joins_an_open_transaction_and_rolls_back_with_it(store):
    store.set("p.n.a", b"1")
    with pytest.raises(RuntimeError), store.transaction():
        store.set("p.n.a", b"2")
        store.incr("p.n.c")
        raise RuntimeError("abort")
    assert store.get("p.n.a") == b"1"
    assert not store.exists("p.n.c")
    assert store.revision() == 1


def test_run_transaction_runs_fn_with_the_store(store):
    def move_one(s):
        value = s.get("p.n.a")
        s.delete("p.n.a")
        s.set("p.n.b", value)
        return value

    store.set("p.n.a", b"x")
    assert store.run_transaction(move_one) == b"x"
    assert store.get("p.n.b") == b"x" and not store.exists("p.n.a")


# -- conditional writes -----------------------------------------------------------------------


def test_only_if_absent_takes_a_lock_once(store, clock):
    assert store.set("p.n.lock", b"me", only_if_absent=True) is True
    assert store.set("p.n.lock", b"you", only_if_absent=True) is False
    assert store.get("p.n.lock") == b"me"


def test_only_if_absent_treats_an_expired_entry_as_absent(store, clock):
    store.set("p.n.lock", b"old", ttl=10)
    clock.advance(10)
    assert store.set("p.n.lock", b"new", only_if_absent=True) is True
    assert store.get("p.n.lock") == b"new"


def test_only_if_present(store):
    assert store.set("p.n.k", b"1", only_if_present=True) is False
    assert not store.exists("p.n.k")
    store.set("p.n.k", b"1")
    assert store.set("p.n.k", b"2", only_if_present=True) is True
    assert store.get("p.n.k") == b"2"


def test_if_version_is_compare_and_set(store, clock):
    assert store.set("p.n.k", b"x", if_version=0) is False  # no entry: never matches
    store.set("p.n.k", b"1")
    version = store.entry("p.n.k").version
    assert store.set("p.n.k", b"2", if_version=version + 1) is False
    assert store.set("p.n.k", b"2", if_version=version) is True
    assert store.set("p.n.k", b"3", if_version=version) is False  # it moved on
    assert store.get("p.n.k") == b"2"
    store.set("p.n.t", b"1", ttl=5)
    dead = store.entry("p.n.t").version
    clock.advance(5)
    assert store.set("p.n.t", b"2", if_version=dead) is False  # a dead entry never matches


def test_conditions_exclude_each_other_and_versions_are_ints(store):
    with pytest.raises(UsageError):
        store.set("p.n.k", b"1", only_if_absent=True, only_if_present=True)
    with pytest.raises(UsageError):
        store.set("p.n.k", b"1", only_if_absent=True, if_version=3)
    for bad in (-1, "3", 1.0, True):
        with pytest.raises(UsageError):
            store.set("p.n.k", b"1", if_version=bad)
    assert not store.exists("p.n.k")


def test_conditional_set_keeps_ttl_rules(store, clock):
    store.create_cache("p.tmp", 60)
    assert store.set("p.tmp.k", b"1", only_if_absent=True)
    assert store.ttl("p.tmp.k") == 60
    store.set("p.n.k", b"1", ttl=30)
    assert store.set("p.n.k", b"2", only_if_present=True, keep_ttl=True)
    assert store.ttl("p.n.k") == 30


def test_entry_and_get_entry_agree_and_miss_alike(store):
    store.set("p.n.k", b"v", ttl=60)
    assert store.entry("p.n.k") == store.get_entry("p.n.k")
    with pytest.raises(NotFoundError):
        store.entry("p.n.missing")


# -- counters ---------------------------------------------------------------------------------


def test_incr_counts_from_zero_and_writes_bare_decimal(store):
    assert store.incr("p.n.c") == 1
    assert store.incr("p.n.c", 41) == 42
    assert store.decr("p.n.c", 50) == -8
    assert store.decr("p.n.c") == -9
    assert store.get("p.n.c") == b"-9"


def test_incr_accepts_what_echo_writes(store):
    store.set("p.n.c", b" +5\n")
    assert store.incr("p.n.c") == 6


@pytest.mark.parametrize("value", [b"", b"abc", b"1.5", b"1 2", b"0x10", b"\xff", b"--1"])
def test_incr_refuses_a_non_integer_and_changes_nothing(store, value):
    store.set("p.n.c", value)
    before = store.entry("p.n.c")
    with pytest.raises(NotACounterError) as info:
        store.incr("p.n.c")
    assert info.value.address == "p.n.c" and info.value.value == value
    assert store.entry("p.n.c") == before


def test_counter_is_64_bit_signed(store):
    store.set("p.n.c", str(COUNTER_MAX - 1).encode())
    assert store.incr("p.n.c") == COUNTER_MAX
    with pytest.raises(CounterOverflowError) as info:
        store.incr("p.n.c")
    assert (info.value.value, info.value.by) == (COUNTER_MAX, 1)
    assert store.get("p.n.c") == str(COUNTER_MAX).encode()
    store.set("p.n.d", str(COUNTER_MIN).encode())
    with pytest.raises(CounterOverflowError):
        store.decr("p.n.d")
    with pytest.raises(CounterOverflowError):
        store.incr("p.n.e", COUNTER_MAX + 1)
    store.set("p.n.f", str(COUNTER_MAX + 1).encode())
    with pytest.raises(NotACounterError):
        store.incr("p.n.f", 0)
    with pytest.raises(UsageError):
        store.incr("p.n.g", 1.5)  # type: ignore[arg-type]
    assert not store.exists("p.n.e") and not store.exists("p.n.g")


def test_incr_keeps_ttl_and_a_new_counter_gets_the_namespace_default(store, clock):
    store.set("p.n.c", b"1", ttl=100)
    clock.advance(40)
    assert store.incr("p.n.c") == 2
    assert store.ttl("p.n.c") == 60
    store.create_cache("p.tmp", 30)
    store.incr("p.tmp.c")
    assert store.ttl("p.tmp.c") == 30
    clock.advance(60)
    assert store.incr("p.n.c") == 1  # expired: counts from 0 again


def test_incr_on_an_invalid_address(store):
    with pytest.raises(InvalidAddressError):
        store.incr("not an address")


# -- watch --------------------------------------------------------------------------------------


class Script:
    """A fake sleep: advances the clock and runs the scheduled writes due by then."""

    def __init__(self, clock, actions=()):
        self.clock = clock
        self.actions = sorted(actions, key=lambda a: a[0])
        self.slept: list[float] = []

    def __call__(self, seconds):
        self.slept.append(seconds)
        self.clock.advance(seconds)
        while self.actions and self.actions[0][0] <= self.clock.now:
            self.actions.pop(0)[1]()


def test_watch_times_out_with_none(store, clock):
    store.set("p.n.k", b"1")
    sleep = Script(clock)
    start = clock.now
    assert store.watch("p.n.k", timeout=2, sleep=sleep) is None
    assert clock.now - start == pytest.approx(2)
    assert max(sleep.slept) <= 0.05  # the poll interval is capped
    assert sleep.slept[0] < sleep.slept[-1]  # and backs off


def test_watch_sees_a_write(store, clock):
    store.set("p.n.k", b"1")
    t0 = clock.now
    sleep = Script(clock, [(t0 + 1, lambda: store.set("p.n.k", b"2"))])
    event = store.watch("p.n.k", timeout=10, sleep=sleep)
    assert event is not None and event.kind == "written"
    assert event.entry is not None and event.entry.value == b"2"
    assert clock.now - t0 < 1.06  # woke within one capped interval


def test_watch_ignores_writes_elsewhere(store, clock):
    store.set("p.n.k", b"1")
    t0 = clock.now
    sleep = Script(
        clock,
        [(t0 + 0.5, lambda: store.set("p.n.other", b"x")), (t0 + 1, lambda: store.delete("p.n.k"))],
    )
    assert store.watch("p.n.k", timeout=10, sleep=sleep) == WatchEvent("deleted", None)
    assert clock.now - t0 >= 1


def test_watch_waits_for_a_missing_key_to_be_created(store, clock):
    t0 = clock.now
    sleep = Script(clock, [(t0 + 3, lambda: store.incr("p.n.k"))])
    event = store.watch("p.n.k", sleep=sleep)
    assert event is not None and event.kind == "written" and event.entry.value == b"1"


def test_watch_wakes_at_the_entry_deadline(store, clock):
    store.set("p.n.k", b"1", ttl=5)
    t0 = clock.now
    assert store.watch("p.n.k", timeout=60, sleep=Script(clock)) == WatchEvent("expired", None)
    assert clock.now - t0 == pytest.approx(5)


def test_watch_sees_ttl_changes_as_writes(store, clock):
    store.set("p.n.k", b"1")
    sleep = Script(clock, [(clock.now + 1, lambda: store.expire("p.n.k", 60))])
    event = store.watch("p.n.k", timeout=10, sleep=sleep)
    assert event is not None and event.kind == "written" and event.entry.expires_at is not None


# -- bulk delete --------------------------------------------------------------------------------


def fill(store):
    for address in ["p.a.x", "p.a.y", "p.a.y__dev", "p.b.x", "q.a.x"]:
        store.set(address, b"v")
    store.layer(user="other").set("p.a.x", b"theirs")
    store.layer(meta="m").set("p.a.x", b"meta")


def test_delete_scope_namespace_project_and_pattern(store):
    fill(store)
    assert store.delete_scope("p.a", "y*", dry_run=True) == 2
    assert store.keys() == ["p.a.x", "p.a.y", "p.a.y__dev", "p.b.x", "q.a.x"]
    revision = store.revision()
    assert store.delete_scope("p.a", "y*") == 2
    assert store.revision() == revision + 1  # one transaction
    assert store.keys() == ["p.a.x", "p.b.x", "q.a.x"]
    assert store.delete_scope("p") == 2
    assert store.keys() == ["q.a.x"]
    assert store.delete_scope("p") == 0
    assert store.revision() == revision + 2
    # other layers are untouched
    assert store.layer(user="other").get("p.a.x") == b"theirs"
    assert store.layer(meta="m").get("p.a.x") == b"meta"


def test_delete_scope_counts_only_live_entries_but_removes_expired(store, clock):
    store.set("p.a.live", b"v")
    store.set("p.a.dead", b"v", ttl=1)
    clock.advance(1)
    assert store.delete_scope("p.a") == 1
    assert list(store.backend.scan(keyspace.scope_prefix(store._layer, ("p",)))) == []


def test_delete_scope_needs_a_scope(store):
    fill(store)
    for bad in ("", "p.a.x.y", "bad scope"):
        with pytest.raises(InvalidAddressError):
            store.delete_scope(bad)
    assert len(store.keys()) == 5


# -- the envelope ---------------------------------------------------------------------------


def test_envelope_round_trip_and_both_formats():
    raw = record.pack(b"v", 1234, 7, 99)
    assert record.unpack(raw) == record.Record(b"v", 1234, 7, 99)
    assert raw.startswith(record.header(1234, 7, 99))
    old = bytes([1]) + (0).to_bytes(8, "big") + b"old"
    assert record.unpack(old) == record.Record(b"old", None, 0, None)
    assert record.value_of(old) == b"old" and record.version_of(old) == 0
    assert record.format_counts([raw, old, raw]) == {1: 1, 2: 2}
    assert record.expired(record.pack(b"", 1000), 1.0)
    assert not record.expired(record.pack(b"", 1000), 0.999)
    assert not record.expired(record.pack(b"", None), 1e12)


def test_write_entries_keeps_a_given_write_time_and_gives_a_fresh_version(store, clock):
    store.set("p.n.old", b"x")
    a, b = store.address("p.n.a"), store.address("p.n.b")
    store.write_entries([(a, b"1", None, 1_600_000_000.5), (b, b"2", None)])
    first, second = store.entry("p.n.a"), store.entry("p.n.b")
    assert (first.written_at, second.written_at) == (1_600_000_000.5, clock.now)
    assert first.version == second.version == 2 == store.revision()
