"""Portability: export/import of one layer, whole-store backup/restore, cursor migration.

Everything here works through the :class:`~prontodb.backends.base.Backend` interface and the
Store's bulk path, so it moves data between any two engines.

**Export** (JSON Lines, UTF-8, one object per line). The first line is a header::

    {"format":"prontodb-export","version":1,"prontodb":"0.1.0","source":{"backend":"sqlite"},
     "scope":null,"caches":{"pipe.cache":900}}

(``caches``: the TTL namespace definitions under the scope, ``project.namespace`` -> seconds),
then one object per live entry in ascending address order::

    {"address":"p.n.k__ctx","value":"text","encoding":"utf-8","expires_at":1700000060.5}

``value`` is the UTF-8 text of the bytes, or their base64 with ``"encoding":"base64"`` when
they are not valid UTF-8; ``expires_at`` is the absolute deadline in epoch seconds (millisecond
precision) or null. Addresses always use ``.``. Expired entries are never exported. The output
holds no timestamp, so exporting the same data twice gives identical files.

**Backup** (``.tar.gz``): ``manifest.json`` first, then one member per (user, meta) layer of
the store, ``layers/<user>.jsonl`` or ``layers/<user>.<meta>.jsonl``, each an export file of
that whole layer (so a member can also be fed to ``import``). The manifest names the format,
the ProntoDB version, the creation time (UTC), the source engine and path, each layer's
member and counts, and the size and sha256 of every member. The data is read inside one
``backend.snapshot()``, so the archive is one point in time while other processes write.

**Import and restore** validate everything before they change anything: the input is parsed
line by line (memory stays bounded by the longest line), validated rows are spooled to an
anonymous temporary file next to the target store, and only then is the spool applied in one
write transaction. A killed import or restore therefore leaves the target as it was.

**Migrate** copies every layer of a cursor's store (raw envelopes: values, deadlines, TTL
namespace definitions) into a new store of another engine built under a temporary name,
re-reads it to verify counts and a content checksum, renames it into place and only then
repoints the cursor.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol

from prontodb import keyspace, paths, record
from prontodb.address import Address, parse, parse_namespace, parse_scope
from prontodb.errors import ConflictError, DataFormatError, UsageError, literal

if TYPE_CHECKING:
    from prontodb.backends.base import Backend
    from prontodb.clock import Clock
    from prontodb.store import Store

EXPORT_FORMAT = "prontodb-export"
EXPORT_VERSION = 1
BACKUP_FORMAT = "prontodb-backup"
BACKUP_VERSION = 1
MANIFEST = "manifest.json"
FORMATS = ("jsonl", "stream")
ON_CONFLICT = ("overwrite", "skip", "fail")

#: A manifest larger than this is not a manifest.
MAX_MANIFEST_BYTES = 16 << 20
#: Restore refuses archives that decompress to more than max(this, RATIO x archive size).
MIN_UNCOMPRESSED_CAP = 1 << 30
UNCOMPRESSED_RATIO = 200
#: gzip level of backups. Measured on exported JSON Lines: level 3 takes 0.65x the time of the
#: default 6 for archives ~4% larger (level 9: 1.8x the time, 0.3% smaller). Compression runs
#: after the snapshot has ended, so it never holds up writers.
GZIP_LEVEL = 3
#: Largest deadline accepted on import (year 9999), in epoch seconds.
MAX_EXPIRES_AT = 253_402_300_799.0

_CHUNK = 1 << 20
_BATCH_LINES = 2048
_PROGRESS_EVERY = 4096
_NO_DEADLINE = -(2**63)
#: Spool row: layer index, address length, deadline in ms (or _NO_DEADLINE), value length.
_ROW = struct.Struct(">IHqQ")
_SEG = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}"
_FULL_ADDRESS = re.compile(rf"({_SEG})\.({_SEG})\.([A-Za-z0-9_][A-Za-z0-9_-]*)")
_SEGMENT = re.compile(_SEG)
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Progress(Protocol):
    """Receives progress of long operations (the CLI draws a bar on a terminal).

    ``start`` opens a phase of ``total`` units (``"entries"`` or ``"bytes"``); ``advance``
    reports units done since the last call; ``finish`` closes the phase."""

    def start(self, label: str, total: int, unit: str) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


# -- summaries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Summary:
    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data (for ``--json``)."""
        return asdict(self)


@dataclass(frozen=True)
class ExportSummary(_Summary):
    """What an export wrote: live entries, TTL namespace definitions, the scope and format."""

    entries: int
    caches: int
    scope: str | None
    format: str


@dataclass(frozen=True)
class ImportSummary(_Summary):
    """What an import did. ``entries`` were read; ``imported`` written; ``expired`` skipped
    because their deadline had passed; ``existing`` skipped (``--on-conflict skip``) because
    a live entry was already there; ``caches`` TTL namespace definitions written."""

    entries: int
    imported: int
    expired: int
    existing: int
    caches: int


@dataclass(frozen=True)
class BackupSummary(_Summary):
    """A backup written: where, its size, and what it holds."""

    path: str
    size: int
    layers: int
    entries: int
    caches: int


@dataclass(frozen=True)
class RestoreSummary(_Summary):
    """A restore: the archive, the layers and entries written, entries skipped because they
    had expired since the backup, TTL definitions written, and how many entries and
    definitions ``replace`` cleared from the target first."""

    archive: str
    layers: int
    entries: int
    expired: int
    caches: int
    cleared: int


@dataclass(frozen=True)
class MigrateSummary(_Summary):
    """A cursor moved to a new store. ``old_path`` is kept unless ``removed_old``."""

    cursor: str
    old_path: str
    old_backend: str
    new_path: str
    new_backend: str
    layers: int
    entries: int
    caches: int
    removed_old: bool


@dataclass
class _Layer:
    """One (user, meta) layer as found in an archive or a store."""

    user: str
    meta: str | None
    caches: dict[tuple[str, str], int] = field(default_factory=dict)
    entries: int = 0
    #: the number of TTL definitions a manifest announces for the layer
    announced_caches: int = 0

    @property
    def member(self) -> str:
        return member_name(self.user, self.meta)


def member_name(user: str, meta: str | None) -> str:
    """The archive member holding the layer (user, meta)."""
    return f"layers/{user}.jsonl" if meta is None else f"layers/{user}.{meta}.jsonl"


# -- encoding entries ----------------------------------------------------------------------


def _json_string() -> Callable[[str], str]:
    from json.encoder import encode_basestring  # the C accelerated encoder when available

    return encode_basestring


def _address_text(suffix: bytes) -> str:
    """``project.namespace.key[__context]`` from a key suffix ``p\\0n\\0k\\0c``."""
    project, namespace, key, context = suffix.split(b"\x00")
    text = b".".join((project, namespace, key))
    if context:
        text += b"__" + context
    return text.decode()


def _deadline_text(deadline_ms: int | None) -> str:
    return "null" if deadline_ms is None else repr(deadline_ms / 1000)


def _entry_lines(
    rows: Iterable[tuple[str, bytes, int | None]], quote: Callable[[str], str]
) -> Iterator[str]:
    import base64

    b64 = base64.b64encode
    for address, value, deadline in rows:
        try:
            text = quote(value.decode())
            encoding = "utf-8"
        except UnicodeDecodeError:
            text = '"' + b64(value).decode("ascii") + '"'
            encoding = "base64"
        yield (
            f'{{"address":"{address}","value":{text},"encoding":"{encoding}",'
            f'"expires_at":{_deadline_text(deadline)}}}\n'
        )


def _header(backend_name: str, scope: str | None, caches: Mapping[tuple[str, str], int]) -> str:
    import json

    from prontodb import __version__

    head = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "prontodb": __version__,
        "source": {"backend": backend_name},
        "scope": scope,
        "caches": {f"{p}.{n}": s for (p, n), s in sorted(caches.items(), key=_ns_order)},
    }
    return json.dumps(head, separators=(",", ":")) + "\n"


def _ns_order(item: tuple[tuple[str, str], int]) -> tuple[bytes, bytes]:
    (project, namespace), _ = item
    return project.encode(), namespace.encode()


class _Sink:
    """Writes text lines to a binary stream in batches, optionally hashing and counting."""

    def __init__(self, out: IO[bytes], *, digest: Any = None) -> None:
        self.out = out
        self.digest = digest
        self.size = 0
        self.lines = 0
        self._pending: list[str] = []

    def write(self, line: str) -> None:
        self.lines += 1
        self._pending.append(line)
        if len(self._pending) >= _BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = "".join(self._pending).encode()
        self._pending.clear()
        self.out.write(data)
        self.size += len(data)
        if self.digest is not None:
            self.digest.update(data)


def _layer_ttl_defs(
    backend: Backend, user: str, meta: str | None, scope: tuple[str, ...] = ()
) -> dict[tuple[str, str], int]:
    prefix = keyspace.ttl_prefix(user, meta)
    found: dict[tuple[str, str], int] = {}
    for key, raw in backend.scan(prefix):
        project, namespace = key[len(prefix) :].decode().split("\x00")
        if scope[:1] and scope[0] != project or scope[1:] and scope[1] != namespace:
            continue
        found[(project, namespace)] = int(raw)
    return found


def _live_rows(
    backend: Backend, prefix: bytes, layer_len: int, now_ms: float
) -> Iterator[tuple[str, bytes, int | None]]:
    unpack = record.unpack
    for key, raw in backend.scan(prefix):
        rec = unpack(raw)
        deadline = rec.deadline_ms
        if deadline is not None and now_ms >= deadline:
            continue
        yield _address_text(key[layer_len:]), rec.value, deadline


def _counted(rows: Iterable[Any], progress: Progress | None) -> Iterator[Any]:
    if progress is None:
        yield from rows
        return
    done = 0
    for row in rows:
        yield row
        done += 1
        if done == _PROGRESS_EVERY:
            progress.advance(done)
            done = 0
    progress.advance(done)


def _count_keys(backend: Backend, prefix: bytes) -> int:
    return sum(1 for _ in backend.scan(prefix))


# -- export --------------------------------------------------------------------------------


def export_layer(
    store: Store,
    out: IO[bytes],
    *,
    scope: str | None = None,
    format: str = "jsonl",  # noqa: A002 - the CLI option is --format
    progress: Progress | None = None,
) -> ExportSummary:
    """Write the live entries of ``store``'s layer under ``scope`` to the binary stream ``out``.

    ``format="jsonl"`` writes the export format (see the module docstring); ``"stream"`` writes
    ``prontodb stream`` tokens (``meta:path=P.N;`` then ``key="value";``, with ``meta:ttl=N``
    carrying each remaining TTL rounded up to whole seconds). A value that a stream cannot
    carry (invalid UTF-8, or containing ``;``) raises DataFormatError naming the entry before
    anything is written. Everything is read inside one snapshot."""
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r} (choose jsonl or stream)")
    parts = parse_scope(scope, delim=store.delim)
    canonical = ".".join(parts) or None
    backend = store.backend
    layer = keyspace.layer_prefix(store.user, store.meta)
    prefix = keyspace.scope_prefix(layer, parts)
    with backend.snapshot():
        now_ms = store.clock() * 1000.0
        caches = _layer_ttl_defs(backend, store.user, store.meta, parts)
        if progress is not None:
            progress.start("exporting", _count_keys(backend, prefix), "entries")
        rows = _live_rows(backend, prefix, len(layer), now_ms)
        if format == "jsonl":
            sink = _Sink(out)
            sink.write(_header(backend.name, canonical, caches))
            for line in _entry_lines(_counted(rows, progress), _json_string()):
                sink.write(line)
            sink.flush()
            count = sink.lines - 1
        else:
            _check_streamable(_live_rows(backend, prefix, len(layer), now_ms))
            count = _write_stream(_counted(rows, progress), out, now_ms)
        if progress is not None:
            progress.finish()
    out.flush()
    return ExportSummary(entries=count, caches=len(caches), scope=canonical, format=format)


def export_file(
    store: Store,
    path: str,
    *,
    scope: str | None = None,
    format: str = "jsonl",  # noqa: A002 - the CLI option is --format
    progress: Progress | None = None,
) -> ExportSummary:
    """:func:`export_layer` into the file ``path`` (0600), which appears only when the export
    is complete (an existing file is replaced); a failed export leaves no partial file."""
    target = os.path.abspath(os.path.expanduser(path))
    try:
        with paths.replacing(target) as fh:
            summary = export_layer(store, fh, scope=scope, format=format, progress=progress)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    return summary


def _check_streamable(rows: Iterable[tuple[str, bytes, int | None]]) -> None:
    for address, value, _ in rows:
        try:
            text = value.decode()
        except UnicodeDecodeError:
            raise DataFormatError(
                None,
                argument="format",
                value="stream",
                rule="utf-8",
                template=f"cannot export {literal(address)} as a stream: its value is not valid "
                "UTF-8 (use {format='jsonl'}, which carries any bytes)",
            ) from None
        if ";" in text:
            raise DataFormatError(
                None,
                argument="format",
                value="stream",
                rule="separator",
                template=f"cannot export {literal(address)} as a stream: its value contains ';', "
                "the stream separator, which quotes do not protect (use {format='jsonl'})",
            )


def _write_stream(
    rows: Iterable[tuple[str, bytes, int | None]], out: IO[bytes], now_ms: float
) -> int:
    sink = _Sink(out)
    namespace = None
    ttl: int | None = None
    count = 0
    for address, value, deadline in rows:
        project, ns, name = address.split(".", 2)
        if (project, ns) != namespace:
            namespace = (project, ns)
            sink.write(f"meta:path={project}.{ns};\n")
        left = None if deadline is None else max(1, -int((now_ms - deadline) // 1000))
        if left != ttl:
            ttl = left
            sink.write(f"meta:ttl={'none' if left is None else left};\n")
        # One outer pair of quotes is always removed by the reader, whatever the value holds.
        # A bare `ns=` token switches namespace, so a key named ns is written prefixed.
        left_side = f"{project}.{ns}:{name}" if name == "ns" else name
        sink.write(f'{left_side}="{value.decode()}";\n')
        count += 1
    sink.flush()
    return count


# -- parsing export files ------------------------------------------------------------------


@dataclass
class _Row:
    address: Address
    value: bytes
    deadline_ms: int | None


class _Reader:
    """Validates an export file line by line (bounded memory). ``where`` names the input in
    error messages."""

    def __init__(self, where: str, max_value_bytes: int) -> None:
        import json

        self.where = where
        self.max_value_bytes = max_value_bytes
        # Worst case: every byte of a value escaped as \\u00XX, plus the other fields.
        self.max_line = 6 * max_value_bytes + (64 << 10)
        # One decoder for every line (json.loads with options builds a new one per call).
        self._decode = json.JSONDecoder(parse_constant=self._constant).decode
        self.line_no = 0

    def fail(self, problem: str) -> DataFormatError:
        return DataFormatError(f"{self.where}: line {self.line_no}: {problem}")

    def lines(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Complete lines (without the newline) of the concatenated chunks; a line longer than
        ``max_line`` is refused before it is held whole."""
        pending = b""
        limit = self.max_line
        for chunk in chunks:
            if not chunk:
                continue
            parts = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
            pending = parts.pop()
            for line in parts:
                self.line_no += 1
                if len(line) > limit:
                    raise self.fail(f"line is longer than {limit} bytes")
                yield line
            if len(pending) > limit:
                self.line_no += 1
                raise self.fail(f"line is longer than {limit} bytes")
        if pending:
            self.line_no += 1
            yield pending

    def _json(self, line: bytes) -> Any:
        try:
            return self._decode(line.decode())
        except UnicodeDecodeError:
            raise self.fail("not valid UTF-8") from None
        except ValueError as exc:
            raise self.fail(f"not valid JSON ({exc})") from None

    @staticmethod
    def _constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed")

    def header(self, line: bytes | None) -> dict[tuple[str, str], int]:
        """Check the header line; return its TTL namespace definitions."""
        if line is None:
            self.line_no = max(self.line_no, 1)
            raise self.fail("empty input: not a ProntoDB export (the first line is a header)")
        if not line.lstrip().startswith(b"{"):
            raise self.fail(
                "not a ProntoDB export (expected a JSON header line; a token stream is "
                "loaded with 'prontodb stream')"
            )
        head = self._json(line)
        if not isinstance(head, dict) or head.get("format") != EXPORT_FORMAT:
            raise self.fail(f'not a ProntoDB export header (no "format":"{EXPORT_FORMAT}")')
        version = head.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self.fail(f"bad export format version {version!r}")
        if version > EXPORT_VERSION:
            raise self.fail(
                f"export format version {version} was written by a newer ProntoDB "
                f"(this one reads version {EXPORT_VERSION})"
            )
        caches = head.get("caches", {})
        if not isinstance(caches, dict):
            raise self.fail("'caches' must be an object of project.namespace -> seconds")
        found: dict[tuple[str, str], int] = {}
        for name, seconds in caches.items():
            try:
                project, namespace = parse_namespace(name)
            except ValueError as exc:
                raise self.fail(f"bad TTL namespace in 'caches': {exc}") from None
            if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
                raise self.fail(f"TTL of {name} must be a whole number of seconds > 0")
            found[(project, namespace)] = seconds
        return found

    def row(self, line: bytes) -> _Row:
        """One validated entry line."""
        obj = self._json(line)
        if not isinstance(obj, dict):
            raise self.fail("an entry must be a JSON object")
        text = obj.get("address")
        if not isinstance(text, str):
            raise self.fail("entry has no 'address' string")
        address = _parse_address(text, self)
        value = obj.get("value")
        if not isinstance(value, str):
            raise self.fail(f"{text}: 'value' must be a string")
        encoding = obj.get("encoding", "utf-8")
        if encoding == "utf-8":
            try:
                data = value.encode()
            except UnicodeEncodeError:
                raise self.fail(f"{text}: value is not valid Unicode text") from None
        elif encoding == "base64":
            import base64
            import binascii

            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise self.fail(f"{text}: value is not valid base64") from None
        else:
            raise self.fail(f"{text}: unknown encoding {encoding!r} (utf-8 or base64)")
        if len(data) > self.max_value_bytes:
            raise self.fail(
                f"{text}: value is {len(data)} bytes, over the limit of "
                f"{self.max_value_bytes} bytes (PRONTO_MAX_VALUE_BYTES)"
            )
        expires = obj.get("expires_at")
        if expires is None:
            deadline = None
        elif isinstance(expires, int | float) and not isinstance(expires, bool):
            if not -MAX_EXPIRES_AT <= expires <= MAX_EXPIRES_AT:
                raise self.fail(f"{text}: expires_at {expires!r} is out of range")
            deadline = round(expires * 1000)
        else:
            raise self.fail(f"{text}: expires_at must be epoch seconds or null")
        return _Row(address, data, deadline)


def _parse_address(text: str, reader: _Reader) -> Address:
    match = _FULL_ADDRESS.fullmatch(text)
    if match is not None:
        project, namespace, name = match.groups()
        key, sep, context = name.rpartition("__")
        if not sep:
            key, context = name, ""
        if _SEGMENT.fullmatch(key) and (not sep or _SEGMENT.fullmatch(context)):
            return Address(project, namespace, key, context or None)
    try:
        return parse(text)
    except ValueError as exc:
        raise reader.fail(str(exc)) from None


# -- the spool: validated rows on disk between validation and the write transaction --------


def _spool_file(backend: Backend) -> IO[bytes]:
    """An anonymous temporary file next to the store (same file system, so a tmpfs /tmp does
    not turn a large import into memory use)."""
    import tempfile

    where = os.path.dirname(os.path.abspath(backend.path))
    folder = where if os.path.isdir(where) and os.access(where, os.W_OK) else None
    return tempfile.TemporaryFile(dir=folder, prefix=".prontodb-spool-")


def _spool_row(spool: IO[bytes], layer: int, row: _Row) -> None:
    a = row.address
    addr = f"{a.project}\x00{a.namespace}\x00{a.key}\x00{a.context or ''}".encode()
    deadline = _NO_DEADLINE if row.deadline_ms is None else row.deadline_ms
    spool.write(_ROW.pack(layer, len(addr), deadline, len(row.value)))
    spool.write(addr)
    spool.write(row.value)


def _spooled(spool: IO[bytes]) -> Iterator[tuple[int, Address, bytes, int | None]]:
    spool.seek(0)
    read = spool.read
    size = _ROW.size
    unpack = _ROW.unpack
    while True:
        head = read(size)
        if not head:
            return
        layer, addr_len, deadline, value_len = unpack(head)
        project, namespace, key, context = read(addr_len).decode().split("\x00")
        value = read(value_len)
        yield (
            layer,
            Address(project, namespace, key, context or None),
            value,
            None if deadline == _NO_DEADLINE else deadline,
        )


def _read_chunks(source: IO[bytes], progress: Progress | None = None) -> Iterator[bytes]:
    while True:
        chunk = source.read(_CHUNK)
        if not chunk:
            return
        if progress is not None:
            progress.advance(len(chunk))
        yield chunk


def _is_live(backend: Backend, key: bytes, now: float) -> bool:
    raw = backend.get(key)
    if raw is None:
        return False
    deadline = record.deadline_of(raw)
    return deadline is None or now * 1000.0 < deadline


# -- import --------------------------------------------------------------------------------


def import_layer(
    store: Store,
    source: IO[bytes],
    *,
    on_conflict: str = "overwrite",
    name: str = "<stdin>",
    size: int | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Load an export file from the binary stream ``source`` into ``store``'s layer.

    Every line is validated first (``name`` labels errors; ``size``, when known, sizes the
    progress bar); then, in ONE transaction, the TTL namespace definitions are recreated and
    the entries written with their absolute deadlines (null stays null). Entries whose
    deadline has already passed are skipped and counted. ``on_conflict`` decides what happens
    to an address that already holds a live entry: ``overwrite`` (default) replaces it,
    ``skip`` keeps it, ``fail`` raises ConflictError and imports nothing. The same rule applies
    to a TTL namespace definition that differs from the target's. A malformed file raises
    DataFormatError naming the line; nothing is written."""
    if on_conflict not in ON_CONFLICT:
        raise UsageError(
            None,
            argument="on_conflict",
            value=on_conflict,
            rule="choice",
            template=f"unknown {{on_conflict}} {literal(repr(on_conflict))} "
            "(overwrite, skip or fail)",
        )
    backend = store.backend
    reader = _Reader(name, store.max_value_bytes)
    now = store.clock()
    entries = expired = 0
    with _spool_file(backend) as spool:
        if progress is not None and size:
            progress.start("validating", size, "bytes")
        lines = reader.lines(_read_chunks(source, progress if size else None))
        caches = reader.header(next(lines, None))
        for line in lines:
            if not line.strip():
                continue
            row = reader.row(line)
            entries += 1
            if row.deadline_ms is not None and now * 1000.0 >= row.deadline_ms:
                expired += 1
                continue
            _spool_row(spool, 0, row)
        if progress is not None and size:
            progress.finish()
        spool.flush()
        imported, existing, defs = _apply_import(
            store, spool, caches, entries - expired, on_conflict, progress
        )
    return ImportSummary(
        entries=entries, imported=imported, expired=expired, existing=existing, caches=defs
    )


def _apply_import(
    store: Store,
    spool: IO[bytes],
    caches: dict[tuple[str, str], int],
    rows: int,
    on_conflict: str,
    progress: Progress | None,
) -> tuple[int, int, int]:
    backend = store.backend
    layer = keyspace.layer_prefix(store.user, store.meta)
    ttl_prefix = keyspace.ttl_prefix(store.user, store.meta)
    with backend.transaction():
        now = store.clock()
        defs = 0
        for (project, namespace), seconds in caches.items():
            key = keyspace.ttl_key(ttl_prefix, project, namespace)
            current = backend.get(key)
            if current is not None and int(current) != seconds:
                if on_conflict == "fail":
                    raise ConflictError(
                        None,
                        argument="on_conflict",
                        value="fail",
                        rule="conflict",
                        template=f"TTL namespace {literal(project)}.{literal(namespace)} is "
                        f"already defined with {int(current)} s, not {seconds} s "
                        "({on_conflict='fail'}); nothing was imported",
                    )
                if on_conflict == "skip":
                    continue
            backend.put(key, str(seconds).encode())
            defs += 1
        skip = bytearray()
        if on_conflict != "overwrite":
            for _, address, _, _ in _spooled(spool):
                live = _is_live(backend, keyspace.entry_key(layer, address), now)
                if live and on_conflict == "fail":
                    raise ConflictError(
                        None,
                        argument="on_conflict",
                        value="fail",
                        rule="conflict",
                        template=f"{literal(address)} already exists in the target "
                        "({on_conflict='fail'}); nothing was imported",
                    )
                skip.append(live)
        if progress is not None:
            progress.start("importing", rows, "entries")

        def wanted() -> Iterator[tuple[Address, bytes, float | None]]:
            for index, (_, address, value, deadline) in enumerate(_spooled(spool)):
                if skip and skip[index]:
                    continue
                yield address, value, None if deadline is None else deadline / 1000

        written = store.write_entries(_counted(wanted(), progress), validated=True, absolute=True)
        if progress is not None:
            progress.finish()
    return written, sum(skip), defs


# -- backup --------------------------------------------------------------------------------


def backup_dir(env: Mapping[str, str] | None = None) -> str:
    """``$XDG_DATA_HOME/prontodb/backups``: where backups go when no path is given."""
    from prontodb import paths

    return os.path.join(paths.data_home(env), "backups")


def _store_name(backend: Backend) -> str:
    from prontodb import backends

    base = os.path.basename(backend.path.rstrip(os.sep)) or "store"
    if backends.from_extension(base) is not None:
        base = os.path.splitext(base)[0]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base).lstrip(".") or "store"


def backup(
    store: Store,
    path: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    only: Callable[[str, str | None], bool] | None = None,
) -> BackupSummary:
    """Write a ``.tar.gz`` backup of EVERY user and meta layer of ``store``'s backend (live
    entries and TTL namespace definitions), read inside one snapshot while other processes
    keep writing. ``only(user, meta)`` narrows it to the layers it accepts (a locked context
    backs up only what it may reach). Without ``path`` it goes to
    ``backup_dir()/<store name>-<UTC time>.tar.gz`` (directory 0700); the archive is 0600
    and appears only once complete (an existing ``path`` is replaced)."""
    import json
    import shutil
    import tempfile
    import time

    from prontodb import __version__, paths

    backend = store.backend
    created = time.time()
    if path is None:
        folder = paths.make_private_dir(backup_dir(env))
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
        target = os.path.join(folder, f"{_store_name(backend)}-{stamp}.tar.gz")
    else:
        target = os.path.abspath(os.path.expanduser(path))
        folder = os.path.dirname(target)
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write {target}: directory {folder} does not exist")
    work = tempfile.mkdtemp(dir=folder, prefix=".prontodb-backup-")
    try:
        layers, members = _dump_layers(store, work, progress, only)
        entries = sum(layer.entries for layer in layers)
        caches = sum(len(layer.caches) for layer in layers)
        manifest = {
            "format": BACKUP_FORMAT,
            "version": BACKUP_VERSION,
            "prontodb": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
            "source": {"backend": backend.name, "path": backend.path},
            "entries": entries,
            "caches": caches,
            "layers": [
                {
                    "user": layer.user,
                    "meta": layer.meta,
                    "member": layer.member,
                    "entries": layer.entries,
                    "caches": len(layer.caches),
                }
                for layer in layers
            ],
            "members": {name: {"size": s, "sha256": h} for name, (_, s, h) in members.items()},
        }
        blob = (json.dumps(manifest, indent=1) + "\n").encode()
        final = _write_archive(target, blob, members, created, replace=path is not None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BackupSummary(
        path=final,
        size=os.path.getsize(final),
        layers=len(layers),
        entries=entries,
        caches=caches,
    )


def _dump_layers(
    store: Store,
    work: str,
    progress: Progress | None,
    only: Callable[[str, str | None], bool] | None = None,
) -> tuple[list[_Layer], dict[str, tuple[str, int, str]]]:
    """Write one export file per layer into ``work`` (inside one snapshot). Returns the layers
    and, per member name, (file, size, sha256)."""
    import hashlib

    from prontodb.backends.base import prefix_successor
    from prontodb.names import check_name

    backend = store.backend
    found: dict[tuple[str, str | None], _Layer] = {}
    members: dict[str, tuple[str, int, str]] = {}

    def layer_of(user: str, meta: str) -> _Layer:
        key = (check_name("user", user), check_name("meta", meta) if meta else None)
        if key not in found:
            found[key] = _Layer(*key)
        return found[key]

    with backend.snapshot():
        now_ms = store.clock() * 1000.0
        for key, raw in backend.scan(keyspace.TTLDEF):
            user, meta, project, namespace = key[len(keyspace.TTLDEF) :].decode().split("\x00")
            if only is None or only(user, meta or None):
                layer_of(user, meta or "").caches[(project, namespace)] = int(raw)
        if progress is not None:
            progress.start("backing up", _count_keys(backend, keyspace.DATA), "entries")
        start: bytes | None = keyspace.DATA
        quote = _json_string()
        while start is not None:
            first = next(iter(backend.scan(keyspace.DATA, start=start)), None)
            if first is None:
                break
            user_b, meta_b, _ = first[0][len(keyspace.DATA) :].split(b"\x00", 2)
            if only is not None and not only(user_b.decode(), meta_b.decode() or None):
                skipped = keyspace.layer_prefix(user_b.decode(), meta_b.decode() or None)
                start = prefix_successor(skipped)
                continue
            layer = layer_of(user_b.decode(), meta_b.decode())
            prefix = keyspace.layer_prefix(layer.user, layer.meta)
            file = os.path.join(work, f"{len(members)}.jsonl")
            with open(file, "wb") as fh:
                sink = _Sink(fh, digest=hashlib.sha256())
                sink.write(_header(backend.name, None, layer.caches))
                rows = _counted(_live_rows(backend, prefix, len(prefix), now_ms), progress)
                for line in _entry_lines(rows, quote):
                    sink.write(line)
                    layer.entries += 1
                sink.flush()
            members[layer.member] = (file, sink.size, sink.digest.hexdigest())
            start = prefix_successor(prefix)
        if progress is not None:
            progress.finish()
    for layer in found.values():  # layers that hold only TTL namespace definitions
        if layer.member not in members:
            file = os.path.join(work, f"{len(members)}.jsonl")
            data = _header(backend.name, None, layer.caches).encode()
            with open(file, "wb") as fh:
                fh.write(data)
            members[layer.member] = (file, len(data), hashlib.sha256(data).hexdigest())
    layers = sorted(found.values(), key=lambda la: (la.user.encode(), (la.meta or "").encode()))
    return layers, members


def _write_archive(
    target: str,
    manifest: bytes,
    members: dict[str, tuple[str, int, str]],
    created: float,
    *,
    replace: bool,
) -> str:
    """Write the archive under a temporary name, fsync it, then move it to ``target``
    (replacing it when ``replace``, else picking a free name). Returns the final path."""
    import gzip
    import io
    import tarfile

    folder = os.path.dirname(target)
    tmp = os.path.join(folder, f".{os.path.basename(target)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with (
                gzip.GzipFile(
                    filename="",
                    mode="wb",
                    fileobj=raw,
                    compresslevel=GZIP_LEVEL,
                    mtime=int(created),
                ) as gz,
                tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):

                def info(name: str, size: int) -> tarfile.TarInfo:
                    item = tarfile.TarInfo(name)
                    item.size, item.mode, item.mtime = size, 0o600, int(created)
                    return item

                tar.addfile(info(MANIFEST, len(manifest)), io.BytesIO(manifest))
                for name, (file, size, _) in sorted(members.items()):
                    with open(file, "rb") as fh:
                        tar.addfile(info(name, size), fh)
            raw.flush()
            os.fsync(raw.fileno())
        if replace:
            os.replace(tmp, target)
            final = target
        else:
            final = _link_free_name(tmp, target)
            os.unlink(tmp)
        paths.fsync_dir(folder)
        return final
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _link_free_name(tmp: str, target: str) -> str:
    """Hard-link ``tmp`` to ``target`` or ``<target stem>-2.tar.gz``...: never replaces."""
    stem = target[: -len(".tar.gz")] if target.endswith(".tar.gz") else target
    candidate, n = target, 1
    while True:
        try:
            os.link(tmp, candidate)
            return candidate
        except FileExistsError:
            n += 1
            candidate = f"{stem}-{n}.tar.gz"


def list_backups(env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The archives in :func:`backup_dir`, oldest name first: path, size and the manifest's
    creation time, source and counts (``error`` instead when the manifest is unreadable)."""
    folder = backup_dir(env)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".tar.gz"))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        file = os.path.join(folder, name)
        facts: dict[str, Any] = {"path": file, "size": os.path.getsize(file)}
        try:
            manifest = read_manifest(file)
            facts.update(
                created=manifest.get("created"),
                backend=(manifest.get("source") or {}).get("backend"),
                source=(manifest.get("source") or {}).get("path"),
                layers=len(manifest.get("layers") or ()),
                entries=manifest.get("entries"),
            )
        except DataFormatError as exc:
            facts["error"] = str(exc)
        found.append(facts)
    return found


def read_manifest(archive: str) -> dict[str, Any]:
    """The manifest of a backup (read from its first member only; nothing is verified)."""
    import json
    import tarfile
    import zlib

    try:
        with tarfile.open(archive, "r|gz") as tar:
            first = next(iter(tar), None)
            if first is None or first.name != MANIFEST or not first.isreg():
                raise DataFormatError(f"{archive}: not a ProntoDB backup (no manifest first)")
            if first.size > MAX_MANIFEST_BYTES:
                raise DataFormatError(f"{archive}: manifest is too large")
            fh = tar.extractfile(first)
            assert fh is not None
            data = json.loads(fh.read())
    except (OSError, EOFError, zlib.error, tarfile.TarError, ValueError) as exc:
        raise DataFormatError(f"{archive}: not a readable backup ({exc})") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{archive}: manifest is not a JSON object")
    return data


# -- restore -------------------------------------------------------------------------------


class _Capped:
    """A read-only stream over the decompressed archive that refuses to yield more than
    ``cap`` bytes (a decompression bomb) and reports damage as DataFormatError."""

    def __init__(self, inner: Any, cap: int, archive: str) -> None:
        self.inner = inner
        self.cap = cap
        self.archive = archive
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        import zlib

        try:
            data = self.inner.read(size if size >= 0 else _CHUNK)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(
                f"{self.archive}: archive is damaged or truncated ({exc}); nothing was changed"
            ) from None
        self.total += len(data)
        if self.total > self.cap:
            raise DataFormatError(
                f"{self.archive}: archive decompresses to more than {self.cap} bytes "
                "(a decompression bomb?); nothing was changed"
            )
        return data


class _CountingFile:
    """The compressed archive file, reporting bytes read to a Progress."""

    def __init__(self, inner: IO[bytes], progress: Progress | None) -> None:
        self.inner = inner
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        if self.progress is not None:
            self.progress.advance(len(data))
        return data


def restore(
    store: Store,
    archive: str,
    *,
    replace: bool = False,
    max_uncompressed: int | None = None,
    progress: Progress | None = None,
) -> RestoreSummary:
    """Restore a backup into ``store``'s backend (any engine): every layer of the archive.

    The whole archive is read and verified first — the manifest, every member's size, sha256
    and entry count, every line — and refused with DataFormatError (nothing changed) when it
    is damaged, truncated, incomplete, holds unexpected, absolute, ``..``, link or special
    members, or decompresses to more than ``max_uncompressed`` bytes (default: max(1 GiB,
    200 x the archive's size)). A target holding any live entry or TTL definition needs
    ``replace``, which clears every layer of it in the same transaction that writes the
    backup; without it ConflictError is raised. Entries that expired since the backup are
    skipped and counted."""
    import itertools

    backend = store.backend
    if not replace and _holds_data(backend, store.clock()):
        raise ConflictError(
            None,
            argument="replace",
            value=False,
            rule="not empty",
            template=f"{literal(backend.path)} is not empty; restore into an empty store, or "
            "pass {replace=True} to clear it (every user and meta layer) first",
        )
    with _spool_file(backend) as spool:
        layers, expired = _verify_archive(archive, spool, store, max_uncompressed, progress)
        spool.flush()
        rows = sum(layer.entries for layer in layers) - expired
        with backend.transaction():
            cleared = 0
            if replace:
                cleared = _clear(backend)
            elif _holds_data(backend, store.clock()):
                raise ConflictError(f"{backend.path} stopped being empty; nothing was changed")
            caches = 0
            for layer in layers:
                prefix = keyspace.ttl_prefix(layer.user, layer.meta)
                for (project, namespace), seconds in layer.caches.items():
                    backend.put(keyspace.ttl_key(prefix, project, namespace), str(seconds).encode())
                    caches += 1
            if progress is not None:
                progress.start("restoring", rows, "entries")
            written = 0
            spooled = _counted(_spooled(spool), progress)
            for index, group in itertools.groupby(spooled, key=lambda row: row[0]):
                target = store.layer(user=layers[index].user, meta=layers[index].meta)
                written += target.write_entries(
                    (
                        (address, value, None if deadline is None else deadline / 1000)
                        for _, address, value, deadline in group
                    ),
                    validated=True,
                    absolute=True,
                )
            if progress is not None:
                progress.finish()
    return RestoreSummary(
        archive=os.path.abspath(archive),
        layers=len(layers),
        entries=written,
        expired=expired,
        caches=caches,
        cleared=cleared,
    )


def _holds_data(backend: Backend, now: float) -> bool:
    """True when any layer of the store has a live entry or a TTL namespace definition."""
    for _ in _first(backend.scan(keyspace.TTLDEF), 1):
        return True
    now_ms = now * 1000.0
    for _, raw in backend.scan(keyspace.DATA):
        deadline = record.deadline_of(raw)
        if deadline is None or now_ms < deadline:
            return True
    return False


def _first(items: Iterator[Any], n: int) -> list[Any]:
    """The first ``n`` items of a scan, closing the scan afterwards (so writes may follow)."""
    import itertools

    try:
        return list(itertools.islice(items, n))
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _clear(backend: Backend) -> int:
    """Delete every entry and TTL namespace definition of every layer (inside the caller's
    transaction). Returns how many keys were removed."""
    removed = 0
    for family in (keyspace.DATA, keyspace.TTLDEF):
        while True:
            batch = [key for key, _ in _first(backend.scan(family), 10_000)]
            if not batch:
                break
            for key in batch:
                backend.delete(key)
            removed += len(batch)
    return removed


def _verify_archive(
    archive: str,
    spool: IO[bytes],
    store: Store,
    max_uncompressed: int | None,
    progress: Progress | None,
) -> tuple[list[_Layer], int]:
    """Read and check the whole archive, spooling validated rows. Returns the layers (with
    their TTL definitions) and the number of entries skipped as expired."""
    import gzip
    import tarfile

    try:
        raw = open(archive, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataFormatError(f"cannot read {archive}: {exc.strerror}") from None
    with raw:
        compressed = os.fstat(raw.fileno()).st_size
        cap = max_uncompressed or max(MIN_UNCOMPRESSED_CAP, UNCOMPRESSED_RATIO * compressed)
        if progress is not None:
            progress.start("verifying", compressed, "bytes")
        counting: Any = _CountingFile(raw, progress)
        stream = _Capped(gzip.GzipFile(fileobj=counting, mode="rb"), cap, archive)
        try:
            tar = tarfile.open(fileobj=stream, mode="r|")  # type: ignore[call-overload]
            result = _verify_members(archive, tar, spool, store, cap)
            while stream.read(_CHUNK):  # to the end: gzip checks its CRC and length there
                pass
        except tarfile.TarError as exc:
            raise DataFormatError(
                f"{archive}: not a valid backup archive ({exc}); nothing was changed"
            ) from None
        if progress is not None:
            progress.finish()
    return result


def _verify_members(
    archive: str, tar: Any, spool: IO[bytes], store: Store, cap: int
) -> tuple[list[_Layer], int]:
    import hashlib
    import json

    members = iter(tar)
    first = next(members, None)
    if first is None:
        raise DataFormatError(f"{archive}: empty archive, not a ProntoDB backup")
    _check_member(archive, first)
    if first.name != MANIFEST:
        raise DataFormatError(
            f"{archive}: first member is {first.name!r}, not {MANIFEST}: not a ProntoDB backup"
        )
    if first.size > MAX_MANIFEST_BYTES:
        raise DataFormatError(f"{archive}: {MANIFEST} is {first.size} bytes, too large")
    try:
        manifest = json.loads(tar.extractfile(first).read())
    except ValueError as exc:
        raise DataFormatError(f"{archive}: {MANIFEST} is not valid JSON ({exc})") from None
    layers, expected = _check_manifest(archive, manifest, cap)
    now_ms = store.clock() * 1000.0
    seen: set[str] = set()
    expired = 0
    for member in members:
        _check_member(archive, member)
        name = member.name
        if name not in expected:
            raise DataFormatError(f"{archive}: unexpected member {name!r} (not in the manifest)")
        if name in seen:
            raise DataFormatError(f"{archive}: member {name!r} appears twice")
        seen.add(name)
        index, size, checksum = expected[name]
        if member.size != size:
            raise DataFormatError(
                f"{archive}: member {name!r} is {member.size} bytes, the manifest says {size}"
            )
        layer = layers[index]
        digest = hashlib.sha256()
        fh = tar.extractfile(member)

        def chunks(fh: Any = fh, digest: Any = digest) -> Iterator[bytes]:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                yield chunk

        reader = _Reader(f"{archive}:{name}", store.max_value_bytes)
        lines = reader.lines(chunks())
        caches = reader.header(next(lines, None))
        count = 0
        for line in lines:
            if not line.strip():
                continue
            row = reader.row(line)
            count += 1
            if row.deadline_ms is not None and now_ms >= row.deadline_ms:
                expired += 1
                continue
            _spool_row(spool, index, row)
        if digest.hexdigest() != checksum:
            raise DataFormatError(
                f"{archive}: member {name!r} fails its sha256 checksum (damaged); nothing was "
                "changed"
            )
        if count != layer.entries or len(caches) != layer.announced_caches:
            raise DataFormatError(
                f"{archive}: member {name!r} holds {count} entries and {len(caches)} TTL "
                f"definitions, the manifest says {layer.entries} and {layer.announced_caches}"
            )
        layer.caches = caches
    missing = sorted(set(expected) - seen)
    if missing:
        raise DataFormatError(
            f"{archive}: member {missing[0]!r} is missing (truncated or incomplete archive); "
            "nothing was changed"
        )
    return layers, expired


def _check_member(archive: str, member: Any) -> None:
    import tarfile
    from pathlib import PurePosixPath

    name = member.name
    if name.startswith("/") or PurePosixPath(name).is_absolute() or re.match(r"[A-Za-z]:", name):
        raise DataFormatError(f"{archive}: member {name!r} has an absolute path; refused")
    if ".." in PurePosixPath(name).parts or "\\" in name:
        raise DataFormatError(f"{archive}: member {name!r} escapes the archive; refused")
    if member.issym() or member.islnk():
        raise DataFormatError(f"{archive}: member {name!r} is a link; refused")
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        raise DataFormatError(f"{archive}: member {name!r} is not a regular file; refused")


def _check_manifest(
    archive: str, manifest: Any, cap: int
) -> tuple[list[_Layer], dict[str, tuple[int, int, str]]]:
    from prontodb.names import check_name

    def bad(problem: str) -> DataFormatError:
        return DataFormatError(f"{archive}: {MANIFEST}: {problem}; nothing was changed")

    def count(value: Any, what: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise bad(f"{what} must be a whole number >= 0")
        return value

    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise bad(f'not a ProntoDB backup manifest (no "format":"{BACKUP_FORMAT}")')
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"bad backup format version {version!r}")
    if version > BACKUP_VERSION:
        raise bad(
            f"backup format version {version} was written by a newer ProntoDB (this one reads "
            f"version {BACKUP_VERSION})"
        )
    raw_layers, raw_members = manifest.get("layers"), manifest.get("members")
    if not isinstance(raw_layers, list) or not isinstance(raw_members, dict):
        raise bad("'layers' must be a list and 'members' an object")
    layers: list[_Layer] = []
    expected: dict[str, tuple[int, int, str]] = {}
    total = 0
    for item in raw_layers:
        if not isinstance(item, dict):
            raise bad("each layer must be an object")
        try:
            user = check_name("user", item.get("user"))  # type: ignore[arg-type]
            meta = item.get("meta")
            meta = None if meta is None else check_name("meta", meta)
        except ValueError as exc:
            raise bad(str(exc)) from None
        layer = _Layer(user, meta, entries=count(item.get("entries"), "entries"))
        layer.announced_caches = count(item.get("caches"), "caches")
        name = layer.member
        if item.get("member") != name or name in expected:
            raise bad(f"layer ({user}, {meta}) names member {item.get('member')!r}")
        facts = raw_members.get(name)
        if not isinstance(facts, dict):
            raise bad(f"no size and checksum for member {name!r}")
        size = count(facts.get("size"), f"size of {name}")
        checksum = facts.get("sha256")
        if not isinstance(checksum, str) or not _SHA256.fullmatch(checksum):
            raise bad(f"bad sha256 for member {name!r}")
        total += size
        expected[name] = (len(layers), size, checksum)
        layers.append(layer)
    if set(raw_members) != set(expected):
        extra = sorted(set(raw_members) - set(expected))
        raise bad(f"member {extra[0]!r} belongs to no layer")
    if total > cap:
        raise bad(
            f"members add up to {total} bytes, over the limit of {cap} bytes for this archive"
        )
    return layers, expected


# -- migrate -------------------------------------------------------------------------------


@dataclass
class _CopyStats:
    rows: int = 0
    entries: int = 0
    caches: int = 0
    expired: int = 0
    layers: set[bytes] = field(default_factory=set)
    copied: Any = None  # sha256 of the copied rows
    everything: Any = None  # sha256 of every row of the source (expired ones too)


_LENGTHS = struct.Struct(">IQ")


def _feed(digest: Any, key: bytes, value: bytes) -> None:
    digest.update(_LENGTHS.pack(len(key), len(value)))
    digest.update(key)
    digest.update(value)


def migrate_path(old: str, backend: str) -> str:
    """The default new path of a migrated store: the old one with ``backend``'s extension."""
    from prontodb import backends
    from prontodb.cursor import EXTENSIONS

    old = old.rstrip(os.sep)
    base = os.path.splitext(old)[0] if backends.from_extension(old) else old
    return base + EXTENSIONS[backend]


def migrate(
    user: str,
    name: str,
    backend: str,
    *,
    path: str | None = None,
    remove_old: bool = False,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    progress: Progress | None = None,
    replace_target: bool = False,
) -> MigrateSummary:
    """Move cursor ``name`` of ``user`` onto a new store of engine ``backend``.

    Everything of every layer (values, deadlines, TTL namespace definitions; not expired
    entries) is copied from a snapshot of the old store into a new one built under a
    temporary name beside ``path`` (default: the old path with the new engine's extension),
    which is then re-read and checked against the copy (counts and a sha256 of every key and
    envelope) and renamed into place. The source is scanned again afterwards: if another
    process wrote to it meanwhile, ConflictError is raised and nothing changes. Only then is
    the cursor repointed (an atomic rewrite of the cursor file). The old store is kept unless
    ``remove_old``. A crash at any point leaves the cursor on the old, intact store."""
    from prontodb import backends, paths
    from prontodb import cursor as cursors
    from prontodb.clock import system_clock
    from prontodb.errors import ConfigError
    from prontodb.opener import open_backend

    if backend not in backends.FILE_BACKENDS:
        raise ConfigError(
            f"unknown backend {backend!r} (choose {', '.join(backends.FILE_BACKENDS)})"
        )
    spec = cursors.load(user, name, env)
    old = spec.path
    new = os.path.abspath(os.path.expanduser(path)) if path else migrate_path(old, backend)
    if os.path.realpath(new) == os.path.realpath(old):
        raise UsageError(
            None,
            argument="path",
            value=path,
            rule="same file",
            template=f"cursor {literal(repr(name))} already uses {literal(old)}; give {{path}} "
            "to migrate to another file",
        )
    if os.path.lexists(new):
        users = [c.name for c in cursors.list_cursors(user, env) if _same_path(c.path, new)]
        if users:
            raise ConfigError(
                None,
                argument="path",
                value=new,
                rule="another cursor's store",
                template=f"{literal(new)} is the store of cursor {literal(repr(users[0]))}; "
                "refusing to replace it",
            )
        if not replace_target:
            earlier = (
                f" (the copy an earlier migrate of cursor {name!r} kept there)"
                if new == migrate_path(old, backend)
                else ""
            )
            raise ConfigError(
                None,
                argument="replace_target",
                value=new,
                rule="exists",
                template=f"{literal(new)} already exists{literal(earlier)}; pass "
                "{replace_target=True} to replace it, or choose another {path}",
            )
        if backends.sniff(new) is None:
            raise ConfigError(
                None,
                argument="replace_target",
                value=new,
                rule="not a store",
                template=f"{literal(new)} is not a ProntoDB store; {{replace_target=True}} "
                "refuses to touch it",
            )
    if remove_old:
        sharing = [
            c.name
            for c in cursors.list_cursors(user, env)
            if c.name != name and os.path.realpath(c.path) == os.path.realpath(old)
        ]
        if sharing:
            raise ConfigError(
                None,
                argument="remove_old",
                value=True,
                rule="shared",
                template=f"refusing {{remove_old=True}}: cursor {literal(repr(sharing[0]))} also "
                f"uses {literal(old)}",
            )
    folder = paths.make_private_dir(os.path.dirname(new))
    _remove_stale_copies(folder, os.path.basename(new))
    tmp = os.path.join(folder, f".{os.path.basename(new)}.migrating-{os.getpid()}")
    source = open_backend(old, backend=spec.backend, durability=spec.durability, create=False)
    try:
        try:
            stats = _copy_store(
                source, tmp, backend, spec.durability, clock or system_clock, progress
            )
            if _digest_all(source).digest() != stats.everything.digest():
                raise ConflictError(
                    f"{old} changed while it was being copied (another process wrote to it); "
                    f"cursor {name!r} still points at it — run migrate again when it is idle"
                )
        finally:
            source.close()
        _verify_copy(tmp, backend, stats)
        if replace_target:
            cursors.remove_store(new)
        _move_store(tmp, new)
    except BaseException:
        cursors.remove_store(tmp)
        raise
    if cursors.load(user, name, env) != spec:
        raise ConflictError(
            f"cursor {name!r} was changed while migrating; it was left alone and the copy "
            f"stays at {new}"
        )
    cursors.save(user, spec.replace(path=new, backend=backend), env)
    removed = cursors.remove_store(old) if remove_old else False
    return MigrateSummary(
        cursor=name,
        old_path=old,
        old_backend=spec.backend,
        new_path=new,
        new_backend=backend,
        layers=len(stats.layers),
        entries=stats.entries,
        caches=stats.caches,
        removed_old=removed,
    )


def _remove_stale_copies(folder: str, name: str) -> None:
    """Remove what migrations killed midway left (``.NAME.migrating-PID``, PID no longer
    running); a copy still being built by a live process is left alone."""
    from prontodb import cursor as cursors

    pattern = re.compile(rf"\.{re.escape(name)}\.migrating-(\d+)(-lock|-wal|-shm)?")
    done: set[str] = set()
    for entry in os.listdir(folder):
        match = pattern.fullmatch(entry)
        if match is None:
            continue
        # A side file alone (killed while the copy was being removed) goes with its base name.
        entry = entry[: match.start(2)] if match.group(2) else entry
        if entry in done:
            continue
        done.add(entry)
        pid = int(match.group(1))
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
                continue
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        cursors.remove_store(os.path.join(folder, entry))


def _copy_store(
    source: Backend,
    tmp: str,
    backend: str,
    durability: str,
    clock: Clock,
    progress: Progress | None,
) -> _CopyStats:
    import hashlib

    from prontodb.opener import open_backend

    stats = _CopyStats(copied=hashlib.sha256(), everything=hashlib.sha256())
    dest = open_backend(tmp, backend=backend, durability=durability, create=True)
    try:
        with source.snapshot():
            now_ms = clock() * 1000.0
            if progress is not None:
                progress.start("migrating", _count_keys(source, b""), "entries")

            def rows() -> Iterator[tuple[bytes, bytes]]:
                for key, raw in source.scan(b""):
                    if key.startswith(keyspace.INFO):
                        if key == keyspace.INFO_REVISION:
                            # entries keep their versions, so the counter must come along:
                            # a restarted revision would hand out versions again
                            yield key, raw
                        continue
                    _feed(stats.everything, key, raw)
                    if key.startswith(keyspace.DATA):
                        deadline = record.deadline_of(raw)
                        if deadline is not None and now_ms >= deadline:
                            stats.expired += 1
                            continue
                        stats.entries += 1
                        stats.layers.add(key[: key.index(b"\x00", key.index(b"\x00", 2) + 1)])
                    elif key.startswith(keyspace.TTLDEF):
                        stats.caches += 1
                        stats.layers.add(
                            b"D" + key[1 : key.index(b"\x00", key.index(b"\x00", 2) + 1)]
                        )
                    _feed(stats.copied, key, raw)
                    stats.rows += 1
                    yield key, raw

            dest.put_many(_counted(rows(), progress))
            if progress is not None:
                progress.finish()
    finally:
        dest.close()
    return stats


def _digest_all(backend: Backend) -> Any:
    import hashlib

    digest = hashlib.sha256()
    for key, raw in backend.scan(b""):
        if not key.startswith(keyspace.INFO):
            _feed(digest, key, raw)
    return digest


def _verify_copy(tmp: str, backend: str, stats: _CopyStats) -> None:
    import hashlib

    from prontodb.errors import CorruptStoreError
    from prontodb.opener import open_backend

    digest = hashlib.sha256()
    rows = 0
    dest = open_backend(tmp, backend=backend, create=False)
    try:
        for key, raw in dest.scan(b""):
            if not key.startswith(keyspace.INFO):
                _feed(digest, key, raw)
                rows += 1
    finally:
        dest.close()
    if rows != stats.rows or digest.digest() != stats.copied.digest():
        raise CorruptStoreError(
            f"the new {backend} store at {tmp} does not read back what was written ({rows} of "
            f"{stats.rows} rows, or a checksum mismatch); the cursor was left alone"
        )


def _same_path(a: str, b: str) -> bool:
    return os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b))


def _move_store(tmp: str, new: str) -> None:
    """Rename the store built at ``tmp`` (file or directory, plus side files) to ``new``; the
    main file moves last, so ``new`` appears complete or not at all."""
    for suffix in ("-lock", "-wal", "-shm", ""):
        if os.path.lexists(tmp + suffix):
            os.rename(tmp + suffix, new + suffix)
    paths.fsync_dir(os.path.dirname(new))
