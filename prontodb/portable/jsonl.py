"""The export format: JSON Lines, UTF-8, one object per line.

The first line is a header::

    {"format":"prontodb-export","version":1,"prontodb":"0.1.0","source":{"backend":"sqlite"},
     "scope":null,"caches":{"pipe.cache":900}}

(``caches``: the TTL namespace definitions under the scope, ``project.namespace`` -> seconds),
then one object per live entry in ascending address order::

    {"address":"p.n.k__ctx","value":"text","encoding":"utf-8","expires_at":1700000060.5}

``value`` is the UTF-8 text of the bytes, or their base64 with ``"encoding":"base64"`` when
they are not valid UTF-8; ``expires_at`` is the absolute deadline in epoch seconds (millisecond
precision) or null. Addresses always use ``.``. Expired entries are never exported. The output
holds no timestamp, so exporting the same data twice gives identical files.

This module writes entry lines (:class:`Sink`, :func:`entry_lines`) and reads them back,
validating each line with a bound on its length (:class:`Reader`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from prontodb import keyspace, record
from prontodb.address import Address, check_length, parse, parse_namespace
from prontodb.errors import DataFormatError
from prontodb.record import DEADLINE_LIMIT_MS

if TYPE_CHECKING:
    from prontodb.backends.base import Backend


EXPORT_FORMAT = "prontodb-export"


EXPORT_VERSION = 1


#: Deadlines read from an export lie strictly between -/+ this (record.DEADLINE_LIMIT_MS, the
#: one range every reader and writer shares), in epoch seconds.
_LIMIT_S = DEADLINE_LIMIT_MS / 1000


_BATCH_LINES = 2048


_SEG = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}"


_FULL_ADDRESS = re.compile(rf"({_SEG})\.({_SEG})\.([A-Za-z0-9_][A-Za-z0-9_-]*)")


_SEGMENT = re.compile(_SEG)


def json_string() -> Callable[[str], str]:
    from json.encoder import encode_basestring  # the C accelerated encoder when available

    return encode_basestring


def _address_text(key: bytes, layer_len: int) -> str:
    """``project.namespace.key[__context]`` of an entry key whose layer prefix is
    ``layer_len`` bytes long. A key that ProntoDB cannot have written (not UTF-8, segments
    missing or empty, characters an address never holds: a flipped byte on disk) raises
    CorruptStoreError, so that an export never writes an address that import refuses."""
    project, namespace, name, context = keyspace.segments(key, layer_len, 4, 3)
    segment = _SEGMENT.fullmatch
    if not (
        segment(project)
        and segment(namespace)
        and segment(name)
        and (_context_reparses(context) if context else "__" not in name)
    ):
        raise keyspace.damaged_key(key, "characters an address never holds")
    if context:
        return f"{project}.{namespace}.{name}__{context}"
    return f"{project}.{namespace}.{name}"


def _context_reparses(context: str) -> bool:
    """Whether ``key__context`` splits back (at its last ``__``) into this context: a valid
    segment that holds no ``__`` and does not start with ``_``. The key before it may hold
    ``__`` (``p.n.____0`` is key ``__``, context ``0``)."""
    return bool(_SEGMENT.fullmatch(context)) and "__" not in context and context[0] != "_"


def _deadline_text(deadline_ms: int | None) -> str:
    return "null" if deadline_ms is None else repr(deadline_ms / 1000)


def entry_lines(rows: Iterable[LiveRow], quote: Callable[[str], str]) -> Iterator[str]:
    """One export line per row: address, value (utf-8 text or base64), expires_at, and the
    entry's written_at (epoch seconds or null) and version."""
    import base64

    b64 = base64.b64encode
    for address, value, deadline, version, written in rows:
        try:
            text = quote(value.decode())
            encoding = "utf-8"
        except UnicodeDecodeError:
            text = '"' + b64(value).decode("ascii") + '"'
            encoding = "base64"
        yield (
            f'{{"address":"{address}","value":{text},"encoding":"{encoding}",'
            f'"expires_at":{_deadline_text(deadline)},"written_at":{_deadline_text(written)},'
            f'"version":{version}}}\n'
        )


def header(backend_name: str, scope: str | None, caches: Mapping[tuple[str, str], int]) -> str:
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


class Sink:
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


def writable_ttl(seconds: int, now_ms: float) -> int:
    """A TTL definition as exports carry it: unchanged when entries written now would expire
    before the year 10000, else the largest TTL that stays a day inside that range (stores of
    earlier releases could hold larger ones, which every later write would refuse)."""
    largest = int((DEADLINE_LIMIT_MS - now_ms) // 1000) - 86_400
    return seconds if seconds <= largest else largest


def writable_deadline(deadline_ms: int | None) -> int | None:
    """A deadline as exports carry it: within the one range (before the year 10000); a
    deadline past it (written by earlier releases) becomes the last millisecond of the range,
    so every export and backup can be imported and restored."""
    if deadline_ms is None or deadline_ms < DEADLINE_LIMIT_MS:
        return deadline_ms
    return DEADLINE_LIMIT_MS - 1


def layer_ttl_defs(
    backend: Backend,
    user: str,
    meta: str | None,
    scope: tuple[str, ...] = (),
    now_ms: float = 0.0,
) -> dict[tuple[str, str], int]:
    """The TTL namespace definitions of one layer under ``scope``, as exports carry them
    (:func:`writable_ttl` at ``now_ms``)."""
    prefix = keyspace.ttl_prefix(user, meta)
    found: dict[tuple[str, str], int] = {}
    for key, raw in backend.scan(prefix):
        project, namespace = keyspace.segments(key, len(prefix), 2, 2)
        if scope[:1] and scope[0] != project or scope[1:] and scope[1] != namespace:
            continue
        found[(project, namespace)] = writable_ttl(keyspace.stored_ttl_seconds(key, raw), now_ms)
    return found


#: A live entry as exports write it: address, value, deadline (ms), version, write time (ms).
LiveRow = tuple[str, bytes, "int | None", int, "int | None"]


def live_rows(backend: Backend, prefix: bytes, layer_len: int, now_ms: float) -> Iterator[LiveRow]:
    """The live entries under ``prefix`` (expiry decided by :func:`prontodb.record.live`), in
    key order, with deadlines inside the one range (:func:`writable_deadline`)."""
    live = record.live
    now = now_ms / 1000.0
    for key, raw in backend.scan(prefix):
        rec = live(raw, now)
        if rec is None:
            continue
        yield (
            _address_text(key, layer_len),
            rec.value,
            writable_deadline(rec.deadline_ms),
            rec.version,
            rec.written_ms,
        )


def count_keys(backend: Backend, prefix: bytes) -> int:
    return sum(1 for _ in backend.scan(prefix))


@dataclass
class Row:
    address: Address
    value: bytes
    deadline_ms: int | None
    #: the entry's original write time (epoch ms), when the export carried one
    written_ms: int | None = None


class Reader:
    """Validates an export file line by line (bounded memory). ``where`` names the input in
    error messages."""

    def __init__(self, where: str, max_value_bytes: int, *, now_ms: float) -> None:
        import json

        self.where = where
        self.now_ms = now_ms
        self.max_value_bytes = max_value_bytes
        # Worst case: every byte of a value escaped as \\u00XX, plus the other fields.
        self.max_line = 6 * max_value_bytes + (64 << 10)
        # One decoder for every line (json.loads with options builds a new one per call). The
        # stdlib decoder stays: decoding is about a seventh of an import's time, so no faster
        # library could earn its place on this path (docs/performance.md, "JSONL decoder").
        decoder = json.JSONDecoder(parse_constant=self._constant)
        self._decode = decoder.decode
        self._raw_decode = decoder.raw_decode
        self.line_no = 0

    def fail(self, problem: str) -> DataFormatError:
        return DataFormatError(f"{self.where}: line {self.line_no}: {problem}")

    def lines(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Complete lines (without the newline) of the concatenated chunks; a line longer than
        ``max_line`` is refused before it is held whole. Work and memory are linear: the
        pieces of a long line are joined once, when its end is seen."""
        pieces: list[bytes] = []
        held = 0
        limit = self.max_line
        for chunk in chunks:
            if not chunk:
                continue
            parts = chunk.split(b"\n")
            tail = parts.pop()
            if parts and pieces:
                pieces.append(parts[0])
                parts[0] = b"".join(pieces)
                pieces, held = [], 0
            for line in parts:
                self.line_no += 1
                if len(line) > limit:
                    raise self.fail(f"line is longer than {limit} bytes")
                yield line
            if tail:
                pieces.append(tail)
                held += len(tail)
                if held > limit:
                    self.line_no += 1
                    raise self.fail(f"line is longer than {limit} bytes")
        if pieces:
            self.line_no += 1
            yield b"".join(pieces)

    def _json(self, line: bytes) -> Any:
        try:
            text = line.decode()
            try:
                # the C scanner alone when the line is exactly one JSON value (the common case)
                obj, end = self._raw_decode(text)
                if end == len(text):
                    return obj
            except ValueError:
                pass
            # white space around the value, or not valid: the full decoder decides and words it
            return self._decode(text)
        except UnicodeDecodeError:
            raise self.fail("not valid UTF-8") from None
        except RecursionError:
            raise self.fail("nested too deeply to be a ProntoDB export line") from None
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
            if seconds * 1000 >= DEADLINE_LIMIT_MS - self.now_ms:
                raise self.fail(
                    f"TTL of {name} ({seconds} s) is too large: entries written now would "
                    "expire after the year 9999"
                )
            found[(project, namespace)] = seconds
        return found

    def row(self, line: bytes) -> Row:
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
            deadline = round(expires * 1000) if -_LIMIT_S < expires < _LIMIT_S else None
            if deadline is None or not -DEADLINE_LIMIT_MS < deadline < DEADLINE_LIMIT_MS:
                raise self.fail(
                    f"{text}: expires_at {expires!r} is out of range (a deadline must fall "
                    "before the year 10000)"
                )
        else:
            raise self.fail(f"{text}: expires_at must be epoch seconds or null")
        written = obj.get("written_at")
        if written is not None:
            if not isinstance(written, int | float) or isinstance(written, bool):
                raise self.fail(f"{text}: written_at must be epoch seconds or null")
            if not 0 <= written < _LIMIT_S:
                raise self.fail(f"{text}: written_at {written!r} is out of range")
            written = round(written * 1000)
        version = obj.get("version")
        if version is not None and (
            not isinstance(version, int) or isinstance(version, bool) or version < 0
        ):
            raise self.fail(f"{text}: version must be a whole number >= 0")
        return Row(address, data, deadline, written)


def _parse_address(text: str, reader: Reader) -> Address:
    match = _FULL_ADDRESS.fullmatch(text)
    if match is not None:
        project, namespace, name = match.groups()
        key, sep, context = name.rpartition("__")
        if not sep:
            key, context = name, ""
        if _SEGMENT.fullmatch(key) and (not sep or _SEGMENT.fullmatch(context)):
            try:
                check_length(project, namespace, name, text)
            except ValueError as exc:
                raise reader.fail(str(exc)) from None
            return Address(project, namespace, key, context or None)
    try:
        return parse(text)
    except ValueError as exc:
        raise reader.fail(str(exc)) from None
