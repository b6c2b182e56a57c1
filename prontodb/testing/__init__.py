"""The shipped conformance kit for ProntoDB engines: :class:`BackendContract`.

Every sentence of :class:`prontodb.backends.Backend`'s docstrings is checked here, once, for
every engine. An engine's test module proves it conforms in a few lines (pytest required)::

    from prontodb.testing import BackendContract

    class TestMyEngine(BackendContract):
        engine = "myengine"          # its registry name

and, for a ``url`` engine (or to choose where stores go), a fixture::

        @pytest.fixture
        def location(self, tmp_path):
            return "myscheme://localhost/" + uuid.uuid4().hex   # a store that does not exist yet

The engine is opened through the registry (``backend_class(engine)``), exactly as ProntoDB
opens it, so an outside engine must be registered (entry point ``prontodb.backends``) before its
tests run. Multi-process checks start children with ``spawn``: the engine must be importable
there too. ``first_open_rounds`` rounds of 16 processes creating one new store at once run by
default; ``--run-slow`` (when the test suite defines it) runs ``first_open_rounds_slow``.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest

from prontodb import backends
from prontodb.backends import base
from prontodb.backends.base import Backend, prefix_successor
from prontodb.errors import (
    BackendError,
    ConfigError,
    CorruptStoreError,
    StoreNotFoundError,
    UsageError,
    WriteConflictError,
)

__all__ = ["BackendContract"]

Opener = Callable[..., Backend]


class BackendContract:
    """The contract every engine passes unchanged. Subclass it, set ``engine``, and override
    the ``location`` fixture when the default (a fresh path with the engine's extension under
    ``tmp_path``, or ``memory://<random>`` for the memory engine) does not suit."""

    #: Registry name of the engine under test.
    engine: ClassVar[str]
    #: False for an engine whose stores live inside one process (memory).
    multiprocess: ClassVar[bool] = True
    #: Rounds of 16 processes opening one new store at the same moment (more with --run-slow).
    first_open_rounds: ClassVar[int] = 1
    first_open_rounds_slow: ClassVar[int] = 30

    # -- fixtures an engine may override ---------------------------------------------------

    @pytest.fixture
    def location(self, tmp_path: Any) -> str:
        """Where a new store of the engine goes; nothing exists there yet."""
        spec = backends.engine_spec(self.engine)
        if spec.kind == "url":
            if "memory" in spec.schemes:
                return f"memory://{uuid.uuid4().hex}"
            pytest.skip(f"{self.engine} is a url engine: override the 'location' fixture")
        return str(tmp_path / f"store{backends.default_extension(self.engine)}")

    @pytest.fixture
    def open_backend(self, location: str) -> Iterator[Opener]:
        """Open (another handle on) the store at ``location``; all are closed at teardown."""
        handles: list[Backend] = []
        cls = backends.backend_class(self.engine)

        def opener(engine_class: type[Backend] | None = None, **kwargs: Any) -> Backend:
            handle = (engine_class or cls)(location, **kwargs)
            handles.append(handle)
            return handle

        yield opener
        for handle in handles:
            handle.close()
        self.discard(location)

    def discard(self, location: str) -> None:
        """Forget the store at ``location`` after a test (the memory engine's table)."""
        if location.startswith("memory://"):
            from prontodb.backends.memory import forget

            forget(location)

    @property
    def spec(self) -> backends.EngineSpec:
        return backends.engine_spec(self.engine)

    def _local_only(self) -> None:
        if self.spec.kind == "url":
            pytest.skip("a url engine has no local files")

    def _multiprocess_only(self) -> None:
        if not self.multiprocess:
            pytest.skip(f"{self.engine} stores live inside one process")

    # -- values and keys -------------------------------------------------------------------

    def test_round_trip_of_awkward_bytes(self, open_backend: Opener) -> None:
        b = open_backend()
        values = {b"empty": b"", b"nul": b"\x00a\x00", b"bin": bytes(range(256)), b"\x00k": b"v"}
        for k, v in values.items():
            b.put(k, v)
        for k, v in values.items():
            assert b.get(k) == v
            assert type(b.get(k)) is bytes

    def test_ten_megabyte_value(self, open_backend: Opener) -> None:
        b = open_backend()
        big = os.urandom(10 * 1024 * 1024)
        b.put(b"big", big)
        assert b.get(b"big") == big

    def test_missing_key_is_none_never_raises(self, open_backend: Opener) -> None:
        assert open_backend().get(b"nope") is None

    def test_overwrite_replaces(self, open_backend: Opener) -> None:
        b = open_backend()
        b.put(b"k", b"1")
        b.put(b"k", b"2")
        assert b.get(b"k") == b"2"
        assert list(b.scan(b"k")) == [(b"k", b"2")]

    def test_delete_reports_whether_removed(self, open_backend: Opener) -> None:
        b = open_backend()
        b.put(b"k", b"1")
        assert b.delete(b"k") is True
        assert b.delete(b"k") is False
        assert b.get(b"k") is None

    # -- scans -----------------------------------------------------------------------------

    def test_prefix_scan_is_ascending_by_bytes(self, open_backend: Opener) -> None:
        b = open_backend()
        keys = [b"p\x00b", b"p\x00a", "p\x00é".encode(), b"p\x00\xff", b"p\x00", b"p\x01", b"o"]
        keys.append(b"p\x00a\x00")
        for k in keys:
            b.put(k, k)
        got = [k for k, _ in b.scan(b"p\x00")]
        assert got == sorted(k for k in keys if k.startswith(b"p\x00"))
        assert [v for _, v in b.scan(b"p\x00")] == got
        assert [k for k, _ in b.scan()] == sorted(keys)

    def test_scan_with_start(self, open_backend: Opener) -> None:
        b = open_backend()
        for i in range(10):
            b.put(b"n%02d" % i, b"")
        tail = [b"n%02d" % i for i in range(5, 10)]
        assert [k for k, _ in b.scan(b"n", start=b"n05")] == tail
        assert [k for k, _ in b.scan(b"n", start=b"n045")] == tail
        assert list(b.scan(b"n", start=b"o")) == []
        assert [k for k, _ in b.scan(b"n0", start=b"a")] == [b"n%02d" % i for i in range(10)]

    def test_scan_crosses_page_boundaries(self, open_backend: Opener) -> None:
        b = open_backend()
        n = 4500
        b.put_many((b"x%05d" % i, b"v") for i in range(n))
        b.put(b"y", b"")
        assert [k for k, _ in b.scan(b"x")] == [b"x%05d" % i for i in range(n)]

    def test_scan_with_ff_prefix(self, open_backend: Opener) -> None:
        b = open_backend()
        b.put(b"\xff\xff", b"1")
        b.put(b"\xff", b"0")
        b.put(b"\xfe", b"x")
        assert [k for k, _ in b.scan(b"\xff")] == [b"\xff", b"\xff\xff"]

    def test_prefix_successor(self) -> None:
        assert prefix_successor(b"ab") == b"ac"
        assert prefix_successor(b"a\xff") == b"b"
        assert prefix_successor(b"\xff") is None
        assert prefix_successor(b"") is None

    # -- bulk writes and transactions ------------------------------------------------------

    def test_put_many_counts_and_last_wins(self, open_backend: Opener) -> None:
        b = open_backend()
        assert b.put_many([(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]) == 3
        assert b.get(b"a") == b"3"
        assert b.put_many(iter([])) == 0

    def test_put_many_is_all_or_nothing(self, open_backend: Opener) -> None:
        b = open_backend()
        b.put(b"keep", b"old")

        def pairs() -> Iterator[tuple[bytes, bytes]]:
            yield b"keep", b"new"
            yield b"other", b"x"
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            b.put_many(pairs())
        assert b.get(b"keep") == b"old"
        assert b.get(b"other") is None

    def test_put_many_of_a_generator_larger_than_a_batch(self, open_backend: Opener) -> None:
        b = open_backend()
        n = 25_000
        assert b.put_many((b"g%06d" % i, b"%d" % i) for i in range(n)) == n
        assert b.get(b"g%06d" % (n - 1)) == b"%d" % (n - 1)
        assert sum(1 for _ in b.scan(b"g")) == n

    def test_transaction_commits_together(self, open_backend: Opener) -> None:
        b = open_backend()
        with b.transaction():
            b.put(b"a", b"1")
            assert b.get(b"a") == b"1"  # reads see the transaction's own writes
            b.put(b"b", b"2")
            b.delete(b"a")
            assert [k for k, _ in b.scan()] == [b"b"]
        other = open_backend()
        assert other.get(b"b") == b"2"
        assert other.get(b"a") is None

    def test_transaction_rolls_back_on_exception(self, open_backend: Opener) -> None:
        b = open_backend()
        b.put(b"a", b"old")
        b.put(b"gone", b"x")
        with pytest.raises(KeyError), b.transaction():
            b.put(b"a", b"new")
            b.put(b"b", b"new")
            b.delete(b"gone")
            b.put_many([(b"c", b"1")])
            raise KeyError("boom")
        assert b.get(b"a") == b"old"
        assert b.get(b"b") is None
        assert b.get(b"c") is None
        assert b.get(b"gone") == b"x"

    def test_nested_transaction_joins_outer(self, open_backend: Opener) -> None:
        b = open_backend()
        with pytest.raises(ValueError), b.transaction():
            with b.transaction():
                b.put(b"inner", b"1")
            assert b.get(b"inner") == b"1"
            raise ValueError
        assert b.get(b"inner") is None

    def test_run_transaction_returns_the_result_once_committed(self, open_backend: Opener) -> None:
        b, other = open_backend(), open_backend()

        def unit() -> int:
            b.put(b"r", b"1")
            return 7

        assert b.run_transaction(unit) == 7
        assert other.get(b"r") == b"1"

    def test_run_transaction_retries_a_conflict_then_commits(self, open_backend: Opener) -> None:
        flaky = self._flaky(open_backend, failures=2)
        runs: list[int] = []

        def unit() -> str:
            runs.append(1)
            flaky.put(b"counter", b"%d" % len(runs))
            return "done"

        assert flaky.run_transaction(unit) == "done"
        assert len(runs) == 3
        assert open_backend().get(b"counter") == b"3"

    def test_run_transaction_gives_up_and_writes_nothing(
        self, open_backend: Opener, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(base, "TRANSACTION_ATTEMPTS", 3)
        flaky = self._flaky(open_backend, failures=10)
        runs: list[int] = []

        def unit() -> None:
            runs.append(1)
            flaky.put(b"never", b"x")

        with pytest.raises(WriteConflictError):
            flaky.run_transaction(unit)
        assert len(runs) == 3
        assert open_backend().get(b"never") is None

    def _flaky(self, open_backend: Opener, failures: int) -> Backend:
        """A backend of this engine whose commit raises WriteConflictError ``failures`` times
        (after the unit ran, so the engine rolls it back) before it lets one through."""
        cls = backends.backend_class(self.engine)
        left = [failures]

        class Flaky(cls):  # type: ignore[valid-type, misc]
            @contextmanager
            def _transaction(self) -> Iterator[None]:
                with super()._transaction():
                    yield
                    if left[0]:
                        left[0] -= 1
                        raise WriteConflictError("simulated conflict at commit")

        return open_backend(engine_class=Flaky)

    # -- snapshots -------------------------------------------------------------------------

    def test_snapshot_reads(self, open_backend: Opener) -> None:
        b = open_backend()
        b.put_many((b"s%03d" % i, b"v") for i in range(50))
        with b.snapshot():
            assert len(list(b.scan(b"s"))) == 50
            assert b.get(b"s001") == b"v"

    def test_no_write_inside_a_snapshot(self, open_backend: Opener) -> None:
        b = open_backend()
        b.put(b"k", b"before")
        with b.snapshot():
            with pytest.raises(UsageError):
                b.put(b"k", b"inside")
            with pytest.raises(UsageError):
                b.put_many([(b"m", b"inside")])
            with pytest.raises(UsageError):
                b.delete(b"k")
            with pytest.raises(UsageError), b.transaction():
                b.put(b"t", b"inside")
            assert b.get(b"k") == b"before"
        assert b.get(b"k") == b"before"
        assert b.get(b"m") is None and b.get(b"t") is None
        b.put(b"k", b"after")  # the snapshot is over: writes work again
        assert b.get(b"k") == b"after"

    def test_snapshot_inside_a_transaction_joins_it(self, open_backend: Opener) -> None:
        b = open_backend()
        with b.transaction():
            b.put(b"a", b"1")
            with b.snapshot():
                assert b.get(b"a") == b"1"
            b.put(b"b", b"2")
        assert b.get(b"b") == b"2"

    # -- opening and closing ---------------------------------------------------------------

    def test_persistence_across_reopen(self, open_backend: Opener) -> None:
        b = open_backend()
        b.put(b"k", b"v")
        b.close()
        b.close()  # closing twice is harmless
        assert open_backend().get(b"k") == b"v"

    def test_use_after_close_is_refused(self, open_backend: Opener) -> None:
        b = open_backend()
        b.put(b"k", b"v")
        b.close()
        assert b.closed
        for use in (
            lambda: b.get(b"k"),
            lambda: b.put(b"k", b"w"),
            lambda: b.put_many([(b"k", b"w")]),
            lambda: b.delete(b"k"),
            lambda: list(b.scan()),
            lambda: b.check(),
            lambda: b.transaction().__enter__(),
            lambda: b.snapshot().__enter__(),
        ):
            with pytest.raises(BackendError, match="closed"):
                use()
        assert open_backend().get(b"k") == b"v"

    def test_unknown_durability_is_refused_before_anything_is_created(self, location: str) -> None:
        cls = backends.backend_class(self.engine)
        with pytest.raises(ConfigError, match="durability"):
            cls(location, durability="bogus")
        if self.spec.kind != "url":
            assert not os.path.lexists(location)
        with pytest.raises(StoreNotFoundError):  # and no store came into being
            cls(location, create=False)

    def test_two_handles_see_each_other(self, open_backend: Opener) -> None:
        one, two = open_backend(), open_backend()
        one.put(b"k", b"1")
        assert two.get(b"k") == b"1"
        two.put(b"k", b"2")
        assert one.get(b"k") == b"2"

    def test_missing_store_without_create(self, location: str) -> None:
        with pytest.raises(StoreNotFoundError):
            backends.backend_class(self.engine)(location, create=False)

    def test_check_sound_store(self, open_backend: Opener) -> None:
        b = open_backend()
        b.put(b"k", b"v")
        assert b.check() == []

    def test_info_is_plain_facts_with_warnings_and_notes_as_lines(
        self, open_backend: Opener
    ) -> None:
        """``info()`` (``prontodb info``, ``doctor``) is a flat mapping of plain values whose
        ``warnings`` and ``notes``, when present, are lists of one-line strings; it reads
        nothing of the data, so it works on an empty store and after writes."""
        b = open_backend()
        for _ in range(2):
            facts = b.info()
            assert isinstance(facts, dict)
            for name, value in facts.items():
                assert isinstance(name, str)
                if name in ("warnings", "notes"):
                    assert isinstance(value, list)
                    assert all(isinstance(line, str) and "\n" not in line for line in value)
                else:
                    assert value is None or isinstance(value, str | int | float | bool | list)
            b.put(b"k", b"v")
        b.close()
        with pytest.raises(BackendError):
            b.info()

    def test_full_durability_round_trip(self, open_backend: Opener) -> None:
        b = open_backend(durability="full")
        b.put(b"k", b"v")
        assert b.get(b"k") == b"v"
        assert b.durability == "full"

    # -- files on disk ---------------------------------------------------------------------

    def test_files_private_and_sniffable(self, location: str) -> None:
        self._local_only()
        old = os.umask(0)
        try:
            b = backends.backend_class(self.engine)(location)
            b.put(b"k", b"v" * 100_000)
            files = b.files()
            assert files and location in files
            for f in files:
                mode = os.stat(f).st_mode & 0o777
                assert mode in (0o600, 0o700), (f, oct(mode))
            b.close()
        finally:
            os.umask(old)
        assert backends.sniff(location) == self.engine
        assert backends.looks_like(location, self.engine)
        assert backends.from_extension(location) in (self.engine, None)

    def test_close_leaves_no_side_files(self, location: str) -> None:
        self._local_only()
        b = backends.backend_class(self.engine)(location)
        b.put(b"k", b"v")
        b.close()
        folder = os.path.dirname(location)
        leftovers = [
            f
            for root, _, names in os.walk(folder)
            for f in names
            if f.endswith(("-wal", "-shm", "-journal"))
        ]
        assert leftovers == []

    def test_garbage_at_the_location_is_a_corrupt_store(self, location: str) -> None:
        self._local_only()
        target = location
        if self.spec.kind == "directory":
            os.mkdir(location, 0o700)
            target = os.path.join(location, self.spec.probe or "data")
        with open(target, "wb") as fh:
            fh.write(b"this is not a store, just words\n" * 256)
        before = _tree_bytes(location)
        with pytest.raises(CorruptStoreError):
            b = backends.backend_class(self.engine)(location)
            try:
                b.get(b"k")
            finally:
                b.close()
        assert _tree_bytes(location) == before  # refused untouched

    # -- processes -------------------------------------------------------------------------

    def test_four_processes_write_concurrently(self, location: str) -> None:
        self._multiprocess_only()
        backends.backend_class(self.engine)(location).close()
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(target=_writer, args=(self.engine, location, w, 1500)) for w in range(4)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(180)
            assert p.exitcode == 0
        b = backends.backend_class(self.engine)(location)
        try:
            assert len(list(b.scan(b"w"))) == 6000
        finally:
            b.close()

    def test_sixteen_processes_create_one_new_store_at_once(
        self, location: str, request: Any
    ) -> None:
        self._multiprocess_only()
        slow = bool(request.config.getoption("--run-slow", default=False))
        rounds = self.first_open_rounds_slow if slow else self.first_open_rounds
        ctx = multiprocessing.get_context("spawn")
        for round_ in range(rounds):
            where = location if round_ == 0 else _numbered(location, round_)
            go = ctx.Event()
            results = ctx.Queue()
            procs = [
                ctx.Process(target=_first_open, args=(self.engine, where, w, go, results))
                for w in range(16)
            ]
            for p in procs:
                p.start()
            go.set()
            outcomes = [results.get(timeout=180) for _ in procs]
            for p in procs:
                p.join(60)
            failures = [o for o in outcomes if o != "ok"]
            assert failures == [], f"round {round_}: {failures}"
            b = backends.backend_class(self.engine)(where)
            try:
                assert [k for k, _ in b.scan(b"first-")] == [b"first-%02d" % w for w in range(16)]
            finally:
                b.close()
            self.discard(where)


def _numbered(location: str, n: int) -> str:
    stem, ext = os.path.splitext(location)
    return f"{stem}-{n}{ext}"


def _tree_bytes(path: str) -> dict[str, bytes]:
    if os.path.isfile(path):
        with open(path, "rb") as fh:
            return {path: fh.read()}
    found: dict[str, bytes] = {}
    for root, _, names in os.walk(path):
        for name in names:
            with open(os.path.join(root, name), "rb") as fh:
                found[os.path.join(root, name)] = fh.read()
    return found


def _writer(engine: str, location: str, worker: int, count: int) -> None:
    b = backends.backend_class(engine)(location)
    for i in range(count):
        b.put(b"w%d-%05d" % (worker, i), b"x" * 100)
    b.close()


def _first_open(engine: str, location: str, worker: int, go: Any, results: Any) -> None:
    go.wait(60)
    try:
        b = backends.backend_class(engine)(location)
        try:
            b.put(b"first-%02d" % worker, b"here")
        finally:
            b.close()
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put(f"{type(exc).__name__}: {exc}")
    else:
        results.put("ok")
