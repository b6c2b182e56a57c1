"""Attack class: a store that vanishes while it is being opened.

An engine told to open an existing store (``create=False``) must never create one: if the
store is retired (renamed, as ``cursor migrate`` does) or removed (``--remove-old``) between
the opener's existence check and the engine's own open, the open fails with
StoreNotFoundError and nothing is left at the old path. Otherwise a writer would acknowledge
writes into a fresh empty store that no cursor points to.

The race is made deterministic by retiring the store from inside the engine's own open call
(the hook wraps the library call the engine makes to open the files).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

import prontodb
from prontodb import cursor, portable
from prontodb.backends import diskcache as dc_module
from prontodb.backends import lmdb as lmdb_module
from prontodb.backends.diskcache import DiskcacheBackend
from prontodb.backends.lmdb import LmdbBackend
from prontodb.errors import StoreNotFoundError
from prontodb.opener import open_backend
from tests._attack import ROOT


def _make(path: str, engine: str) -> None:
    with prontodb.open(path, backend=engine) as store:
        store.set("a.b.c", "live")


def _retire(path: str) -> None:
    """What ``cursor migrate`` does to the old store: rename it and its side files away."""
    for suffix in ("-lock", ""):
        if os.path.lexists(path + suffix):
            os.rename(path + suffix, path + ".migrated" + suffix)


def _remove(path: str) -> None:
    """What ``--remove-old`` does (a diskcache directory may be caught half removed)."""
    if os.path.isdir(path):
        os.unlink(os.path.join(path, "cache.db"))
    else:
        for suffix in ("-lock", ""):
            if os.path.lexists(path + suffix):
                os.unlink(path + suffix)


def _hook_lmdb(monkeypatch, path: str, vanish) -> None:
    real = lmdb_module.lmdb.open

    def opening(where, **options):
        if os.path.realpath(where) == os.path.realpath(path) and os.path.exists(path):
            vanish(path)
        return real(where, **options)

    monkeypatch.setattr(lmdb_module.lmdb, "open", opening)


def _hook_diskcache(monkeypatch, path: str, vanish) -> None:
    real = sqlite3.connect
    database = os.path.join(path, "cache.db")

    def connecting(where, *args, **kwargs):
        text = str(where)
        if (database in text or text.endswith(database)) and os.path.exists(database):
            vanish(path)
        return real(where, *args, **kwargs)

    monkeypatch.setattr(dc_module.sqlite3, "connect", connecting)


HOOKS = {"lmdb": _hook_lmdb, "diskcache": _hook_diskcache}
ENGINES = {"lmdb": LmdbBackend, "diskcache": DiskcacheBackend}
SUFFIX = {"lmdb": ".lmdb", "diskcache": ".dcache"}


@pytest.mark.parametrize("vanish", [_retire, _remove], ids=["retired", "removed"])
@pytest.mark.parametrize("engine", ["lmdb", "diskcache"])
def test_an_engine_told_to_open_never_creates_a_store_that_vanished(
    tmp_path, monkeypatch, engine, vanish
):
    path = str(tmp_path / ("s" + SUFFIX[engine]))
    _make(path, engine)
    HOOKS[engine](monkeypatch, path, vanish)
    with pytest.raises(StoreNotFoundError):
        ENGINES[engine](path, create=False).close()
    # nothing was created at the old path: no data file, no cache.db
    if engine == "lmdb":
        assert not os.path.exists(path)
    else:
        assert not os.path.exists(os.path.join(path, "cache.db"))


@pytest.mark.parametrize("engine", ["lmdb", "diskcache"])
def test_a_writer_whose_store_vanishes_while_opening_is_refused(tmp_path, monkeypatch, engine):
    """The opener's own path (existence check, then the engine) with a write on top: refused,
    and the retired store still holds exactly what it held."""
    path = str(tmp_path / ("s" + SUFFIX[engine]))
    _make(path, engine)
    HOOKS[engine](monkeypatch, path, _retire)
    with pytest.raises(StoreNotFoundError):
        open_backend(path, backend=engine, create=True).close()
    assert not os.path.exists(path) or (
        engine == "diskcache" and not os.path.exists(os.path.join(path, "cache.db"))
    )
    monkeypatch.undo()
    with prontodb.open(path + ".migrated", backend=engine, create=False) as store:
        assert store.get("a.b.c") == b"live"


@pytest.mark.parametrize("engine", ["lmdb", "diskcache"])
def test_an_engine_told_to_open_a_missing_store_creates_nothing(tmp_path, engine):
    path = str(tmp_path / ("never" + SUFFIX[engine]))
    with pytest.raises(StoreNotFoundError):
        ENGINES[engine](path, create=False)
    assert not os.path.exists(path)


@pytest.mark.parametrize("engine", ["lmdb", "diskcache"])
def test_an_empty_diskcache_directory_or_lmdb_file_is_not_made_a_store(tmp_path, engine):
    """The half-removed leftovers of a retired store are not a store to open."""
    path = str(tmp_path / ("half" + SUFFIX[engine]))
    if engine == "diskcache":
        os.mkdir(path, 0o700)
    with pytest.raises(StoreNotFoundError):
        ENGINES[engine](path, create=False)
    assert not os.path.exists(os.path.join(path, "cache.db"))


# -- a writer that opened the old store before migrate repointed the cursor ------------------

HOLDER = r"""
import sys
import prontodb
from prontodb.errors import ProntoError

store = prontodb.open(cursor="work")
store.set("h.n.before", "1")
print("opened", flush=True)
sys.stdin.readline()  # the migrate runs now
try:
    store.set("h.n.after", "2")
except ProntoError as exc:
    print("refused", type(exc).__name__, flush=True)
else:
    print("ack", flush=True)
"""


@pytest.mark.parametrize("engine", ["sqlite", "lmdb", "diskcache"])
@pytest.mark.parametrize("remove_old", [False, True], ids=["retired", "removed"])
def test_a_writer_holding_the_old_store_cannot_commit_into_it_after_migrate(
    home, engine, remove_old
):
    """A process that opened the store before ``cursor migrate`` repointed the cursor (and
    still holds it open) is refused at its next write: the migrate retired the store under its
    write lock, and every write checks, under that lock, that its path still names the file
    it opened. Its write is never acknowledged into the retired store."""
    cursor.define("default", "work", backend=engine)
    with prontodb.open(cursor="work") as store:
        store.set("seed.n.k", "s")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=home,
    )
    try:
        assert holder.stdout.readline() == "opened\n"
        target = {"sqlite": "lmdb", "lmdb": "diskcache", "diskcache": "sqlite"}[engine]
        summary = portable.migrate("default", "work", target, remove_old=remove_old)
        out, _ = holder.communicate("go\n", timeout=120)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert out.strip() == "refused StoreNotFoundError", out
    with prontodb.open(cursor="work") as store:
        assert store.get("h.n.before") == b"1"
        assert store.get("seed.n.k") == b"s"
        with pytest.raises(prontodb.NotFoundError):
            store.get("h.n.after")
    if not remove_old:
        with (
            prontodb.open(summary.old_path, create=False) as old,
            pytest.raises(prontodb.NotFoundError),
        ):
            old.get("h.n.after")  # nothing landed in the retired store either


def test_a_stale_open_follows_the_cursor_to_where_the_store_went(home, monkeypatch):
    """A writer resolved the cursor, then the store was retired and the cursor repointed while
    its engine was opening the old path: the open looks the cursor up again and lands in the
    live store; nothing is created at the retired path."""
    from prontodb.opener import open_target
    from prontodb.selection import Target

    cursor.define("default", "work", backend="lmdb")
    with prontodb.open(cursor="work") as store:
        store.set("seed.n.k", "s")
    spec = cursor.load("default", "work")
    moved = spec.path + ".moved.lmdb"

    def migrate(path: str) -> None:
        _retire(path)
        os.rename(path + ".migrated", moved)
        os.rename(path + ".migrated-lock", moved + "-lock")
        cursor.save("default", spec.replace(path=moved))

    _hook_lmdb(monkeypatch, spec.path, migrate)
    stale = Target(path=spec.path, user="default", cursor="work", backend="lmdb")
    with open_target(stale) as store:
        assert store.backend.path == os.path.realpath(moved)
        store.set("w.n.k", "after")
    assert not os.path.exists(spec.path)
    with prontodb.open(cursor="work") as store:
        assert store.get("w.n.k") == b"after" and store.get("seed.n.k") == b"s"


@pytest.mark.parametrize("engine", ["sqlite", "lmdb", "diskcache"])
def test_a_store_retired_between_the_openers_checks_is_never_recreated(home, monkeypatch, engine):
    """The window between the opener seeing the cursor's store and ``open_backend`` looking
    again: a migrate that retires the store (and repoints the cursor) just then must not make
    the write create a fresh store at the old path; the write lands in the live store."""
    from prontodb import opener
    from prontodb.opener import open_target
    from prontodb.selection import Target

    cursor.define("default", "work", backend=engine)
    with prontodb.open(cursor="work") as store:
        store.set("seed.n.k", "s")
    spec = cursor.load("default", "work")
    moved = spec.path + ".moved" + os.path.splitext(spec.path)[1]
    real = opener.path_text

    def looking_again(path, argument="path"):
        text = real(path, argument)
        if text == spec.path and os.path.exists(spec.path):
            for suffix in ("-wal", "-shm", "-lock", ""):
                if os.path.lexists(spec.path + suffix):
                    os.rename(spec.path + suffix, moved + suffix)
            cursor.save("default", spec.replace(path=moved))
        return text

    monkeypatch.setattr(opener, "path_text", looking_again)
    stale = Target(path=spec.path, user="default", cursor="work", backend=engine)
    with open_target(stale) as store:
        store.set("w.n.k", "after")
    assert not os.path.exists(spec.path)
    with prontodb.open(cursor="work") as store:
        assert store.get("w.n.k") == b"after" and store.get("seed.n.k") == b"s"
