"""Opening store files: engine sniffing, neutral names, foreign files, permissions."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

import prontodb
from prontodb.errors import ConfigError, CorruptStoreError, InsecureStoreError


def test_copied_store_opens_under_a_neutral_name(file_backend_name, tmp_path):
    ext = {"sqlite": ".sqlite", "lmdb": ".lmdb", "diskcache": ".diskcache"}[file_backend_name]
    src = tmp_path / f"orig{ext}"
    with prontodb.open(str(src)) as s:
        s.set("p.n.k", b"v")
    dst = tmp_path / "elsewhere" / "blob"
    dst.parent.mkdir()
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
        if os.path.exists(f"{src}-lock"):
            shutil.copy(f"{src}-lock", f"{dst}-lock")
    with prontodb.open(str(dst), create=False) as s:
        assert s.backend.name == file_backend_name
        assert s.get("p.n.k") == b"v"


def test_backend_mismatch_is_an_error(tmp_path):
    path = str(tmp_path / "x.sqlite")
    prontodb.open(path).close()
    with pytest.raises(ConfigError, match="sqlite store"):
        prontodb.open(path, backend="lmdb")


def test_foreign_sqlite_database_is_refused_untouched(tmp_path):
    path = str(tmp_path / "app.db")
    conn = sqlite3.connect(path)
    conn.execute("create table users (id integer)")
    conn.commit()
    conn.close()
    before = open(path, "rb").read()
    with pytest.raises(CorruptStoreError, match="not a ProntoDB store"):
        prontodb.open(path)
    assert open(path, "rb").read() == before


def test_unrecognised_file_is_refused(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"not a database at all" * 10)
    with pytest.raises(CorruptStoreError):
        prontodb.open(str(path))


def test_world_writable_store_is_refused(tmp_path):
    path = str(tmp_path / "x.sqlite")
    prontodb.open(path).close()
    os.chmod(path, 0o666)
    with pytest.raises(InsecureStoreError, match="writable by other accounts"):
        prontodb.open(path)


def test_default_cursor_means_default_store(home):
    with prontodb.open(cursor="default") as s:
        assert s.backend.path.endswith(os.path.join("users", "default", "default.sqlite"))


def test_write_after_the_store_was_deleted_is_refused_even_with_a_settled_directory(
    file_backend_name, tmp_path
):
    from prontodb.errors import StoreNotFoundError

    ext = {"sqlite": ".sqlite", "lmdb": ".lmdb", "diskcache": ".diskcache"}[file_backend_name]
    folder = tmp_path / "d"
    folder.mkdir()
    path = folder / f"s{ext}"
    with prontodb.open(str(path)) as s:
        s.set("p.n.a", b"1")
        old = os.stat(folder).st_mtime - 3600
        os.utime(folder, (old, old))  # a quiet directory: the cheap check trusts it
        s.set("p.n.b", b"2")
        s.set("p.n.c", b"3")
        os.unlink(path / "cache.db" if path.is_dir() else path)
        with pytest.raises(StoreNotFoundError):
            s.set("p.n.d", b"4")


def test_a_store_name_too_long_for_the_file_system_is_a_clear_error(tmp_path):
    """ENAMETOOLONG while the opener looks at the path is the store's error, never an
    unexpected OSError (the fuzz suite met it)."""
    too_long = str(tmp_path / ("x" * 300))
    with pytest.raises(prontodb.ProntoError, match="File name too long"):
        prontodb.open(too_long)
