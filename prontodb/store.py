"""The Store: addresses, user and meta layers, TTL and TTL namespaces over one Backend.

Everything that gives values meaning is implemented here, once, for every engine. A Store is
one (user, meta) layer of one backend; several Stores may share a backend (see
:meth:`Store.layer`). Expired entries are invisible to every read; reads never write.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from fnmatch import fnmatchcase
from itertools import chain, compress, islice, repeat
from operator import itemgetter
from typing import Any, TypeVar, overload

from prontodb import keyspace, record
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
from prontodb.backends.base import Backend
from prontodb.clock import Clock, system_clock
from prontodb.duration import TTL, ttl_seconds, whole_seconds
from prontodb.errors import (
    CorruptStoreError,
    DestinationExistsError,
    InvalidAddressError,
    NotFoundError,
    UsageError,
    ValueTooLargeError,
)
from prontodb.names import DEFAULT_USER, check_name
from prontodb.record import HEADER_SIZE

DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024
PIPE_CACHE = ("pipe", "cache")
PIPE_CACHE_TTL = 900
SWEEP_LIMIT = 16
#: Entries decoded per chunk by the listing paths.
_CHUNK = 1000
#: The envelope header of an entry without a deadline.
_NO_DEADLINE = record.pack(b"", None)
_GC_BATCH = 1000

Value = bytes | bytearray | memoryview | str
_D = TypeVar("_D")
#: Marks "no default given" in :meth:`Store.get` (None is a valid default).
_MISSING: Any = object()
KeyValue = tuple[bytes, bytes]


class Entry(Frozen):
    """A live entry as listed: its address, bytes and deadline (epoch seconds or None)."""

    __slots__ = ("address", "value", "expires_at")
    address: Address
    value: bytes
    expires_at: float | None

    def __init__(self, address: Address, value: bytes, expires_at: float | None) -> None:
        _set_address(self, address)
        _set_value(self, value)
        _set_expires_at(self, expires_at)


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


_set_address, _set_value, _set_expires_at = slot_setters(Entry)
_set_source, _set_destination, _set_removed_source = slot_setters(CopyResult)


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


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _all_pairs(items: Sequence[object]) -> bool:
    """True when every item is a sized pair (checked in bulk)."""
    try:
        return set(map(len, items)) == {2}  # type: ignore[arg-type]
    except TypeError:
        return False


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

    def _live(self, raw: bytes | None, now: float) -> record.Record | None:
        if raw is None:
            return None
        rec = record.unpack(raw)
        return None if rec.expired(now) else rec

    def _check_size(self, value: bytes) -> None:
        if len(value) > self.max_value_bytes:
            raise ValueTooLargeError(len(value), self.max_value_bytes)

    def transaction(self) -> AbstractContextManager[None]:
        """Several writes, all or nothing: ``with store.transaction(): ...``."""
        return self.backend.transaction()

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
        raw = self.backend.get(keyspace.ttl_key(self._ttl_prefix, project, namespace))
        if raw is not None:
            return int(raw)
        if (project, namespace) == PIPE_CACHE:
            return PIPE_CACHE_TTL
        return None

    def create_cache(self, namespace: str, seconds: TTL) -> int:
        """Make ``project.namespace`` a TTL namespace whose new writes expire after ``seconds``
        (re-running changes the default). Affects later writes only. Returns the seconds.
        ``seconds`` is whole seconds (int, a whole float, a timedelta or a duration string);
        a fraction of a second raises InvalidDurationError."""
        project, ns = parse_namespace(namespace, project=self.project, delim=self.delim)
        secs = whole_seconds(seconds, argument="seconds", now=self.clock())
        self.backend.put(keyspace.ttl_key(self._ttl_prefix, project, ns), str(secs).encode())
        return secs

    def drop_cache(self, namespace: str) -> bool:
        """Make a TTL namespace ordinary again (later writes only). True if it was one."""
        project, ns = parse_namespace(namespace, project=self.project, delim=self.delim)
        return self.backend.delete(keyspace.ttl_key(self._ttl_prefix, project, ns))

    def caches(self) -> dict[str, int]:
        """Every TTL namespace of this layer (``project.namespace`` -> seconds), ordered; the
        pipe cache is listed with its default even before it is first used."""
        found: dict[tuple[str, str], int] = {PIPE_CACHE: PIPE_CACHE_TTL}
        prefix_len = len(self._ttl_prefix)
        for key, raw in self.backend.scan(self._ttl_prefix):
            project, ns = key[prefix_len:].decode().split("\x00")
            found[(project, ns)] = int(raw)
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
    ) -> None:
        """Store ``value`` at ``address``.

        ``ttl`` (seconds as int or float, a timedelta, or a duration like ``"15m"``; kept to
        the millisecond) sets a deadline. Without it the entry gets its namespace's default
        TTL, or none; an existing deadline is cleared unless ``keep_ttl`` (which on a new key
        gives the namespace default). ``ttl`` with ``keep_ttl`` is a UsageError.
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
            raise ValueTooLargeError(len(data), self.max_value_bytes)
        if ttl is not None and keep_ttl:
            raise UsageError(
                None,
                argument=("ttl", "keep_ttl"),
                value=(ttl, keep_ttl),
                rule="exclusive",
                template="{ttl} and {keep_ttl} cannot be combined",
            )
        seconds = None if ttl is None else ttl_seconds(ttl, now=self.clock())
        backend = self.backend
        # The namespace default is read before the write: create-cache and drop-cache affect
        # later writes only, so a write that races with one may go either way.
        default = self._namespace_ttl(project, namespace)
        if default is None and not keep_ttl:
            # Nothing to read back and nothing to sweep: one committed put is the whole write,
            # without the cost of an explicit transaction around it.
            if seconds is None:
                backend.put(key, _NO_DEADLINE + data)
            else:
                backend.put(key, record.pack(data, _ms(self.clock() + seconds)))
            return
        with backend.transaction():
            now = self.clock()
            deadline: int | None
            if seconds is not None:
                deadline = _ms(now + seconds)
            elif keep_ttl and (old := self._live(backend.get(key), now)) is not None:
                deadline = old.deadline_ms
            else:
                deadline = None if default is None else _ms(now + default)
            backend.put(key, record.pack(data, deadline))
            if default is not None:
                self._sweep(project, namespace, key, now)

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
        now_ms = now * 1000.0
        seen = 0
        doomed: list[bytes] = []
        for start in (after, prefix):
            for key, raw in self.backend.scan(prefix, start=start):
                seen += 1
                deadline = record.deadline_of(raw)
                if deadline is not None and now_ms >= deadline:
                    doomed.append(key)
                if seen >= SWEEP_LIMIT:
                    break
            if seen >= SWEEP_LIMIT:
                break
        for key in doomed:
            self.backend.delete(key)
        return len(doomed)

    def get_entry(self, address: str | Address) -> Entry:
        """The live entry at ``address``; raises NotFoundError on a miss or expiry."""
        addr = self.address(address)
        rec = self._live(self.backend.get(self._key(addr)), self.clock())
        if rec is None:
            raise NotFoundError(self.format(addr))
        return Entry(addr, rec.value, rec.expires_at)

    def exists(self, address: str | Address) -> bool:
        """True when a live entry is at ``address``."""
        return self._live_envelope(address) is not None

    def _live_envelope(self, address: str | Address) -> bytes | None:
        """The stored envelope at ``address``, or None on a miss or expiry (the hot read path:
        a plain full address goes to its key without building an Address or a Record)."""
        delim = self.delim
        if type(address) is str and is_plain(address, delim):
            raw = self.backend.get(keyspace.plain_key(self._layer, address, delim))
        else:
            raw = self.backend.get(self._key(self.address(address)))
        if raw is None or raw.startswith(_NO_DEADLINE):
            return raw
        deadline = record.deadline_of(raw)
        if deadline is not None and self.clock() * 1000.0 >= deadline:
            return None
        return raw

    def delete(self, address: str | Address) -> bool:
        """Remove the entry. True when a live entry was removed; an expired one is removed too
        but counts as a miss."""
        addr = self.address(address)
        key = self._key(addr)
        with self.backend.transaction():
            live = self._live(self.backend.get(key), self.clock())
            removed = self.backend.delete(key)
        return removed and live is not None

    def ttl(self, address: str | Address) -> int | None:
        """Whole seconds left (rounded up), or None for no expiry; NotFoundError on a miss."""
        entry = self.get_entry(address)
        if entry.expires_at is None:
            return None
        left_ms = round(entry.expires_at * 1000) - int(self.clock() * 1000)
        return max(1, math.ceil(left_ms / 1000))

    def expire(self, address: str | Address, seconds: TTL) -> None:
        """Give the live entry a deadline ``seconds`` from now (int/float seconds, timedelta or
        a duration string, kept to the millisecond); NotFoundError on a miss."""
        secs = ttl_seconds(seconds, argument="seconds", now=self.clock())
        self._redeadline(address, lambda now: _ms(now + secs))

    def persist(self, address: str | Address) -> None:
        """Clear the entry's deadline (until its next plain set); NotFoundError on a miss."""
        self._redeadline(address, lambda now: None)

    def _redeadline(self, address: str | Address, deadline) -> None:  # type: ignore[no-untyped-def]
        addr = self.address(address)
        key = self._key(addr)
        with self.backend.transaction():
            now = self.clock()
            rec = self._live(self.backend.get(key), now)
            if rec is None:
                raise NotFoundError(self.format(addr))
            self.backend.put(key, record.pack(rec.value, deadline(now)))

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
        seconds = None if ttl is None else ttl_seconds(ttl, now=self.clock())
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
        with backend.transaction():
            now = self.clock()
            heads = list(map(itemgetter(0), map(str.rpartition, addresses, repeat(delim))))
            defaults: dict[tuple[str, str], int | None] = {}
            headers: dict[str, bytes] = {}
            for head in set(heads):
                project, namespace = head.split(delim)
                default = defaults[(project, namespace)] = self._namespace_ttl(project, namespace)
                # each namespace's default TTL gives its entries' envelope header
                deadline = None if default is None else _ms(now + default)
                headers[head] = record.pack(b"", deadline)
            if seconds is not None:
                envelopes = map(record.pack(b"", _ms(now + seconds)).__add__, data)
            elif len(set(headers.values())) == 1:
                envelopes = map(next(iter(headers.values())).__add__, data)
            else:
                envelopes = map(bytes.__add__, map(headers.__getitem__, heads), data)
            backend.put_many(zip(keys, envelopes, strict=True))
            self._sweep_written(defaults, now)
        return len(keys)

    def write_entries(
        self,
        entries: Iterable[tuple[Address, bytes, float | None]],
        *,
        validated: bool = False,
        absolute: bool = False,
    ) -> int:
        """The bulk path: write (address, value, ttl) triples in one transaction.

        ``ttl`` None means the namespace default; with ``absolute`` the third item is instead an
        absolute deadline in epoch seconds (None: no expiry), as import and migrate need.
        Values are size-checked unless ``validated``.
        """
        backend = self.backend
        layer = self._layer
        defaults: dict[tuple[str, str], int | None] = {}
        with backend.transaction():
            now = self.clock()

            def rows() -> Iterator[tuple[bytes, bytes]]:
                pack = record.pack
                for addr, data, when in entries:
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
                    # keyspace.entry_key and record.pack, inline: this runs once per entry
                    a = addr
                    name = f"{a.project}\x00{a.namespace}\x00{a.key}\x00{a.context or ''}"
                    envelope = _NO_DEADLINE + data if deadline is None else pack(data, deadline)
                    yield layer + name.encode(), envelope

            written = backend.put_many(rows())
            self._sweep_written(defaults, now)
            return written

    def write_batches(
        self,
        batches: Iterable[
            tuple[str, str, float | None, Callable[[bytes, bytes], Iterable[Iterable[KeyValue]]]]
        ],
        *,
        validated: bool = False,
    ) -> int:
        """The bulk path for importers that build backend pairs themselves (``prontodb
        stream``): write every batch in one transaction, all or nothing; later pairs win.

        A batch is ``(project, namespace, ttl, rows)``. For each batch the Store works out the
        key prefix of the namespace in this layer and the envelope header of the batch's
        deadline (``ttl`` seconds from now, or the namespace default when None), and calls
        ``rows(prefix, header)``, which yields groups of pairs ``(prefix + name, header +
        value)``, each name :func:`keyspace.entry_name` of an already validated key and context
        (an envelope is its header followed by the value, see :func:`record.pack`). So a bulk
        importer can build the pairs with a few passes over its input in C, not a Python step
        per entry. Values are size-checked unless ``validated``. Returns the number of pairs.
        """
        backend = self.backend
        layer = self._layer
        batches = list(batches)
        with backend.transaction():
            now = self.clock()
            defaults: dict[tuple[str, str], int | None] = {}
            for project, namespace, ttl, _ in batches:
                if ttl is None and (project, namespace) not in defaults:
                    defaults[(project, namespace)] = self._namespace_ttl(project, namespace)

            def groups() -> Iterator[Iterable[KeyValue]]:
                for project, namespace, ttl, rows in batches:
                    seconds = defaults[(project, namespace)] if ttl is None else ttl
                    header = record.pack(b"", None if seconds is None else _ms(now + seconds))
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

    def entries(self, scope: str | None = None, pattern: str | None = None) -> Iterator[Entry]:
        """Live entries under ``scope`` (nothing, ``project`` or ``project.namespace``) whose
        address relative to the scope matches the glob ``pattern``, ascending."""
        parts = parse_scope(scope, delim=self.delim)
        depth = len(parts)
        prefix = keyspace.scope_prefix(self._layer, parts)
        layer_len = len(self._layer)
        now_ms = self.clock() * 1000.0
        delim = self.delim
        for key, raw in self.backend.scan(prefix):
            rec = record.unpack(raw)
            if rec.deadline_ms is not None and now_ms >= rec.deadline_ms:
                continue
            addr = keyspace.decode_entry(layer_len, key)
            if pattern is not None and not fnmatchcase(addr.relative(depth, delim), pattern):
                continue
            yield Entry(addr, rec.value, rec.expires_at)

    def keys(self, scope: str | None = None, pattern: str | None = None) -> list[str]:
        """Ascending live addresses relative to ``scope`` (see :meth:`entries`)."""
        found: list[str] = []
        for names, _ in self._live_chunks(scope, pattern):
            found += names
        return found

    def scan(
        self, scope: str | None = None, pattern: str | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """Ascending (relative address, bytes) pairs of live entries (see :meth:`entries`)."""
        value = itemgetter(slice(HEADER_SIZE, None))
        for names, envelopes in self._live_chunks(scope, pattern):
            yield from zip(names, map(value, envelopes), strict=True)

    def _live_chunks(
        self, scope: str | None, pattern: str | None
    ) -> Iterator[tuple[list[str], list[bytes]]]:
        """What :meth:`entries` lists, as (relative addresses, envelopes) a chunk at a time.

        A chunk whose entries have neither a deadline nor a context (the common case) is
        checked and decoded in bulk; any other entry is handled one at a time, exactly as
        :meth:`entries` does."""
        delim = self.delim
        parts = parse_scope(scope, delim=delim)
        depth = len(parts)
        prefix = keyspace.scope_prefix(self._layer, parts)
        cut = len(prefix)
        layer_len = len(self._layer)
        match = None if pattern is None else re.compile(fnmatch.translate(pattern)).match
        now_ms = self.clock() * 1000.0
        rows = self.backend.scan(prefix)
        while chunk := list(islice(rows, _CHUNK)):
            envelopes = list(map(itemgetter(1), chunk))
            names = None
            try:
                if all(map(bytes.startswith, envelopes, repeat(_NO_DEADLINE))):
                    keys = list(map(itemgetter(0), chunk))
                    names = keyspace.relative_names(keys, cut, depth, delim)
            except TypeError:  # not bytes: the one-at-a-time path says what is wrong
                names = None
            if names is not None:
                if match is not None:
                    keep = list(map(match, names))
                    names = list(compress(names, keep))
                    envelopes = list(compress(envelopes, keep))
                yield names, envelopes
                continue
            for key, raw in chunk:
                deadline = record.deadline_of(raw)
                if deadline is not None and now_ms >= deadline:
                    continue
                name = keyspace.decode_entry(layer_len, key).relative(depth, delim)
                if match is None or match(name):
                    yield [name], [raw]

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
                if not record.Record(b"", record.deadline_of(raw)).expired(now):
                    found = name
                    break
            if found is None:
                return names
            names.append(found.decode())
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
        return sum(len(names) for names, _ in self._live_chunks(scope, None))

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
            with self.backend.transaction():
                entry = self.get_entry(src)
                if not replace and dest_store.exists(dst):
                    raise DestinationExistsError(dest_store.format(dst))
                dest_store._put_copy(dst, entry, keep_ttl)
                if remove:
                    self.backend.delete(self._key(src))
            return CopyResult(src, dst, remove)
        # Two backends (possibly two handles on one file): never hold both write locks at
        # once. The destination is committed before the source is removed, so a failure in
        # between leaves a duplicate, never a loss.
        entry = self.get_entry(src)
        with dest_store.backend.transaction():
            if not replace and dest_store.exists(dst):
                raise DestinationExistsError(dest_store.format(dst))
            dest_store._put_copy(dst, entry, keep_ttl)
        if remove:
            self.delete(src)
        return CopyResult(src, dst, remove)

    def _put_copy(self, dst: Address, entry: Entry, keep_ttl: bool) -> None:
        self._check_size(entry.value)
        if keep_ttl:
            deadline = None if entry.expires_at is None else _ms(entry.expires_at)
            self.backend.put(self._key(dst), record.pack(entry.value, deadline))
        else:
            self.set(dst, entry.value)

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
                if record.Record(b"", record.deadline_of(raw)).expired(now):
                    batch.append(key)
                    if len(batch) >= _GC_BATCH:
                        break
            if batch:
                with self.backend.transaction():
                    for key in batch:
                        current = self.backend.get(key)
                        if current is not None and record.Record(
                            b"", record.deadline_of(current)
                        ).expired(now):
                            self.backend.delete(key)
                            removed += 1
            if last is None or len(batch) < _GC_BATCH:
                return removed
            start = last + b"\x00"

    # -- Python protocols: get with a default, the mapping protocol, repr -----------------
    # Store speaks the mapping protocol but is not a collections.abc.Mapping: get() without a
    # default raises NotFoundError, and keys() takes a scope (see docs/python-api.md).

    @overload
    def get(self, address: str | Address) -> bytes: ...

    @overload
    def get(self, address: str | Address, default: _D) -> bytes | _D: ...

    def get(self, address: str | Address, default: object = _MISSING) -> object:
        """The stored bytes at ``address``. On a miss or an expired entry: ``default`` when one
        is given (None included), else NotFoundError (a KeyError). An invalid address always
        raises InvalidAddressError."""
        raw = self._live_envelope(address)
        if raw is None:
            if default is not _MISSING:
                return default
            raise NotFoundError(self.format(self.address(address)))
        return raw[HEADER_SIZE:]

    def __getitem__(self, address: str | Address) -> bytes:
        """``store[address]``: :meth:`get` without a default (NotFoundError is a KeyError)."""
        return self.get(address)

    def __setitem__(self, address: str | Address, value: Value) -> None:
        """``store[address] = value``: a plain :meth:`set` (namespace default TTL, or none)."""
        self.set(address, value)

    def __delitem__(self, address: str | Address) -> None:
        """``del store[address]``: :meth:`delete`; NotFoundError when no live entry was there."""
        if not self.delete(address):
            raise NotFoundError(self.format(self.address(address)))

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
        for names, _ in self._live_chunks(None, None):
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
    if recorded is not None and recorded.decode() != backend.name:
        raise CorruptStoreError(
            f"{backend.path}: store says it is {recorded.decode()}, but opened as {backend.name}"
        )
