"""The sqlite engine: the shipped kit, plus what only SQLite does."""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest

import prontodb
from prontodb.backends.sqlite import SqliteBackend
from prontodb.errors import ReadOnlyStoreError
from prontodb.testing import BackendContract


class TestSqliteContract(BackendContract):
    engine = "sqlite"


@contextlib.contextmanager
def read_only_directory(folder):
    """Make ``folder`` unwritable for this process: chmod for a user, chattr +i for root
    (whom permission bits do not stop)."""
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip("running as root without chattr: cannot make a read-only directory")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_a_store_in_a_read_only_directory_can_still_be_read(tmp_path):
    folder = tmp_path / "shelf"
    folder.mkdir()
    path = str(folder / "s.sqlite")
    with prontodb.open(path) as store:
        store.set("app.cfg.colour", b"blue")
    with read_only_directory(folder):
        with prontodb.open(path, create=False) as store:
            assert store.get("app.cfg.colour") == b"blue"
            with pytest.raises(ReadOnlyStoreError):
                store.set("app.cfg.colour", b"red")
        with SqliteBackend(path) as raw:
            assert raw.check() == []
        assert sorted(os.listdir(folder)) == ["s.sqlite"]
    with prontodb.open(path) as store:
        assert store.get("app.cfg.colour") == b"blue"
