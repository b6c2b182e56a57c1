"""The byte-level backend interface every storage engine implements.

A backend stores opaque byte values under opaque byte keys, in ascending byte order of keys.
It knows nothing of addresses, users, TTL or serialization: those live in the Store, once.
Each sentence of a method's docstring is part of the contract and is tested by the shared
``BackendContract`` kit in :mod:`prontodb.testing`.

A backend object is used from one thread at a time. Many backend objects — in one process or
in many — may be open on the same path at once; the engine serializes their writes.
"""

from __future__ import annotations

import abc
import time

from prontodb._lazy import contextmanager
from prontodb.errors import BackendError, ConfigError, UsageError, WriteConflictError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Callable, Iterable, Iterator
    from contextlib import AbstractContextManager
    from typing import ClassVar, TypeVar

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


def parse_counter(raw: bytes | None, key: bytes) -> int:
    """The value of a counter kept as ASCII decimal (``raw`` None: 0); anything else raises
    CorruptStoreError naming ``key``."""
    if raw is None:
        return 0
    if raw.isdigit() and len(raw) <= 20:
        return int(raw)
    from prontodb.errors import CorruptStoreError

    raise CorruptStoreError(f"damaged store counter {key!r}: {bytes(raw[:40])!r} is not a number")


class Backend(abc.ABC):
    """One store at one location on one engine: bytes in, bytes out.

    The public methods are the contract and are the same for every engine: this class enforces
    the invariants every engine shares (a durability it knows, use after ``close()`` refused,
    nested transactions joining the outermost one, no write inside ``snapshot()``) and then
    calls the engine's primitives, the ``_underscore`` methods a subclass implements. A
    primitive is only called on an open backend; ``_transaction`` and ``_snapshot`` only for
    the outermost block; ``_put``/``_put_many``/``_delete`` never inside a snapshot.

    An engine reads (never sets) ``_base_txn_depth`` (non-zero inside ``transaction()``) and
    ``_base_snap_depth`` (non-zero inside ``snapshot()``) instead of keeping its own count.
    """

    #: Registry name of the engine (``sqlite``, ``lmdb``, ``diskcache``, ``memory``, ...).
    name: ClassVar[str]

    def __init__(self, path: str, *, durability: str = "normal", create: bool = True) -> None:
        """Open (and with ``create``, create) the store at ``path``.

        ``durability`` is ``normal`` (a killed process never loses an acknowledged write; a
        power loss never corrupts the store) or ``full`` (every acknowledged write survives a
        power loss); anything else raises ``ConfigError`` before the store is touched. Without
        ``create`` a missing store raises ``StoreNotFoundError``. A subclass calls this first.
        """
        if durability not in DURABILITIES:
            raise ConfigError(
                f"unknown durability {durability!r} (known: {', '.join(DURABILITIES)})"
            )
        self.path = path
        self.durability = durability
        self._base_closed = False
        self._base_txn_depth = 0
        self._base_snap_depth = 0

    # -- shared invariants -----------------------------------------------------------------

    def _require_open(self) -> None:
        if self._base_closed:
            raise BackendError(f"{self.path}: store is closed")

    def _require_writable(self) -> None:
        self._require_open()
        if self._base_snap_depth and not self._base_txn_depth:
            raise UsageError(
                f"{self.path}: writes are not allowed inside snapshot() (it is a read view)"
            )

    # -- the contract ----------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """Return the value stored under ``key``, or None when there is none. Never raises for a
        missing key. Inside ``transaction()`` it sees the transaction's own writes."""
        self._require_open()
        return self._get(key)

    def get_split(self, key: bytes, head: int) -> tuple[bytes, bytes] | None:
        """The value stored under ``key`` as (its first ``head`` bytes, the rest), or None when
        there is none: the same bytes as ``get``, cut in two. An engine that can copies the
        rest once, straight from its storage (a large value is then not copied twice)."""
        self._require_open()
        return self._get_split(key, head)

    def put(self, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any value. Committed and durable (per the
        durability mode) when it returns, unless inside ``transaction()``."""
        self._require_writable()
        self._put(key, value)

    def put_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Store every (key, value) pair in one transaction, all or nothing; later pairs win
        over earlier ones with the same key. Returns the number of pairs written. Memory use
        does not grow with the number of pairs taken from an iterator; the pairs of a ``list``
        are in memory already, and an engine may keep them (not copies) until the commit."""
        self._require_writable()
        return self._put_many(items)

    def delete(self, key: bytes) -> bool:
        """Remove ``key``. Returns True when a value was removed, False when there was none."""
        self._require_writable()
        return self._delete(key)

    def scan(
        self, prefix: bytes = b"", *, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield (key, value) pairs whose key starts with ``prefix``, ascending by key bytes.

        With ``start``, begin at the first key >= ``start``. Cost is proportional to what is
        yielded, never to the size of the store. The caller must not write through this backend
        object until the iterator is exhausted or closed (materialize first). Outside
        ``snapshot()``/``transaction()`` a long scan may see writes made while it runs.
        """
        self._require_open()
        return self._scan(prefix, start=start)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction: every write inside commits together when the block ends, or
        none does if it raises. Other writers wait (never fail) while it is open. Nested use
        joins the outermost transaction. Reads inside see the transaction's own writes. It
        cannot begin inside ``snapshot()`` (UsageError)."""
        self._require_writable()
        if self._base_txn_depth:
            self._base_txn_depth += 1
            try:
                yield
            finally:
                self._base_txn_depth -= 1
            return
        with self._transaction():
            self._base_txn_depth = 1
            try:
                yield
            finally:
                self._base_txn_depth = 0

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
                import random  # only a retry pays for it (start-up cost, docs/performance.md)

                time.sleep(random.uniform(0, 0.0005 * 2 ** min(attempt, 8)))
                attempt += 1

    def put_counted(
        self,
        counter_key: bytes,
        key: bytes,
        build: Callable[[int, bytes | None], bytes],
        also: bytes | None = None,
    ) -> int:
        """In one write transaction: raise the counter stored under ``counter_key`` (ASCII
        decimal; absent counts as 0) by one to ``n``, store ``build(n, found)`` under ``key``
        (``found``: the value under ``also`` read in the same transaction, None when absent or
        no ``also``), and return ``n``. ``build`` is pure (an optimistic engine may call it
        again); when it raises, nothing is written and its exception propagates. Inside an
        open transaction it joins it. A counter that is not a decimal number raises
        CorruptStoreError and nothing is written.

        This is the store revision's hot path (one committed set); an engine may override
        ``_put_counted`` with a cheaper form of the same transaction."""
        self._require_writable()
        return self._put_counted(counter_key, key, build, also)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A consistent read view: reads and scans inside see one point in time while other
        processes keep writing. Writes through this object are not allowed inside (UsageError).
        Inside ``transaction()`` it joins the transaction, whose view is already fixed."""
        self._require_open()
        if self._base_txn_depth or self._base_snap_depth:
            self._base_snap_depth += 1
            try:
                yield
            finally:
                self._base_snap_depth -= 1
            return
        with self._snapshot():
            self._base_snap_depth = 1
            try:
                yield
            finally:
                self._base_snap_depth = 0

    def check(self) -> list[str]:
        """Run the engine's own integrity check; return the problems found (empty when sound).
        Damage is reported here, never raised."""
        self._require_open()
        return self._check()

    def info(self) -> dict[str, object]:
        """Facts about the engine behind this store for ``prontodb info`` and ``doctor``, as a
        flat mapping of plain values (str, int, bool, None, lists of str). The key
        ``warnings``, when present, lists conditions that put the store's data at risk
        (``doctor`` reports each one as a warning); ``notes``, when present, lists facts
        ``doctor`` shows as info lines. An engine may do its routine upkeep here and report it
        (LMDB clears reader slots of dead processes). A local file engine with nothing to add
        beyond what the Store reports (its files and sizes) returns an empty mapping."""
        self._require_open()
        return {}

    def retire(self, successor: str) -> None:
        """Take the store out of use after ``cursor migrate`` moved its data to ``successor``:
        called inside ``transaction()`` once the transaction read the store, it succeeds only
        when no commit landed since those reads (else WriteConflictError, nothing changes), and
        from then on opening the store and every commit through any object raise
        StoreRetiredError. Only an engine whose store outlives its files (kind ``url``)
        implements it; a file store is retired by renaming its files (``cursor migrate`` does
        that), so here it raises UsageError."""
        raise UsageError(
            f"{self.path}: a {self.name} store is retired by renaming its files, not in place"
        )

    def unretire(self) -> None:
        """Undo :meth:`retire` (a migrate that failed after retiring puts the store back in
        use). UsageError on an engine without :meth:`retire`."""
        raise UsageError(f"{self.path}: a {self.name} store is never retired in place")

    @classmethod
    def build_in_place(cls, path: str, where: str) -> AbstractContextManager[Callable[[], None]]:
        """Build a store in place at ``path`` (``cursor migrate`` onto a url engine, whose
        location has no temporary name to rename from). On entering, the store at ``path`` is
        marked retired (its data still lives at ``where``) and then emptied, so every other
        client is refused from then on and cannot write into the copy being built, while the
        objects this process opens on ``path`` inside the block read and write it normally.
        The block's value is a function that opens the store to everyone: call it once the
        cursor names it. Leaving the block without calling it leaves the store retired.
        Only an engine whose store outlives its files (kind ``url``) implements it; file
        engines build under a temporary name, so here it raises UsageError."""
        raise UsageError(f"{path}: a {cls.name} store is built under a temporary name")

    def close(self) -> None:
        """Release the store. Leaves no journal or WAL side file, so the closed store can be
        copied as its files. Closing twice is harmless; any other use after it raises
        BackendError."""
        if self._base_closed:
            return
        self._base_closed = True
        self._close()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._base_closed

    @abc.abstractmethod
    def files(self) -> list[str]:
        """The paths of the files (and directories) that make up the store on disk (empty for
        an engine whose store is not local)."""

    # -- primitives every engine implements ---------------------------------------------

    @abc.abstractmethod
    def _get(self, key: bytes) -> bytes | None:
        """``get`` on an open backend."""

    @abc.abstractmethod
    def _put(self, key: bytes, value: bytes) -> None:
        """``put`` on an open backend, outside any snapshot."""

    @abc.abstractmethod
    def _put_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        """``put_many`` on an open backend, outside any snapshot."""

    @abc.abstractmethod
    def _delete(self, key: bytes) -> bool:
        """``delete`` on an open backend, outside any snapshot."""

    @abc.abstractmethod
    def _scan(self, prefix: bytes, *, start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """``scan`` on an open backend."""

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """Begin the outermost write transaction; commit when the block ends, roll back when
        it raises (an optimistic engine raises WriteConflictError from the commit)."""

    @abc.abstractmethod
    def _snapshot(self) -> AbstractContextManager[None]:
        """Pin the outermost read view for the block."""

    @abc.abstractmethod
    def _check(self) -> list[str]:
        """``check`` on an open backend."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the store's resources; called once."""

    # -- primitives an engine may override for speed -----------------------------------------

    def _get_split(self, key: bytes, head: int) -> tuple[bytes, bytes] | None:
        """``get_split`` on an open backend: ``_get``'s value cut in two."""
        raw = self._get(key)
        return None if raw is None else (raw[:head], raw[head:])

    def _put_counted(
        self,
        counter_key: bytes,
        key: bytes,
        build: Callable[[int, bytes | None], bytes],
        also: bytes | None,
    ) -> int:
        """``put_counted`` on an open backend, outside any snapshot: the generic unit of work
        (read the counter and ``also``, write both) run by ``run_transaction``."""

        def unit() -> int:
            n = parse_counter(self._get(counter_key), counter_key) + 1
            value = build(n, None if also is None else self._get(also))
            self._put(counter_key, str(n).encode())
            self._put(key, value)
            return n

        return self.run_transaction(unit)

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r} durability={self.durability}>"
