"""Engines facing files that are not theirs: FIFOs and devices, other programs' SQLite
databases and diskcache directories. Each is refused at once and left untouched."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import diskcache
import pytest

import prontodb
from prontodb import backends
from prontodb.backends.sqlite import APPLICATION_ID, SqliteBackend
from prontodb.errors import CorruptStoreError

LOCAL = backends.file_engines()


def _in_child(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter: a hang is a timeout, never a stuck suite."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("engine", LOCAL)
def test_a_fifo_store_path_is_refused_at_once(engine, tmp_path):
    fifo = tmp_path / f"pipe{backends.default_extension(engine)}"
    os.mkfifo(fifo)
    done = _in_child(
        f"""
        import prontodb
        from prontodb import backends
        from prontodb.errors import CorruptStoreError
        for attempt in (lambda: backends.backend_class({engine!r})({str(fifo)!r}),
                        lambda: prontodb.open({str(fifo)!r}),
                        lambda: prontodb.open({str(fifo)!r}, backend={engine!r})):
            try:
                attempt()
            except CorruptStoreError as exc:
                assert "not a regular file" in str(exc), exc
            else:
                raise SystemExit("opened a FIFO")
        """,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert os.listdir(tmp_path) == [fifo.name]


def test_a_device_is_never_a_store():
    with pytest.raises(CorruptStoreError, match="not a regular file"):
        prontodb.open("/dev/null")
    with pytest.raises(CorruptStoreError, match="not a regular file"):
        SqliteBackend("/dev/null")


def _foreign_sqlite(path, schema: str, app_id: int = 0) -> bytes:
    con = sqlite3.connect(path)
    con.executescript(schema)
    if app_id:
        con.execute(f"PRAGMA application_id = {app_id}")
    con.execute("INSERT INTO kv VALUES (x'6b', x'76')")
    con.commit()
    con.close()
    with open(path, "rb") as fh:
        return fh.read()


@pytest.mark.parametrize(
    "schema, app_id",
    [
        ("CREATE TABLE kv (k, v);", 0),
        ("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;", 0x1234),
        ("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT); CREATE TABLE users (id);", 0),
        (
            "CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID; "
            "CREATE TABLE t (x);",
            0,
        ),
    ],
)
def test_a_foreign_sqlite_database_with_a_kv_table_is_refused_untouched(tmp_path, schema, app_id):
    path = str(tmp_path / "app.db")
    before = _foreign_sqlite(path, schema, app_id)
    with pytest.raises(CorruptStoreError, match="not a ProntoDB store"):
        SqliteBackend(path)
    with pytest.raises(CorruptStoreError, match="not a ProntoDB store"):
        prontodb.open(path).get("a.b.c")
    with open(path, "rb") as fh:
        assert fh.read() == before  # not even the journal mode changed
    assert sorted(os.listdir(tmp_path)) == ["app.db"]


def test_a_store_made_before_the_marker_is_adopted_and_marked(tmp_path):
    path = str(tmp_path / "old.sqlite")
    _foreign_sqlite(path, "CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;")
    with SqliteBackend(path) as b:
        assert b.get(b"k") == b"v"
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    con.close()


def test_a_new_sqlite_store_carries_the_marker(tmp_path):
    path = str(tmp_path / "new.sqlite")
    SqliteBackend(path).close()
    with open(path, "rb") as fh:
        assert int.from_bytes(fh.read(72)[68:72], "big") == APPLICATION_ID


def test_a_foreign_diskcache_directory_is_refused_and_its_settings_kept(tmp_path):
    path = str(tmp_path / "their.diskcache")
    cache = diskcache.Cache(path, size_limit=2**20, eviction_policy="least-recently-used")
    cache.set("theirs", 1)
    cache.close()

    def settings():
        con = sqlite3.connect(os.path.join(path, "cache.db"))
        try:
            return con.execute("SELECT key, value FROM Settings ORDER BY key").fetchall()
        finally:
            con.close()

    before = settings()
    with open(os.path.join(path, "cache.db"), "rb") as fh:
        raw = fh.read()
    with pytest.raises(CorruptStoreError, match="another program"):
        backends.backend_class("diskcache")(path)
    with pytest.raises(CorruptStoreError, match="another program"):
        prontodb.open(path).get("a.b.c")
    assert settings() == before
    with open(os.path.join(path, "cache.db"), "rb") as fh:
        assert fh.read() == raw
    assert diskcache.Cache(path).get("theirs") == 1
