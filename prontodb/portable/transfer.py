"""Export and import of one user/meta layer (``prontodb export`` / ``prontodb import``).

Import validates every line first (memory stays bounded by the longest line), spools the
validated rows and only then applies them in one write transaction: a killed import leaves the
target as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING

from prontodb import files, keyspace, record
from prontodb.address import parse_scope
from prontodb.errors import ConflictError, DataFormatError, UsageError, literal
from prontodb.portable.jsonl import (
    LiveRow,
    Reader,
    Sink,
    count_keys,
    entry_lines,
    header,
    json_string,
    layer_ttl_defs,
    live_rows,
)
from prontodb.portable.report import ExportSummary, ImportSummary, Progress, counted
from prontodb.portable.spool import read_chunks, spool_file, spool_row, spooled, spooled_keys

if TYPE_CHECKING:
    from prontodb.backends.base import Backend
    from prontodb.store import Store


FORMATS = ("jsonl", "stream")


ON_CONFLICT = ("overwrite", "skip", "fail")


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
        caches = layer_ttl_defs(backend, store.user, store.meta, parts, now_ms)
        if progress is not None:
            progress.start("exporting", count_keys(backend, prefix), "entries")
        rows = live_rows(backend, prefix, len(layer), now_ms)
        if format == "jsonl":
            sink = Sink(out)
            sink.write(header(backend.name, canonical, caches))
            for line in entry_lines(counted(rows, progress), json_string()):
                sink.write(line)
            sink.flush()
            count = sink.lines - 1
        else:
            _check_streamable(live_rows(backend, prefix, len(layer), now_ms))
            count = _write_stream(counted(rows, progress), out, now_ms)
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
    env: Mapping[str, str] | None = None,
) -> ExportSummary:
    """:func:`export_layer` into the file ``path`` (0600), which appears only when the export
    is complete, through :func:`prontodb.guard.replacing`: an unpredictable temporary file
    created exclusively beside it, synced, renamed over ``path`` (a symlink there is replaced,
    not written through), the directory synced. A failed export leaves no partial file. Under
    a locked context (``env``, default ``os.environ``) a file holding another user's data is
    refused with ContextLockedError."""
    from prontodb import guard

    target = os.path.abspath(os.path.expanduser(path))
    try:
        with guard.replacing(target, env) as fh:
            summary = export_layer(store, fh, scope=scope, format=format, progress=progress)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    return summary


def _check_streamable(rows: Iterable[LiveRow]) -> None:
    for address, value, *_ in rows:
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


def _write_stream(rows: Iterable[LiveRow], out: IO[bytes], now_ms: float) -> int:
    sink = Sink(out)
    namespace = None
    ttl: int | None = None
    count = 0
    for address, value, deadline, *_ in rows:
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


def _is_live(backend: Backend, key: bytes, now: float) -> bool:
    raw = backend.get(key)
    if raw is None:
        return False
    return not record.expired(raw, now)


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
    now = store.clock()
    reader = Reader(name, store.max_value_bytes, now_ms=now * 1000.0)
    entries = expired = 0
    with files.disk_errors("importing"), spool_file(backend) as spool:
        if progress is not None and size:
            progress.start("validating", size, "bytes")
        lines = reader.lines(read_chunks(source, progress if size else None))
        caches = reader.header(next(lines, None))
        for line in lines:
            if not line.strip():
                continue
            row = reader.row(line)
            entries += 1
            if row.deadline_ms is not None and now * 1000.0 >= row.deadline_ms:
                expired += 1
                continue
            spool_row(spool, 0, row)
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
            for _, address, _, _, _ in spooled(spool):
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

        def wanted() -> Iterator[tuple[bytes, bytes, int | None, int | None]]:
            # deadlines stay absolute and write times are kept; versions are fresh
            for index, (_, key, value, deadline, written) in enumerate(spooled_keys(spool)):
                if skip and skip[index]:
                    continue
                yield key, value, deadline, written

        written = store.write_keyed(counted(wanted(), progress))
        if progress is not None:
            progress.finish()
    return written, sum(skip), defs
