"""The redis engine on real servers: the backend contract and the Store semantics on a
standalone server and on a cluster, plus what only a url engine has (URLs, layout, optimistic
transactions, snapshots, failures, durability)."""

from __future__ import annotations

import inspect
import multiprocessing
import os
import signal
import threading

import pytest

import prontodb
from prontodb.backends import redis as redis_engine
from prontodb.backends.redis import Location, RedisBackend, has_inline_password, redact
from prontodb.errors import (
    BackendError,
    ConfigError,
    InvalidNameError,
    ReadOnlyStoreError,
    StorageFullError,
    StoreNotFoundError,
    StoreRetiredError,
    UsageError,
    WriteConflictError,
)
from prontodb.testing import BackendContract
from tests import test_coordination as coordination_suite
from tests import test_library as library_suite
from tests import test_primitives as primitives_suite
from tests import test_store as store_suite
from tests._redis import CuttingProxy, fresh_store, start_server

# --- the shared suites, re-run on both deployments ---------------------------------------

_FIXTURES = {"store", "clock", "backend_name", "backend_path", "open_backend"}


def _store_tests(module) -> list[str]:  # noqa: ANN001
    """The tests of a Store suite that need nothing but the engine fixtures (the others build
    file paths of their own)."""
    return [
        name
        for name in dir(module)
        if name.startswith("test_")
        and name != "test_every_engine_is_covered"
        and set(inspect.signature(getattr(module, name)).parameters) <= _FIXTURES
    ]


for _module, _prefix in (
    (store_suite, "store"),
    (library_suite, "library"),
    (primitives_suite, "primitives"),
):
    for _name in _store_tests(_module):
        globals()[f"test_{_prefix}_{_name[5:]}"] = getattr(_module, _name)
# Processes racing counters, a --nx lock and a CAS loop on one redis store (the CLI and the
# library at once), as on every file engine.
for _name in (
    "test_counter_race_loses_no_increment",
    "test_set_nx_lock_has_exactly_one_winner",
    "test_compare_and_set_loop_loses_no_append",
):
    globals()[f"test_coordination_{_name[5:]}"] = getattr(coordination_suite, _name)


@pytest.fixture
def race_store(request, home, deployment) -> str:
    url = request.getfixturevalue("redis_url" if deployment == "standalone" else "cluster_url")
    prontodb.open(url).close()
    return url


class _RedisContract(BackendContract):
    engine = "redis"
    # The kit numbers further stores by file name; one round of 16 first opens is what a URL
    # can take (and what the default run does anyway).
    first_open_rounds_slow = 1

    def discard(self, location: str) -> None:
        try:
            RedisBackend(location, create=False).drop()
        except StoreNotFoundError:
            pass


class TestStandaloneContract(_RedisContract):
    @pytest.fixture
    def location(self, redis_url: str) -> str:
        return redis_url


class TestClusterContract(_RedisContract):
    @pytest.fixture
    def location(self, cluster_url: str) -> str:
        return cluster_url


@pytest.fixture(params=["standalone", "cluster"])
def deployment(request) -> str:
    return request.param


@pytest.fixture
def backend_name() -> str:
    return "redis"


@pytest.fixture
def backend_path(request, deployment) -> str:
    fixture = "redis_url" if deployment == "standalone" else "cluster_url"
    return request.getfixturevalue(fixture)


@pytest.fixture
def open_backend(backend_path):
    handles = []

    def opener(**kwargs):
        handle = RedisBackend(backend_path, **kwargs)
        handles.append(handle)
        return handle

    yield opener
    for handle in handles:
        handle.close()


# --- locations ----------------------------------------------------------------------------


def test_location_defaults_and_options(monkeypatch):
    loc = Location("redis://127.0.0.1:6379/2")
    assert loc.store == "default" and not loc.cluster
    assert loc.client_url == "redis://127.0.0.1:6379/2"
    loc = Location("rediss://u:pw@h:1/0?store=team&ssl_cert_reqs=none")
    assert loc.store == "team"
    assert loc.client_url == "rediss://u:pw@h:1/0?ssl_cert_reqs=none"
    assert loc.display == "rediss://u@h:1/0?store=team&ssl_cert_reqs=none"
    loc = Location("redis+cluster://a:1,b:2?store=t")
    assert loc.cluster and loc.nodes == ["a:1", "b:2"] and loc.client_url == "redis://a:1"
    monkeypatch.setenv("PDB_PW", "s3cret")
    assert Location("redis://h:1?password_env=PDB_PW").password == "s3cret"


@pytest.mark.parametrize(
    "url, error",
    [
        ("redis://h:1?store=", InvalidNameError),
        ("redis://h:1?store=a.b", InvalidNameError),
        ("redis://h:1?store=" + "x" * 33, InvalidNameError),
        ("redis://h:1?password_env=PDB_UNSET_VAR", ConfigError),
        ("redis://h:1?password=x", ConfigError),
        ("redis://a:1,b:2", ConfigError),
        ("http://h:1", ConfigError),
    ],
)
def test_bad_locations(url, error, monkeypatch):
    monkeypatch.delenv("PDB_UNSET_VAR", raising=False)
    with pytest.raises(error):
        Location(url)


def test_redaction():
    assert redact("redis://:pw@h:1/0?store=a") == "redis://h:1/0?store=a"
    assert redact("redis://user:pw@h:1") == "redis://user@h:1"
    assert redact("redis://h:1") == "redis://h:1"
    assert has_inline_password("redis://u:pw@h:1") and not has_inline_password("redis://u@h:1")


def test_open_by_url_and_missing_store(redis_url):
    with pytest.raises(StoreNotFoundError, match="no store at redis://"):
        prontodb.open(redis_url, create=False)
    with prontodb.open(redis_url) as store:
        store.set("p.n.k", b"v")
    with prontodb.open(redis_url, create=False) as store:
        assert store.get("p.n.k") == b"v"
    with pytest.raises(ConfigError):
        prontodb.open(redis_url, backend="sqlite")


# --- layout -------------------------------------------------------------------------------


def test_layout_one_slot_index_and_no_redis_expiry(redis_server, clock):
    name = fresh_store()
    url = f"redis://{redis_server.address}/0?store={name}"
    with prontodb.open(url, clock=clock) as store:
        store.create_cache("p.c", 60)
        store.set("p.c.k", b"v")
        store.set("p.n.k", b"w", ttl=30)
    raw = redis_server.client()
    tag = f"{{pdb:{name}}}".encode()
    names = list(raw.scan_iter(match=tag + b"*"))
    assert names and all(n.startswith(tag) for n in names)
    members = raw.zrange(tag + b":idx", 0, -1, withscores=True)
    assert {score for _, score in members} == {0.0}
    assert [m for m, _ in members] == sorted(m for m, _ in members)
    # Expiry is the Store's: no value key carries a Redis expiry.
    for member, _ in members:
        assert raw.pttl(tag + b":v:" + member) == -1
    assert raw.get(tag + b":rev") is not None


def test_cluster_store_lives_in_one_slot(redis_cluster):
    url = redis_cluster.url(fresh_store())
    backend = RedisBackend(url)
    backend.put_many((b"k%03d" % i, b"v") for i in range(100))
    facts = backend.info()
    assert facts["mode"] == "cluster" and isinstance(facts["slot"], int)
    assert facts["node"] == redis_cluster.primary_of(f"{{pdb:{backend.location.store}}}").address
    backend.close()


# --- optimistic transactions --------------------------------------------------------------


def test_conflict_at_commit_writes_nothing(open_backend):
    one, two = open_backend(), open_backend()
    one.put(b"k", b"0")
    with pytest.raises(WriteConflictError), one.transaction():
        assert one.get(b"k") == b"0"
        one.put(b"mine", b"x")
        two.put(b"k", b"1")  # another writer commits in between
        one.put(b"k", b"2")
    assert one.get(b"k") == b"1"
    assert one.get(b"mine") is None
    assert one.check() == []


def test_read_of_a_newer_revision_stops_the_unit_early(open_backend):
    one, two = open_backend(), open_backend()
    one.put(b"a", b"1")
    with pytest.raises(WriteConflictError), one.transaction():
        one.get(b"a")
        two.put(b"b", b"2")
        one.get(b"b")  # would mix two revisions: refused at once


def test_blind_transaction_commits_without_a_check(open_backend):
    one, two = open_backend(), open_backend()
    with one.transaction():
        one.put(b"x", b"1")
        two.put(b"y", b"2")
    assert one.get(b"x") == b"1" and one.get(b"y") == b"2"


def test_scan_inside_transaction_sees_buffered_writes(open_backend):
    b = open_backend()
    b.put_many([(b"a1", b"1"), (b"a2", b"2"), (b"a4", b"4")])
    with b.transaction():
        b.put(b"a3", b"3")
        b.delete(b"a2")
        b.put(b"a4", b"four")
        b.put(b"b", b"x")
        assert list(b.scan(b"a")) == [(b"a1", b"1"), (b"a3", b"3"), (b"a4", b"four")]
        assert list(b.scan(b"a", start=b"a3")) == [(b"a3", b"3"), (b"a4", b"four")]


def test_run_transaction_retries_to_exact_counts(open_backend):
    open_backend().put(b"n", b"0")

    def bump(handle):
        for _ in range(60):
            handle.run_transaction(lambda: handle.put(b"n", b"%d" % (int(handle.get(b"n")) + 1)))

    handles = [open_backend() for _ in range(4)]
    threads = [threading.Thread(target=bump, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert open_backend().get(b"n") == b"240"


def test_large_commits_take_the_multi_exec_path_with_the_same_guarantees(open_backend):
    one, two = open_backend(), open_backend()
    one.put_many((b"old%04d" % i, b"x") for i in range(600))
    assert redis_engine.BULK_ARGS < 2 * 600
    with pytest.raises(WriteConflictError), one.transaction():
        one.get(b"old0000")
        one.put_many((b"new%04d" % i, b"y") for i in range(600))
        for i in range(300):
            one.delete(b"old%04d" % i)
        two.put(b"other", b"z")
    assert one.get(b"new0000") is None and one.get(b"old0000") == b"x"
    with one.transaction():
        one.get(b"old0000")
        one.put_many((b"new%04d" % i, b"y") for i in range(600))
        for i in range(300):
            one.delete(b"old%04d" % i)
    assert [k for k, _ in one.scan(b"old")] == [b"old%04d" % i for i in range(300, 600)]
    assert len(list(one.scan(b"new"))) == 600
    assert one.check() == []


def test_a_retried_commit_is_applied_once(open_backend):
    """redis-py re-sends a command whose reply was lost; the commit mark makes that harmless."""
    b = open_backend()
    b.put(b"n", b"0")
    rev = b._client.get(b._rev_key)
    keys = [b._rev_key, b._idx_key, b._tag + b":t:same-token", b._lock_key, b._retired_key]
    args = [rev, b._value_prefix, 60000, 1, b"", b"n", b"1"]
    first = b._scripts["commit"](keys=keys, args=args)
    again = b._scripts["commit"](keys=keys, args=args)
    assert first == again and first[0] == 1
    assert int(b._client.get(b._rev_key)) == int(rev) + 1


# --- snapshots ----------------------------------------------------------------------------


def test_snapshot_is_one_point_in_time(open_backend):
    reader, writer = open_backend(), open_backend()
    reader.put_many((b"s%04d" % i, b"old") for i in range(2500))
    with reader.snapshot():
        writer.put_many((b"s%04d" % i, b"new") for i in range(2500))
        writer.put(b"s9999", b"added")
        writer.delete(b"s0000")
        seen = list(reader.scan(b"s"))
        assert len(seen) == 2500 and {v for _, v in seen} == {b"old"}
        assert reader.get(b"s0000") == b"old" and reader.get(b"s9999") is None
        with pytest.raises(UsageError, match="snapshot"):
            reader.put(b"x", b"y")
    assert reader.get(b"s0000") is None
    # The copy is gone once the snapshot ends.
    tag = reader._tag
    assert not [n for n in reader._scan_names(tag + b":s:*")]


# --- check --------------------------------------------------------------------------------


def test_check_finds_index_and_values_disagreeing(open_backend):
    b = open_backend()
    b.put_many([(b"a", b"1"), (b"b", b"2")])
    assert b.check() == []
    b._client.delete(b._value_prefix + b"a")
    b._client.set(b._value_prefix + b"stray", b"x")
    problems = b.check()
    assert any("b'a'" in p and "no value" in p for p in problems)
    assert any("b'stray'" in p and "not in the index" in p for p in problems)


# --- failures -----------------------------------------------------------------------------


def test_server_down_is_a_clear_error():
    server = start_server()
    url = f"redis://:hunter2@{server.address}/0?store=down"
    server.stop()
    with pytest.raises(BackendError) as info:
        RedisBackend(url)
    assert "cannot reach" in str(info.value) and "hunter2" not in str(info.value)
    assert server.address in str(info.value)


def test_server_killed_while_open_then_back(tmp_path):
    server = start_server()
    try:
        url = f"redis://{server.address}/0?store=k"
        backend = RedisBackend(url)
        backend.put(b"k", b"v")
        server.kill()
        with pytest.raises(BackendError, match="cannot reach"):
            backend.put(b"k", b"w")
        with pytest.raises(BackendError, match="cannot reach"), backend.transaction():
            backend.put(b"a", b"1")
        backend.close()
    finally:
        server.stop()


def test_wrong_password(monkeypatch):
    server = start_server("--requirepass", "right-one")
    try:
        with pytest.raises(BackendError, match="authentication failed") as info:
            RedisBackend(f"redis://:wrong-one@{server.address}/0")
        assert "wrong-one" not in str(info.value)
        with pytest.raises(BackendError, match="authentication failed"):
            RedisBackend(f"redis://{server.address}/0")
        monkeypatch.setenv("PDB_TEST_PW", "right-one")
        backend = RedisBackend(f"redis://{server.address}/0?password_env=PDB_TEST_PW")
        backend.put(b"k", b"v")
        assert backend.get(b"k") == b"v"
        backend.close()
    finally:
        server.stop()


def test_read_only_replica_refuses_writes():
    primary = start_server()
    replica = start_server("--replicaof", "127.0.0.1", str(primary.port))
    try:
        RedisBackend(f"redis://{primary.address}/0?store=ro").put(b"k", b"v")
        url = f"redis://{replica.address}/0?store=ro"
        import time

        deadline = time.monotonic() + 10
        while replica.client().get(b"{pdb:ro}:v:k") is None and time.monotonic() < deadline:
            time.sleep(0.02)
        backend = RedisBackend(url, create=False)
        assert backend.get(b"k") == b"v"
        with pytest.raises(ReadOnlyStoreError, match="read-only replica"):
            backend.put(b"k", b"w")
        backend.close()
    finally:
        replica.stop()
        primary.stop()


def test_out_of_memory_writes_nothing():
    server = start_server("--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
    try:
        backend = RedisBackend(f"redis://{server.address}/0?store=oom")
        backend.put(b"keep", b"v")
        with pytest.raises(StorageFullError, match="out of memory"):
            for i in range(100):
                backend.put_many((b"big%03d-%d" % (i, j), os.urandom(50_000)) for j in range(4))
        before = [k for k, _ in backend.scan()]
        with pytest.raises(StorageFullError):
            backend.put_many((b"more%d" % j, os.urandom(200_000)) for j in range(20))
        assert [k for k, _ in backend.scan()] == before
        assert backend.get(b"keep") == b"v"
        assert backend.check() == []
        backend.close()
    finally:
        server.stop()


def test_network_cut_mid_transaction_writes_nothing(redis_server):
    proxy = CuttingProxy(redis_server.port)
    name = fresh_store()
    try:
        backend = RedisBackend(f"redis://{proxy.address}/0?store={name}")
        backend.put(b"n", b"0")
        with pytest.raises(BackendError, match="cannot reach"), backend.transaction():
            backend.get(b"n")
            backend.put(b"n", b"1")
            backend.put(b"other", b"x")
            proxy.down = True  # no new connection gets through
            proxy.cut()  # and the open one is gone before the commit
        direct = RedisBackend(f"redis://{redis_server.address}/0?store={name}")
        assert direct.get(b"n") == b"0" and direct.get(b"other") is None
        assert direct.check() == []
        direct.close()
        backend.close()
    finally:
        proxy.close()


def test_commit_whose_reply_was_lost_is_applied_once(redis_server):
    """The connection drops after the server ran the commit; redis-py reconnects and sends it
    again; the commit's mark makes the second delivery a no-op (the counter moves once)."""
    proxy = CuttingProxy(redis_server.port)
    try:
        backend = RedisBackend(f"redis://{proxy.address}/0?store={fresh_store()}")
        backend.put(b"n", b"0")
        for _ in range(5):

            def bump() -> None:
                value = int(backend.get(b"n"))
                proxy.drop_next_reply = True  # the reply of the commit is lost
                backend.put(b"n", b"%d" % (value + 1))

            backend.run_transaction(bump)
        assert proxy.dropped == 5
        assert backend.get(b"n") == b"5"
        backend.close()
    finally:
        proxy.close()


def _group_writer(url: str, worker: int) -> None:
    backend = RedisBackend(url)
    i = 0
    while True:
        # Each transaction writes a group of 50 keys: all or none must be visible.
        group = b"g%d-%06d-" % (worker, i)
        backend.run_transaction(
            lambda g=group: [backend.put(g + b"%02d" % j, b"x" * 500) for j in range(50)]
        )
        i += 1


def test_client_killed_mid_transaction_leaves_no_half(redis_url):
    RedisBackend(redis_url).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_group_writer, args=(redis_url, w)) for w in range(2)]
    for p in procs:
        p.start()
    backend = RedisBackend(redis_url)
    import time

    deadline = time.monotonic() + 60
    while len(list(backend.scan(b"g"))) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
        p.join()
    groups: dict[bytes, int] = {}
    for key, _ in backend.scan(b"g"):
        groups[key[:-3]] = groups.get(key[:-3], 0) + 1
    assert groups and set(groups.values()) == {50}
    assert backend.check() == []
    backend.close()


# --- durability ---------------------------------------------------------------------------


def test_full_waits_for_the_replica():
    primary = start_server()
    replica = start_server("--replicaof", "127.0.0.1", str(primary.port))
    try:
        import time

        deadline = time.monotonic() + 10
        while "state=online" not in primary.cli("INFO", "replication"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        backend = RedisBackend(f"redis://{primary.address}/0?store=f", durability="full")
        raw_replica = replica.client()
        for i in range(20):
            backend.put(b"k%d" % i, b"v")
            assert raw_replica.get(b"{pdb:f}:v:k%d" % i) == b"v"  # there when put returned
        assert "1 replica" in str(backend.info()["guarantee"])
        # A replica that stops answering: the write is reported, not silently trusted.
        replica.signal(signal.SIGSTOP)
        old = redis_engine.WAIT_TIMEOUT_MS
        redis_engine.WAIT_TIMEOUT_MS = 200
        try:
            with pytest.raises(BackendError, match="0 of 1 replicas"):
                backend.put(b"late", b"v")
        finally:
            redis_engine.WAIT_TIMEOUT_MS = old
            replica.signal(signal.SIGCONT)
        backend.close()
    finally:
        replica.stop()
        primary.stop()


def test_full_on_the_cluster(cluster_url):
    backend = RedisBackend(cluster_url, durability="full")
    backend.put(b"k", b"v")
    with backend.transaction():
        backend.put(b"k", backend.get(b"k") + b"w")
    assert backend.get(b"k") == b"vw"
    assert backend.info()["replicas"] == 1
    backend.close()


def test_info_reports_persistence_and_warnings(redis_url):
    facts = RedisBackend(redis_url).info()
    assert facts["server_version"] and facts["mode"] == "standalone"
    assert facts["aof_enabled"] is False and facts["rdb_save"] == "3600 1"
    assert facts["warnings"] == []
    assert "RDB" in str(facts["guarantee"])
    server = start_server("--save", "", "--maxmemory-policy", "allkeys-lru")
    try:
        facts = RedisBackend(f"redis://{server.address}/0").info()
        warnings = " ".join(facts["warnings"])  # type: ignore[arg-type]
        assert "neither AOF nor RDB" in warnings and "allkeys-lru" in warnings
    finally:
        server.stop()


def test_works_under_the_documented_acl_user():
    server = start_server()
    try:
        rules = "~{pdb:* resetchannels -@all +@read +@write +@scripting +@transaction"
        rules += " -@dangerous +ping +wait +scan +info +config|get"
        assert server.cli("ACL", "SETUSER", "pronto", "on", ">pw", *rules.split()) == "OK"
        url = f"redis://pronto:pw@{server.address}/0?store=acl"
        with prontodb.open(url) as store:
            store.set("p.n.k", b"v")
            backend = store.backend
            with backend.transaction():
                backend.get(b"x")
                backend.put_many((b"k%03d" % i, b"v") for i in range(300))
            with backend.snapshot():
                assert len(list(backend.scan(b"k"))) == 300
            staged = 2 * redis_engine.STAGE_CHUNK  # the staging and its publish script
            assert backend.put_many((b"s%05d" % i, b"v") for i in range(staged)) == staged
            assert backend.check() == []
            assert backend.info()["server_version"]
            with pytest.raises(BackendError, match="ACL does not allow"), backend._errors():
                backend._client.get(b"not-ours")
    finally:
        server.stop()


def test_ci_never_skips_the_redis_tests(monkeypatch):
    from tests import _redis

    monkeypatch.setattr(_redis.shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run in CI"):
        _redis.require_binaries()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        _redis.require_binaries()


# --- put_counted in one round trip -----------------------------------------------------------


def _commands(client, name: str) -> int:  # type: ignore[no-untyped-def]
    return int(client.info("commandstats").get(f"cmdstat_{name}", {}).get("calls", 0))


def test_a_plain_set_is_one_script_call_once_warm(redis_server):
    url = f"redis://{redis_server.address}/0?store={fresh_store()}"
    raw = redis_server.client()
    with prontodb.open(url) as store:
        store.set("p.n.first", b"v")  # learns the revision counter
        scripts, multis = _commands(raw, "evalsha"), _commands(raw, "multi")
        for i in range(20):
            store.set(f"p.n.k{i}", b"v%d" % i)
        assert _commands(raw, "evalsha") - scripts == 20  # one round trip per set
        assert _commands(raw, "multi") == multis  # no lock-taking read
        assert [store.entry(f"p.n.k{i}").version for i in range(20)] == list(range(2, 22))


def test_put_counted_rebuilds_when_another_writer_moved_on(redis_server):
    url = f"redis://{redis_server.address}/0?store={fresh_store()}"
    with prontodb.open(url) as a, prontodb.open(url) as b:
        for i in range(10):
            a.set(f"p.n.a{i}", b"a")
            b.set(f"p.n.b{i}", b"b")
        versions = sorted(
            [a.entry(f"p.n.a{i}").version for i in range(10)]
            + [b.entry(f"p.n.b{i}").version for i in range(10)]
        )
        assert versions == list(range(1, 21)) and a.revision() == 20
        # b's expectation says "no TTL namespace"; a creates one: b's next set honours it.
        b.set("p.tmp.warm", b"v")
        a.create_cache("p.tmp", "1h")
        b.set("p.tmp.k", b"v")
        assert 3590 < b.ttl("p.tmp.k") <= 3600
        assert a.backend.check() == []


def test_a_one_trip_set_raises_the_commit_counter_and_indexes_both_keys(redis_server):
    name = fresh_store()
    raw = redis_server.client()
    with prontodb.open(f"redis://{redis_server.address}/0?store={name}") as store:
        store.set("p.n.first", b"v")
        rev = int(raw.get(f"{{pdb:{name}}}:rev"))
        for i in range(5):
            store.set(f"p.n.k{i}", b"v")
            assert int(raw.get(f"{{pdb:{name}}}:rev")) == rev + i + 1  # every commit raises it
        assert store.revision() == 6 and store.backend.check() == []


def test_a_one_trip_set_survives_a_flushed_script_cache(redis_server):
    raw = redis_server.client()
    with prontodb.open(f"redis://{redis_server.address}/0?store={fresh_store()}") as store:
        store.set("p.n.a", b"1")
        store.set("p.n.b", b"2")  # the pre-packed one-trip path
        raw.script_flush()  # as after a server restart or a failover: NOSCRIPT
        store.set("p.n.c", b"3")
        store.set("p.n.d", b"4")
        assert [store.get(f"p.n.{k}") for k in "abcd"] == [b"1", b"2", b"3", b"4"]
        assert store.entry("p.n.d").version == 4 and store.backend.check() == []


@pytest.mark.parametrize("size", [0, 5999, 6000, 6001, 300_000])
def test_a_one_trip_set_stores_values_of_every_size_intact(redis_server, size):
    value = os.urandom(size)
    with prontodb.open(f"redis://{redis_server.address}/0?store={fresh_store()}") as store:
        store.set("p.n.warm", b"v")
        store.set("p.n.k", value)
        store.set("p.n.after", b"x")  # the connection is still in step
        assert store.get("p.n.k") == value and store.get("p.n.after") == b"x"


def test_a_one_trip_set_reconnects_after_a_cut_and_a_lost_reply(redis_server):
    """The kept connection is cut between two sets: the next set reconnects. A reply lost
    after the script ran: redis-py sends it again, the script finds the counter moved and the
    value is rebuilt and stored at the next revision (as if set twice), nothing else."""
    proxy = CuttingProxy(redis_server.port)
    name = fresh_store()
    try:
        with prontodb.open(f"redis://{proxy.address}/0?store={name}") as store:
            store.set("p.n.a", b"1")
            store.set("p.n.b", b"2")
            proxy.cut()
            store.set("p.n.c", b"3")
            proxy.drop_next_reply = True
            store.set("p.n.d", b"4")
            assert proxy.dropped == 1
            store.set("p.n.e", b"5")
            assert [store.get(f"p.n.{k}") for k in "abcde"] == [b"1", b"2", b"3", b"4", b"5"]
            assert store.entry("p.n.d").version in (4, 5) and store.entry("p.n.e").version == 6
            assert store.revision() == 6 and store.backend.check() == []
    finally:
        proxy.close()


def test_one_trip_sets_from_another_thread_and_a_forked_process(redis_server):
    """The connection put_counted keeps belongs to the thread and process that took it:
    another thread and a forked child borrow pooled connections and stay in step."""
    url = f"redis://{redis_server.address}/0?store={fresh_store()}"
    with prontodb.open(url) as store:
        store.set("p.n.a", b"1")
        store.set("p.n.b", b"2")  # the connection is kept now
        errors: list[BaseException] = []

        def other() -> None:
            try:
                for i in range(20):
                    store.set(f"p.n.t{i}", b"t")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert errors == []
        child = multiprocessing.get_context("fork").Process(target=_forked_set, args=(store,))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        store.set("p.n.c", b"3")
        assert store.get("p.n.c") == b"3" and store.get("p.n.forked") == b"f"
        assert [store.get(f"p.n.t{i}") for i in range(20)] == [b"t"] * 20
        assert store.revision() == 24 and store.backend.check() == []


def _forked_set(store) -> None:  # noqa: ANN001
    store.set("p.n.forked", b"f")  # the parent's Store object, in a forked child


# --- large transactions are staged on the server -------------------------------------------


def _staged_names(b: RedisBackend) -> list[bytes]:
    return list(b._scan_names(b._tag.replace(b"[", b"\\[") + b":w:*"))


def test_put_many_streams_through_staging_and_publishes_at_once(open_backend):
    writer, reader = open_backend(), open_backend()
    n = 5 * redis_engine.STAGE_CHUNK
    seen: dict[str, object] = {}

    def pairs():
        for i in range(n):
            if i == n - 10:  # most of the batch is on the server, none of it visible
                seen["buffered"] = len(writer._buffer)
                seen["staged"] = writer._client.hlen(writer._stage[0])
                seen["visible"] = reader.get(b"p%05d" % 0)
                seen["names"] = len(_staged_names(reader))
            yield b"p%05d" % i, b"v%d" % i

    assert writer.put_many(pairs()) == n
    assert seen["buffered"] < redis_engine.STAGE_CHUNK  # client memory stays flat
    assert seen["staged"] >= n - redis_engine.STAGE_CHUNK - 10
    assert seen["visible"] is None and seen["names"] == 2  # the puts and the marker
    assert reader.get(b"p%05d" % (n - 1)) == b"v%d" % (n - 1)
    assert sum(1 for _ in reader.scan(b"p")) == n
    assert _staged_names(reader) == [] and reader.check() == []


def test_an_aborted_staged_transaction_writes_nothing_and_leaves_nothing(open_backend):
    b = open_backend()
    n = 3 * redis_engine.STAGE_CHUNK

    def pairs():
        for i in range(n):
            if i == n - 5:
                raise RuntimeError("input broke")
            yield b"a%05d" % i, b"v"

    with pytest.raises(RuntimeError):
        b.put_many(pairs())
    assert b.get(b"a00000") is None and list(b.scan(b"a")) == []
    assert _staged_names(b) == []


def test_a_staged_transaction_reads_its_own_writes(open_backend):
    b = open_backend()
    b.put_many([(b"k0", b"old"), (b"k1", b"old"), (b"zz", b"z")])
    chunk = redis_engine.STAGE_CHUNK
    with b.transaction():
        assert b.get(b"zz") == b"z"  # a read: the commit is conditional
        b.put_many((b"k%05d" % i, b"new") for i in range(2 * chunk))
        b.delete(b"k0")
        b.put_many((b"d%05d" % i, b"x") for i in range(chunk))  # k0's delete is staged
        assert b._stage is not None and b.get(b"k0") is None
        assert b.get(b"k00007") == b"new" and b.get(b"k1") == b"old"
        b.put(b"k0", b"again")  # a put after a staged delete
        b.delete(b"k00003")  # a delete after a staged put
        keys = [k for k, _ in b.scan(b"k")]
        assert keys[:2] == [b"k0", b"k00000"] and b"k00003" not in keys
        assert len(keys) == 2 * chunk + 1  # k0, k1 and the new ones less k00003
    assert b.get(b"k0") == b"again" and b.get(b"k00003") is None
    assert sum(1 for _ in b.scan(b"k")) == 2 * chunk + 1
    assert b.check() == [] and _staged_names(b) == []


def test_a_staged_transaction_conflicts_and_writes_nothing(open_backend):
    b, other = open_backend(), open_backend()
    b.put(b"n", b"0")
    with pytest.raises(WriteConflictError), b.transaction():
        b.get(b"n")
        b._release_lock()  # let the other writer in (as a lease running out would)
        b.put_many((b"c%05d" % i, b"v") for i in range(2 * redis_engine.STAGE_CHUNK))
        other.put(b"n", b"1")
    assert b.get(b"c00000") is None and b.get(b"n") == b"1"
    assert _staged_names(b) == []


def test_a_retired_store_refuses_a_staged_commit(open_backend):
    b = open_backend()
    b.put(b"n", b"0")
    writer = open_backend()
    with b.transaction():
        b.get(b"n")
        b.retire("sqlite:/elsewhere")
    with pytest.raises(StoreRetiredError):
        writer.put_many((b"r%05d" % i, b"v") for i in range(2 * redis_engine.STAGE_CHUNK))
    assert _staged_names(writer) == []
