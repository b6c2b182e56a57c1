"""``cursor migrate`` between file engines and redis, both ways, on real servers: the data and
its TTLs arrive, the old redis store is retired in place (opening it and every commit refuse,
naming the new location), and writers racing a migrate lose nothing they were told was
written."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time

import pytest

import prontodb
from prontodb import portable
from prontodb.backends.redis import RedisBackend
from prontodb.errors import (
    ConfigError,
    ConflictError,
    ContextLockedError,
    StoreNotFoundError,
    StoreRetiredError,
    UsageError,
)
from tests._redis import fresh_store


@pytest.fixture
def home(tmp_path, monkeypatch):
    env = {
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    for key in list(os.environ):
        if key.startswith("PRONTO_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _cursor(name: str, where: str) -> None:
    from prontodb import cursor

    cursor.define("default", name, where)


def _everything(store: prontodb.Store) -> dict[str, tuple]:
    return {str(e.address): (e.value, e.expires_at, e.written_at) for e in store.entries()}


@pytest.fixture(params=["standalone", "cluster"])
def target_url(request):
    if request.param == "standalone":
        server = request.getfixturevalue("redis_server")
        return f"redis://{server.address}/0?store={fresh_store()}"
    return request.getfixturevalue("redis_cluster").url(fresh_store())


def test_file_to_redis_to_lmdb_and_back(home, tmp_path, target_url):
    _cursor("team", str(tmp_path / "team.sqlite"))
    with prontodb.open(cursor="team") as store:
        store.create_cache("p.tmp", "1h")
        store.set("p.tmp.t", b"short-lived")
        store.set_many({f"p.n.k{i:03d}": b"v%d" % i for i in range(300)})
        store.layer(user="bob").set("b.n.k", b"bob's")
        before = _everything(store)
        bob = _everything(store.layer(user="bob"))
    summary = portable.migrate("default", "team", "redis", path=target_url)
    assert summary.new_path == target_url and summary.entries == 302
    assert summary.old_path.endswith(".sqlite") and ".migrated-" in summary.old_path
    with prontodb.open(cursor="team") as store:
        assert store.engine == "redis" and store.location == target_url
        assert _everything(store) == before
        assert _everything(store.layer(user="bob")) == bob
        assert store.caches()["p.tmp"] == 3600
        held = RedisBackend(target_url)  # clients that opened the store before it retires
        held_store = prontodb.open(target_url)
        held_store.set("p.n.warm", b"learns the counter: the next set is one script call")
        before = _everything(store)  # what the lmdb copy must hold, the warm-up set too
        summary = portable.migrate("default", "team", "lmdb")
    assert summary.old_path == target_url and not summary.removed_old
    assert summary.new_path.endswith("team.lmdb")
    with prontodb.open(cursor="team") as store:
        assert store.engine == "lmdb" and _everything(store) == before
    # The retired store refuses every open and every commit, naming where the data went.
    with pytest.raises(StoreRetiredError, match="team.lmdb") as refused:
        prontodb.open(target_url)  # creating it is refused too
    with pytest.raises(StoreRetiredError):
        RedisBackend(target_url, create=False)
    assert refused.value.successor == summary.new_path
    with pytest.raises(StoreRetiredError):
        held.put(b"late", b"write")
    with pytest.raises(StoreRetiredError):
        held.put_many([(b"a%d" % i, b"v") for i in range(300)])  # the bulk commit too
    with pytest.raises(StoreRetiredError):
        held.run_transaction(lambda: held.put(b"x", (held.get(b"x") or b"") + b"1"))
    held.close()
    with pytest.raises(StoreRetiredError):
        held_store.set("p.n.late", b"refused")
    held_store.close()
    # Back onto the same URL: it holds the retired store, so only with replace_target.
    with pytest.raises(ConfigError, match="retired") as occupied:
        portable.migrate("default", "team", "redis", path=target_url)
    assert occupied.value.rule == "retired store"
    portable.migrate("default", "team", "redis", path=target_url, replace_target=True)
    with prontodb.open(cursor="team") as store:
        assert store.engine == "redis" and _everything(store) == before
        store.set("p.n.after", b"writable again")
        assert store.backend.check() == []


def test_remove_old_deletes_the_redis_store_and_url_rules(home, tmp_path, redis_server):
    url = f"redis://{redis_server.address}/0?store={fresh_store()}"
    _cursor("team", url)
    with prontodb.open(cursor="team") as store:
        store.set("p.n.k", b"v")
    with pytest.raises(UsageError, match="URL"):
        portable.migrate("default", "team", "redis")  # a url engine needs its URL
    with pytest.raises(ConfigError, match="not a lmdb location"):
        portable.migrate("default", "team", "lmdb", path=url.replace("store=", "store=x"))
    secret = url.replace("redis://", "redis://:hunter2@")
    with pytest.raises(ConfigError, match="password_env") as refused:
        portable.migrate("default", "team", "redis", path=secret + "x")
    assert "hunter2" not in str(refused.value)
    with pytest.raises(UsageError, match="already uses"):
        portable.migrate("default", "team", "redis", path=url)
    summary = portable.migrate("default", "team", "sqlite", remove_old=True)
    assert summary.removed_old and summary.new_path == str(
        tmp_path / "data" / "prontodb" / "users" / "default" / "team.sqlite"
    )
    with pytest.raises(StoreNotFoundError) as gone:
        RedisBackend(url, create=False)
    assert not isinstance(gone.value, StoreRetiredError)  # its keys are gone, marker too
    assert redis_server.client().keys(f"*{url.split('store=')[1]}*") == []
    with prontodb.open(cursor="team") as store:
        assert store.get("p.n.k") == b"v"


def test_locked_context_guards_a_url_target(home, tmp_path, redis_server, monkeypatch):
    url = f"redis://{redis_server.address}/0?store={fresh_store()}"
    with prontodb.open(url) as shared:
        shared.layer(user="bob").set("b.n.k", b"bob's data")
    _cursor("mine", str(tmp_path / "mine.sqlite"))
    with prontodb.open(cursor="mine") as store:
        store.set("p.n.k", b"v")
    monkeypatch.setenv("PRONTO_FORCE_USER", "default")
    with pytest.raises(ContextLockedError, match="layer of bob"):
        portable.migrate("default", "mine", "redis", path=url, replace_target=True)
    with prontodb.open(url) as shared:
        assert shared.layer(user="bob").get("b.n.k") == b"bob's data"
    with prontodb.open(cursor="mine") as store:
        assert store.engine == "sqlite"


def test_a_failed_repoint_puts_the_redis_store_back(home, tmp_path, redis_url, monkeypatch):
    _cursor("team", redis_url)
    with prontodb.open(cursor="team") as store:
        store.set("p.n.k", b"v")
    from prontodb.portable import migration

    def broken(*args, **kwargs):
        raise OSError("disk full while saving cursors.json")

    monkeypatch.setattr(migration, "_repoint", broken)
    with pytest.raises(OSError, match="disk full"):
        portable.migrate("default", "team", "lmdb")
    assert not (tmp_path / "data" / "prontodb" / "users" / "default" / "team.lmdb").exists()
    with prontodb.open(cursor="team") as store:  # not retired: it is still the cursor's store
        store.set("p.n.k2", b"still writable")
        assert store.get("p.n.k") == b"v"


# --- writers racing a migrate ---------------------------------------------------------------


def _writer(env: dict[str, str], worker: int, stop: str, out: str) -> None:
    """Write unique keys through cursor ``team`` until ``stop`` exists; reopen the cursor
    whenever the store was moved away (the write was refused, so it is tried again)."""
    os.environ.update(env)
    import prontodb
    from prontodb.errors import BackendError, ConflictError

    acked: list[str] = []
    refused = 0
    store = None
    i = 0
    while not os.path.exists(stop):
        try:
            if store is None:
                store = prontodb.open(cursor="team")
            store.set(f"w.w{worker}.k{i}", f"{worker}:{i}")
            acked.append(f"w.w{worker}.k{i}")
            i += 1
        except (BackendError, ConflictError):
            refused += 1  # moved, retired or busy: not acknowledged; reopen and retry
            if store is not None:
                store.close()
            store = None
            time.sleep(0.005)
    if store is not None:
        store.close()
    with open(out, "w") as fh:
        json.dump({"acked": acked, "refused": refused}, fh)


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _migrate_until_done(*args, **kwargs):
    for _ in range(5):
        try:
            return portable.migrate(*args, **kwargs)
        except ConflictError:
            continue  # refused because writes kept landing: nothing changed, try again
    raise AssertionError("migrate refused five times")


def test_writers_racing_migrates_lose_nothing(home, tmp_path, target_url):
    _cursor("team", str(tmp_path / "team.sqlite"))
    with prontodb.open(cursor="team") as store:
        store.set_many({f"p.n.k{i:03d}": b"seed" for i in range(200)})
    ctx = multiprocessing.get_context("spawn")
    stop = str(tmp_path / "stop")
    outs = [str(tmp_path / f"w{w}.json") for w in range(3)]
    procs = [ctx.Process(target=_writer, args=(home, w, stop, outs[w])) for w in range(3)]
    for p in procs:
        p.start()
    try:

        def written() -> int:
            with prontodb.open(cursor="team") as store:
                return store.count("w")

        _wait_for(lambda: written() >= 30)
        _migrate_until_done("default", "team", "redis", path=target_url)  # file -> redis
        floor = written()
        _wait_for(lambda: written() >= floor + 30)
        _migrate_until_done("default", "team", "lmdb")  # redis -> lmdb
        floor = written()
        _wait_for(lambda: written() >= floor + 30)
        _migrate_until_done("default", "team", "redis", path=target_url, replace_target=True)
        floor = written()
        _wait_for(lambda: written() >= floor + 30)
    finally:
        with open(stop, "w"):
            pass
        for p in procs:
            p.join(60)
    results = [json.load(open(o)) for o in outs]
    acked = [key for r in results for key in r["acked"]]
    with prontodb.open(cursor="team") as store:
        assert store.engine == "redis"
        present = {f"w.{key}" for key in store.keys("w")}
        lost = [key for key in acked if key not in present]
        assert lost == [], f"{len(lost)} acknowledged writes lost"
        assert len(present) == len(acked)  # nothing appeared that was not acknowledged
        assert store.count("p.n") == 200
        assert store.backend.check() == []
    refused = sum(r["refused"] for r in results)
    print(f"\nracing migrates: {len(acked)} writes acknowledged, {refused} refused, 0 lost")
    assert refused > 0  # the writers did meet the migrates


def _racing_rows(url: str, rows: list[str]):
    """Yield import rows; after the first, another client commits to the same store, so the
    optimistic commit of the transaction reading these rows conflicts."""
    from prontodb.address import parse

    for i, addr in enumerate(rows):
        if i == 1:
            with prontodb.open(url) as other:
                other.set("race.other.k", b"x")
        yield parse(addr), b"v", None


def test_write_entries_of_a_consumed_iterator_refuses_rather_than_writing_nothing(redis_url):
    """A conflict makes the Store run its unit again; an iterator of entries cannot be read
    twice, so the retry must refuse (nothing written) instead of committing an empty batch."""
    rows = [f"imp.ns.k{i}" for i in range(3)]
    with prontodb.open(redis_url) as store:
        store.set("race.other.k", b"0")
        with pytest.raises(ConflictError, match="cannot be read again"):
            store.write_entries(_racing_rows(redis_url, rows))
        assert store.keys("imp.ns") == []
        assert store.get("race.other.k") == b"x"


def test_write_keyed_of_a_consumed_iterator_refuses_rather_than_writing_nothing(redis_url):
    """The import path's write_keyed: the same refusal as write_entries on a retry."""
    from prontodb import keyspace
    from prontodb.address import parse

    def racing():
        for i, addr in enumerate(f"imp.ns.k{i}" for i in range(3)):
            if i == 1:
                with prontodb.open(redis_url) as other:
                    other.set("race.other.k", b"x")
            yield keyspace.entry_key(b"", parse(addr)), b"v", None, None

    with prontodb.open(redis_url) as store:
        store.set("race.other.k", b"0")
        with pytest.raises(ConflictError, match="cannot be read again"):
            store.write_keyed(racing())
        assert store.keys("imp.ns") == []
        assert store.get("race.other.k") == b"x"


class _WriteFromElsewhere:
    """A migrate progress receiver that, while the copy runs, has another process write to
    the migrate's target URL (as a second machine whose cursor names it would)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: list[subprocess.CompletedProcess[str]] = []

    def start(self, label: str, total: int, unit: str) -> None:
        self.outcomes.append(
            subprocess.run(
                [sys.executable, "-m", "prontodb", "--database", self.url, "set", "o.n.k", "v"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        )

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


@pytest.mark.parametrize("occupied", [False, True])
def test_a_url_target_refuses_other_clients_while_it_is_built(home, tmp_path, target_url, occupied):
    """Nobody elsewhere can write into a url target while migrate builds it (a write there
    would be overwritten by the copy or counted as a bad copy): the target reads as retired
    until the cursor names it, then everyone may write."""
    _cursor("team", str(tmp_path / "team.sqlite"))
    with prontodb.open(cursor="team") as store:
        store.set_many({f"p.n.k{i}": b"v" for i in range(20)})
        before = _everything(store)
    if occupied:
        with prontodb.open(target_url) as other:
            other.set("old.n.k", b"replaced")
    elsewhere = _WriteFromElsewhere(target_url)
    portable.migrate(
        "default", "team", "redis", path=target_url, replace_target=occupied, progress=elsewhere
    )
    assert elsewhere.outcomes, "the copy reported no progress"
    for done in elsewhere.outcomes:
        assert done.returncode == 1 and "retired" in done.stderr, done.stderr
    with prontodb.open(cursor="team") as store:
        assert _everything(store) == before
    done = subprocess.run(
        [sys.executable, "-m", "prontodb", "--database", target_url, "set", "o.n.k", "v"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
