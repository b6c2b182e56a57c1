"""diskcache-specific behaviour of the diskcache backend: raw bytes only, value files,
index-driven scans, permissions, rollback of file-backed values, snapshots and error
translation. The shared contract is the kit (prontodb.testing), run by TestDiskcacheContract."""

from __future__ import annotations

import errno
import multiprocessing
import os
import pickle
import sqlite3
import stat

import diskcache
import pytest

from prontodb.backends import diskcache as module
from prontodb.backends import looks_like, sniff
from prontodb.backends.diskcache import DiskcacheBackend
from prontodb.errors import (
    BackendError,
    CorruptStoreError,
    ReadOnlyStoreError,
    StorageFullError,
    StoreBusyError,
    UsageError,
)
from prontodb.testing import BackendContract

BIG = 64 * 1024  # over diskcache's 32 KiB disk_min_file_size: a file in ``normal``


class TestDiskcacheContract(BackendContract):
    engine = "diskcache"


@pytest.fixture
def store_path(tmp_path):
    return str(tmp_path / "s.diskcache")


@pytest.fixture
def backend(store_path):
    b = DiskcacheBackend(store_path)
    yield b
    b.close()


def rows(path):
    """(key, raw, mode, filename) of every Cache row, read with a separate connection."""
    con = sqlite3.connect(os.path.join(path, "cache.db"))
    try:
        return con.execute("SELECT key, raw, mode, filename FROM Cache ORDER BY key").fetchall()
    finally:
        con.close()


def value_files(path):
    return sorted(
        os.path.relpath(os.path.join(d, f), path)
        for d, _, files in os.walk(path)
        for f in files
        if f.endswith(".val")
    )


def test_module_name_does_not_shadow_the_library():
    assert module.diskcache is diskcache
    assert os.path.realpath(diskcache.__file__) != os.path.realpath(module.__file__)
    assert module.DiskcacheBackend.name == "diskcache"


# -- raw bytes only ---------------------------------------------------------------------------


def test_pickle_shaped_bytes_come_back_as_the_same_bytes(store_path):
    small = pickle.dumps({"a": 1})
    large = pickle.dumps(list(range(40000)))
    assert len(large) > BIG
    with DiskcacheBackend(store_path) as b:
        b.put(b"small", small)
        b.put(b"large", large)
        b.put_many([(b"many", small)])
    with DiskcacheBackend(store_path, create=False) as b:
        for key, expected in ((b"small", small), (b"large", large), (b"many", small)):
            got = b.get(key)
            assert type(got) is bytes and got == expected
        assert dict(b.scan()) == {b"large": large, b"many": small, b"small": small}
    found = rows(store_path)
    assert {(raw, mode) for _, raw, mode, _ in found} == {
        (1, diskcache.core.MODE_RAW),
        (1, diskcache.core.MODE_BINARY),
    }
    assert all(type(key) is bytes for key, *_ in found)


@pytest.mark.parametrize(
    "key, value", [("text", b"v"), (b"k", "text"), (b"k", 7), (7, b"v"), (b"k", {"a": 1})]
)
def test_anything_but_bytes_is_refused_and_nothing_is_stored(backend, key, value):
    with pytest.raises(TypeError):
        backend.put(key, value)
    with pytest.raises(TypeError):
        backend.put_many([(b"ok", b"1"), (key, value)])
    assert rows(backend.path) == []


def test_a_foreign_pickled_entry_is_reported_never_unpickled(store_path, tmp_path):
    marker = tmp_path / "unpickled"

    class Exploit:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    with DiskcacheBackend(store_path) as b:
        b.put(b"fine", b"1")
    other = diskcache.Cache(store_path)
    other.set(b"evil", Exploit())
    other.set("text-key", b"x")
    other.close()

    with DiskcacheBackend(store_path) as b:
        with pytest.raises(CorruptStoreError):
            b.get(b"evil")
        with pytest.raises(CorruptStoreError):
            list(b.scan())
        assert b.get(b"fine") == b"1"
        assert any("not raw bytes" in problem for problem in b.check())
    assert not marker.exists()


# -- scans ------------------------------------------------------------------------------------


def test_prefix_scan_reads_only_its_range(backend):
    groups, per_group = 50, 1000
    backend.put_many(
        (b"g%02d:%05d" % (g, i), b"v%d" % i) for g in range(groups) for i in range(per_group)
    )
    con = backend._cache._con
    for sql in (module._SCAN.format(op=">=", upper=" AND key < ?", limit=1),):
        plan = " ".join(row[-1] for row in con.execute(f"EXPLAIN QUERY PLAN {sql}", (b"a", b"b")))
        assert "Cache_key_raw" in plan and "SCAN" not in plan

    def cost(prefix, **kwargs):
        steps, statements = [0], []
        con.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1) or 0, 100)
        con.set_trace_callback(statements.append)
        try:
            pairs = list(backend.scan(prefix, **kwargs))
        finally:
            con.set_progress_handler(None, 0)
            con.set_trace_callback(None)
        return pairs, steps[0], len(statements)

    everything, full_steps, _ = cost(b"")
    assert [k for k, _ in everything] == sorted(k for k, _ in everything)
    assert len(everything) == groups * per_group

    group, group_steps, group_statements = cost(b"g25:")
    assert [k for k, _ in group] == [b"g25:%05d" % i for i in range(per_group)]
    assert group_steps * 20 < full_steps  # proportional to 1k rows, not to 50k
    assert group_statements <= per_group // module._PAGE_ROWS + 1

    tail, tail_steps, _ = cost(b"g25:", start=b"g25:00900")
    assert [k for k, _ in tail] == [b"g25:%05d" % i for i in range(900, per_group)]
    assert tail_steps * 5 < group_steps


def test_scan_pages_are_cut_by_inline_bytes(store_path, monkeypatch):
    monkeypatch.setattr(module, "_PAGE_BYTES", 3 * BIG)
    with DiskcacheBackend(store_path, durability="full") as b:
        b.put_many((b"k%02d" % i, bytes([i]) * BIG) for i in range(20))
        b.put(b"l", b"after")
        pages = []
        real_page = b._page
        monkeypatch.setattr(b, "_page", lambda *a: pages.append(1) or real_page(*a))
        got = list(b.scan(b"k"))
    assert [k for k, _ in got] == [b"k%02d" % i for i in range(20)]
    assert all(v == bytes([i]) * BIG for i, (_, v) in enumerate(got))
    assert len(pages) >= 5


# -- value files and durability ---------------------------------------------------------------


def test_large_value_lives_in_a_file_in_normal_mode(store_path):
    value = os.urandom(10 * 1024 * 1024)
    with DiskcacheBackend(store_path) as b:
        b.put(b"big", value)
    assert len(value_files(store_path)) == 1
    [(_, _, mode, filename)] = rows(store_path)
    assert mode == diskcache.core.MODE_BINARY and filename == value_files(store_path)[0]
    with DiskcacheBackend(store_path) as b:
        assert b.get(b"big") == value
        assert b.check() == []


def test_large_value_lives_inline_in_full_mode(store_path):
    value = os.urandom(10 * 1024 * 1024)
    with DiskcacheBackend(store_path, durability="full") as b:
        b.put(b"big", value)
        b.put_many([(b"big2", value)])
        assert b._cache._con.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert value_files(store_path) == []
    assert {mode for _, _, mode, _ in rows(store_path)} == {diskcache.core.MODE_RAW}
    with DiskcacheBackend(store_path, durability="full") as b:
        assert b.get(b"big") == value and b.get(b"big2") == value


def test_each_object_keeps_its_own_durability(store_path):
    full = DiskcacheBackend(store_path, durability="full")
    normal = DiskcacheBackend(store_path)  # diskcache's shared Settings table now says normal
    late_full = DiskcacheBackend(store_path, durability="full")
    try:
        for b, synchronous in ((full, 2), (normal, 1), (late_full, 2)):
            assert b._cache._con.execute("PRAGMA synchronous").fetchone()[0] == synchronous
        full.put(b"f", os.urandom(BIG))
        normal.put(b"n", os.urandom(BIG))
        late_full.put(b"l", os.urandom(BIG))
        modes = {key: mode for key, _, mode, _ in rows(store_path)}
        assert modes == {
            b"f": diskcache.core.MODE_RAW,
            b"n": diskcache.core.MODE_BINARY,
            b"l": diskcache.core.MODE_RAW,
        }
    finally:
        full.close()
        normal.close()
        late_full.close()


def test_opening_a_set_up_store_writes_nothing(store_path):
    with DiskcacheBackend(store_path) as b:
        b.put(b"k", b"v")
    watcher = sqlite3.connect(os.path.join(store_path, "cache.db"))

    def commits_seen():
        return watcher.execute("PRAGMA data_version").fetchone()[0]

    try:
        before = commits_seen()
        with DiskcacheBackend(store_path, durability="full", create=False) as b:
            assert b.get(b"k") == b"v"
        assert commits_seen() == before

        other = diskcache.Cache(store_path, eviction_policy="least-recently-used", cull_limit=10)
        other.close()
        before = commits_seen()
        with DiskcacheBackend(store_path) as b:
            assert (b._cache.eviction_policy, b._cache.cull_limit) == ("none", 0)
        assert commits_seen() != before  # the settings were written back
        settings = dict(watcher.execute("SELECT key, value FROM Settings"))
        assert (settings["eviction_policy"], settings["cull_limit"]) == ("none", 0)
    finally:
        watcher.close()


def test_rollback_restores_file_backed_values_and_removes_new_files(backend):
    old, keep = os.urandom(BIG), os.urandom(BIG)
    backend.put(b"replaced", old)
    backend.put(b"deleted", keep)
    before = value_files(backend.path)

    with pytest.raises(RuntimeError), backend.transaction():
        backend.put(b"replaced", os.urandom(BIG))
        with backend.transaction():  # nested: joins the outer transaction
            backend.put(b"new", os.urandom(BIG))
            assert backend.delete(b"deleted")
            backend.put_many([(b"replaced", os.urandom(2 * BIG)), (b"inline", b"x")])
        assert backend.get(b"deleted") is None
        raise RuntimeError("abort")

    assert backend.get(b"replaced") == old
    assert backend.get(b"deleted") == keep
    assert backend.get(b"new") is None and backend.get(b"inline") is None
    assert value_files(backend.path) == before
    assert backend.check() == []


def test_commit_removes_the_files_of_replaced_values(backend):
    backend.put(b"a", os.urandom(BIG))
    backend.put(b"b", os.urandom(BIG))
    backend.put(b"c", os.urandom(BIG))
    with backend.transaction():
        backend.put(b"a", b"inline now")
        backend.delete(b"b")
        assert len(value_files(backend.path)) == 3  # removal waits for the commit
    last = os.urandom(BIG)
    assert backend.put_many([(b"c", b"x"), (b"c", last), (b"d", b"y"), (b"c", b"final")]) == 4
    assert value_files(backend.path) == []
    assert dict(backend.scan()) == {b"a": b"inline now", b"c": b"final", b"d": b"y"}
    assert backend.check() == []


def test_a_value_file_replaced_by_another_writer_mid_read_is_found_again(store_path, monkeypatch):
    first, second = os.urandom(BIG), os.urandom(BIG)
    reader, writer = DiskcacheBackend(store_path), DiskcacheBackend(store_path)
    try:
        reader.put(b"k", first)
        real_fetch = reader._disk.fetch
        race = [lambda: writer.put(b"k", second)]

        def racing_fetch(*args):
            if race:
                race.pop()()  # commits, then removes the file the reader is about to open
            return real_fetch(*args)

        monkeypatch.setattr(reader._disk, "fetch", racing_fetch)
        assert reader.get(b"k") == second
        race.append(lambda: writer.delete(b"k"))
        assert reader.get(b"k") is None
    finally:
        reader.close()
        writer.close()


def test_leftovers_of_a_killed_writer_are_not_damage(backend):
    backend.put(b"k", os.urandom(BIG))
    # What a writer killed between writing a value file and its commit leaves behind.
    os.makedirs(os.path.join(backend.path, "ab", "cd"))
    with open(os.path.join(backend.path, "ab", "cd", "0" * 28 + ".val"), "wb") as fh:
        fh.write(os.urandom(BIG))
    os.makedirs(os.path.join(backend.path, "ef", "01"))
    assert backend.check() == []
    with open(os.path.join(backend.path, "stray.txt"), "wb") as fh:
        fh.write(b"not ours")
    assert [p for p in backend.check() if "unknown file" in p and p.endswith("stray.txt")]


def test_a_missing_value_file_is_damage(backend):
    backend.put(b"k", os.urandom(BIG))
    [name] = value_files(backend.path)
    os.remove(os.path.join(backend.path, name))
    with pytest.raises(CorruptStoreError, match="missing"):
        backend.get(b"k")
    assert any("file not found" in problem for problem in backend.check())


# -- files, permissions, close ----------------------------------------------------------------


def test_modes_are_private_whatever_the_umask(store_path):
    previous = os.umask(0)
    try:
        with DiskcacheBackend(store_path) as b:
            b.put(b"small", b"v")
            b.put(b"big", os.urandom(BIG))
            b.put_many([(b"big%d" % i, os.urandom(BIG)) for i in range(5)])
            paths = b.files()
            modes = {path: os.stat(path).st_mode for path in paths}
    finally:
        os.umask(previous)
    assert paths[0] == store_path
    assert {os.path.basename(p) for p in paths} >= {"cache.db", "cache.db-wal", "cache.db-shm"}
    assert len([p for p in paths if p.endswith(".val")]) == 6
    for path, mode in modes.items():
        expected = 0o700 if stat.S_ISDIR(mode) else 0o600
        assert stat.S_IMODE(mode) == expected, path


def test_no_side_files_after_the_last_close(store_path):
    first = DiskcacheBackend(store_path)
    second = DiskcacheBackend(store_path)
    first.put_many((b"k%d" % i, b"v" * 100) for i in range(2000))
    unfinished = second.scan()
    next(unfinished)
    first.close()
    assert os.path.exists(os.path.join(store_path, "cache.db-wal"))  # second is still open
    second.close()
    second.close()
    assert sorted(os.listdir(store_path)) == ["cache.db"]
    with pytest.raises(BackendError):
        second.get(b"k1")
    assert sniff(store_path) == "diskcache" and looks_like(store_path, "diskcache")


def test_sniff_wants_a_directory_holding_a_sqlite_cache_db(tmp_path):
    assert not looks_like(str(tmp_path), "diskcache")
    (tmp_path / "cache.db").write_bytes(b"not sqlite")
    assert not looks_like(str(tmp_path), "diskcache")
    assert not looks_like(str(tmp_path / "cache.db"), "diskcache")


# -- errors -----------------------------------------------------------------------------------


def test_damaged_database_is_corrupt_and_named(store_path):
    os.mkdir(store_path)
    with open(os.path.join(store_path, "cache.db"), "wb") as fh:
        fh.write(b"this is not a database at all" * 100)
    with pytest.raises(CorruptStoreError, match=store_path) as info:
        DiskcacheBackend(store_path)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_a_plain_file_is_not_a_store(tmp_path):
    path = tmp_path / "file.diskcache"
    path.write_bytes(b"x")
    with pytest.raises(CorruptStoreError, match="not a directory"):
        DiskcacheBackend(str(path))


def test_a_writer_locked_out_too_long_gets_store_busy(store_path, monkeypatch):
    monkeypatch.setattr(module, "BUSY_TIMEOUT_S", 0.2)
    holder, waiter = DiskcacheBackend(store_path), DiskcacheBackend(store_path)
    try:
        with holder.transaction():
            holder.put(b"k", b"held")
            with pytest.raises(StoreBusyError) as info:
                waiter.put(b"k", b"lost")
            assert isinstance(info.value.__cause__, diskcache.Timeout)
            with pytest.raises(StoreBusyError):
                waiter.put_many([(b"k", b"lost")])
        assert waiter.get(b"k") == b"held"
        waiter.put(b"k", b"later")  # the waiter's connection is usable again
        assert holder.get(b"k") == b"later"
    finally:
        holder.close()
        waiter.close()


def test_engine_errors_are_translated(backend):
    def timeout_from(inner):
        try:
            try:
                raise inner
            except sqlite3.OperationalError:
                raise diskcache.Timeout from None
        except diskcache.Timeout as exc:
            return exc

    cases = [
        (sqlite3.OperationalError("database or disk is full"), StorageFullError),
        (OSError(errno.ENOSPC, "No space left on device"), StorageFullError),
        (OSError(errno.EROFS, "Read-only file system"), ReadOnlyStoreError),
        (sqlite3.OperationalError("attempt to write a readonly database"), ReadOnlyStoreError),
        (sqlite3.DatabaseError("database disk image is malformed"), CorruptStoreError),
        (timeout_from(sqlite3.OperationalError("database is locked")), StoreBusyError),
        (
            timeout_from(sqlite3.OperationalError("attempt to write a readonly database")),
            ReadOnlyStoreError,
        ),
        (OSError(errno.EIO, "I/O error"), BackendError),
    ]
    for exc, expected in cases:
        translated = backend._translate(exc)
        assert type(translated) is expected, exc
        assert backend.path in str(translated)


# -- snapshots --------------------------------------------------------------------------------


def test_snapshot_without_value_files_lets_writers_go_on(store_path, monkeypatch):
    monkeypatch.setattr(module, "BUSY_TIMEOUT_S", 0.2)
    reader, writer = DiskcacheBackend(store_path), DiskcacheBackend(store_path)
    try:
        reader.put_many([(b"a", b"1"), (b"b", b"2")])
        with reader.snapshot():
            writer.put(b"a", b"changed")
            writer.delete(b"b")
            writer.put(b"c", os.urandom(BIG))
            assert reader.get(b"a") == b"1"
            assert dict(reader.scan()) == {b"a": b"1", b"b": b"2"}
            with pytest.raises(UsageError):
                reader.put(b"x", b"y")
            with pytest.raises(UsageError), reader.transaction():
                pass
        assert reader.get(b"a") == b"changed" and reader.get(b"b") is None
    finally:
        reader.close()
        writer.close()


def test_snapshot_with_value_files_holds_writers_off(store_path, monkeypatch):
    monkeypatch.setattr(module, "BUSY_TIMEOUT_S", 0.2)
    big = os.urandom(BIG)
    reader, writer = DiskcacheBackend(store_path), DiskcacheBackend(store_path)
    try:
        reader.put(b"big", big)
        with reader.snapshot():
            with pytest.raises(StoreBusyError):
                writer.put(b"big", b"would remove the file under the snapshot")
            assert reader.get(b"big") == big
        writer.put(b"big", b"small now")
        assert reader.get(b"big") == b"small now"
    finally:
        reader.close()
        writer.close()


# -- many processes ---------------------------------------------------------------------------


def _write_from_process(path, worker):
    with DiskcacheBackend(path) as b:
        for i in range(100):
            value = bytes([worker]) * (BIG if i % 10 == 0 else 10)
            b.put(b"w%d:%03d" % (worker, i), value)
        b.put_many((b"m%d:%03d" % (worker, i), b"x") for i in range(100))


def test_many_processes_write_one_store(store_path):
    DiskcacheBackend(store_path).close()
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_write_from_process, args=(store_path, w)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    with DiskcacheBackend(store_path) as b:
        assert len(list(b.scan(b"w"))) == 400 and len(list(b.scan(b"m"))) == 400
        assert b.get(b"w3:010") == bytes([3]) * BIG
        assert b.check() == []
    assert "cache.db-wal" not in os.listdir(store_path)
