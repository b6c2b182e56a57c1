"""The byte-level backend interface every storage engine implements.

A backend stores opaque byte values under opaque byte keys, in ascending byte order of keys.
It knows nothing of addresses, users, TTL or serialization: those live in the Store, once.
Each sentence of a method's docstring is part of the contract and is tested by the shared
``BackendContract`` suite in ``tests/test_backend_contract.py``.

A backend object is used from one thread at a time. Many backend objects — in one process or
in many — may be open on the same path at once; the engine serializes their writes.
"""

from __future__ import annotations

import abc
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import ClassVar, TypeVar

from prontodb.errors import WriteConflictError

_T = TypeVar("_T")
#: How many times ``run_transaction`` runs a unit of work that keeps meeting conflicts.
TRANSACTION_ATTEMPTS = 32

DURABILITIES = ("normal", "full")


def prefix_successor(prefix: bytes) -> bytes | None:
    """Return the smallest byte string greater than every string starting with ``prefix``.

    ``None`` means there is no such bound (empty prefix, or a prefix of only ``0xff`` bytes).
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class Backend(abc.ABC):
    """One store at one path on one engine: bytes in, bytes out."""

    #: Registry name of the engine (``sqlite``, ``lmdb``, ``diskcache``, ``memory``).
    name: ClassVar[str]
    #: File-name extensions that select this engine when nothing else says which.
    extensions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: str, *, durability: str = "normal", create: bool = True) -> None:
        """Open (and with ``create``, create) the store at ``path``.

        ``durability`` is ``normal`` (a killed process never loses an acknowledged write; a
        power loss never corrupts the store) or ``full`` (every acknowledged write survives a
        power loss). Without ``create`` a missing store raises ``StoreNotFoundError``.
        """
        self.path = path
        self.durability = durability

    @classmethod
    @abc.abstractmethod
    def sniff(cls, path: str) -> bool:
        """Return True when the existing file or directory at ``path`` is this engine's store.

        Looks only at the file's own bytes (magic numbers), never at its name.
        """

    @abc.abstractmethod
    def get(self, key: bytes) -> bytes | None:
        """Return the value stored under ``key``, or None when there is none. Never raises for a
        missing key. Inside ``transaction()`` it sees the transaction's own writes."""

    @abc.abstractmethod
    def put(self, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any value. Committed and durable (per the
        durability mode) when it returns, unless inside ``transaction()``."""

    @abc.abstractmethod
    def put_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Store every (key, value) pair in one transaction, all or nothing; later pairs win
        over earlier ones with the same key. Returns the number of pairs written."""

    @abc.abstractmethod
    def delete(self, key: bytes) -> bool:
        """Remove ``key``. Returns True when a value was removed, False when there was none."""

    @abc.abstractmethod
    def scan(
        self, prefix: bytes = b"", *, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield (key, value) pairs whose key starts with ``prefix``, ascending by key bytes.

        With ``start``, begin at the first key >= ``start``. Cost is proportional to what is
        yielded, never to the size of the store. The caller must not write through this backend
        object until the iterator is exhausted or closed (materialize first). Outside
        ``snapshot()``/``transaction()`` a long scan may see writes made while it runs.
        """

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction: every write inside commits together when the block ends, or
        none does if it raises. Other writers wait (never fail) while it is open. Nested use
        joins the outermost transaction. Reads inside see the transaction's own writes."""

    def run_transaction(self, unit: Callable[[], _T]) -> _T:
        """Run ``unit`` inside ``transaction()`` and return its result once committed.

        ``unit`` is a retryable unit of work: it reads and writes through this backend and
        has no other effect. A lock-based engine runs it once. An optimistic engine (one whose
        commit raises ``WriteConflictError`` when data the transaction read changed) gets it
        re-run, with a short randomized backoff, up to ``TRANSACTION_ATTEMPTS`` times; the
        last conflict is then raised and nothing of any attempt is written. Inside an open
        transaction ``unit`` simply joins it (the outermost transaction owns the retry).
        """
        attempt = 1
        while True:
            try:
                with self.transaction():
                    return unit()
            except WriteConflictError:
                if attempt >= TRANSACTION_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.0005 * 2 ** min(attempt, 8)))
                attempt += 1

    @abc.abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """A consistent read view: reads and scans inside see one point in time while other
        processes keep writing. Writes through this object are not allowed inside."""

    @abc.abstractmethod
    def files(self) -> list[str]:
        """The paths of the files (and directories) that make up the store on disk."""

    @abc.abstractmethod
    def check(self) -> list[str]:
        """Run the engine's own integrity check; return the problems found (empty when sound)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store. Leaves no journal or WAL side file, so the closed store can be
        copied as its files. Closing twice is harmless."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r} durability={self.durability}>"
