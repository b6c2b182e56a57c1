"""The Store: addresses, user and meta layers, TTL, versions and the coordination primitives
(conditional writes, counters, watch, bulk delete) over one Backend.

Everything that gives values meaning is implemented here, once, for every engine. A Store is
one (user, meta) layer of one backend; several Stores may share a backend (see
:meth:`Store.layer`). Expired entries are invisible to every read; reads never write.

Every write goes through one helper, :meth:`Store._write`: a retryable unit of work run by
:meth:`Backend.run_transaction`, which raises the store revision (``S\\0revision``) once when
the unit first writes and stamps every envelope it writes with that revision (the entry's
version) and the write time. So versions only grow and a watcher can poll one counter.
"""

from __future__ import annotations

import time
from _operator import itemgetter
from itertools import chain, compress, islice, repeat

from prontodb import errors, keyspace, record
from prontodb._frozen import Frozen, slot_setters
from prontodb.address import (
    DEFAULT_DELIM,
    Address,
    all_plain,
    check_delim,
    is_plain,
    parse,
    parse_namespace,
    parse_scope,
)
from prontodb.clock import system_clock
from prontodb.errors import (
    ConflictError,
    CorruptStoreError,
    InvalidAddressError,
    UsageError,
)
from prontodb.names import DEFAULT_USER, check_name
from prontodb.record import HEADER_SIZE, NO_DEADLINE

# A one-shot command imports this module: typing, re, fnmatch, math, functools, contextlib
# and the duration parser are imported only where they are used (docs/performance.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from contextlib import AbstractContextManager
    from typing import Any, Literal, TypeVar, overload

    from prontodb.backends.base import Backend
    from prontodb.clock import Clock
    from prontodb.duration import TTL

    _D = TypeVar("_D")
    _T = TypeVar("_T")
    #: What :meth:`Store.watch` saw happen.
    WatchKind = Literal["written", "deleted", "expired"]
else:
    WatchKind = str  # the Literal above, for type checkers

DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024
PIPE_CACHE = ("pipe", "cache")
PIPE_CACHE_TTL = 900
SWEEP_LIMIT = 16
#: Entries decoded per chunk by the listing paths.
_CHUNK = 1000
_GC_BATCH = 1000
#: The 64-bit signed range of a counter.
COUNTER_MIN, COUNTER_MAX = -(2**63), 2**63 - 1
#: A counter's text, as a regex (the rule; :func:`_counter` checks it without re).
_COUNTER = rb"[ \t\n\r\f\v]*([+-]?[0-9]{1,20})[ \t\n\r\f\v]*"
#: Watch polling: the first interval after a change, the cap the backoff grows to (the
#: wake-up latency is at most about the cap; docs/coordination.md has the measured figures).
WATCH_MIN_INTERVAL = 0.005
WATCH_MAX_INTERVAL = 0.05

Value = bytes | bytearray | memoryview | str
#: Marks "no default given" in :meth:`Store.get` (None is a valid default).
_MISSING: Any = object()
KeyValue = tuple[bytes, bytes]
#: An item of :meth:`Store.write_entries`: (address, value, ttl or deadline[, written_at]).
EntryRow = tuple[Address, bytes, float | None] | tuple[Address, bytes, float | None, float | None]


class Entry(Frozen):
    """A live entry: its address, bytes, deadline (epoch seconds or None), version (the store
    revision of its last write; 0 for an entry not rewritten since an earlier release) and
    write time (epoch seconds; None when unknown, for those same entries)."""

    __slots__ = ("address", "value", "expires_at", "version", "written_at")
    address: Address
    value: bytes
    expires_at: float | None
    version: int
    written_at: float | None

    def __init__(
        self,
        address: Address,
        value: bytes,
        expires_at: float | None,
        version: int = 0,
        written_at: float | None = None,
    ) -> None:
        _set_address(self, address)
        _set_value(self, value)
        _set_expires_at(self, expires_at)
        _set_version(self, version)
        _set_written_at(self, written_at)

    @classmethod
    def of(cls, address: Address, rec: record.Record) -> Entry:
        """The entry at ``address`` holding the decoded envelope ``rec``."""
        return cls(address, rec.value, rec.expires_at, rec.version, rec.written_at)


class WatchEvent(Frozen):
    """What :meth:`Store.watch` saw: ``kind`` is ``written`` (``entry`` is the new live entry),
    ``deleted`` or ``expired`` (``entry`` is None)."""

    __slots__ = ("kind", "entry")
    kind: WatchKind
    entry: Entry | None

    def __init__(self, kind: WatchKind, entry: Entry | None) -> None:
        _set_kind(self, kind)
        _set_entry(self, entry)


class _Write:
    """One run of a write unit: the time it runs at, and the revision it stamps. The store's
    revision is read and raised on first use only, so a unit that writes nothing (a condition
    that did not hold) commits nothing."""

    __slots__ = ("backend", "now", "now_ms", "_revision")

    def __init__(self, backend: Backend, now: float) -> None:
        self.backend = backend
        self.now = now
        self.now_ms = _ms(now)
        self._revision: int | None = None

    def revision(self) -> int:
        """The revision this write commits as (the store's counter raised once)."""
        if self._revision is None:
            backend = self.backend
            self._revision = keyspace.revision_of(backend.get(keyspace.INFO_REVISION)) + 1
            backend.put(keyspace.INFO_REVISION, str(self._revision).encode())
        return self._revision

    def header(self, deadline_ms: int | None) -> bytes:
        """The envelope header of an entry this unit writes with ``deadline_ms``."""
        return record.header(deadline_ms, self.revision(), self.now_ms)

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; True when something was removed (and then the revision rises)."""
        removed = self.backend.delete(key)
        if removed:
            self.revision()
        return removed


class _TtlNamespace(Exception):
    """Raised by the fast path of :meth:`Store.set` to give way to the general one."""


class CopyResult(Frozen):
    """What ``copy``/``move`` did: the canonical source and destination, and whether the source
    was removed (always for move; for copy, a pipe-cache source unless ``keep``)."""

    __slots__ = ("source", "destination", "removed_source")
    source: Address
    destination: Address
    removed_source: bool

    def __init__(self, source: Address, destination: Address, removed_source: bool) -> None:
        _set_source(self, source)
        _set_destination(self, destination)
        _set_removed_source(self, removed_source)


_set_address, _set_value, _set_expires_at, _set_version, _set_written_at = slot_setters(Entry)
_set_source, _set_destination, _set_removed_source = slot_setters(CopyResult)
_set_kind, _set_entry = slot_setters(WatchEvent)


def to_bytes(value: Value) -> bytes:
    """Values are bytes; ``str`` is encoded as UTF-8; any other bytes-like object (bytearray,
    memoryview, array, ... anything with the buffer protocol) is copied as its bytes. Anything
    else is a UsageError naming the ``value`` argument."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    try:
        return bytes(memoryview(value))
    except TypeError:
        raise UsageError(
            f"values are bytes, bytes-like or str, not {type(value).__name__}",
            argument="value",
            value=value,
            rule="bytes or str",
        ) from None


def _ttl(ttl: TTL, now: float) -> float:
    """:func:`prontodb.duration.ttl_seconds` of a write's ``ttl`` (the duration parser is
    imported by the writes that give a TTL, not by every command)."""
    from prontodb.duration import ttl_seconds

    return ttl_seconds(ttl, now=now)


def _counter(value: bytes) -> int | None:
    """The number ``value`` holds as a counter's text, or None when it is not one: the rule
    _COUNTER (ASCII white space around an optional sign and 1-20 digits), checked with bytes
    methods so that ``incr`` does not import re."""
    text = value.strip()  # bytes.strip() strips exactly the ASCII white space of _COUNTER
    digits = text[1:] if text[:1] in (b"+", b"-") else text
    if 0 < len(digits) <= 20 and digits.isdigit():  # bytes.isdigit: ASCII digits only
        return int(text)
    return None


def _glob_matcher(pattern: str) -> Callable[[str], object]:
    """The ``match`` of the regex of the shell pattern ``pattern``."""
    import fnmatch
    import re

    return re.compile(fnmatch.translate(pattern)).match


_ttl_seconds = keyspace.ttl_def_seconds


def _first_run_only(items: object, method: str) -> Callable[[], None]:
    """The check a bulk write unit makes before it reads ``items``: entries from an iterator
    cannot be read again, so a second run of the unit (an optimistic engine's retry) raises
    ConflictError before anything is written; a list or other re-iterable passes every run."""
    if iter(items) is not items:  # type: ignore[call-overload]
        return lambda: None
    runs = 0

    def check() -> None:
        nonlocal runs
        runs += 1
        if runs > 1:
            raise ConflictError(
                "the store changed while the entries were written, and they came from an "
                "iterator that cannot be read again: nothing was written; pass a list to "
                f"let {method} retry",
            )

    return check


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _all_pairs(items: Sequence[object]) -> bool:
    """True when every item is a sized pair (checked in bulk)."""
    try:
        return set(map(len, items)) == {2}  # type: ignore[arg-type]
    except TypeError:
        return False


if TYPE_CHECKING:
    #: One batch of :meth:`Store.write_batches`: project, namespace, ttl and its rows function.
    _BulkBatch = tuple[
        str, str, float | None, Callable[[bytes, bytes], Iterable[Iterable[KeyValue]]]
    ]


class Store:
    """One user/meta layer of one backend.

    Addresses may be partial when ``project``/``namespace`` defaults are given. ``delim`` only
    changes how addresses are parsed and printed. ``clock`` returns epoch seconds.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        user: str = DEFAULT_USER,
        meta: str | None = None,
        project: str | None = None,
        namespace: str | None = None,
        delim: str = DEFAULT_DELIM,
        clock: Clock | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        owns_backend: bool = True,
    ) -> None:
        self.backend = backend
        self.user = check_name("user", user)
        self.meta = None if meta is None else check_name("meta", meta)
        self.delim = check_delim(delim)
        if project is not None:
            parse_scope(project)
        if namespace is not None:
            parse_namespace(f"x.{namespace}")
        self.project = project
        self.namespace = namespace
        self.clock: Clock = clock or system_clock
        self.max_value_bytes = max_value_bytes
        self._owns_backend = owns_backend
        self._layer = keyspace.layer_prefix(self.user, self.meta)
        self._ttl_prefix = keyspace.ttl_prefix(self.user, self.meta)

    # -- plumbing -------------------------------------------------------------------------

    def layer(self, *, user: str | None = None, meta: str | None = None) -> Store:
        """Another layer of the same backend (same defaults and clock); closing it leaves the
        backend open."""
        return Store(
            self.backend,
            user=self.user if user is None else user,
            meta=meta,
            project=self.project,
            namespace=self.namespace,
            delim=self.delim,
            clock=self.clock,
            max_value_bytes=self.max_value_bytes,
            owns_backend=False,
        )

    def address(self, text: str | Address) -> Address:
        """Parse ``text`` against this store's defaults and delimiter."""
        if isinstance(text, Address):
            return text
        return parse(text, project=self.project, namespace=self.namespace, delim=self.delim)

    def format(self, address: Address) -> str:
        """Print an address with this store's delimiter."""
        return address.format(self.delim)

    def _key(self, address: Address) -> bytes:
        return keyspace.entry_key(self._layer, address)

    def _check_size(self, value: bytes) -> None:
        if len(value) > self.max_value_bytes:
            raise errors.ValueTooLargeError(len(value), self.max_value_bytes)

    def _write(self, unit: Callable[[_Write], _T]) -> _T:
        """Run the write unit ``unit`` (every write of the Store goes through here) in one
        write transaction via :meth:`Backend.run_transaction`, which may run it again on an
        optimistic engine's conflict; each run gets a fresh :class:`_Write` (its time, and the
        revision it stamps). ``unit`` reads and writes through the backend only."""
        backend = self.backend
        clock = self.clock
        return backend.run_transaction(lambda: unit(_Write(backend, clock())))

    def transaction(self) -> AbstractContextManager[None]:
        """Several writes, all or nothing: ``with store.transaction(): ...``. On an optimistic
        engine a conflict at commit raises ConflictError and nothing is written; prefer
        :meth:`run_transaction`, which re-runs the work."""
        return self.backend.transaction()

    def run_transaction(self, fn: Callable[[Store], _T]) -> _T:
        """Run ``fn(self)`` in one write transaction and return its result once committed;
        on an optimistic engine's conflict ``fn`` is run again (so it must have no effect
        outside this store)."""
        return self.backend.run_transaction(lambda: fn(self))

    def revision(self) -> int:
        """The store revision: raised by every committed write transaction (0 for a store
        never written by a release that counts revisions)."""
        return keyspace.revision_of(self.backend.get(keyspace.INFO_REVISION))

    def close(self) -> None:
        """Close the backend (unless this Store is a borrowed :meth:`layer`)."""
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- TTL namespaces -------------------------------------------------------------------

    def _namespace_ttl(self, project: str, namespace: str) -> int | None:
        key = keyspace.ttl_key(self._ttl_prefix, project, namespace)
        raw = self.backend.get(key)
        if raw is not None:
            return _ttl_seconds(key, raw)
        if (project, namespace) == PIPE_CACHE:
            return PIPE_CACHE_TTL
        return None

    def create_cache(self, namespace: str, seconds: TTL) -> int:
        """Make ``project.namespace`` a TTL namespace whose new writes expire after ``seconds``
        (re-running changes the default). Affects later writes only. Returns the seconds.
        ``seconds`` is whole seconds (int, a whole float, a timedelta or a duration string);
        a fraction of a second raises InvalidDurationError."""
        from prontodb.duration import whole_seconds

        project, ns = parse_namespace(namespace, project=self.project, delim=self.delim)
        secs = whole_seconds(seconds, argument="seconds", now=self.clock())
        key = keyspace.ttl_key(self._ttl_prefix, project, ns)

        def unit(w: _Write) -> None:
            w.revision()
            self.backend.put(key, str(secs).encode())

        self._write(unit)
        return secs

    def drop_cache(self, namespace: str) -> bool:
        """Make a TTL namespace ordinary again (later writes only). True if it was one."""
        project, ns = parse_namespace(namespace, project=self.project, delim=self.delim)
        key = keyspace.ttl_key(self._ttl_prefix, project, ns)
        return self._write(lambda w: w.delete(key))

    def caches(self) -> dict[str, int]:
        """Every TTL namespace of this layer (``project.namespace`` -> seconds), ordered; the
        pipe cache is listed with its default even before it is first used."""
        found: dict[tuple[str, str], int] = {PIPE_CACHE: PIPE_CACHE_TTL}
        prefix_len = len(self._ttl_prefix)
        for key, raw in self.backend.scan(self._ttl_prefix):
            project, ns = keyspace.segments(key, prefix_len, 2, 2)
            found[(project, ns)] = _ttl_seconds(key, raw)
        return {
            f"{p}{self.delim}{n}": s
            for (p, n), s in sorted(
                found.items(), key=lambda i: (i[0][0].encode(), i[0][1].encode())
            )
        }

    # -- single entries -------------------------------------------------------------------

    def set(
        self,
        address: str | Address,
        value: Value,
        *,
        ttl: TTL | None = None,
        keep_ttl: bool = False,
        only_if_absent: bool = False,
        only_if_present: bool = False,
        if_version: int | None = None,
    ) -> bool:
        """Store ``value`` at ``address``; returns True when written (always, for a plain set).

        ``ttl`` (seconds as int or float, a timedelta, or a duration like ``"15m"``; kept to
        the millisecond) sets a deadline. Without it the entry gets its namespace's default
        TTL, or none; an existing deadline is cleared unless ``keep_ttl`` (which on a new key
        gives the namespace default). ``ttl`` with ``keep_ttl`` is a UsageError.

        At most one condition may be given; when it does not hold, nothing is written and the
        result is False: ``only_if_absent`` (no live entry at ``address``), ``only_if_present``
        (a live entry), ``if_version=N`` (a live entry whose version is N; a dead entry never
        matches). The check and the write are one transaction.
        """
        delim = self.delim
        if type(address) is str and is_plain(address, delim):
            # The common full address: its key and namespace without building an Address.
            key = keyspace.plain_key(self._layer, address, delim)
            project, namespace, _ = address.split(delim)
        else:
            addr = self.address(address)
            key = self._key(addr)
            project, namespace = addr.project, addr.namespace
        data = value if type(value) is bytes else to_bytes(value)
        if len(data) > self.max_value_bytes:
            raise errors.ValueTooLargeError(len(data), self.max_value_bytes)
        if ttl is not None and keep_ttl:
            raise UsageError(
                None,
                argument=("ttl", "keep_ttl"),
                value=(ttl, keep_ttl),
                rule="exclusive",
                template="{ttl} and {keep_ttl} cannot be combined",
            )
        conditional = _check_condition(only_if_absent, only_if_present, if_version)
        seconds = None if ttl is None else _ttl(ttl, self.clock())
        backend = self.backend
        ttl_key = keyspace.ttl_key(self._ttl_prefix, project, namespace)
        if not (keep_ttl or conditional) and (project, namespace) != PIPE_CACHE:
            # The common write: the engine's one-transaction revision bump and put, stamped
            # with the revision it raised to. It reads the namespace's TTL definition in the
            # same transaction and gives way to the general path in a TTL namespace (whose
            # writes take a default deadline and sweep).
            now = self.clock()
            deadline = None if seconds is None else _ms(now + seconds)
            written = _ms(now)
            header = record.header

            def build(n: int, ttl_def: bytes | None) -> bytes:
                if ttl_def is not None:
                    raise _TtlNamespace
                return header(deadline, n, written) + data

            try:
                backend.put_counted(keyspace.INFO_REVISION, key, build, ttl_key)
                return True
            except _TtlNamespace:
                pass
        # The namespace default is read before the write: create-cache and drop-cache affect
        # later writes only, so a write that races with one may go either way.
        default = self._namespace_ttl(project, namespace)
        read_old = keep_ttl or conditional

        def unit(w: _Write) -> bool:
            now = w.now
            old = record.live(backend.get(key), now) if read_old else None
            if conditional:
                if only_if_absent:
                    if old is not None:
                        return False
                elif old is None or (if_version is not None and old.version != if_version):
                    return False
            deadline: int | None
            if seconds is not None:
                deadline = _ms(now + seconds)
            elif old is not None and keep_ttl:
                deadline = old.deadline_ms
            else:
                deadline = None if default is None else _ms(now + default)
            backend.put(key, w.header(deadline) + data)
            if default is not None:
                self._sweep(project, namespace, key, now)
            return True

        return self._write(unit)

    def _sweep_written(self, defaults: dict[tuple[str, str], int | None], now: float) -> None:
        """After a bulk write: one bounded sweep of each TTL namespace it wrote to."""
        for (project, namespace), default in defaults.items():
            if default is not None:
                start = keyspace.scope_prefix(self._layer, (project, namespace))
                self._sweep(project, namespace, start, now)

    def _sweep(self, project: str, namespace: str, after: bytes, now: float) -> int:
        """Remove up to SWEEP_LIMIT expired entries of a TTL namespace, scanning on from the
        key just written and wrapping to the namespace start: bounded work per write that
        visits the whole namespace over time. Runs inside the caller's write transaction, so
        an entry rewritten by another process is never swept."""
        prefix = keyspace.scope_prefix(self._layer, (project, namespace))
        seen = 0
        doomed: list[bytes] = []
        expired = record.expired
        for start in (after, prefix):
            for key, raw in self.backend.scan(prefix, start=start):
                seen += 1
                if expired(raw, now):
                    doomed.append(key)
                if seen >= SWEEP_LIMIT:
                    break
            if seen >= SWEEP_LIMIT:
                break
        for key in doomed:
            self.backend.delete(key)
        return len(doomed)

    def entry(self, address: str | Address) -> Entry:
        """The live entry at ``address`` (value, version, written_at, expires_at); raises
        NotFoundError on a miss or expiry."""
        addr = self.address(address)
        rec = record.live(self.backend.get(self._key(addr)), self.clock())
        if rec is None:
            raise errors.NotFoundError(self.format(addr))
        return Entry.of(addr, rec)

    def get_entry(self, address: str | Address) -> Entry:
        """The same as :meth:`entry`."""
        return self.entry(address)

    def exists(self, address: str | Address) -> bool:
        """True when a live entry is at ``address``."""
        raw = self._raw(address)
        return raw is not None and not record.expired(raw, self.clock())

    def _raw(self, address: str | Address) -> bytes | None:
        """The stored envelope at ``address``, live or not (the hot read path: a plain full
        address goes to its key without building an Address)."""
        delim = self.delim
        if type(address) is str and is_plain(address, delim):
            return self.backend.get(keyspace.plain_key(self._layer, address, delim))
        return self.backend.get(self._key(self.address(address)))

    def delete(self, address: str | Address) -> bool:
        """Remove the entry. True when a live entry was removed; an expired one is removed too
        but counts as a miss."""
        addr = self.address(address)
        key = self._key(addr)
        backend = self.backend

        def unit(w: _Write) -> bool:
            raw = backend.get(key)
            if raw is None:
                return False
            live = not record.expired(raw, w.now)
            w.delete(key)
            return live

        return self._write(unit)

    def ttl(self, address: str | Address) -> int | None:
        """Whole seconds left (rounded up), or None for no expiry; NotFoundError on a miss."""
        entry = self.get_entry(address)
        if entry.expires_at is None:
            return None
        left_ms = round(entry.expires_at * 1000) - int(self.clock() * 1000)
        return max(1, -(-left_ms // 1000))  # whole seconds, rounded up

    def expire(self, address: str | Address, seconds: TTL) -> None:
        """Give the live entry a deadline ``seconds`` from now (int/float seconds, timedelta or
        a duration string, kept to the millisecond); NotFoundError on a miss."""
        from prontodb.duration import ttl_seconds

        secs = ttl_seconds(seconds, argument="seconds", now=self.clock())
        self._redeadline(address, lambda now: _ms(now + secs))

    def persist(self, address: str | Address) -> None:
        """Clear the entry's deadline (until its next plain set); NotFoundError on a miss."""
        self._redeadline(address, lambda now: None)

    def _redeadline(self, address: str | Address, deadline: Callable[[float], int | None]) -> None:
        addr = self.address(address)
        key = self._key(addr)
        backend = self.backend

        def unit(w: _Write) -> None:
            rec = record.live(backend.get(key), w.now)
            if rec is None:
                raise errors.NotFoundError(self.format(addr))
            backend.put(key, w.header(deadline(w.now)) + rec.value)

        self._write(unit)

    # -- coordination primitives ------------------------------------------------------------

    def incr(self, address: str | Address, by: int = 1) -> int:
        """Add ``by`` to the integer counter at ``address`` atomically (across processes, on
        every engine) and return the new value.

        A counter is ASCII decimal (``[+-]?[0-9]+``, surrounding ASCII whitespace tolerated),
        written back as bare decimal. A missing or expired entry counts from 0 and gets its
        namespace's default TTL; an existing entry keeps its deadline. Counters are 64-bit
        signed: NotACounterError for a value that is not one, CounterOverflowError when the
        result (or ``by``) is outside the range; in both cases nothing changes.
        """
        return self._add(address, by, 1)

    def decr(self, address: str | Address, by: int = 1) -> int:
        """Subtract ``by`` from the counter at ``address``; see :meth:`incr`."""
        return self._add(address, by, -1)

    def _add(self, address: str | Address, by: int, sign: int) -> int:
        addr = self.address(address)
        if type(by) is not int:
            raise UsageError(
                None,
                argument="by",
                value=by,
                rule="not an integer",
                template="{by} must be an int",
            )
        if not COUNTER_MIN <= by <= COUNTER_MAX:
            raise errors.CounterOverflowError(self.format(addr), 0, sign * by)
        delta = sign * by
        key = self._key(addr)
        default = self._namespace_ttl(addr.project, addr.namespace)
        backend = self.backend

        def unit(w: _Write) -> int:
            old = record.live(backend.get(key), w.now)
            if old is None:
                current = 0
                deadline = None if default is None else _ms(w.now + default)
            else:
                found = _counter(old.value)
                if found is None:
                    raise errors.NotACounterError(self.format(addr), old.value)
                current = found
                if not COUNTER_MIN <= current <= COUNTER_MAX:
                    raise errors.NotACounterError(self.format(addr), old.value)
                deadline = old.deadline_ms
            new = current + delta
            if not COUNTER_MIN <= new <= COUNTER_MAX:
                raise errors.CounterOverflowError(self.format(addr), current, delta)
            backend.put(key, w.header(deadline) + str(new).encode())
            if default is not None:
                self._sweep(addr.project, addr.namespace, key, w.now)
            return new

        return self._write(unit)

    def watch(
        self,
        address: str | Address,
        timeout: float | None = None,
        *,
        sleep: Callable[[float], object] = time.sleep,
    ) -> WatchEvent | None:
        """Wait until the entry at ``address`` changes and say how; None on timeout.

        A change is a new version of the entry (``written``, with the new entry), its removal
        (``deleted``) or its deadline passing (``expired``); a missing entry is waited for
        until it is written. ``timeout`` is in seconds (None: wait for ever) and measured with
        the store's clock.

        It polls the store revision (one small read, never a write lock), with an interval that
        starts at WATCH_MIN_INTERVAL after each change seen and doubles up to
        WATCH_MAX_INTERVAL, and reads the entry only when the revision moved; it also wakes at
        the entry's own deadline, since an expiry commits nothing. ``sleep`` is injectable so a
        test can drive it with a fake clock.
        """
        addr = self.address(address)
        key = self._key(addr)
        backend = self.backend
        clock = self.clock
        start = clock()
        until = None if timeout is None else start + float(timeout)
        seen = record.live(backend.get(key), start)
        revision = self.revision()
        interval = WATCH_MIN_INTERVAL
        while True:
            now = clock()
            if seen is not None and seen.expired(now):
                return WatchEvent("expired", None)
            current = self.revision()
            if current != revision:
                revision = current
                interval = WATCH_MIN_INTERVAL
                raw = backend.get(key)
                rec = record.live(raw, now)
                if rec is not None:
                    if seen is None or rec.version != seen.version:
                        return WatchEvent("written", Entry.of(addr, rec))
                elif seen is not None:
                    return WatchEvent("deleted" if raw is None else "expired", None)
            if until is not None and now >= until:
                return None
            wait = interval
            if until is not None:
                wait = min(wait, until - now)
            if seen is not None and seen.deadline_ms is not None:
                wait = min(wait, max(0.0, seen.deadline_ms / 1000.0 - now))
            sleep(wait)
            interval = min(interval * 2, WATCH_MAX_INTERVAL)

    def delete_scope(self, scope: str, pattern: str | None = None, *, dry_run: bool = False) -> int:
        """Delete every live entry under ``scope`` (``project`` or ``project.namespace``) of
        this layer whose address relative to the scope matches the glob ``pattern``, in one
        transaction; returns how many live entries were deleted (with ``dry_run``, would be,
        and nothing changes). Expired entries in the scope are removed too, uncounted. Other
        layers (users, metas) are never touched."""
        parts = parse_scope(scope, delim=self.delim)
        if not parts:
            raise InvalidAddressError("delete_scope needs a project or project.namespace scope")
        if dry_run:
            return len(self.keys(scope, pattern))
        prefix = keyspace.scope_prefix(self._layer, parts)
        from fnmatch import fnmatchcase  # imported on use: fnmatch imports re

        layer_len = len(self._layer)
        depth = len(parts)
        delim = self.delim
        backend = self.backend

        def unit(w: _Write) -> int:
            doomed: list[tuple[bytes, bool]] = []
            for key, raw in backend.scan(prefix):
                live = not record.expired(raw, w.now)
                if pattern is not None:
                    name = keyspace.decode_entry(layer_len, key).relative(depth, delim)
                    if not fnmatchcase(name, pattern):
                        continue
                doomed.append((key, live))
            count = 0
            for key, live in doomed:
                if w.delete(key) and live:
                    count += 1
            return count

        return self._write(unit)

    # -- many entries ---------------------------------------------------------------------

    def set_many(
        self,
        pairs: Mapping[str, Value]
        | Mapping[Address, Value]
        | Iterable[tuple[str | Address, Value]],
        *,
        ttl: TTL | None = None,
    ) -> int:
        """Store every (address, value) pair in one transaction, all or nothing. ``pairs`` is a
        mapping of address to value or an iterable of (address, value) pairs. Entries get
        ``ttl`` or their namespace default. Every address and size is checked before anything
        is written. Returns the number of pairs."""
        from collections.abc import Mapping

        seconds = None if ttl is None else _ttl(ttl, self.clock())
        if isinstance(pairs, Mapping):
            pairs = list(pairs.items())
        pairs = list(pairs)
        if _all_pairs(pairs):  # anything else is checked pair by pair below
            addresses = list(map(itemgetter(0), pairs))
            if all_plain(addresses, self.delim):
                return self._set_plain_many(addresses, list(map(itemgetter(1), pairs)), seconds)
        for index, pair in enumerate(pairs):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise UsageError(
                    f"pairs must be a mapping or (address, value) pairs; item {index} is "
                    f"{type(pair).__name__} {repr(pair)[:60]}",
                    argument="pairs",
                    value=pair,
                    rule="pair",
                )
        items = [(self.address(a), to_bytes(v)) for a, v in pairs]
        for _, data in items:
            self._check_size(data)
        return self.write_entries(((a, v, seconds) for a, v in items), validated=True)

    def _set_plain_many(
        self, addresses: list[str], values: list[Value], seconds: float | None
    ) -> int:
        """:meth:`set_many` of plain full addresses (all checked by ``all_plain``), with every
        per-entry step done in bulk by C-level iterators instead of a Python loop."""
        if set(map(type, values)) != {bytes}:
            values = list(map(to_bytes, values))
        data: list[bytes] = values  # type: ignore[assignment]
        if max(map(len, data)) > self.max_value_bytes:
            self._check_size(next(v for v in data if len(v) > self.max_value_bytes))
        delim = self.delim
        keys = keyspace.plain_keys(self._layer, addresses, delim)
        backend = self.backend
        heads = list(map(itemgetter(0), map(str.rpartition, addresses, repeat(delim))))

        def unit(w: _Write) -> int:
            now = w.now
            defaults: dict[tuple[str, str], int | None] = {}
            headers: dict[str, bytes] = {}
            for head in set(heads):
                project, namespace = head.split(delim)
                default = defaults[(project, namespace)] = self._namespace_ttl(project, namespace)
                # each namespace's default TTL gives its entries' envelope header
                headers[head] = w.header(None if default is None else _ms(now + default))
            if seconds is not None:
                envelopes = map(w.header(_ms(now + seconds)).__add__, data)
            elif len(set(headers.values())) == 1:
                envelopes = map(next(iter(headers.values())).__add__, data)
            else:
                envelopes = map(bytes.__add__, map(headers.__getitem__, heads), data)
            # a list: an engine may keep its pairs by reference instead of copying them
            backend.put_many(list(zip(keys, envelopes, strict=True)))
            self._sweep_written(defaults, now)
            return len(keys)

        return self._write(unit)

    def write_entries(
        self,
        entries: Iterable[EntryRow],
        *,
        validated: bool = False,
        absolute: bool = False,
    ) -> int:
        """The bulk path: write (address, value, ttl) triples in one transaction.

        ``ttl`` None means the namespace default; with ``absolute`` the third item is instead an
        absolute deadline in epoch seconds (None: no expiry), as import and migrate need.
        An item may carry a fourth element, the entry's original write time in epoch seconds
        (None: now), which its envelope then keeps (import and restore keep write times); every
        entry gets the one fresh version of this write. Values are size-checked unless
        ``validated``.
        """
        backend = self.backend
        layer = self._layer
        entry_key = keyspace.entry_key
        first_run = _first_run_only(entries, "write_entries")

        def unit(w: _Write) -> int:
            first_run()
            now = w.now
            defaults: dict[tuple[str, str], int | None] = {}
            headers: dict[int | None, bytes] = {}

            def rows() -> Iterator[tuple[bytes, bytes]]:
                for row in entries:
                    addr, data, when = row[0], row[1], row[2]
                    written = row[3] if len(row) > 3 else None  # type: ignore[misc]
                    if not validated:
                        self._check_size(data)
                    if absolute:
                        deadline = None if when is None else _ms(when)
                    elif when is not None:
                        deadline = _ms(now + when)
                    else:
                        ns = (addr.project, addr.namespace)
                        if ns not in defaults:
                            defaults[ns] = self._namespace_ttl(*ns)
                        default = defaults[ns]
                        deadline = None if default is None else _ms(now + default)
                    if written is not None:  # a kept write time: a header of its own
                        head = record.header(deadline, w.revision(), _ms(written))
                    else:
                        cached = headers.get(deadline)
                        head = cached if cached is not None else w.header(deadline)
                        headers[deadline] = head
                    yield entry_key(layer, addr), head + data

            written = backend.put_many(rows())
            self._sweep_written(defaults, now)
            return written

        return self._write(unit)

    def write_keyed(self, rows: Iterable[tuple[bytes, bytes, int | None, int | None]]) -> int:
        """Import's bulk path: write validated rows in one transaction and return their count.

        Each row is (the entry's key after this store's layer prefix, as
        :func:`keyspace.entry_key` builds it, value, absolute deadline in epoch ms or None,
        original write time in epoch ms or None for now). Every entry gets the one fresh
        version of this write. The caller has validated keys and values (import validates
        every line into its spool first); nothing here checks them again. As with
        :meth:`write_entries`, rows from an iterator are not read twice: a retry after an
        optimistic engine's conflict raises ConflictError instead (nothing written)."""
        backend = self.backend
        layer = self._layer
        header = record.header
        first_run = _first_run_only(rows, "write_keyed")

        def unit(w: _Write) -> int:
            first_run()
            headers: dict[int | None, bytes] = {}

            def pairs() -> Iterator[tuple[bytes, bytes]]:
                for key, data, deadline, written in rows:
                    if written is not None:  # a kept write time: a header of its own
                        head = header(deadline, w.revision(), written)
                    else:
                        cached = headers.get(deadline)
                        head = cached if cached is not None else w.header(deadline)
                        headers[deadline] = head
                    yield layer + key, head + data

            return backend.put_many(pairs())

        return self._write(unit)

    def write_batches(
        self,
        batches: Iterable[_BulkBatch] | Callable[[], Iterable[_BulkBatch]],
        *,
        validated: bool = False,
        namespaces: Iterable[tuple[str, str]] | None = None,
    ) -> int:
        """The bulk path for importers that build backend pairs themselves (``prontodb
        stream``): write every batch in one transaction, all or nothing; later pairs win.

        A batch is ``(project, namespace, ttl, rows)``. For each batch the Store works out the
        key prefix of the namespace in this layer and the envelope header of the batch's
        deadline (``ttl`` seconds from now, or the namespace default when None), and calls
        ``rows(prefix, header)``, which yields groups of pairs ``(prefix + name, header +
        value)``, each name :func:`keyspace.entry_name` of an already validated key and context
        (an envelope is its header followed by the value, see :func:`record.header`; the
        header carries the revision of this write and its time). So a bulk
        importer can build the pairs with a few passes over its input in C, not a Python step
        per entry. Values are size-checked unless ``validated``. Returns the number of pairs.

        For input too large to hold, ``batches`` is a callable returning the batches afresh
        each time the transaction starts (it is retried on a write conflict), and
        ``namespaces`` names every ``(project, namespace)`` they write to; the batches are
        then consumed as they come, never listed.
        """
        backend = self.backend
        layer = self._layer
        if callable(batches):
            if namespaces is None:
                raise TypeError("write_batches(callable) needs namespaces=")
            fresh, touched = batches, list(namespaces)
        else:
            listed = list(batches)
            fresh = lambda: listed  # noqa: E731 - the same batches on every attempt
            touched = [(p, n) for p, n, ttl, _ in listed if ttl is None]

        def unit(w: _Write) -> int:
            now = w.now
            defaults: dict[tuple[str, str], int | None] = {}
            for where in touched:
                if where not in defaults:
                    defaults[where] = self._namespace_ttl(*where)

            def groups() -> Iterator[Iterable[KeyValue]]:
                for project, namespace, ttl, rows in fresh():
                    seconds = defaults[(project, namespace)] if ttl is None else ttl
                    header = w.header(None if seconds is None else _ms(now + seconds))
                    prefix = keyspace.scope_prefix(layer, (project, namespace))
                    for group in rows(prefix, header):
                        if not validated:
                            group = list(group)
                            for _key, envelope in group:
                                self._check_size(envelope[len(header) :])
                        yield group

            written = backend.put_many(chain.from_iterable(groups()))
            self._sweep_written(defaults, now)
            return written

        return self._write(unit)

    def entries(self, scope: str | None = None, pattern: str | None = None) -> Iterator[Entry]:
        """Live entries under ``scope`` (nothing, ``project`` or ``project.namespace``) whose
        address relative to the scope matches the glob ``pattern``, ascending."""
        parts = parse_scope(scope, delim=self.delim)
        depth = len(parts)
        prefix = keyspace.scope_prefix(self._layer, parts)
        layer_len = len(self._layer)
        now = self.clock()
        delim = self.delim
        from fnmatch import fnmatchcase  # imported on use: fnmatch imports re

        for key, raw in self.backend.scan(prefix):
            rec = record.unpack(raw)
            if rec.expired(now):
                continue
            addr = keyspace.decode_entry(layer_len, key)
            if pattern is not None and not fnmatchcase(addr.relative(depth, delim), pattern):
                continue
            yield Entry.of(addr, rec)

    def keys(self, scope: str | None = None, pattern: str | None = None) -> list[str]:
        """Ascending live addresses relative to ``scope`` (see :meth:`entries`)."""
        found: list[str] = []
        for names, _ in self._live_chunks(scope, pattern, values=False):
            found += names
        return found

    def scan(
        self, scope: str | None = None, pattern: str | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """Ascending (relative address, bytes) pairs of live entries (see :meth:`entries`).
        Lazy: nothing is read (and a bad scope is not reported) before the first pair is
        asked for."""
        # chained in C: no Python frame is resumed per pair
        chunks = self._live_chunks(scope, pattern, values=True)
        return chain.from_iterable(zip(names, values, strict=True) for names, values in chunks)

    def _live_chunks(
        self, scope: str | None, pattern: str | None, *, values: bool
    ) -> Iterator[tuple[list[str], list[bytes]]]:
        """What :meth:`entries` lists, as (relative addresses, values) a chunk at a time (the
        values only with ``values``, else an empty list).

        A chunk whose entries are all format-2 envelopes with neither a deadline nor a context
        (the common case) is checked and decoded in bulk; any other entry is handled one at a
        time, exactly as :meth:`entries` does."""
        delim = self.delim
        parts = parse_scope(scope, delim=delim)
        depth = len(parts)
        prefix = keyspace.scope_prefix(self._layer, parts)
        cut = len(prefix)
        layer_len = len(self._layer)
        match = None if pattern is None else _glob_matcher(pattern)
        now = self.clock()
        expired = record.expired
        rows = self.backend.scan(prefix)
        value = itemgetter(slice(HEADER_SIZE, None))
        while chunk := list(islice(rows, _CHUNK)):
            envelopes = list(map(itemgetter(1), chunk))
            names = None
            try:
                # Every envelope starts with NO_DEADLINE when the least and the greatest do
                # (bytes order), two C-level passes instead of a method call per entry.
                if min(envelopes).startswith(NO_DEADLINE) and max(envelopes).startswith(
                    NO_DEADLINE
                ):
                    keys = list(map(itemgetter(0), chunk))
                    names = keyspace.relative_names(keys, cut, depth, delim)
            except TypeError:  # not bytes: the one-at-a-time path says what is wrong
                names = None
            if names is not None:
                if match is not None:
                    keep = list(map(match, names))
                    names = list(compress(names, keep))
                    envelopes = list(compress(envelopes, keep))
                yield names, list(map(value, envelopes)) if values else []
                continue
            for key, raw in chunk:
                if expired(raw, now):
                    continue
                name = keyspace.decode_entry(layer_len, key).relative(depth, delim)
                if match is None or match(name):
                    yield [name], [record.value_of(raw)] if values else []

    def _distinct(self, parts: tuple[str, ...]) -> list[str]:
        """Names one level below ``parts`` that hold at least one live entry, skipping over
        each name's entries once a live one is found."""
        prefix = keyspace.scope_prefix(self._layer, parts)
        now = self.clock()
        names: list[str] = []
        start = prefix
        while True:
            found = None
            for key, raw in self.backend.scan(prefix, start=start):
                name = key[len(prefix) :].split(keyspace.SEP, 1)[0]
                if not record.expired(raw, now):
                    found = name
                    break
            if found is None:
                return names
            try:
                names.append(found.decode())
            except UnicodeDecodeError:
                raise keyspace.damaged_key(prefix + found, "not UTF-8") from None
            start = prefix + found + b"\x01"

    def projects(self) -> list[str]:
        """Projects with at least one live entry, ascending."""
        return self._distinct(())

    def namespaces(self, project: str | None = None) -> list[str]:
        """Namespaces of ``project`` (default: the store's default project) with a live entry."""
        project = project or self.project
        if project is None:
            raise InvalidAddressError(
                None,
                argument="project",
                rule="required",
                template="no project given and no default project ({project})",
            )
        parse_scope(project, delim=self.delim)
        return self._distinct((project,))

    def all_namespaces(self) -> list[str]:
        """Every ``project.namespace`` with a live entry, ascending."""
        return [f"{p}{self.delim}{n}" for p in self.projects() for n in self._distinct((p,))]

    def count(self, scope: str | None = None) -> int:
        """Number of live entries under ``scope``."""
        return sum(len(names) for names, _ in self._live_chunks(scope, None, values=False))

    # -- copy / move ----------------------------------------------------------------------

    def copy(
        self,
        source: str | Address,
        destination: str | Address,
        *,
        keep_ttl: bool = False,
        keep: bool = False,
        target: Store | None = None,
        move: bool = False,
        replace: bool = False,
    ) -> CopyResult:
        """Copy the live entry at ``source`` to ``destination`` (in ``target``, default this
        store). The destination gets its namespace's default TTL, or with ``keep_ttl`` the
        source's remaining deadline. A source in ``pipe.cache`` is removed afterwards unless
        ``keep``; ``move`` always removes it. Within one store the whole operation is one
        transaction. NotFoundError when the source is missing; DestinationExistsError when the
        destination holds a live entry and ``replace`` is false; an invalid destination raises
        before anything changes. In every error case nothing changes."""
        dest_store = target or self
        src = self.address(source)
        dst = dest_store.address(destination)
        remove = move or ((src.project, src.namespace) == PIPE_CACHE and not keep)
        same = dest_store.backend is self.backend
        if same and dest_store._layer == self._layer and src == dst:
            entry = self.get_entry(src)
            return CopyResult(src, dst, False)
        if same:

            def unit(w: _Write) -> None:
                entry = self.get_entry(src)
                dest_store._put_copy(w, dst, entry, keep_ttl, replace)
                if remove:
                    w.delete(self._key(src))

            self._write(unit)
            return CopyResult(src, dst, remove)
        # Two backends (possibly two handles on one file): never hold both write locks at
        # once. The destination is committed before the source is removed, so a failure in
        # between leaves a duplicate, never a loss.
        entry = self.get_entry(src)
        dest_store._write(lambda w: dest_store._put_copy(w, dst, entry, keep_ttl, replace))
        if remove:
            self.delete(src)
        return CopyResult(src, dst, remove)

    def _put_copy(
        self, w: _Write, dst: Address, entry: Entry, keep_ttl: bool, replace: bool
    ) -> None:
        """Write ``entry``'s value at ``dst`` in this store, inside the write unit ``w``."""
        if not replace and self.exists(dst):
            raise errors.DestinationExistsError(self.format(dst))
        self._check_size(entry.value)
        default = None
        if keep_ttl:
            deadline = None if entry.expires_at is None else _ms(entry.expires_at)
        else:
            default = self._namespace_ttl(dst.project, dst.namespace)
            deadline = None if default is None else _ms(w.now + default)
        key = self._key(dst)
        self.backend.put(key, w.header(deadline) + entry.value)
        if default is not None:
            self._sweep(dst.project, dst.namespace, key, w.now)

    def move(
        self,
        source: str | Address,
        destination: str | Address,
        *,
        keep_ttl: bool = False,
        target: Store | None = None,
        replace: bool = False,
    ) -> CopyResult:
        """Copy then delete the source, atomically within one store. The destination follows
        the same TTL rule as :meth:`copy` (its namespace default, or the source's remaining
        deadline with ``keep_ttl``), so content moved out of ``pipe.cache`` is permanent unless
        its new namespace is a TTL namespace."""
        return self.copy(
            source, destination, keep_ttl=keep_ttl, target=target, move=True, replace=replace
        )

    # -- maintenance ----------------------------------------------------------------------

    def gc(self) -> int:
        """Physically remove every expired entry of every layer now; returns how many."""
        removed = 0
        start = keyspace.DATA
        while True:
            now = self.clock()
            batch: list[bytes] = []
            last = None
            for key, raw in self.backend.scan(keyspace.DATA, start=start):
                last = key
                if record.expired(raw, now):
                    batch.append(key)
                    if len(batch) >= _GC_BATCH:
                        break
            if batch:
                removed += self._write_removal(batch)
            if last is None or len(batch) < _GC_BATCH:
                return removed
            start = last + b"\x00"

    def _write_removal(self, keys: list[bytes]) -> int:
        """:meth:`_remove_expired` of ``keys`` in a write transaction of its own."""
        return self._write(lambda w: self._remove_expired(w, keys=keys))

    def _remove_expired(self, w: _Write, *, keys: list[bytes]) -> int:
        """Delete those of ``keys`` that are still expired now (another process may have
        rewritten one since it was seen); returns how many."""
        backend = self.backend
        removed = 0
        for key in keys:
            current = backend.get(key)
            if current is not None and record.expired(current, w.now):
                w.delete(key)
                removed += 1
        return removed

    def envelope_formats(self) -> dict[int, int]:
        """How many entries of every layer are stored in each envelope format (``{1: n, 2:
        m}``; format 1 is an earlier release's, upgraded on the entry's next write), expired
        entries included. What ``doctor`` reports as the mix."""
        return record.format_counts(raw for _, raw in self.backend.scan(keyspace.DATA))

    # -- Python protocols: get with a default, the mapping protocol, repr -----------------
    # Store speaks the mapping protocol but is not a collections.abc.Mapping: get() without a
    # default raises NotFoundError, and keys() takes a scope (see docs/python-api.md).

    if TYPE_CHECKING:  # typing.overload is for type checkers; a one-shot get never imports it

        @overload
        def get(self, address: str | Address) -> bytes: ...

        @overload
        def get(self, address: str | Address, default: _D) -> bytes | _D: ...

    def get(self, address: str | Address, default: object = _MISSING) -> object:
        """The stored bytes at ``address``. On a miss or an expired entry: ``default`` when one
        is given (None included), else NotFoundError (a KeyError). An invalid address always
        raises InvalidAddressError."""
        delim = self.delim
        if type(address) is str and is_plain(address, delim):
            key = keyspace.plain_key(self._layer, address, delim)
        else:
            key = self._key(self.address(address))
        # The header and the value apart: a large value is copied once, not sliced again.
        found = self.backend.get_split(key, HEADER_SIZE)
        if found is not None:
            head, rest = found
            if len(head) == HEADER_SIZE and head.startswith(NO_DEADLINE):
                return rest
            rec = record.unpack(head + rest)
            if not rec.expired(self.clock()):
                return rec.value
        if default is not _MISSING:
            return default
        raise errors.NotFoundError(self.format(self.address(address)))

    def __getitem__(self, address: str | Address) -> bytes:
        """``store[address]``: :meth:`get` without a default (NotFoundError is a KeyError)."""
        return self.get(address)

    def __setitem__(self, address: str | Address, value: Value) -> None:
        """``store[address] = value``: a plain :meth:`set` (namespace default TTL, or none)."""
        self.set(address, value)

    def __delitem__(self, address: str | Address) -> None:
        """``del store[address]``: :meth:`delete`; NotFoundError when no live entry was there."""
        if not self.delete(address):
            raise errors.NotFoundError(self.format(self.address(address)))

    def __contains__(self, address: object) -> bool:
        """``address in store``: a live entry is there. Something that is not an address
        (not a str or Address) is never in a store; a malformed address string raises
        InvalidAddressError, as every other call does."""
        if not isinstance(address, str | Address):
            return False
        return self.exists(address)

    def __iter__(self) -> Iterator[str]:
        """Full addresses of every live entry of this layer, ascending, read a chunk at a time
        (never the whole store at once). Do not write through this store while iterating:
        take ``list(store)`` first."""
        for names, _ in self._live_chunks(None, None, values=False):
            yield from names

    def __len__(self) -> int:
        """Number of live entries in this layer (a scan: cost grows with the store)."""
        return self.count()

    def __bool__(self) -> bool:
        """Always True: an open Store is a handle, truthy even when empty (unlike a dict), so
        ``store or other`` never swaps an empty store and ``if store:`` never scans it. Test
        emptiness with ``next(iter(store), None) is None``."""
        return True

    def items(self) -> Iterator[tuple[str, bytes]]:
        """(full address, bytes) of every live entry of this layer, ascending, streamed as
        :meth:`__iter__` is (``scan()`` of the whole layer)."""
        return self.scan()

    def values(self) -> Iterator[bytes]:
        """The bytes of every live entry of this layer, in address order, streamed."""
        return (value for _, value in self.scan())

    def engine_info(self) -> dict[str, object]:
        """The engine's own facts (:meth:`Backend.info`): for a server engine its version,
        persistence settings, memory use and where the store lives; empty for a local file
        engine. ``warnings`` lists what puts the data at risk."""
        return self.backend.info()

    @property
    def engine(self) -> str:
        """The engine's registry name (``sqlite``, ``lmdb``, ``diskcache``, ``memory``, ...)."""
        return self.backend.name

    @property
    def location(self) -> str:
        """Where the store is: the absolute path of its file or directory, or its URL."""
        return self.backend.path

    def __repr__(self) -> str:
        meta = "" if self.meta is None else f" meta={self.meta!r}"
        return f"<Store engine={self.engine!r} location={self.location!r} user={self.user!r}{meta}>"


def _check_condition(only_if_absent: bool, only_if_present: bool, if_version: int | None) -> bool:
    """True when a set is conditional; UsageError for more than one condition or a version
    that is not a non-negative int."""
    if if_version is not None and (type(if_version) is not int or not 0 <= if_version <= 2**64 - 1):
        raise UsageError(
            None,
            argument="if_version",
            value=if_version,
            rule="not a version",
            template="{if_version} must be a non-negative integer",
        )
    given = sum((bool(only_if_absent), bool(only_if_present), if_version is not None))
    if given > 1:
        raise UsageError(
            None,
            argument=("only_if_absent", "only_if_present", "if_version"),
            value=(only_if_absent, only_if_present, if_version),
            rule="exclusive",
            template="{only_if_absent}, {only_if_present} and {if_version} exclude each other",
        )
    return given == 1


def check_store_format(backend: Backend, *, writable: bool) -> None:
    """Record (on a new store) or verify the format version and backend a store holds."""
    found = backend.get(keyspace.INFO_FORMAT)
    if found is None:
        if writable:
            backend.put_many(
                [
                    (keyspace.INFO_FORMAT, keyspace.STORE_FORMAT),
                    (keyspace.INFO_BACKEND, backend.name.encode()),
                ]
            )
        return
    if found != keyspace.STORE_FORMAT:
        raise CorruptStoreError(
            f"{backend.path}: store format {found.decode(errors='replace')} is not supported by "
            f"this ProntoDB (it reads format {keyspace.STORE_FORMAT.decode()})"
        )
    recorded = backend.get(keyspace.INFO_BACKEND)
    if recorded is not None and recorded != backend.name.encode():
        said = recorded.decode(errors="replace")
        raise CorruptStoreError(
            f"{backend.path}: store says it is {said}, but opened as {backend.name}"
        )
