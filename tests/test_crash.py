"""Crash safety: writers killed with SIGKILL at random points (DESIGN §7, durability normal).

Every child is forked from a fork server that has prontodb and its engines imported already
(``tests/_crashworker.py``), does its setup, says ``start``, and is killed after a random delay
(seeded per scenario and backend) drawn from the time the same work took when left alone. The
kinds of work: single sets (each acknowledged over the pipe when ``set`` returned), one large
``set_many`` (with some file-sized values), a token stream, an ``import``, a ``gc``, a
``restore --replace`` and a ``cursor migrate``. After every kill the store must reopen and pass
its engine's integrity check, every acknowledged write must be there, and a multi-entry
operation must have happened entirely or not at all. For LMDB the parent keeps the store open
throughout, so that reader slots of killed children stay in the lock file until they are
cleared; they must all be cleared by the next open or check.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import random
import signal
import time
from dataclasses import dataclass, field

import pytest

import prontodb
from prontodb import cursor as cursors
from prontodb import keyspace, portable
from prontodb.backends import backend_class

from . import _crashworker as worker
from .conftest import EXTENSIONS, FILE_BACKENDS

#: Kills that must land while the work is under way, per scenario and backend.
KILLS = 20
FIGURES: dict[str, int] = collections.Counter()

_context = None


def _ctx():
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["tests._crashworker", "pytest"])
        _context = ctx
    return _context


@dataclass
class Outcome:
    acks: list = field(default_factory=list)
    done: bool = False
    killed: bool = False
    took: float = 0.0


def run_child(target, *args, kill_after: float | None = None) -> Outcome:
    """Run ``target`` in a forked child; kill it ``kill_after`` seconds after it said start
    (None: let it finish)."""
    ctx = _ctx()
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=target, args=(sender, *args), daemon=True)
    child.start()
    sender.close()
    outcome = Outcome()

    def receive(timeout: float | None) -> object:
        if not receiver.poll(timeout):
            return None
        try:
            return receiver.recv()
        except (EOFError, OSError):
            return EOFError

    try:
        first = receive(60)
        assert first == "start", f"child failed before starting (exit code {child.exitcode})"
        started = time.monotonic()
        deadline = None if kill_after is None else started + kill_after
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            message = receive(60 if left is None else left)
            if message == "done":
                outcome.done = True
                outcome.took = time.monotonic() - started
                break
            if message is EOFError:
                break
            if message is not None:
                outcome.acks.append(message)
            elif left is None:
                raise AssertionError("child neither finished nor reported for 60 s")
        if child.is_alive() and kill_after is not None:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:  # it finished just now
                pass
            outcome.killed = not outcome.done
        child.join(60)
        while True:  # what the child sent before it died is acknowledged too
            message = receive(0)
            if message is None or message is EOFError:
                break
            if message == "done":
                outcome.done, outcome.killed = True, False
            else:
                outcome.acks.append(message)
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
            child.join()
    assert child.exitcode in (0, -signal.SIGKILL), f"child failed (exit code {child.exitcode})"
    return outcome


def reopen(path: str, **kwargs) -> prontodb.Store:
    """Open the store after a kill; it must open and pass its engine's integrity check."""
    store = prontodb.open(path, create=False, **kwargs)
    problems = store.backend.check()
    if problems:
        store.close()
        raise AssertionError(f"{path} is damaged after a kill: {problems[:5]}")
    return store


def count(path: str, scope: str) -> int:
    with reopen(path) as store:
        return store.count(scope)


def layers_signature(path: str) -> collections.Counter:
    """Entries per (user, project) over every layer of the store."""
    found: collections.Counter = collections.Counter()
    with reopen(path) as store:
        for key, _ in store.backend.scan(keyspace.DATA):
            user, _, address = keyspace.split_layer(key)
            found[(user, address.project)] += 1
    return found


class Kills:
    """Runs one scenario: a calibration run left alone, then kills at random points until
    KILLS of them landed while the work was under way."""

    def __init__(self, name: str, backend: str, path: str | None) -> None:
        self.name = f"{name}[{backend}]"
        self.rng = random.Random(self.name)
        self.keeper = None
        if backend == "lmdb" and path is not None:
            # Holding the store open keeps the lock file (and killed readers' slots) alive.
            self.keeper = backend_class("lmdb")(path)
        self.stale_seen = 0

    def run(self, target, args, verify, *, window: float | None = None, kills=KILLS) -> int:
        run = 0
        if window is None:  # how long the work takes when left alone
            calibration = run_child(target, *args(run))
            verify(run, calibration)
            window = calibration.took
        took = window
        landed = attempts = 0
        while landed < kills:
            attempts += 1
            assert attempts <= 6 * kills, f"{self.name}: only {landed} kills landed mid-work"
            run += 1
            outcome = run_child(target, *args(run), kill_after=self.rng.uniform(0, took))
            self._look_for_stale_readers()
            verify(run, outcome)
            landed += outcome.killed
            if not outcome.killed:
                # The work finished before the kill (warm caches make later runs faster than
                # the calibration): aim earlier, so that the kills keep landing mid-work.
                took *= 0.75
        self.finish()
        FIGURES[self.name] = landed
        print(
            f"\n{self.name}: {landed} kills mid-work in {attempts} runs, {self.stale_seen} "
            "stale LMDB readers cleared"
        )
        return landed

    def _look_for_stale_readers(self) -> None:
        if self.keeper is None:
            return
        self.stale_seen += len(dead_readers(self.keeper))

    def finish(self) -> None:
        if self.keeper is None:
            return
        assert self.keeper.check() == []  # runs reader_check
        assert dead_readers(self.keeper) == []
        self.keeper.close()


def dead_readers(lmdb_backend) -> list[int]:
    dead = []
    for line in lmdb_backend._env.readers().splitlines()[1:]:
        pid = int(line.split()[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.append(pid)
    return dead


@pytest.fixture
def path(tmp_path, file_backend_name):
    store_path = str(tmp_path / f"store{EXTENSIONS[file_backend_name]}")
    prontodb.open(store_path).close()
    return store_path


# -- single sets ---------------------------------------------------------------------------


def test_killed_single_sets_keep_every_acknowledged_write(path, file_backend_name):
    def verify(run, outcome):
        with reopen(path) as store:
            for i in outcome.acks:
                assert store.get(f"s.r{run}.k{i}") == f"value-{run}-{i}".encode()

    kills = Kills("single sets", file_backend_name, path)
    kills.run(worker.single_sets, lambda run: (path, run), verify, window=0.03)


# -- multi-entry operations: all or nothing ----------------------------------------------------


def test_killed_set_many_is_all_or_nothing(path, file_backend_name):
    size = 1500

    def verify(run, outcome):
        found = count(path, f"m.r{run}")
        assert found in (0, size), f"run {run}: {found} of {size} entries"
        assert found == size or not outcome.done

    kills = Kills("set_many", file_backend_name, path)
    kills.run(worker.set_many, lambda run: (path, run, size), verify)


def test_killed_stream_is_all_or_nothing(path, file_backend_name):
    size = 1500

    def verify(run, outcome):
        found = count(path, f"t.r{run}")
        assert found in (0, size), f"run {run}: {found} of {size} entries"
        assert found == size or not outcome.done

    kills = Kills("stream", file_backend_name, path)
    kills.run(worker.stream_load, lambda run: (path, run, size), verify)


def test_killed_import_is_all_or_nothing_and_leaves_no_spool(path, file_backend_name, tmp_path):
    size = 1000
    folder = tmp_path / "exports"
    folder.mkdir()
    before = sorted(os.listdir(os.path.dirname(path)))

    def verify(run, outcome):
        found = count(path, f"i.r{run}")
        assert found in (0, size), f"run {run}: {found} of {size} entries"
        assert found == size or not outcome.done
        assert sorted(os.listdir(os.path.dirname(path))) == before

    kills = Kills("import", file_backend_name, path)
    kills.run(worker.import_file, lambda run: (path, run, size, str(folder)), verify)


def test_killed_gc_never_touches_live_entries(path, file_backend_name):
    expired, live = 1200, 100
    prefix = keyspace.layer_prefix("default", None)

    def verify(run, outcome):
        with reopen(path) as store:
            assert store.count(f"g.live{run}") == live
            left = sum(1 for _ in store.backend.scan(prefix + f"g\x00r{run}\x00".encode()))
        assert 0 <= left <= expired
        assert left == 0 or not outcome.done

    kills = Kills("gc", file_backend_name, path)
    kills.run(worker.gc, lambda run: (path, run, expired, live), verify)
    with reopen(path) as store:
        store.gc()
        assert store.backend.get(prefix + b"g\x00r1\x00x0\x00") is None


def test_killed_restore_leaves_the_old_or_the_new_data(path, file_backend_name, tmp_path, home):
    archives, signatures = {}, {}
    for project, size in (("a", 800), ("b", 1200)):
        source = str(tmp_path / f"source-{project}.sqlite")
        with prontodb.open(source) as store:
            store.set_many([(f"{project}.n.k{j}", f"v{j}") for j in range(size)])
            store.layer(user="other").set_many(
                [(f"{project}.o.k{j}", "o") for j in range(size // 3)]
            )
            store.create_cache(f"{project}.c", 60)
            archives[project] = portable.backup(store, str(tmp_path / f"{project}.tar.gz")).path
        signatures[project] = layers_signature(source)

    def verify(run, outcome):
        wanted = "a" if run % 2 == 0 else "b"
        previous = "b" if run % 2 == 0 else "a"
        found = layers_signature(path)
        allowed = [signatures[wanted]] + ([signatures[previous]] if run else [])
        assert found in allowed, f"run {run}: a mixture {dict(found)}"
        assert found == signatures[wanted] or not outcome.done
        if found != signatures[wanted]:  # killed before its commit: the next run expects it
            with prontodb.open(path) as store:
                portable.restore(store, archives[wanted], replace=True)

    kills = Kills("restore", file_backend_name, path)
    kills.run(worker.restore, lambda run: (path, archives["a" if run % 2 == 0 else "b"]), verify)


def _unretire(source):
    """Put back the old store a migrate retired (renamed to <stem>.migrated-<time><ext>), so
    the next round migrates it again; a round killed after repointing may have left the old
    store in place, or retired it."""
    if os.path.exists(source):
        return
    folder = os.path.dirname(source)
    stem, ext = os.path.splitext(os.path.basename(source))
    (retired,) = [
        n for n in os.listdir(folder) if n.startswith(f"{stem}.migrated-") and n.endswith(ext)
    ]
    for entry in os.listdir(folder):
        if entry.startswith(retired):
            os.rename(os.path.join(folder, entry), source + entry[len(retired) :])


def test_killed_migrate_leaves_the_cursor_on_a_complete_store(tmp_path, home, file_backend_name):
    target = FILE_BACKENDS[(FILE_BACKENDS.index(file_backend_name) + 1) % len(FILE_BACKENDS)]
    source = str(tmp_path / "cursors" / f"work{EXTENSIONS[file_backend_name]}")
    original = cursors.define("default", "work", source, backend=file_backend_name, env=home)
    with prontodb.open(source) as store:
        store.set_many([(f"p.n.k{j}", f"v{j}") for j in range(1000)])
        store.layer(user="other", meta="m").set_many([(f"q.n.k{j}", "x") for j in range(200)])
        store.create_cache("p.c", 60)
    signature = layers_signature(source)
    new_path = portable.migrate_path(source, target)
    window_hits = 0

    def verify(run, outcome):
        nonlocal window_hits
        spec = cursors.load("default", "work", home)
        assert spec.path in (source, new_path)
        assert layers_signature(spec.path) == signature
        assert (spec.path == new_path) == outcome.done or spec.path == new_path
        if spec.path == new_path:
            cursors.save("default", original, home)
            cursors.remove_store(new_path)
            _unretire(source)
        elif os.path.lexists(new_path):
            # Killed between moving the verified copy into place and repointing the cursor:
            # the cursor is intact; a new migrate refuses to overwrite the copy (clear error).
            window_hits += 1
            cursors.remove_store(new_path)

    kills = Kills("migrate", file_backend_name, source)
    kills.run(worker.migrate, lambda run: (dict(home), "work", target), verify)
    # A migrate after all those kills clears what they left and succeeds.
    portable.migrate("default", "work", target, env=home)
    leftovers = [n for n in os.listdir(os.path.dirname(source)) if n.startswith(".prontodb-")]
    assert leftovers == []
    assert layers_signature(cursors.load("default", "work", home).path) == signature
    print(f"migrate[{file_backend_name}]: {window_hits} kills between rename and repoint")


@pytest.mark.slow
def test_soak_killed_writers_of_every_kind(path, file_backend_name):
    """200 kills each of single sets and of set_many (opt-in: --run-slow)."""

    def verify_sets(run, outcome):
        with reopen(path) as store:
            for i in outcome.acks:
                assert store.get(f"s.r{run}.k{i}") == f"value-{run}-{i}".encode()

    def verify_many(run, outcome):
        assert count(path, f"m.r{run}") in (0, 1500)

    Kills("soak single sets", file_backend_name, path).run(
        worker.single_sets, lambda run: (path, run), verify_sets, window=0.03, kills=200
    )
    Kills("soak set_many", file_backend_name, path).run(
        worker.set_many, lambda run: (path, run, 1500), verify_many, kills=200
    )
