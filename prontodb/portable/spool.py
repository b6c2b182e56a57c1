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

from prontodb import keyspace
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
#: The same, the address as the entry's key after its layer prefix.
SpooledKey = tuple[int, bytes, bytes, "int | None", "int | None"]


def spool_file(backend: Backend) -> IO[bytes]:
    """An anonymous temporary file next to the store (same file system, so a tmpfs /tmp does
    not turn a large import into memory use)."""
    import tempfile

    where = os.path.dirname(os.path.abspath(backend.path))
    folder = where if os.path.isdir(where) and os.access(where, os.W_OK) else None
    return tempfile.TemporaryFile(dir=folder, prefix=".prontodb-spool-")


def spool_row(spool: IO[bytes], layer: int, row: Row) -> None:
    addr = keyspace.entry_key(b"", row.address)  # the entry's key after its layer prefix
    deadline = _NO_DEADLINE if row.deadline_ms is None else row.deadline_ms
    written = _NO_DEADLINE if row.written_ms is None else row.written_ms
    value = row.value
    spool.write(_ROW.pack(layer, len(addr), deadline, written, len(value)) + addr + value)


def spooled_keys(spool: IO[bytes]) -> Iterator[SpooledKey]:
    """The spooled rows in order, each entry named by its key after the layer prefix (what
    :func:`keyspace.entry_key` appends to a layer): the import path writes them as they are."""
    spool.seek(0)
    read = spool.read
    size = _ROW.size
    unpack = _ROW.unpack
    while True:
        head = read(size)
        if not head:
            return
        layer, addr_len, deadline, written, value_len = unpack(head)
        addr = read(addr_len)
        yield (
            layer,
            addr,
            read(value_len),
            None if deadline == _NO_DEADLINE else deadline,
            None if written == _NO_DEADLINE else written,
        )


def spooled(spool: IO[bytes]) -> Iterator[Spooled]:
    """The spooled rows in order, each entry named by its Address."""
    for layer, addr, value, deadline, written in spooled_keys(spool):
        project, namespace, key, context = addr.decode().split("\x00")
        yield layer, Address(project, namespace, key, context or None), value, deadline, written


def read_chunks(source: IO[bytes], progress: Progress | None = None) -> Iterator[bytes]:
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            return
        if progress is not None:
            progress.advance(len(chunk))
        yield chunk
