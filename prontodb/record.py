"""The envelope every value is stored in: a versioned header, then the raw bytes.

This module and :mod:`prontodb.keyspace` are the one owner of the on-disk format: how an entry
is laid out, and whether it is expired (:func:`expired`). Nothing else opens an envelope by
hand.

Format 2 (written by this release), big-endian:

* 1 byte format version (2);
* 8 bytes signed expiry deadline in epoch milliseconds (0: no expiry);
* 8 bytes unsigned entry version: the store revision of the entry's last write;
* 8 bytes signed write time in epoch milliseconds;
* then the value bytes exactly as given.

Format 1 (earlier releases): 1 byte format version (1), 8 bytes deadline, then the value. It is
read as version 0 with no write time, and is replaced by format 2 on the entry's next write.
"""

from __future__ import annotations

from _struct import Struct

from prontodb.errors import CorruptStoreError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Iterable

FORMAT_VERSION = 2
#: The envelope format of earlier releases, still read.
FORMAT_V1 = 1
#: The one range every duration and deadline shares (docs/security.md): a deadline must fall
#: before 10000-01-01T00:00:00Z. Writers refuse anything at or past it; readers accept all below.
DEADLINE_LIMIT_MS = 253_402_300_800_000
_HEADER = Struct(">BqQq")
_V1_HEADER = Struct(">Bq")
_DEADLINE = Struct(">Bq")  # the first two fields, shared by both formats
HEADER_SIZE = _HEADER.size
V1_HEADER_SIZE = _V1_HEADER.size
#: Every format-2 envelope without a deadline starts with these bytes (and its value is at
#: HEADER_SIZE): the bulk paths test it to skip decoding headers one at a time.
NO_DEADLINE = _DEADLINE.pack(FORMAT_VERSION, 0)
_pack = _HEADER.pack
_deadline_from = _DEADLINE.unpack_from
_unpack_from = _HEADER.unpack_from


class Record(tuple[bytes, "int | None", int, "int | None"]):
    """A decoded envelope: value bytes, deadline (epoch ms, None: no expiry), entry version
    (0 for a format-1 envelope) and write time (epoch ms, None when unknown).

    A 4-tuple with named fields, like a ``typing.NamedTuple`` (which would import typing at
    start-up): ``Record(value, deadline_ms, version=0, written_ms=None)``."""

    __slots__ = ()
    _fields = ("value", "deadline_ms", "version", "written_ms")

    def __new__(
        cls, value: bytes, deadline_ms: int | None, version: int = 0, written_ms: int | None = None
    ) -> Record:
        return tuple.__new__(cls, (value, deadline_ms, version, written_ms))

    def __getnewargs__(self) -> tuple[bytes, int | None, int, int | None]:
        return (self[0], self[1], self[2], self[3])

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True)
        )
        return f"Record({fields})"

    @property
    def value(self) -> bytes:
        return self[0]

    @property
    def deadline_ms(self) -> int | None:
        return self[1]

    @property
    def version(self) -> int:
        return self[2]

    @property
    def written_ms(self) -> int | None:
        return self[3]

    @property
    def expires_at(self) -> float | None:
        """The deadline in epoch seconds, or None."""
        return None if self.deadline_ms is None else self.deadline_ms / 1000.0

    @property
    def written_at(self) -> float | None:
        """The write time in epoch seconds, or None when unknown (format 1)."""
        return None if self.written_ms is None else self.written_ms / 1000.0

    def expired(self, now: float) -> bool:
        """True when ``now`` (epoch seconds) is at or past the deadline."""
        return self.deadline_ms is not None and now * 1000.0 >= self.deadline_ms


def header(deadline_ms: int | None, version: int, written_ms: int) -> bytes:
    """The format-2 header of an entry; the envelope is the header followed by the value."""
    return _pack(FORMAT_VERSION, deadline_ms or 0, version, written_ms)


def pack(
    value: bytes, deadline_ms: int | None = None, version: int = 0, written_ms: int = 0
) -> bytes:
    """Wrap ``value`` in a format-2 envelope."""
    return _pack(FORMAT_VERSION, deadline_ms or 0, version, written_ms) + value


def _damaged(raw: bytes) -> CorruptStoreError:
    return CorruptStoreError(f"damaged entry: {len(raw)}-byte envelope is shorter than its header")


def _unknown(fmt: int) -> CorruptStoreError:
    return CorruptStoreError(
        f"entry has envelope version {fmt}; this ProntoDB reads {FORMAT_V1} and {FORMAT_VERSION}"
    )


def format_of(raw: bytes) -> int:
    """The envelope format of ``raw`` (1 or 2); CorruptStoreError for anything else."""
    if len(raw) < V1_HEADER_SIZE:
        raise _damaged(raw)
    fmt = raw[0]
    if fmt == FORMAT_VERSION:
        if len(raw) < HEADER_SIZE:
            raise _damaged(raw)
        return fmt
    if fmt == FORMAT_V1:
        return fmt
    raise _unknown(fmt)


def unpack(raw: bytes) -> Record:
    """Open an envelope of either format; an unknown format or a short header raises
    CorruptStoreError."""
    if format_of(raw) == FORMAT_VERSION:
        _, deadline, version, written = _unpack_from(raw)
        return Record(raw[HEADER_SIZE:], deadline or None, version, written)
    return Record(raw[V1_HEADER_SIZE:], _deadline_from(raw)[1] or None)


def deadline_of(raw: bytes) -> int | None:
    """The deadline (epoch ms) of an envelope without copying its value."""
    format_of(raw)
    return _deadline_from(raw)[1] or None


def value_of(raw: bytes) -> bytes:
    """The value bytes of an envelope of either format."""
    return raw[HEADER_SIZE if format_of(raw) == FORMAT_VERSION else V1_HEADER_SIZE :]


def version_of(raw: bytes) -> int:
    """The entry version of an envelope (0 for format 1)."""
    return _unpack_from(raw)[2] if format_of(raw) == FORMAT_VERSION else 0


def expired(raw: bytes, now: float) -> bool:
    """The one answer to "is this entry expired?": True when ``now`` (epoch seconds) is at or
    past the deadline of the envelope ``raw`` (an envelope without a deadline never expires)."""
    if raw.startswith(NO_DEADLINE):
        return False
    deadline = deadline_of(raw)
    return deadline is not None and now * 1000.0 >= deadline


def live(raw: bytes | None, now: float) -> Record | None:
    """The decoded envelope ``raw``, or None when there is none or it is expired at ``now``."""
    if raw is None:
        return None
    rec = unpack(raw)
    return None if rec.expired(now) else rec


def format_counts(envelopes: Iterable[bytes]) -> dict[int, int]:
    """How many of ``envelopes`` are in each format, ``{format: count}`` ascending (a damaged
    envelope raises CorruptStoreError)."""
    counts: dict[int, int] = {}
    for raw in envelopes:
        fmt = format_of(raw)
        counts[fmt] = counts.get(fmt, 0) + 1
    return dict(sorted(counts.items()))
