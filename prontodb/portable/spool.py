"""The spool: validated rows on disk between validation and the write transaction.

Import and restore validate everything before they change anything; validated rows wait in an
anonymous temporary file next to the target store (same file system, so a tmpfs ``/tmp`` does
not turn a large import into memory use) and are replayed inside one write transaction.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from prontodb.address import Address
from prontodb.portable.jsonl import Row
from prontodb.portable.report import Progress

if TYPE_CHECKING:
    from prontodb.backends.base import Backend


CHUNK = 1 << 20


_NO_DEADLINE = -(2**63)


#: Spool row: layer index, address length, deadline in ms (or _NO_DEADLINE), write time in ms
#: (or _NO_DEADLINE), value length.
_ROW = struct.Struct(">IHqqQ")
#: A spooled row: layer index, address, value, deadline (ms), original write time (ms).
Spooled = tuple[int, Address, bytes, "int | None", "int | None"]


def spool_file(backend: Backend) -> IO[bytes]:
    """An anonymous temporary file next to the store (same file system, so a tmpfs /tmp does
    not turn a large import into memory use)."""
    import tempfile

    where = os.path.dirname(os.path.abspath(backend.path))
    folder = where if os.path.isdir(where) and os.access(where, os.W_OK) else None
    return tempfile.TemporaryFile(dir=folder, prefix=".prontodb-spool-")


def spool_row(spool: IO[bytes], layer: int, row: Row) -> None:
    a = row.address
    addr = f"{a.project}\x00{a.namespace}\x00{a.key}\x00{a.context or ''}".encode()
    deadline = _NO_DEADLINE if row.deadline_ms is None else row.deadline_ms
    written = _NO_DEADLINE if row.written_ms is None else row.written_ms
    spool.write(_ROW.pack(layer, len(addr), deadline, written, len(row.value)))
    spool.write(addr)
    spool.write(row.value)


def spooled(spool: IO[bytes]) -> Iterator[Spooled]:
    spool.seek(0)
    read = spool.read
    size = _ROW.size
    unpack = _ROW.unpack
    while True:
        head = read(size)
        if not head:
            return
        layer, addr_len, deadline, written, value_len = unpack(head)
        project, namespace, key, context = read(addr_len).decode().split("\x00")
        value = read(value_len)
        yield (
            layer,
            Address(project, namespace, key, context or None),
            value,
            None if deadline == _NO_DEADLINE else deadline,
            None if written == _NO_DEADLINE else written,
        )


def read_chunks(source: IO[bytes], progress: Progress | None = None) -> Iterator[bytes]:
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            return
        if progress is not None:
            progress.advance(len(chunk))
        yield chunk
