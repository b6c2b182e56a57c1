"""LMDB-specific behaviour: map growth, resizes by other processes and threads, stale readers,
file format and modes. The behaviour every engine shares is the kit (prontodb.testing), run here
by TestLmdbContract."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading

import lmdb
import pytest

from prontodb.backends import looks_like, sniff
from prontodb.backends.lmdb import INITIAL_MAP_SIZE, LmdbBackend, _SharedEnv
from prontodb.errors import (
    BackendError,
    StoreBusyError,
)
from prontodb.testing import BackendContract

MB = 1024 * 1024


class TestLmdbContract(BackendContract):
    engine = "lmdb"


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "store.lmdb")


def big(i: int) -> bytes:
    """A distinct 1 MiB value."""
    return i.to_bytes(4, "big") * (MB // 4)


def run_lmdb(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that talks to LMDB directly (another process)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


def map_size(backend: LmdbBackend) -> int:
    return backend._env.info()["map_size"]


# -- map growth ------------------------------------------------------------------------------


def test_map_grows_past_100mb_with_single_puts(path):
    with LmdbBackend(path) as store:
        assert map_size(store) == INITIAL_MAP_SIZE
        for i in range(120):
            store.put(b"big%03d" % i, big(i))
        assert map_size(store) > 100 * MB
    assert os.path.getsize(path) > 100 * MB
    with LmdbBackend(path, create=False) as store:
        assert [store.get(b"big%03d" % i) == big(i) for i in range(120)] == [True] * 120


def test_map_grows_inside_one_transaction(path):
    with LmdbBackend(path) as store:
        store.put(b"before", b"1")
        with store.transaction():
            for i in range(120):
                store.put(b"big%03d" % i, big(i))
                assert store.get(b"big%03d" % i) == big(i)  # own writes survive the replays
            store.delete(b"before")
        assert map_size(store) > 100 * MB
    with LmdbBackend(path, create=False) as store:
        assert store.get(b"before") is None
        assert [key for key, _ in store.scan(b"big")] == [b"big%03d" % i for i in range(120)]
        assert store.get(b"big119") == big(119)


def test_put_many_grows_the_map_and_counts(path):
    with LmdbBackend(path) as store:
        assert store.put_many((b"big%03d" % i, big(i)) for i in range(110)) == 110
    with LmdbBackend(path) as store:
        assert sum(1 for _ in store.scan(b"big")) == 110


def test_failed_transaction_after_growth_writes_nothing(path):
    with LmdbBackend(path) as store:
        with pytest.raises(KeyError), store.transaction():
            for i in range(80):
                store.put(b"big%03d" % i, big(i))
            raise KeyError("abort")
        assert list(store.scan()) == []


def test_replay_rolls_back_when_a_read_changed_meanwhile(path, monkeypatch):
    """Growing releases the write lock for a moment; a commit by another process in that window
    that changes something the transaction read must not be silently overwritten."""
    with LmdbBackend(path) as store:
        store.put(b"counter", b"1")
        interfere(monkeypatch, path, b"counter", b"from-other")
        with pytest.raises(StoreBusyError, match="rolled back"), store.transaction():
            assert store.get(b"counter") == b"1"
            store.put(b"counter", b"2")
            for i in range(80):
                store.put(b"big%03d" % i, big(i))
        assert store.get(b"counter") == b"from-other"
        assert store.get(b"big000") is None


def test_replay_succeeds_when_other_writes_are_unrelated(path, monkeypatch):
    with LmdbBackend(path) as store:
        store.put(b"counter", b"1")
        interfere(monkeypatch, path, b"unrelated", b"x")
        with store.transaction():
            assert store.get(b"counter") == b"1"
            assert [k for k, _ in store.scan(b"count")] == [b"counter"]
            store.put(b"counter", b"2")
            for i in range(80):
                store.put(b"big%03d" % i, big(i))
        assert store.get(b"counter") == b"2"
        assert store.get(b"unrelated") == b"x"
        assert store.get(b"big079") == big(79)


def interfere(monkeypatch, path: str, key: bytes, value: bytes, fill_mb: int = 0) -> None:
    """Make another process commit ``key`` (and ``fill_mb`` MiB of other data) the first time
    this process grows the map."""
    real_resize = _SharedEnv.resize
    done = []

    def resize(self, store_path, grow_from, *, wait=True):
        if grow_from is not None and wait and not done:
            done.append(True)
            run_lmdb(
                """
                import sys, lmdb
                env = lmdb.open(sys.argv[1], subdir=False, map_size=1024 * 1024 * 1024)
                with env.begin(write=True) as txn:
                    txn.put(sys.argv[2].encode(), sys.argv[3].encode())
                    for i in range(int(sys.argv[4])):
                        txn.put(b"fill%03d" % i, bytes([i % 256]) * (1024 * 1024))
                """,
                path,
                key.decode(),
                value.decode(),
                str(fill_mb),
            )
        return real_resize(self, store_path, grow_from, wait=wait)

    monkeypatch.setattr(_SharedEnv, "resize", resize)


def test_replay_that_fills_the_map_again_still_checks_every_read(path, monkeypatch):
    """The other process's data makes the replay itself overflow the doubled map before it
    reaches the read it invalidated; the second replay must still check that read."""
    with LmdbBackend(path) as store:
        store.put(b"counter", b"1")
        interfere(monkeypatch, path, b"counter", b"from-other", fill_mb=100)
        with pytest.raises(StoreBusyError, match="rolled back"), store.transaction():
            for i in range(40):
                store.put(b"big%03d" % i, big(i))
            assert store.get(b"counter") == b"1"
            store.put(b"counter", b"2")
            for i in range(40, 80):
                store.put(b"big%03d" % i, big(i))
        assert store.get(b"counter") == b"from-other"
        assert store.get(b"big000") is None


# -- other processes and threads -------------------------------------------------------------


def test_adopts_a_map_grown_by_another_process(path):
    first = LmdbBackend(path)
    second = LmdbBackend(path)  # one process: the two objects share one environment
    first.put(b"a", b"1")
    assert map_size(first) == INITIAL_MAP_SIZE
    run_lmdb(
        """
        import sys, lmdb
        env = lmdb.open(sys.argv[1], subdir=False, map_size=256 * 1024 * 1024)
        with env.begin(write=True) as txn:
            for i in range(100):
                txn.put(b"other%03d" % i, bytes([i]) * (1024 * 1024))
        """,
        path,
    )
    assert second.get(b"other099") == bytes([99]) * MB  # MapResizedError handled on read
    assert map_size(second) >= 256 * MB
    first.put(b"b", b"2")
    assert [k for k, _ in first.scan(b"other")][-1] == b"other099"
    first.close()
    second.close()


def test_growth_waits_for_a_snapshot_in_another_thread(path):
    writer = LmdbBackend(path)
    reader = LmdbBackend(path)
    with writer.transaction():  # one transaction: the map stays at its initial size
        writer.put(b"k", b"old")
        for i in range(60):
            writer.put(b"fill%03d" % i, big(i))
    assert map_size(writer) == INITIAL_MAP_SIZE
    snapshot_open = threading.Event()
    release = threading.Event()
    seen: list[bytes | None] = []

    def hold_snapshot() -> None:
        with reader.snapshot():
            snapshot_open.set()
            release.wait(30)
            seen.append(reader.get(b"k"))  # still valid: the map was not swapped under it
            seen.append(reader.get(b"big009"))
            seen.append(reader.get(b"fill059")[:4])

    thread = threading.Thread(target=hold_snapshot)
    thread.start()
    assert snapshot_open.wait(10)
    grown = threading.Event()

    def grow() -> None:
        with writer.transaction():
            writer.put(b"k", b"new")
            for i in range(10):  # fills the map within a few puts
                writer.put(b"big%03d" % i, big(i))
        grown.set()

    grower = threading.Thread(target=grow)
    grower.start()
    assert not grown.wait(1.0)  # blocked: the snapshot must end before the map can move
    release.set()
    thread.join(30)
    grower.join(30)
    assert grown.is_set()
    assert seen == [b"old", None, big(59)[:4]]
    assert map_size(reader) > INITIAL_MAP_SIZE
    assert reader.get(b"k") == b"new"
    writer.close()
    reader.close()


def test_threads_writing_through_separate_objects_never_conflict_while_growing(path):
    """While one thread aborts, grows the map and replays, the others of this process wait:
    none of them can commit in that window, so no replay ever has to be refused."""
    LmdbBackend(path).close()
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            with LmdbBackend(path) as store:
                for i in range(20):
                    with store.transaction():
                        count = int(store.get(b"counter") or b"0")
                        store.put(b"counter", b"%d" % (count + 1))
                        store.put(b"w%d-%02d" % (worker, i), big(i) * (1 + i % 3))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with LmdbBackend(path) as store:
        assert store.get(b"counter") == b"60"
        assert sum(1 for _ in store.scan(b"w")) == 60
        assert map_size(store) > INITIAL_MAP_SIZE


def test_nested_writes_through_two_objects_on_one_thread_fail_fast(path):
    first = LmdbBackend(path)
    second = LmdbBackend(path)
    with first.transaction():
        first.put(b"a", b"1")
        with pytest.raises(StoreBusyError, match="another backend object"):
            second.put(b"b", b"2")  # would deadlock on LMDB's write lock
    assert first.get(b"a") == b"1"
    assert second.get(b"b") is None
    first.close()
    second.close()


def test_growth_under_own_snapshot_on_the_same_thread_fails_instead_of_hanging(path):
    writer = LmdbBackend(path)
    reader = LmdbBackend(path)
    with (
        reader.snapshot(),
        pytest.raises(StoreBusyError, match="this thread"),
        writer.transaction(),
    ):
        for i in range(80):
            writer.put(b"big%03d" % i, big(i))
    assert writer.get(b"big000") is None
    writer.close()
    reader.close()


def killed_reader(path: str) -> int:
    """Start a process that holds a read transaction on ``path``, SIGKILL it, return its pid."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, time, lmdb
                env = lmdb.open(sys.argv[1], subdir=False, map_size=0)
                txn = env.begin()
                txn.get(b"k")
                print("ready", flush=True)
                time.sleep(60)
                """
            ),
            path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    return child.pid


def reader_pids(store: LmdbBackend) -> list[str]:
    return [line.split()[0] for line in store._env.readers().splitlines()[1:]]


def test_stale_reader_of_a_killed_process_is_cleared(path):
    # This process keeps the store open throughout, so LMDB never re-initializes the lock file
    # and a dead reader's slot stays until someone runs reader_check().
    with LmdbBackend(path) as store:
        store.put(b"k", b"v")
        pid = killed_reader(path)
        assert str(pid) in reader_pids(store)
        subprocess.run(  # opening the store in another process clears it
            [sys.executable, "-c", OPEN_STORE, path], check=True, timeout=60
        )
        assert str(pid) not in reader_pids(store)

        pid = killed_reader(path)
        assert str(pid) in reader_pids(store)
        assert store.check() == []  # check() clears it too
        assert str(pid) not in reader_pids(store)


OPEN_STORE = """
import sys
from prontodb.backends.lmdb import LmdbBackend
LmdbBackend(sys.argv[1], create=False).close()
"""


def test_scan_between_pages_pins_no_snapshot(path):
    with LmdbBackend(path) as store:
        store.put_many((b"k%05d" % i, b"v") for i in range(2500))
        pages = store.scan(b"k")
        assert next(pages) == (b"k00000", b"v")
        store.put(b"k00001", b"changed")  # another writer's view: a plain put
        readers = store._env.readers().splitlines()[1:]
        assert all(line.split()[-1] == "-" for line in readers)  # only reset, unpinned slots
        rest = list(pages)
    assert len(rest) == 2499


def test_forked_child_gets_a_clear_error_not_a_broken_environment(path):
    store = LmdbBackend(path)
    store.put(b"k", b"v")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            LmdbBackend(path)
        except BackendError as exc:
            code = 0 if "fork" in str(exc) else 2
        try:
            store.get(b"k")
            code = 3
        except BackendError:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get(b"k") == b"v"
    store.close()


# -- files -----------------------------------------------------------------------------------


def test_sniff_recognizes_lmdb_and_rejects_others(tmp_path, path):
    LmdbBackend(path).close()
    assert looks_like(path, "lmdb")
    assert sniff(path) == "lmdb"
    other = str(tmp_path / "other.lmdb")
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert not looks_like(other, "lmdb")
    empty = tmp_path / "empty.lmdb"
    empty.write_bytes(b"")
    assert not looks_like(str(empty), "lmdb")
    assert not looks_like(str(tmp_path / "missing.lmdb"), "lmdb")
    assert not looks_like(str(tmp_path), "lmdb")


def test_files_are_private_whatever_the_umask(path):
    old = os.umask(0)
    try:
        with LmdbBackend(path) as store:
            store.put(b"k", b"v")
            files = store.files()
    finally:
        os.umask(old)
    assert files == [path, path + "-lock"]
    assert [stat.S_IMODE(os.stat(f).st_mode) for f in files] == [0o600, 0o600]


def test_keys_outside_lmdb_limits(path):
    with LmdbBackend(path) as store:
        for key in (b"", b"x" * 512):
            with pytest.raises(BackendError, match="511"):
                store.put(key, b"v")
            assert store.get(key) is None
            assert store.delete(key) is False
        with pytest.raises(BackendError, match="511"), store.transaction():
            store.put(b"ok", b"v")
            store.put_many([(b"fine", b"v"), (b"", b"v")])
        assert store.get(b"ok") is None
        store.put(b"x" * 511, b"longest")
        assert store.get(b"x" * 511) == b"longest"


def test_full_durability_round_trip(path):
    with LmdbBackend(path, durability="full") as store:
        assert store._env.flags()["metasync"]
        store.put(b"a", b"1")
        store.put_many([(b"b", b"2"), (b"c", b"3")])
        with store.transaction():
            store.delete(b"a")
    normal = LmdbBackend(path)
    full = LmdbBackend(path, durability="full")  # shares the normal environment: syncs itself
    assert full._sync_after_commit
    full.put(b"d", b"4")
    normal.close()
    full.close()
    with LmdbBackend(path, durability="full", create=False) as store:
        assert list(store.scan()) == [(b"b", b"2"), (b"c", b"3"), (b"d", b"4")]
        assert store.check() == []


# -- bulk writes -----------------------------------------------------------------------------


def test_put_many_replays_its_spooled_chunks_after_the_map_grows(path, monkeypatch):
    from prontodb.backends import lmdb as engine

    monkeypatch.setattr(engine, "PUT_MANY_CHUNK", 3)
    with LmdbBackend(path) as store:
        start = map_size(store)
        with store.transaction():
            store.put(b"first", b"1")
            assert store.put_many((b"big%03d" % i, big(i)) for i in range(100)) == 100
            assert store._spool is not None  # the chunks wait on disk, not in memory
        assert map_size(store) > start
        assert store._spool is None
        assert store.get(b"first") == b"1"
        assert [store.get(b"big%03d" % i) == big(i) for i in range(100)] == [True] * 100


def test_put_many_of_a_list_replays_its_own_chunks_not_a_spool(path, monkeypatch):
    from prontodb.backends import lmdb as engine

    monkeypatch.setattr(engine, "PUT_MANY_CHUNK", 3)
    pairs = [(b"big%03d" % i, big(i)) for i in range(100)]
    with LmdbBackend(path) as store:
        start = map_size(store)
        with store.transaction():
            assert store.put_many(pairs) == 100
            assert store._spool is None  # the list's own chunks are kept for a replay
            pairs[:] = [(b"big%03d" % i, b"changed") for i in range(100)]  # the caller moves on
            store.put_many((b"more%03d" % i, big(i)) for i in range(60))  # grows the map again
            assert store._spool is not None
        assert map_size(store) > start
        assert [store.get(b"big%03d" % i) == big(i) for i in range(100)] == [True] * 100
        assert [store.get(b"more%03d" % i) == big(i) for i in range(60)] == [True] * 60


def leaf_pages(path: str) -> int:
    env = lmdb.open(path, subdir=False, readonly=True, lock=False)
    try:
        return env.stat()["leaf_pages"]
    finally:
        env.close()


def test_a_large_put_many_packs_its_pages_and_keeps_the_keys_after_it(path, tmp_path):
    """The keys after a bulk load (the Store's info keys) are set aside while it is written,
    so LMDB appends at the end of the tree and fills its pages: half the pages of a load
    that must split pages in half; the keys after it keep their values."""
    n = 20_000
    pairs = [(b"D%08d" % i, b"v" * 40) for i in range(n)]
    packed, halved = path, str(tmp_path / "halved.lmdb")
    with LmdbBackend(packed) as store:
        store.put_many([(b"S-after", b"kept"), (b"T-last", b"too")])
        with store.transaction():
            assert store.put_many(iter(pairs)) == n
            assert store.get(b"S-after") == b"kept"
        assert store.get(b"T-last") == b"too"
        assert [k for k, _ in store.scan(b"D")] == [k for k, _ in pairs]
        assert store.check() == []
    with LmdbBackend(halved) as store:  # the same load in batches too small to set aside
        store.put_many([(b"S-after", b"kept"), (b"T-last", b"too")])
        with store.transaction():
            for start in range(0, n, 1000):
                store.put_many(pairs[start : start + 1000])
    assert leaf_pages(packed) * 1.5 < leaf_pages(halved)


def test_a_put_many_reaching_the_set_aside_keys_wins_over_them(path, monkeypatch):
    from prontodb.backends import lmdb as engine

    monkeypatch.setattr(engine, "PUT_MANY_CHUNK", 3)
    with LmdbBackend(path) as store:
        store.put_many([(b"m1", b"old"), (b"z", b"old")])
        pairs = [(b"a%d" % i, b"new") for i in range(7)] + [(b"m1", b"new"), (b"b", b"new")]
        assert store.put_many(pairs) == 9
        assert store.get(b"m1") == b"new"
        assert store.get(b"z") == b"old"
        assert [k for k, _ in store.scan()] == sorted({k for k, _ in pairs} | {b"z"})
        # a chunk among existing keys sets nothing aside
        assert store.put_many([(b"a0", b"x"), (b"m0", b"x"), (b"zz", b"x")]) == 3
        assert store.get(b"m1") == b"new" and store.get(b"z") == b"old"


def test_set_aside_keys_survive_a_replay_after_the_map_grows(path, monkeypatch):
    from prontodb.backends import lmdb as engine

    monkeypatch.setattr(engine, "PUT_MANY_CHUNK", 3)
    with LmdbBackend(path) as store:
        store.put(b"zz-info", b"kept")
        start = map_size(store)
        assert store.put_many((b"big%03d" % i, big(i)) for i in range(90)) == 90
        assert map_size(store) > start
        assert store.get(b"zz-info") == b"kept"
        assert [store.get(b"big%03d" % i) == big(i) for i in range(90)] == [True] * 90


def test_a_set_aside_key_changed_by_another_process_meanwhile_rolls_back(path, monkeypatch):
    from prontodb.backends import lmdb as engine

    monkeypatch.setattr(engine, "PUT_MANY_CHUNK", 3)
    with LmdbBackend(path) as store:
        store.put(b"zz-info", b"1")
        interfere(monkeypatch, path, b"zz-info", b"from-other")
        with pytest.raises(StoreBusyError, match="rolled back"):
            store.put_many((b"big%03d" % i, big(i)) for i in range(90))
        assert store.get(b"zz-info") == b"from-other"
        assert store.get(b"big000") is None


def test_a_failed_put_many_inside_a_transaction_breaks_it(path):
    with LmdbBackend(path) as store:
        store.put(b"keep", b"old")

        def pairs():
            yield b"keep", b"new"
            raise RuntimeError("the source failed")

        with pytest.raises(BackendError, match="rolled back"), store.transaction():
            store.put(b"before", b"x")
            with pytest.raises(RuntimeError):
                store.put_many(pairs())
        assert store.get(b"keep") == b"old"
        assert store.get(b"before") is None
