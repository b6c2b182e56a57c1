"""Tokenizer for the XStream grammar of ``prontodb stream`` (docs/stream.md). Pure; no store access.

Grammar (user-facing text in docs/stream.md; the decisions where it is silent are marked *):

- The input is cut into *segments* at every ``;``. ``;`` is the only separator: quotes do not
  protect it and newlines do not separate (a newline inside a token is part of it).
- Whitespace is the ASCII set :data:`WHITESPACE` (space, tab, newline, CR, VT, FF)*. Other
  characters, including Unicode spaces such as U+00A0, are ordinary characters*.
- Whitespace before a token is skipped. A segment that is empty or whitespace only is skipped.
  Whitespace at the very end of the input is ignored, so the last token may be followed by
  whitespace (``echo "a=1; b=2" | ...``). Anywhere else whitespace at a token's end (before ``;``)
  is an error.
- A token is ``[prefix:]key=value``: split at the first ``=``, then the left side at the first
  ``:``. The prefix, when there is a ``:``, is non-empty and has no whitespace. The key is
  non-empty and has no whitespace; it may contain further ``:``. Whitespace around ``=`` is an
  error.
- The value may be empty and may contain ``=``, ``:``, quotes and inner whitespace (``k=a b`` is
  allowed*: only whitespace around ``=`` and at a token's end is refused). When the value is at
  least two characters long and starts and ends with the same quote character (``"`` or ``'``),
  that one outer pair is removed. There is no escaping. Quote stripping happens after the
  whitespace checks, so ``k=" a "`` is valid and its value is space, ``a``, space.

Offsets are 0-based character offsets into the whole input (``text[tok.offset]`` is the token's
first character); positions count tokens (non-empty segments) from 1. Error messages also give a
1-based line and column (a line ends at ``\\n``; a lone CR does not end one).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass

from prontodb.errors import StreamError, literal

__all__ = [
    "WHITESPACE",
    "StreamSyntaxError",
    "Token",
    "iter_tokens",
    "iter_tokens_from_chunks",
    "tokenize",
]

#: The characters the grammar treats as whitespace (ASCII whitespace, as ``string.whitespace``).
WHITESPACE = " \t\n\r\x0b\x0c"
SEPARATOR = ";"
QUOTES = "\"'"
#: Raw token text in error messages is cut to this many characters (with ``...``).
RAW_PREVIEW = 40

_WS = r" \t\n\r\x0b\x0c"
# The whole grammar of one token whose leading whitespace is already removed. Groups:
# 1 prefix, 2 key after a prefix, 3 key without a prefix, 4 value (still quoted).
_TOKEN = re.compile(
    rf"(?:([^{_WS}:=]+):([^{_WS}=]+)|([^{_WS}:=]+))=((?:[^{_WS}](?:.*[^{_WS}])?)?)",
    re.DOTALL,
)
_HAS_WS = re.compile(rf"[{_WS}]")

_RULE_MISSING_EQ = "missing '=' (a token is [prefix:]key=value)"
_RULE_WS_BEFORE_EQ = "whitespace before '='"
_RULE_WS_AFTER_EQ = "whitespace after '='"
_RULE_WS_AT_END = "whitespace at the end of the token (before ';')"
_RULE_EMPTY_PREFIX = "empty prefix before ':'"
_RULE_EMPTY_KEY = "empty key (a token is [prefix:]key=value)"
_RULE_WS_IN_PREFIX = "whitespace in prefix"
_RULE_WS_IN_KEY = "whitespace in key"


@dataclass(frozen=True, slots=True)
class Token:
    """One ``[prefix:]key=value`` token of a stream.

    ``prefix`` is the text before the first ``:`` of the left side, or None when there is no
    ``:``; ``key`` is the rest of the left side (it may contain more ``:``); ``value`` is the right
    side after the first ``=`` with one matching pair of outer quotes removed. ``position`` is the
    1-based number of the token among non-empty segments, ``offset`` the 0-based character offset
    of its first character in the input, and ``raw`` the token text as it appeared (without the
    leading whitespace, the ``;`` or the whitespace at the end of the input).
    """

    prefix: str | None
    key: str
    value: str
    position: int
    offset: int
    raw: str


class TokenError(StreamError):
    """A :class:`~prontodb.errors.StreamError` about one token, with where it stands.

    ``position`` (1-based token number), ``offset`` (0-based character offset), ``line`` and
    ``column`` (1-based), ``raw`` (the full token text) and ``rule`` (the rule it broke). The
    message reads ``token 2 'bad_token' at offset 12 (line 1, column 13): missing '=' ...``.
    """

    rule: str

    def __init__(
        self,
        *,
        raw: str,
        position: int,
        offset: int,
        line: int,
        column: int,
        rule: str,
        template: str | None = None,
    ) -> None:
        self.raw = raw
        self.position = position
        self.offset = offset
        self.line = line
        self.column = column
        self.rule = rule
        where = (
            f"token {position} {_preview(raw)} at offset {offset} (line {line}, column {column})"
        )
        # ``template``: the rule naming Python arguments as {name} (see ProntoError.describe)
        super().__init__(
            f"{where}: {rule}",
            template=None if template is None else f"{literal(where)}: {template}",
        )


class StreamSyntaxError(TokenError):
    """A token breaks the grammar (see :class:`TokenError` for the details it carries)."""


def _preview(raw: str) -> str:
    """``raw`` quoted (``repr``, so newlines show as ``\\n``) and cut to about 40 characters."""
    if len(raw) > RAW_PREVIEW:
        raw = raw[: RAW_PREVIEW - 3] + "..."
    return repr(raw)


def _rule(tok: str) -> str:
    """The first rule ``tok`` breaks; ``tok`` has no leading whitespace and failed ``_TOKEN``."""
    eq = tok.find("=")
    if eq < 0:
        return _RULE_MISSING_EQ
    left, value = tok[:eq], tok[eq + 1 :]
    if left and left[-1] in WHITESPACE:
        return _RULE_WS_BEFORE_EQ
    if value and value[0] in WHITESPACE:
        return _RULE_WS_AFTER_EQ
    if value and value[-1] in WHITESPACE:
        return _RULE_WS_AT_END
    prefix, colon, key = left.partition(":")
    if not colon:
        prefix, key = "", left
    elif not prefix:
        return _RULE_EMPTY_PREFIX
    if not key:
        return _RULE_EMPTY_KEY
    if _HAS_WS.search(prefix):
        return f"{_RULE_WS_IN_PREFIX} {_preview(prefix)}"
    if _HAS_WS.search(key):
        return f"{_RULE_WS_IN_KEY} {_preview(key)}"
    # Unreachable while _TOKEN and the rules above agree (the tests check that they do).
    raise AssertionError(f"token {tok!r} failed the grammar but broke no rule")


def _scan(
    buf: str, base: int, position: int, line: int, line_start: int, final: bool
) -> Generator[Token, None, tuple[int, int]]:
    """Yield the tokens of ``buf``, which starts at absolute offset ``base`` of the input.

    ``position`` is the number of tokens before ``buf``; ``line`` the 1-based line at ``base`` and
    ``line_start`` the absolute offset where that line starts (both only used for errors). When
    ``final`` is false, the text after the last ``;`` is left alone (it may continue in the next
    chunk); when true it is the end of the input. Returns ``(consumed, position)``: the index in
    ``buf`` after the last segment processed and the updated token count.
    """
    match = _TOKEN.fullmatch
    find = buf.find
    i = 0
    while True:
        j = find(SEPARATOR, i)
        if j >= 0:
            seg = buf[i:j]
        elif final:
            seg = buf[i:].rstrip(WHITESPACE)
        else:
            return i, position
        tok = seg.lstrip(WHITESPACE)
        if tok:
            position += 1
            m = match(tok)
            if m is None:
                start = i + len(seg) - len(tok)
                newlines = buf.count("\n", 0, start)
                if newlines:
                    column = start - buf.rfind("\n", 0, start)
                else:
                    column = base + start - line_start + 1
                raise StreamSyntaxError(
                    raw=tok,
                    position=position,
                    offset=base + start,
                    line=line + newlines,
                    column=column,
                    rule=_rule(tok),
                )
            prefix, pkey, key, value = m.groups()
            if prefix is not None:
                key = pkey
            if len(value) >= 2 and value[0] in QUOTES and value[-1] == value[0]:
                value = value[1:-1]
            yield Token(prefix, key, value, position, base + i + len(seg) - len(tok), tok)
        if j < 0:
            return len(buf), position
        i = j + 1


def iter_tokens(text: str) -> Iterator[Token]:
    """Yield the tokens of ``text`` lazily, in order.

    Works through ``text`` with ``str.find`` and builds no list of segments. Tokens before a bad
    one are yielded; the bad one raises :class:`StreamSyntaxError` (a
    :class:`~prontodb.errors.StreamError`) naming the token, its position and the broken rule.
    Empty and whitespace-only input yields nothing (whether that is an error is the caller's
    business).
    """
    yield from _scan(text, 0, 0, 1, 0, True)


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text`` as a list; raises :class:`StreamSyntaxError` on the first bad token.

    All or nothing: on an error no tokens are returned.
    """
    return list(_scan(text, 0, 0, 1, 0, True))


def iter_tokens_from_chunks(chunks: Iterable[str]) -> Iterator[Token]:
    """Yield the tokens of the concatenation of ``chunks`` (e.g. a text file read in blocks).

    Chunks may split anywhere, including inside a token or between a token and its ``;``. Tokens
    are yielded as soon as their ``;`` has been read; the last token once ``chunks`` is exhausted.
    Offsets, positions, lines and columns are those of the concatenated input, and the result
    (tokens or error) is exactly that of ``iter_tokens("".join(chunks))``. Memory is bounded by the
    chunk size plus the longest token. Empty chunks are allowed.
    """
    pending: list[str] = []  # text after the last ';' seen, not yet tokenized
    base = 0  # absolute offset of the start of ``pending``
    position = 0
    line, line_start = 1, 0
    for chunk in chunks:
        if SEPARATOR not in chunk:
            if chunk:
                pending.append(chunk)
            continue
        if pending:
            pending.append(chunk)
            buf = "".join(pending)
        else:
            buf = chunk
        consumed, position = yield from _scan(buf, base, position, line, line_start, False)
        newlines = buf.count("\n", 0, consumed)
        if newlines:
            line += newlines
            line_start = base + buf.rfind("\n", 0, consumed) + 1
        base += consumed
        pending = [buf[consumed:]] if consumed < len(buf) else []
    yield from _scan("".join(pending), base, position, line, line_start, True)
