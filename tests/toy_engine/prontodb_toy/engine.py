"""The toy engine: one append-only log of committed batches, plus a ``-lock`` file.

Writers hold an exclusive flock on the lock file for a transaction and append the batch in one
write; readers catch up with the log under a shared lock. A snapshot holds the shared lock.
"""

from __future__ import annotations

import bisect
import fcntl
import os
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prontodb.backends import Backend
from prontodb.errors import CorruptStoreError, StoreNotFoundError

MAGIC = b"PRONTOY1"
_BATCH = struct.Struct(">Q")
_OP = struct.Struct(">BII")


def _private(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


class ToyBackend(Backend):
    name = "toy"

    def __init__(self, path: str, *, durability: str = "normal", create: bool = True) -> None:
        super().__init__(path, durability=durability, create=create)
        if not os.path.exists(path):
            if not create:
                raise StoreNotFoundError(f"no store at {path}")
        elif os.path.getsize(path) and open(path, "rb").read(8) != MAGIC:  # noqa: SIM115
            raise CorruptStoreError(f"{path} is not a toy store")
        self._held = 0
        self._lock = _private(path + "-lock")
        self._fd = _private(path)
        with self._locked(fcntl.LOCK_EX):
            if os.fstat(self._fd).st_size == 0:
                os.write(self._fd, MAGIC)
        self._offset = len(MAGIC)
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._overlay: dict[bytes, bytes | None] | None = None

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        if self._held:
            yield
            return
        fcntl.flock(self._lock, mode)
        self._held = 1
        try:
            yield
        finally:
            self._held = 0
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        size = os.fstat(self._fd).st_size
        if size == self._offset:
            return
        tail = os.pread(self._fd, size - self._offset, self._offset)
        pos = 0
        while pos < len(tail):
            (length,) = _BATCH.unpack_from(tail, pos)
            body = tail[pos + _BATCH.size : pos + _BATCH.size + length]
            if len(body) != length:
                raise CorruptStoreError(f"{self.path}: truncated batch")
            self._apply(body)
            pos += _BATCH.size + length
        self._offset = size

    def _apply(self, body: bytes) -> None:
        pos = 0
        while pos < len(body):
            op, klen, vlen = _OP.unpack_from(body, pos)
            pos += _OP.size
            key = body[pos : pos + klen]
            value = body[pos + klen : pos + klen + vlen]
            pos += klen + vlen
            if op == 1:
                if key not in self._data:
                    bisect.insort(self._keys, key)
                self._data[key] = value
            elif key in self._data:
                del self._data[key]
                del self._keys[bisect.bisect_left(self._keys, key)]

    def _view(self, key: bytes) -> bytes | None:
        if self._overlay is not None and key in self._overlay:
            return self._overlay[key]
        return self._data.get(key)

    def _get(self, key: bytes) -> bytes | None:
        with self._locked(fcntl.LOCK_SH):
            self._catch_up()
            return self._view(bytes(key))

    def _put(self, key: bytes, value: bytes) -> None:
        with self.transaction():
            assert self._overlay is not None
            self._overlay[bytes(key)] = bytes(value)

    def _put_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        count = 0
        with self.transaction():
            assert self._overlay is not None
            for key, value in items:
                self._overlay[bytes(key)] = bytes(value)
                count += 1
        return count

    def _delete(self, key: bytes) -> bool:
        with self.transaction():
            assert self._overlay is not None
            existed = self._view(bytes(key)) is not None
            self._overlay[bytes(key)] = None
        return existed

    def _scan(self, prefix: bytes, *, start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        with self._locked(fcntl.LOCK_SH):
            self._catch_up()
            keys = set(self._keys)
            if self._overlay is not None:
                keys.update(self._overlay)
            low = max(prefix, start) if start is not None else prefix
            pairs = []
            for key in sorted(k for k in keys if k.startswith(prefix) and k >= low):
                value = self._view(key)
                if value is not None:
                    pairs.append((key, value))
        return iter(pairs)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._locked(fcntl.LOCK_EX):
            self._catch_up()
            self._overlay = {}
            try:
                yield
                body = b"".join(
                    _OP.pack(0 if v is None else 1, len(k), len(v or b"")) + k + (v or b"")
                    for k, v in self._overlay.items()
                )
                if body:
                    os.pwrite(self._fd, _BATCH.pack(len(body)) + body, self._offset)
                    if self.durability == "full":
                        os.fsync(self._fd)
                    self._catch_up()
            finally:
                self._overlay = None

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        with self._locked(fcntl.LOCK_SH):
            self._catch_up()
            yield

    def files(self) -> list[str]:
        return [p for p in (self.path, self.path + "-lock") if os.path.exists(p)]

    def _check(self) -> list[str]:
        try:
            with self._locked(fcntl.LOCK_SH):
                self._catch_up()
        except CorruptStoreError as exc:
            return [str(exc)]
        return []

    def _close(self) -> None:
        os.close(self._fd)
        os.close(self._lock)
