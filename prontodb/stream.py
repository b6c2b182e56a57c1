"""Token streams (``prontodb stream``): the state rules that turn XStream tokens into entries.

The grammar of one token lives in :mod:`prontodb.streamtokens`; this module owns what the tokens
mean (docs/stream.md): the target namespace and how ``meta:path``/``ns=``/``P.N:`` move it, the
``meta:ttl`` and ``meta:delim`` directives, ``sec:`` tokens, and the all-or-nothing write.

:func:`plan` reads and validates a whole stream without touching a store and returns a
:class:`Plan`; :func:`apply` writes a plan in one transaction through
:meth:`~prontodb.store.Store.write_batches`. Nothing is written unless every token is valid.

Speed and memory. The input is cut at ``;`` into blocks of about 64 KiB. A block made only of
plain data tokens (``key=value;`` to the current target: no prefix, no ``__``, no quotes, no
``=`` in the value) is checked by one compiled regex and kept as its bytes; :func:`apply` turns
it into the backend's (key, envelope) pairs with two ``replace`` and one ``split``, so the work
per token is done in C. Other blocks are taken apart into runs of plain tokens (also checked by
a regex) and single tokens, which go through the tokenizer and the state rules one by one; an
error is always reported by that path. A plan holds about one copy of the input.
"""

from __future__ import annotations

import marshal
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final, Literal, NamedTuple, NoReturn

from prontodb import keyspace
from prontodb.address import (
    DEFAULT_DELIM,
    Address,
    check_delim,
    check_length,
    check_segment,
    split_key,
)
from prontodb.duration import parse_duration
from prontodb.errors import (
    InvalidAddressError,
    ProntoError,
    StreamError,
    literal,
    python_spelling,
    render,
)
from prontodb.record import DEADLINE_LIMIT_MS
from prontodb.store import DEFAULT_MAX_VALUE_BYTES, Store
from prontodb.streamtokens import WHITESPACE, StreamSyntaxError, Token, TokenError, iter_tokens

__all__ = [
    "Batch",
    "Plan",
    "StreamEncodingError",
    "StreamStateError",
    "TokenTooLongError",
    "apply",
    "load",
    "plan",
    "plan_file",
    "plan_replayable",
]

#: Blocks are cut at the first ``;`` after this many bytes (characters for ``str`` input).
BLOCK_SIZE = 64 * 1024
#: Files are read in blocks of this many bytes.
READ_SIZE = 1 << 20
#: How much longer than the largest value a token may be (key, prefix, quotes, whitespace).
TOKEN_SLACK = 64 * 1024
#: The directives ``meta:KEY=VALUE`` understands.
META_KEYS = ("path", "ns", "project", "namespace", "ttl", "delim")

_WS = WHITESPACE.encode()  # the grammar's whitespace: space, tab, LF, CR, VT, FF
# A plain key: a valid address segment without ``__`` (so no context), and not the ``ns``
# directive. ``{0,127}`` followed by ``=`` bounds it to 128 characters.
_KEY = rb"(?!ns=)(?![A-Za-z0-9_-]*__)[A-Za-z0-9_][A-Za-z0-9_-]{0,127}"
# Values: no ``;``, not starting or ending with whitespace. A plain value does not start with a
# quote either, so it is stored as written; a quoted run also allows one outer pair of quotes.
_PLAIN_VALUE = rb"(?:[^;" + _WS + rb"\"'](?:[^;]*[^;" + _WS + rb"])?)?"
_ANY_VALUE = rb"(?:[^;" + _WS + rb"](?:[^;]*[^;" + _WS + rb"])?)?"
_LEAD = rb"[" + _WS + rb"]*"
_PLAIN_RUN = re.compile(rb"(?:" + _LEAD + _KEY + rb"=" + _PLAIN_VALUE + rb";)+")
_QUOTED_RUN = re.compile(
    rb"(?:" + _LEAD + _KEY + rb"=(?:\"[^;]*\"|'[^;]*'|" + _ANY_VALUE + rb");)+"
)
# Extraction from a run that has been validated, so these can be loose. Names are read from the
# run with every ``=`` turned into NUL: the key up to the first one is then the key part of a
# backend key (``key\0`` + empty context, see keyspace.entry_name).
_EQ_TO_SEP = bytes.maketrans(b"=", keyspace.SEP)
_RUN_NAMES = re.compile(_LEAD + rb"([^\x00;]*\x00)[^;]*;")
_RUN_VALUES = re.compile(rb"[^=;]*=([^;]*);")
_RUN_QUOTED = re.compile(_LEAD + rb"([^=;]*)=(?:([\"'])([^;]*)\2|([^;]*));")
# A whole block of plain tokens whose values hold no '=': it splits into names and values (a
# SPLIT part). A value here does not start with a quote and does not start or end with
# whitespace; the keys are checked for '__' apart (see _plain_block).
_SPLIT_VALUE = rb"(?:[^=;" + _WS + rb"\"'](?:[^=;]*[^=;" + _WS + rb"])?)?"
_SPLIT_KEY = rb"(?!ns=)[A-Za-z0-9_][A-Za-z0-9_-]{0,127}="
_SPLIT_BLOCK = re.compile(rb"(?:" + _SPLIT_KEY + _SPLIT_VALUE + rb";)+")
_SPLIT_BLOCK_SPACED = re.compile(rb"(?:" + _LEAD + _SPLIT_KEY + _SPLIT_VALUE + rb";)+")
_DUNDER_KEY = re.compile(rb"(?:^|;)[^=;]*__")
_SPACE_AFTER_SEP = re.compile(rb";[" + _WS + rb"]+")
_EQ_AS_SPLIT = keyspace.SEP + b";"  # '=' becomes the end of the name, then a split point

# Kinds of parts of a batch (see Batch): a block of ``key=value;`` tokens with nothing before
# the keys and no '=' in the values, which splits into names and values; a run of plain tokens
# checked by _PLAIN_RUN; a run checked by _QUOTED_RUN; rows of names and values.
PartKind = Literal["split", "run", "quoted", "rows"]
SPLIT: Final = "split"
RUN: Final = "run"
QUOTED: Final = "quoted"
ROWS: Final = "rows"
RowsFn = Callable[[bytes, bytes], Iterable[Iterable[tuple[bytes, bytes]]]]


class StreamStateError(TokenError):
    """A well-formed token that the state rules refuse (unknown directive, invalid address, no
    target, a refused ``sec:`` token, a value over the size limit ...). Nothing was written.
    Carries the same details as :class:`~prontodb.streamtokens.StreamSyntaxError`."""


class TokenTooLongError(StreamError):
    """A token longer than any valid one (the largest value plus :data:`TOKEN_SLACK`): refused
    once that much has been read without a ``;``. ``offset`` is where the token starts in the
    input, ``limit`` the bound. Nothing was written."""

    def __init__(self, offset: int, limit: int) -> None:
        self.offset = offset
        self.limit = limit
        super().__init__(
            f"the token at offset {offset} is longer than {limit} bytes, more than any value "
            f"may hold (is a ';' missing?); nothing was written"
        )


class StreamEncodingError(StreamError):
    """Byte input that is not UTF-8. ``byte_offset`` is the 0-based offset of the first bad
    byte in the whole input, ``line`` its 1-based line."""

    def __init__(self, byte_offset: int, line: int, reason: str) -> None:
        self.byte_offset = byte_offset
        self.line = line
        super().__init__(
            f"invalid UTF-8 at byte offset {byte_offset} (line {line}): {reason}; "
            "a stream is UTF-8 text"
        )


class _Refused(Exception):
    """Raised by the state rules with the rule text; the caller adds where the token is. A
    rule that names an argument is given as a ``template`` (see ProntoError.describe)."""

    def __init__(self, rule: str | None = None, *, template: str | None = None) -> None:
        super().__init__(rule if template is None else render(template, python_spelling))
        self.template = template


class Batch(NamedTuple):
    """Consecutive entries that share a namespace and a TTL, in stream order.

    ``ttl`` is seconds from the write (``meta:ttl``), or None for the namespace's default.
    ``parts`` are ``(kind, payload)``: for ``rows`` the payload is a pair of lists (names,
    values) where each name is :func:`prontodb.keyspace.entry_name` of the key and context; for
    the other kinds it is a validated run of tokens, as UTF-8 bytes, that :func:`apply` pulls
    the names and values out of again.
    """

    project: str
    namespace: str
    ttl: int | None
    parts: list[tuple[PartKind, object]]


@dataclass
class Plan:
    """A validated stream, ready for :func:`apply`.

    ``counts`` maps each ``(project, namespace)`` to the number of data tokens for it, in the
    order they first appear; ``entries`` is their sum (a key given twice counts twice; the last
    value wins). ``tokens`` counts every token, directives included. ``user`` is the user a
    ``sec:user`` token asked for when :func:`plan` was not told the effective user (then
    :func:`apply` checks it against the store); ``max_value_bytes`` the limit values were
    checked against.
    """

    batches: list[Batch] = field(default_factory=list)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    tokens: int = 0
    user: str | None = None
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    #: For a plan made by :func:`plan_replayable` or :func:`plan_file`: the batches, read back
    #: from their temporary file each time they are wanted (``batches`` is empty then).
    replay: Callable[[], Iterator[Batch]] | None = None

    @property
    def entries(self) -> int:
        """How many entries the plan writes (data tokens)."""
        return sum(self.counts.values())

    def namespaces(self, delim: str = DEFAULT_DELIM) -> dict[str, int]:
        """``project<delim>namespace`` -> entry count, ordered as listings are (UTF-8 bytes)."""
        ordered = sorted(self.counts.items(), key=lambda i: (i[0][0].encode(), i[0][1].encode()))
        return {f"{p}{delim}{n}": count for (p, n), count in ordered}

    def items(self) -> Iterator[tuple[Address, bytes, int | None]]:
        """Every entry as ``(address, value, ttl)``, in stream order (``ttl`` as in
        :class:`Batch`)."""
        for batch in self.batches if self.replay is None else self.replay():
            for names, values in _columns(batch.parts):
                for name, value in zip(names, values, strict=True):
                    key, _, context = name.decode().partition("\x00")
                    address = Address(batch.project, batch.namespace, key, context or None)
                    yield address, value, batch.ttl


def plan(
    source: str | bytes | Iterable[str] | Iterable[bytes],
    *,
    project: str | None = None,
    namespace: str | None = None,
    user: str | None = None,
    user_locked: bool = False,
    delim: str = DEFAULT_DELIM,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    progress: Callable[[int], None] | None = None,
) -> Plan:
    """Validate the token stream ``source`` and return what it would write.

    ``source`` is the whole stream (``str``, or UTF-8 ``bytes``) or an iterable of chunks of
    either kind, which may split anywhere (a file read in blocks). ``project``/``namespace``
    are the defaults (``-p``/``-n`` or the cursor's): when both are given they are the first
    target, and ``project`` alone is the current project for ``ns=N`` and ``N:key=value``.
    ``user`` is the effective user that ``sec:user`` must name (``user_locked`` only changes the
    message); without it the check is left to :func:`apply`. ``delim`` is the delimiter paths
    start with. ``progress`` is called with the number of tokens read after each block.

    Raises a :class:`~prontodb.errors.StreamError` naming the token, its position and the rule:
    :class:`~prontodb.streamtokens.StreamSyntaxError`, :class:`StreamStateError` or
    :class:`StreamEncodingError`; :class:`~prontodb.errors.InvalidAddressError` for invalid
    defaults. An empty stream gives an empty plan (``tokens == 0``).
    """
    planner = _Planner(project, namespace, user, user_locked, delim, max_value_bytes)
    chunks: Iterable[str] | Iterable[bytes]
    chunks = [source] if isinstance(source, str | bytes) else source  # type: ignore[assignment]
    for block, final in _blocks(chunks, max_value_bytes + TOKEN_SLACK):
        planner.block(block, final)
        if progress is not None:
            progress(planner.result.tokens)
    return planner.result


def plan_replayable(
    reopen: Callable[[], Iterable[bytes]],
    *,
    project: str | None = None,
    namespace: str | None = None,
    user: str | None = None,
    user_locked: bool = False,
    delim: str = DEFAULT_DELIM,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    progress: Callable[[int], None] | None = None,
) -> Plan:
    """:func:`plan` for input too large to hold: ``reopen()`` (called once) returns the input
    as chunks of bytes. It is validated block by block and each validated batch goes to an
    anonymous private temporary file (mode 0600, unlinked at creation, so nothing is left
    behind even if the process is killed), so memory stays flat whatever the input's size;
    the plan's :attr:`Plan.replay` reads the batches back, block by block, when :func:`apply`
    writes them (inside its one transaction: still all entries or none, and exactly what was
    validated, whatever happens to the input afterwards). The file is in the system's
    temporary directory (``TMPDIR``) and holds about one copy of the input.
    Raises as :func:`plan`; OSError when the temporary file cannot be written."""
    planner = _Planner(project, namespace, user, user_locked, delim, max_value_bytes)
    spool = tempfile.TemporaryFile(prefix=".prontodb-stream-")  # noqa: SIM115 - the plan owns it
    try:
        dump = marshal.dump
        for batch in _planned(planner, reopen(), progress):
            dump(tuple(batch), spool)
        spool.flush()
    except BaseException:
        spool.close()
        raise
    result = planner.result
    result.replay = lambda: _unspooled(spool)
    return result


def plan_file(
    path: str,
    *,
    project: str | None = None,
    namespace: str | None = None,
    user: str | None = None,
    user_locked: bool = False,
    delim: str = DEFAULT_DELIM,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    progress: Callable[[int], None] | None = None,
) -> Plan:
    """:func:`plan_replayable` of the file (or pipe, FIFO, ``/dev/stdin``) at ``path``, read
    once in blocks of :data:`READ_SIZE`: memory stays flat whatever its size, and a change
    to the file after it was read does not change what :func:`apply` writes.

    An unreadable path raises OSError (the caller words it). Otherwise raises as :func:`plan`.
    """
    with open(path, "rb") as fh:
        return plan_replayable(
            lambda: iter(lambda: fh.read(READ_SIZE), b""),
            project=project,
            namespace=namespace,
            user=user,
            user_locked=user_locked,
            delim=delim,
            max_value_bytes=max_value_bytes,
            progress=progress,
        )


def _unspooled(spool: BinaryIO) -> Iterator[Batch]:
    """The batches :func:`plan_replayable` wrote to ``spool``, in order, from its start."""
    spool.seek(0)
    load = marshal.load
    while True:
        try:
            project, namespace, ttl, parts = load(spool)
        except EOFError:
            return
        yield Batch(project, namespace, ttl, parts)


def _planned(
    planner: _Planner, chunks: Iterable[bytes], progress: Callable[[int], None] | None
) -> Iterator[Batch]:
    """The batches of ``chunks`` as ``planner`` makes them, handed out (and let go) after each
    block, so that no more than a block's worth is held."""
    batches = planner.result.batches
    for block, final in _blocks(chunks, planner.max_value_bytes + TOKEN_SLACK):
        planner.block(block, final)
        if progress is not None:
            progress(planner.result.tokens)
        yield from batches
        batches.clear()


def apply(
    store: Store, planned: Plan, *, progress: Callable[[int, int], None] | None = None
) -> int:
    """Write ``planned`` into ``store`` in one transaction: all entries or none. Entries get the
    ``meta:ttl`` in force when they were read, else their namespace's default TTL.

    Refuses (StreamError) a plan whose ``sec:user`` names another user than the store's.
    ``progress`` is called with (entries handed to the store, total) as they are handed over.
    Returns the number of entries written.
    """
    if planned.user is not None and planned.user != store.user:
        raise StreamError(
            f"sec:user={planned.user} refused: the stream is being written as user {store.user!r}"
        )
    total = planned.entries
    done = 0

    def rows_of(parts: list[tuple[PartKind, object]]) -> RowsFn:
        def rows(prefix: bytes, header: bytes) -> Iterator[Iterable[tuple[bytes, bytes]]]:
            nonlocal done
            for group, count in _pairs(parts, prefix, header):
                yield group
                done += count
                if progress is not None:
                    progress(done, total)

        return rows

    validated = planned.max_value_bytes <= store.max_value_bytes
    replay = planned.replay
    if replay is not None:
        # Planned again inside the transaction (and again if it is retried): never held.
        return store.write_batches(
            lambda: ((b.project, b.namespace, b.ttl, rows_of(b.parts)) for b in replay()),
            validated=validated,
            namespaces=list(planned.counts),
        )
    return store.write_batches(
        ((b.project, b.namespace, b.ttl, rows_of(b.parts)) for b in planned.batches),
        validated=validated,
    )


def load(store: Store, source: str | bytes | Iterable[str] | Iterable[bytes]) -> int:
    """Plan ``source`` with ``store``'s defaults, user and delimiter, then apply it. Returns the
    number of entries written."""
    planned = plan(
        source,
        project=store.project,
        namespace=store.namespace,
        user=store.user,
        delim=store.delim,
        max_value_bytes=store.max_value_bytes,
    )
    return apply(store, planned)


# -- reading -------------------------------------------------------------------------------------


def _blocks(
    chunks: Iterable[str] | Iterable[bytes], limit: int
) -> Iterator[tuple[bytes | str, bool]]:
    """Cut the concatenation of ``chunks`` into blocks. Every block but the last ends with
    ``;`` and is at least BLOCK_SIZE long unless it is the whole rest; the last one (final=True)
    holds what follows the last ``;`` (often nothing). Joins only when BLOCK_SIZE has piled up
    and a ``;`` has arrived, so the work stays linear for any chunk size. A token (the text
    between two ``;``) longer than ``limit`` raises StreamSyntaxError as soon as that much has
    been read, so memory stays bounded whatever the input (``stream /dev/zero``)."""
    pending: list[Any] = []
    size = 0
    since_sep = 0  # length of the unterminated text after the last ';' read
    offset = 0  # of the chunk in the whole input
    sep: Any = ";"  # b";" for bytes input
    buf: Any
    for chunk in chunks:
        if not chunk:
            continue
        sep = b";" if isinstance(chunk, bytes) else ";"
        last = chunk.rfind(sep)
        since_sep = since_sep + len(chunk) if last < 0 else len(chunk) - last - 1
        if since_sep > limit:
            start = offset + len(chunk) - since_sep
            raise TokenTooLongError(start, limit)
        offset += len(chunk)
        pending.append(chunk)
        size += len(chunk)
        if size <= BLOCK_SIZE or sep not in chunk:
            continue
        buf = pending[0] if len(pending) == 1 else sep[:0].join(pending)
        start = 0
        while len(buf) - start > BLOCK_SIZE:
            cut = buf.find(sep, start + BLOCK_SIZE)
            if cut < 0:
                break
            yield buf[start : cut + 1], False
            start = cut + 1
        rest = buf[start:]
        pending, size = ([rest], len(rest)) if rest else ([], 0)
    buf = sep[:0].join(pending)
    cut = buf.rfind(sep)
    if cut >= 0:
        yield buf[: cut + 1], False
    yield buf[cut + 1 :], True


def _split(run: bytes, strip: bool) -> tuple[list[bytes], list[bytes]] | None:
    """Names and values of a validated run of plain tokens by splitting, when no value holds
    ``=`` (as many ``=`` as ``;``): every ``=`` becomes ``NUL;`` and one split at ``;`` gives
    name, value, name, value ... ``strip`` removes whitespace before the names (``lstrip()``
    strips exactly the grammar's whitespace)."""
    if run.count(b"=") != run.count(b";"):
        return None
    parts = run.replace(b"=", keyspace.SEP + b";").split(b";")
    names = parts[0:-1:2]
    if strip:
        names = list(map(bytes.lstrip, names))
    return names, parts[1::2]


def _plain_block(block: bytes) -> bytes | None:
    """``block`` (ending with ``;``) as a SPLIT part when it holds only plain data tokens whose
    values hold no ``=`` — without whitespace before its keys —, else None (then the general
    path decides)."""
    if _SPLIT_BLOCK.fullmatch(block) is None:
        if _SPLIT_BLOCK_SPACED.fullmatch(block) is None:
            return None
        # whitespace before a key can only start the block or follow a ';': drop it
        block = _SPACE_AFTER_SEP.sub(b";", block.lstrip())
    if b"__" in block and _DUNDER_KEY.search(block):
        return None
    return block


def _pairs(
    parts: list[tuple[PartKind, object]], prefix: bytes, header: bytes
) -> Iterator[tuple[Iterable[tuple[bytes, bytes]], int]]:
    """The backend pairs ``(prefix + name, header + value)`` of each part, with their number.

    A SPLIT part is turned into them by two replaces and one split of the whole block: every
    ';' gains the prefix after it and every '=' becomes NUL, ';' and the header, so the pieces
    are the final keys and envelopes (the first key gets its prefix on its own). That needs a
    header without ';' or '=' (a deadline's bytes may hold one); the prefix, made of name
    characters and NULs, never does."""
    direct = b";" not in header and b"=" not in header
    for kind, payload in parts:
        if kind == SPLIT and direct:
            assert isinstance(payload, bytes)
            block = payload.replace(b";", b";" + prefix).replace(b"=", _EQ_AS_SPLIT + header)
            pieces = block.split(b";")
            keys = pieces[0:-1:2]
            keys[0] = prefix + keys[0]
            yield zip(keys, pieces[1::2], strict=True), len(keys)
        else:
            ((names, values),) = _columns([(kind, payload)])
            rows = zip(map(prefix.__add__, names), map(header.__add__, values), strict=True)
            yield rows, len(names)


def _columns(parts: list[tuple[PartKind, object]]) -> Iterator[tuple[Sequence[bytes], ...]]:
    """(names, values) of each part of a batch, pulled out of the validated runs."""
    for kind, payload in parts:
        if kind == SPLIT:
            assert isinstance(payload, bytes)
            split = payload.replace(b"=", _EQ_AS_SPLIT).split(b";")
            yield split[0:-1:2], split[1::2]
        elif kind == RUN:
            assert isinstance(payload, bytes)
            split_run = _split(payload, strip=True)
            if split_run is not None:
                yield split_run
                continue
            yield _RUN_NAMES.findall(payload.translate(_EQ_TO_SEP)), _RUN_VALUES.findall(payload)
        elif kind == QUOTED:
            assert isinstance(payload, bytes)
            quoted = _RUN_QUOTED.findall(payload)
            sep = keyspace.SEP
            yield (
                [key + sep for key, _q, _inner, _plain in quoted],
                [inner if q else plain for _key, q, inner, plain in quoted],
            )
        else:
            yield payload  # type: ignore[misc]


# -- the state machine ---------------------------------------------------------------------------


class _Planner:
    """The state of one :func:`plan`: target, current project, TTL, delimiter, and where in the
    input the current block starts (for error locations)."""

    def __init__(
        self,
        project: str | None,
        namespace: str | None,
        user: str | None,
        user_locked: bool,
        delim: str,
        max_value_bytes: int,
    ) -> None:
        for value, part in ((project, "project"), (namespace, "namespace")):
            if value is not None:
                try:
                    check_segment(value, part, value)
                except InvalidAddressError as exc:
                    reason = str(exc).split(": ", 1)[-1]
                    raise InvalidAddressError(
                        f"invalid default {part} {value!r} (-p/-n or the cursor's): {reason}"
                    ) from None
        self.project = project
        self.target: tuple[str, str] | None = (
            (project, namespace) if project is not None and namespace is not None else None
        )
        self.user = user
        self.user_locked = user_locked
        self.delim = check_delim(delim)
        self.ttl: int | None = None
        self.max_value_bytes = max_value_bytes
        self.result = Plan(max_value_bytes=max_value_bytes)
        self._namespaces: dict[tuple[str, str], tuple[str, str]] = {}
        # where the current block starts: characters before it, its line, and the character
        # offset at which that line starts
        self.char_base = 0
        self.byte_base = 0
        self.line = 1
        self.line_start = 0

    # -- blocks --

    def block(self, block: bytes | str, final: bool) -> None:
        """Plan one block (see :func:`_blocks`), then move the location past it."""
        if isinstance(block, bytes):
            data = block
            try:
                text = block.decode()
            except UnicodeDecodeError as exc:
                line = self.line + block.count(b"\n", 0, exc.start)
                raise StreamEncodingError(self.byte_base + exc.start, line, exc.reason) from None
        else:
            text = block
            try:
                data = block.encode()
            except UnicodeEncodeError as exc:
                self._lone_surrogate(text, exc.start)
        if final:
            self._slow(data, 0, len(data), text)
        else:
            self._runs(data, text)
        newlines = text.count("\n")
        if newlines:
            self.line += newlines
            self.line_start = self.char_base + text.rfind("\n") + 1
        self.char_base += len(text)
        self.byte_base += len(data)

    def _runs(self, data: bytes, text: str) -> None:
        """Plan a block that ends with ``;``: runs of plain tokens at once, the rest one by one."""
        plan_ = self.result
        target = self.target
        if target is not None:
            block = _plain_block(data)
            if block is not None and (
                len(block) <= self.max_value_bytes or self._fits(SPLIT, block)
            ):
                count = block.count(b";")
                plan_.tokens += count
                plan_.counts[target] = plan_.counts.get(target, 0) + count
                self._batch(target).parts.append((SPLIT, block))
                return
        ascii_ = len(data) == len(text)
        i, end = 0, len(data)
        while i < end:
            target = self.target
            if target is not None:
                kind: PartKind = RUN
                match = _PLAIN_RUN.match(data, i)
                if match is None:
                    kind, match = QUOTED, _QUOTED_RUN.match(data, i)
                if match is not None:
                    stop = match.end()
                    run = data if (i == 0 and stop == end) else data[i:stop]
                    if len(run) <= self.max_value_bytes or self._fits(kind, run):
                        count = run.count(b";")
                        plan_.tokens += count
                        plan_.counts[target] = plan_.counts.get(target, 0) + count
                        self._batch(target).parts.append((kind, run))
                        i = stop
                        continue
                    self._slow(data, i, stop, text[i:stop] if ascii_ else None)
                    i = stop
                    continue
            stop = data.index(b";", i) + 1
            self._slow(data, i, stop, text[i:stop] if ascii_ else None)
            i = stop

    def _fits(self, kind: PartKind, run: bytes) -> bool:
        """True when no value of a validated run is over the size limit."""
        (_names, values), *_ = _columns([(kind, run)])
        return max(map(len, values)) <= self.max_value_bytes

    def _slow(self, data: bytes, start: int, stop: int, text: str | None) -> None:
        """Tokenize ``data[start:stop]`` (``text`` is the same as str, when known) and apply
        the state rules token by token."""
        if text is None:
            text = data[start:stop].decode()
        before = self.result.tokens
        tokens = iter_tokens(text)
        while True:
            try:
                tok = next(tokens)
            except StopIteration:
                return
            except StreamSyntaxError as exc:
                raise self._relocated(exc, data, start, before) from None
            self.result.tokens += 1
            try:
                self._token(tok)
            except _Refused as refused:
                offset, line, column = self._locate(data, start, tok.offset)
                raise StreamStateError(
                    raw=tok.raw,
                    position=self.result.tokens,
                    offset=offset,
                    line=line,
                    column=column,
                    rule=str(refused),
                    template=refused.template,
                ) from None

    # -- locations (only computed for errors) --

    def _locate(self, data: bytes, start: int, char_in_piece: int) -> tuple[int, int, int]:
        """(character offset, line, column) of character ``char_in_piece`` of the piece of
        the current block that starts at byte ``start``."""
        before = data[:start].decode() + data[start:].decode()[:char_in_piece]
        offset = self.char_base + len(before)
        newline = before.rfind("\n")
        line = self.line + before.count("\n")
        if newline >= 0:
            return offset, line, len(before) - newline
        return offset, line, offset - self.line_start + 1

    def _relocated(
        self, exc: StreamSyntaxError, data: bytes, start: int, before: int
    ) -> StreamSyntaxError:
        """The tokenizer's error on a piece of the block, located in the whole input."""
        offset, line, column = self._locate(data, start, exc.offset)
        return StreamSyntaxError(
            raw=exc.raw,
            position=before + exc.position,
            offset=offset,
            line=line,
            column=column,
            rule=exc.rule,
        )

    def _lone_surrogate(self, text: str, at: int) -> NoReturn:
        """``str`` input with a lone surrogate cannot be stored as UTF-8: name its token."""
        begin = text.rfind(";", 0, at) + 1
        stop = text.find(";", at)
        segments = text[:begin].split(";")
        position = self.result.tokens + sum(1 for s in segments if s.strip(WHITESPACE)) + 1
        raw = text[begin : stop if stop >= 0 else len(text)].lstrip(WHITESPACE)
        offset = self.char_base + at
        lines = text.count("\n", 0, at)
        column = at - text.rfind("\n", 0, at) if lines else offset - self.line_start + 1
        raise StreamStateError(
            raw=raw,
            position=position,
            offset=offset,
            line=self.line + lines,
            column=column,
            rule=f"lone surrogate {text[at]!r} at offset {offset}: text must be valid Unicode",
        )

    # -- one token --

    def _token(self, tok: Token) -> None:
        prefix = tok.prefix
        if prefix is None:
            if tok.key == "ns":
                self._switch(tok.value)
                return
            if self.target is None:
                raise _Refused(
                    "no target namespace: start with meta:path=PROJECT.NAMESPACE (or give "
                    "-p and -n), or write PROJECT.NAMESPACE:key=value"
                )
            self._data(self.target, tok.key, tok.value)
        elif prefix == "meta":
            self._meta(tok.key, tok.value)
        elif prefix == "sec":
            self._sec(tok.key, tok.value)
        else:
            self._prefixed(prefix, tok.key, tok.value)

    def _meta(self, key: str, value: str) -> None:
        if key in ("path", "ns"):
            parts = value.split(self.delim)
            if len(parts) != 2:
                raise _Refused(
                    f"meta:{key} needs PROJECT{self.delim}NAMESPACE, got {value!r} "
                    "(ns=NAMESPACE switches within the current project)"
                )
            self.target = self._namespace(parts[0], parts[1], value)
            self.project = parts[0]
        elif key == "project":
            self.project = _segment(value, "project", value)
            self.target = None  # the namespace comes next, with meta:namespace (or ns=)
        elif key == "namespace":
            if self.project is None:
                raise _Refused(
                    "meta:namespace needs a current project: give meta:project=P first "
                    "(or use meta:path=PROJECT.NAMESPACE)"
                )
            self.target = (self.project, _segment(value, "namespace", value))
        elif key == "ttl":
            if value.lower() == "none":
                self.ttl = None
            else:
                try:
                    self.ttl = parse_duration(value)
                except ProntoError as exc:
                    raise _Refused(f"{exc} (meta:ttl=none clears the TTL)") from None
                if self.ttl * 1000 >= DEADLINE_LIMIT_MS:  # never a deadline before year 10000
                    raise _Refused(
                        f"invalid duration {value!r}: too large (entries would expire after "
                        "the year 9999)"
                    )
        elif key == "delim":
            try:
                self.delim = check_delim(value)
            except ProntoError as exc:
                raise _Refused(str(exc)) from None
        elif key.startswith("sec:"):
            self._sec(key[4:], value)
        else:
            known = ", ".join(f"meta:{k}" for k in META_KEYS)
            raise _Refused(f"unknown directive 'meta:{key}' (known: {known}, meta:sec:user)")

    def _sec(self, key: str, value: str) -> None:
        if key != "user":
            raise _Refused(
                f"'sec:{key}' refused: ProntoDB has no password or key authentication; identity "
                "comes from the OS account and the locked context (PRONTO_FORCE_USER); only "
                "sec:user=USER is accepted, as a check"
            )
        if self.user is None:
            if self.result.user is not None and self.result.user != value:
                raise _Refused(
                    f"sec:user={value} contradicts an earlier sec:user={self.result.user}"
                )
            self.result.user = value
        elif value != self.user:
            how = " (locked by PRONTO_FORCE_USER)" if self.user_locked else ""
            raise _Refused(
                f"sec:user={value} refused: the effective user is {self.user!r}{how}; "
                "a stream cannot change the user"
            )

    def _switch(self, value: str) -> None:
        """``ns=P.N`` or ``ns=N`` (a namespace in the current project)."""
        parts = value.split(self.delim)
        if len(parts) == 1:
            if self.project is None:
                raise _Refused(
                    template=f"no current project for ns={literal(value)}: write "
                    f"ns=PROJECT{literal(self.delim)}{literal(value)}, or give {{project}} or "
                    "meta:project first"
                )
            self.target = self._namespace(self.project, parts[0], value)
        elif len(parts) == 2:
            self.target = self._namespace(parts[0], parts[1], value)
            self.project = parts[0]
        else:
            raise _Refused(
                f"invalid namespace {value!r}: ns= takes PROJECT{self.delim}NAMESPACE or NAMESPACE"
            )

    def _prefixed(self, prefix: str, key: str, value: str) -> None:
        """``P.N:key=value`` or ``N:key=value``: to that namespace, target unchanged."""
        delim = self.delim
        if delim == ":":  # the tokenizer split the address at its first ':'
            parts = f"{prefix}:{key}".split(":")
            key = parts.pop()
        else:
            parts = prefix.split(delim)
        if len(parts) == 1:
            if self.project is None:
                raise _Refused(
                    template=f"no current project for the namespace prefix "
                    f"'{literal(parts[0])}:': write PROJECT{literal(delim)}{literal(parts[0])}"
                    ":key=value, or give {project} or meta:project first"
                )
            where = self._namespace(self.project, parts[0], prefix)
        elif len(parts) == 2:
            where = self._namespace(parts[0], parts[1], prefix)
        else:
            raise _Refused(
                f"invalid namespace {prefix!r}: a prefix is PROJECT{delim}NAMESPACE or NAMESPACE"
            )
        self._data(where, key, value)

    def _namespace(self, project: str, namespace: str, text: str) -> tuple[str, str]:
        """A validated (project, namespace); each pair is checked once per stream."""
        found = self._namespaces.get((project, namespace))
        if found is None:
            found = (_segment(project, "project", text), _segment(namespace, "namespace", text))
            self._namespaces[found] = found
        return found

    def _data(self, where: tuple[str, str], name: str, value: str) -> None:
        try:
            key, context = split_key(name, name)
            check_length(where[0], where[1], name, f"{where[0]}.{where[1]}.{name}")
        except InvalidAddressError as exc:
            hint = ""
            if self.delim in name or ":" in name:
                hint = "; to write to another namespace use NAMESPACE:key=value"
            raise _Refused(f"invalid key: {_reason(exc)}{hint}") from None
        try:
            data = value.encode()
        except UnicodeEncodeError as exc:
            raise _Refused(f"the value is not valid Unicode text ({exc.reason})") from None
        if len(data) > self.max_value_bytes:
            raise _Refused(
                f"value is {len(data)} bytes, over the limit of {self.max_value_bytes} bytes "
                "(PRONTO_MAX_VALUE_BYTES)"
            )
        plan_ = self.result
        plan_.counts[where] = plan_.counts.get(where, 0) + 1
        batch = self._batch(where)
        parts = batch.parts
        if not parts or parts[-1][0] != ROWS:
            parts.append((ROWS, ([], [])))
        names: list[bytes]
        values: list[bytes]
        names, values = parts[-1][1]  # type: ignore[misc]
        names.append(keyspace.entry_name(key, context))
        values.append(data)

    def _batch(self, where: tuple[str, str]) -> Batch:
        """The batch for ``where`` and the TTL in force: the last one when it matches."""
        batches = self.result.batches
        if batches:
            last = batches[-1]
            if last.ttl == self.ttl and last.project == where[0] and last.namespace == where[1]:
                return last
        batch = Batch(where[0], where[1], self.ttl, [])
        batches.append(batch)
        return batch


def _segment(value: str, part: str, text: str) -> str:
    try:
        return check_segment(value, part, text)
    except InvalidAddressError as exc:
        raise _Refused(f"invalid {part}: {_reason(exc)}") from None


def _reason(exc: InvalidAddressError) -> str:
    """The message of an address error without its ``invalid address 'x': `` lead."""
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("invalid address") else text
