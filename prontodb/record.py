"""The envelope every value is stored in: a versioned header, then the raw bytes.

Layout (big-endian): 1 byte format version (1), 8 bytes signed expiry deadline in epoch
milliseconds (0 means no expiry), then the value bytes exactly as given.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from prontodb.errors import CorruptStoreError

FORMAT_VERSION = 1
#: The one range every duration and deadline shares (docs/security.md): a deadline must fall
#: before 10000-01-01T00:00:00Z. Writers refuse anything at or past it; readers accept all below.
DEADLINE_LIMIT_MS = 253_402_300_800_000
_HEADER = struct.Struct(">Bq")
HEADER_SIZE = _HEADER.size
_pack = _HEADER.pack
_unpack_from = _HEADER.unpack_from


class Record(NamedTuple):
    """A decoded value: its bytes and its deadline in epoch milliseconds (None: no expiry)."""

    value: bytes
    deadline_ms: int | None

    @property
    def expires_at(self) -> float | None:
        """The deadline in epoch seconds, or None."""
        return None if self.deadline_ms is None else self.deadline_ms / 1000.0

    def expired(self, now: float) -> bool:
        """True when ``now`` (epoch seconds) is at or past the deadline."""
        return self.deadline_ms is not None and now * 1000.0 >= self.deadline_ms


def pack(value: bytes, deadline_ms: int | None = None) -> bytes:
    """Wrap ``value`` in the envelope."""
    return _pack(FORMAT_VERSION, deadline_ms or 0) + value


def unpack(raw: bytes) -> Record:
    """Open an envelope; an unknown version or a short header raises CorruptStoreError."""
    if len(raw) < HEADER_SIZE:
        raise CorruptStoreError(
            f"damaged entry: {len(raw)}-byte envelope is shorter than its header"
        )
    version, deadline = _unpack_from(raw)
    if version != FORMAT_VERSION:
        raise CorruptStoreError(
            f"entry has envelope version {version}; this ProntoDB reads {FORMAT_VERSION}"
        )
    return Record(raw[HEADER_SIZE:], deadline or None)


def deadline_of(raw: bytes) -> int | None:
    """The deadline of an envelope without copying its value."""
    if len(raw) < HEADER_SIZE:
        raise CorruptStoreError("damaged entry: envelope shorter than its header")
    version, deadline = _unpack_from(raw)
    if version != FORMAT_VERSION:
        raise CorruptStoreError(
            f"entry has envelope version {version}; this ProntoDB reads {FORMAT_VERSION}"
        )
    return deadline or None
