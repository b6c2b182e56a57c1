"""An in-memory reference backend for fast tests.

Stores live in a process-wide table keyed by path, so reopening a path in the same process
finds the data again (mimicking a file), while nothing touches the disk.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prontodb.backends.base import Backend
from prontodb.errors import StoreNotFoundError


class _Table:
    """A sorted key list plus a dict, guarded by a re-entrant lock."""

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.values: dict[bytes, bytes] = {}
        self.lock = threading.RLock()

    def put(self, key: bytes, value: bytes) -> bytes | None:
        old = self.values.get(key)
        if old is None:
            bisect.insort(self.keys, key)
        self.values[key] = value
        return old

    def delete(self, key: bytes) -> bytes | None:
        old = self.values.pop(key, None)
        if old is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]
        return old


_TABLES: dict[str, _Table] = {}
_TABLES_LOCK = threading.Lock()


def forget(path: str) -> None:
    """Drop the in-memory store at ``path`` (test helper)."""
    with _TABLES_LOCK:
        _TABLES.pop(path, None)


class MemoryBackend(Backend):
    """A sorted in-process table; transactions keep an undo log and roll back on error."""

    name = "memory"

    def __init__(self, path: str, *, durability: str = "normal", create: bool = True) -> None:
        super().__init__(path, durability=durability, create=create)
        with _TABLES_LOCK:
            table = _TABLES.get(path)
            if table is None:
                if not create:
                    raise StoreNotFoundError(f"no store at {path}")
                table = _TABLES[path] = _Table()
        self._table = table
        self._undo: list[tuple[bytes, bytes | None]] | None = None
        self._depth = 0

    def _write(self, key: bytes, value: bytes | None) -> bytes | None:
        table = self._table
        old = table.put(key, value) if value is not None else table.delete(key)
        if self._undo is not None:
            self._undo.append((key, old))
        return old

    def _get(self, key: bytes) -> bytes | None:
        with self._table.lock:
            return self._table.values.get(key)

    def _put(self, key: bytes, value: bytes) -> None:
        with self._table.lock:
            self._write(bytes(key), bytes(value))

    def _put_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        count = 0
        with self.transaction():
            for key, value in items:
                self._write(bytes(key), bytes(value))
                count += 1
        return count

    def _delete(self, key: bytes) -> bool:
        with self._table.lock:
            return self._write(key, None) is not None

    def _scan(
        self, prefix: bytes = b"", *, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        table = self._table
        with table.lock:
            begin = max(prefix, start) if start is not None else prefix
            index = bisect.bisect_left(table.keys, begin)
            pairs = []
            for key in table.keys[index:]:
                if not key.startswith(prefix):
                    break
                pairs.append((key, table.values[key]))
        return iter(pairs)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._table.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._undo = []
            self._depth = 1
            try:
                yield
            except BaseException:
                for key, old in reversed(self._undo):
                    if old is None:
                        self._table.delete(key)
                    else:
                        self._table.put(key, old)
                raise
            finally:
                self._undo = None
                self._depth = 0

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        with self._table.lock:
            yield

    def files(self) -> list[str]:
        return []

    def _check(self) -> list[str]:
        table = self._table
        with table.lock:
            if table.keys != sorted(table.values):
                return ["key index is out of order"]
        return []

    def _close(self) -> None:
        pass
