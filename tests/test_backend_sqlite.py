"""The sqlite engine: the shipped kit, plus what only SQLite does."""

from __future__ import annotations

from prontodb.testing import BackendContract


class TestSqliteContract(BackendContract):
    engine = "sqlite"
