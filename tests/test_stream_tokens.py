"""Tests of the XStream tokenizer (DESIGN §9): tables of valid and invalid streams, an independent
reference implementation as an oracle, chunked reading and property tests."""

from __future__ import annotations

import io
import itertools
import string
from collections.abc import Iterator
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prontodb.errors import StreamError
from prontodb.streamtokens import (
    WHITESPACE,
    StreamSyntaxError,
    Token,
    iter_tokens,
    iter_tokens_from_chunks,
    tokenize,
)

WS = string.whitespace  # the oracle's own idea of whitespace: the ASCII set
QUOTES = "\"'"


def triples(tokens: list[Token]) -> list[tuple[str | None, str, str]]:
    return [(t.prefix, t.key, t.value) for t in tokens]


def chunked(text: str, size: int) -> Iterator[str]:
    return (text[i : i + size] for i in range(0, len(text), size))


def outcome(tokens_or_error):
    """Comparable summary of a tokenizer run: the tokens, or the error's location and message."""
    try:
        return ("ok", list(tokens_or_error()))
    except StreamSyntaxError as err:
        return ("error", err.position, err.offset, err.line, err.column, err.raw, str(err))


# --------------------------------------------------------------------------- valid streams

VALID = [
    pytest.param(
        "user=bob; sec:pass=123; ns=animals; dog=fido;",
        [
            (None, "user", "bob"),
            ("sec", "pass", "123"),
            (None, "ns", "animals"),
            (None, "dog", "fido"),
        ],
        id="design-example",
    ),
    pytest.param(
        "tok1=val1; tok2=val2; ns=color; tok4=val4; meta:p=q;",
        [
            (None, "tok1", "val1"),
            (None, "tok2", "val2"),
            (None, "ns", "color"),
            (None, "tok4", "val4"),
            ("meta", "p", "q"),
        ],
        id="five-tokens",
    ),
    pytest.param(
        'key1="value1"; key2=\'value2\'; key3="value with spaces"; key4=unquoted;',
        [
            (None, "key1", "value1"),
            (None, "key2", "value2"),
            (None, "key3", "value with spaces"),
            (None, "key4", "unquoted"),
        ],
        id="quotes",
    ),
    pytest.param(";;;", [], id="only-separators"),
    pytest.param("", [], id="empty"),
    pytest.param("   \n", [], id="whitespace-only"),
    pytest.param(" ; \t;\n;", [], id="whitespace-segments"),
    pytest.param("k==v;", [(None, "k", "=v")], id="value-starts-with-eq"),
    pytest.param("k=a=b=c", [(None, "k", "a=b=c")], id="value-with-eqs"),
    pytest.param("a:b:c=d;", [("a", "b:c", "d")], id="key-with-colon"),
    pytest.param("k=a:b", [(None, "k", "a:b")], id="value-with-colon"),
    pytest.param("meta:sec:user=bob", [("meta", "sec:user", "bob")], id="meta-sec-user"),
    pytest.param("kb.recipes:pasta=red", [("kb.recipes", "pasta", "red")], id="namespace-prefix"),
    pytest.param(
        'meta:path=kb.recipes; pasta=red; soup="hot stuff"\n',
        [("meta", "path", "kb.recipes"), (None, "pasta", "red"), (None, "soup", "hot stuff")],
        id="no-final-separator-trailing-newline",
    ),
    pytest.param("a=1; b=2\n", [(None, "a", "1"), (None, "b", "2")], id="echo-pipe"),
    pytest.param("a=1; b=2 \t\r\n\n", [(None, "a", "1"), (None, "b", "2")], id="trailing-ws"),
    pytest.param("a=1;  \n", [(None, "a", "1")], id="trailing-ws-after-separator"),
    pytest.param("a=1;\n  b=2", [(None, "a", "1"), (None, "b", "2")], id="leading-newline"),
    pytest.param("\n\n\t a=1;\r\nb=2;\n", [(None, "a", "1"), (None, "b", "2")], id="crlf-lines"),
    pytest.param("k=\"abc'", [(None, "k", "\"abc'")], id="mismatched-quotes-kept"),
    pytest.param('k="', [(None, "k", '"')], id="single-quote-char-kept"),
    pytest.param("k='", [(None, "k", "'")], id="single-apostrophe-kept"),
    pytest.param('k=""', [(None, "k", "")], id="empty-double-quoted"),
    pytest.param("k=''", [(None, "k", "")], id="empty-single-quoted"),
    pytest.param('k=""""', [(None, "k", '""')], id="only-one-pair-removed"),
    pytest.param("k='\"'", [(None, "k", '"')], id="quote-in-other-quotes"),
    pytest.param('k="a"b"', [(None, "k", 'a"b')], id="no-escaping"),
    pytest.param('k=a"', [(None, "k", 'a"')], id="closing-quote-only"),
    pytest.param('k=" a "', [(None, "k", " a ")], id="inner-whitespace-in-quotes"),
    pytest.param("k=", [(None, "k", "")], id="empty-value-at-end"),
    pytest.param("k=;j=", [(None, "k", ""), (None, "j", "")], id="empty-values"),
    pytest.param("k=\n", [(None, "k", "")], id="empty-value-trailing-newline"),
    pytest.param("k=a b", [(None, "k", "a b")], id="unquoted-inner-space"),
    pytest.param("k=line1\nline2;", [(None, "k", "line1\nline2")], id="newline-inside-value"),
    pytest.param('k="multi\nline";', [(None, "k", "multi\nline")], id="newline-inside-quotes"),
    pytest.param("ключ=значение;", [(None, "ключ", "значение")], id="unicode"),
    pytest.param("k=a\u00a0", [(None, "k", "a\u00a0")], id="nbsp-is-not-whitespace"),
    pytest.param("k\u00a0x=1", [(None, "k\u00a0x", "1")], id="nbsp-in-key-is-a-char"),
    pytest.param("k=#;x=1", [(None, "k", "#"), (None, "x", "1")], id="no-comments"),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid(text: str, expected: list[tuple[str | None, str, str]]) -> None:
    tokens = tokenize(text)
    assert triples(tokens) == expected
    assert [t.position for t in tokens] == list(range(1, len(expected) + 1))
    for tok in tokens:
        assert text[tok.offset : tok.offset + len(tok.raw)] == tok.raw
        assert tok.raw[0] not in WHITESPACE
    assert triples(list(iter_tokens(text))) == expected


@pytest.mark.parametrize(("text", "expected"), VALID)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_valid_chunked(text: str, expected: list, size: int) -> None:
    assert list(iter_tokens_from_chunks(chunked(text, size))) == tokenize(text)


def test_token_fields() -> None:
    a, b = tokenize("a=1;;\n  meta:path='kb.recipes';")
    assert a == Token(None, "a", "1", 1, 0, "a=1")
    assert b == Token("meta", "path", "kb.recipes", 2, 8, "meta:path='kb.recipes'")


def test_token_is_frozen() -> None:
    tok = tokenize("a=1")[0]
    with pytest.raises(AttributeError):
        tok.key = "b"  # type: ignore[misc]


def test_positions_and_offsets_skip_empty_segments() -> None:
    tokens = tokenize(";;a=1;; \n;b=2")
    assert [(t.position, t.offset) for t in tokens] == [(1, 2), (2, 10)]


# --------------------------------------------------------------------------- invalid streams

# (text, position, offset, line, column, raw, rule fragment)
INVALID = [
    pytest.param(
        'k1="val1" ;k2="val2";',
        1,
        0,
        1,
        1,
        'k1="val1" ',
        "whitespace at the end",
        id="space-before-separator",
    ),
    pytest.param(
        'k1= "val1";', 1, 0, 1, 1, 'k1= "val1"', "whitespace after '='", id="space-after-eq"
    ),
    pytest.param(
        'k1 ="val1";', 1, 0, 1, 1, 'k1 ="val1"', "whitespace before '='", id="space-before-eq"
    ),
    pytest.param("k = v", 1, 0, 1, 1, "k = v", "whitespace before '='", id="spaces-around-eq"),
    pytest.param(
        'my namespace:key="value";',
        1,
        0,
        1,
        1,
        'my namespace:key="value"',
        "whitespace in prefix 'my namespace'",
        id="space-in-prefix",
    ),
    pytest.param(
        'ns:my key="value";',
        1,
        0,
        1,
        1,
        'ns:my key="value"',
        "whitespace in key 'my key'",
        id="space-in-key",
    ),
    pytest.param(
        "good=value; bad_token; another=good;",
        2,
        12,
        1,
        13,
        "bad_token",
        "missing '='",
        id="missing-eq",
    ),
    pytest.param("=value", 1, 0, 1, 1, "=value", "empty key", id="empty-key"),
    pytest.param("p:=v", 1, 0, 1, 1, "p:=v", "empty key", id="empty-key-after-prefix"),
    pytest.param(":k=v", 1, 0, 1, 1, ":k=v", "empty prefix", id="empty-prefix"),
    pytest.param('k="a;b";', 2, 5, 1, 6, 'b"', "missing '='", id="quotes-do-not-protect"),
    pytest.param("a=1;b=2 ;", 2, 4, 1, 5, "b=2 ", "whitespace at the end", id="second-token"),
    pytest.param("k=v\t;", 1, 0, 1, 1, "k=v\t", "whitespace at the end", id="tab-before-separator"),
    pytest.param(
        "a=1\n;b=2", 1, 0, 1, 1, "a=1\n", "whitespace at the end", id="newline-before-sep"
    ),
    pytest.param("k= ;", 1, 0, 1, 1, "k= ", "whitespace after '='", id="blank-value"),
    pytest.param("k=\n;", 1, 0, 1, 1, "k=\n", "whitespace after '='", id="newline-value"),
    pytest.param("a=1;\n  b c=2", 2, 7, 2, 3, "b c=2", "whitespace in key 'b c'", id="line-2"),
    pytest.param("a\nb=1", 1, 0, 1, 1, "a\nb=1", "whitespace in key 'a\\nb'", id="newline-in-key"),
    pytest.param(
        "meta: path=x;",
        1,
        0,
        1,
        1,
        "meta: path=x",
        "whitespace in key ' path'",
        id="space-after-colon",
    ),
    pytest.param(
        "meta :path=x;", 1, 0, 1, 1, "meta :path=x", "whitespace in prefix", id="ws-before-colon"
    ),
    pytest.param("justtext", 1, 0, 1, 1, "justtext", "missing '='", id="no-eq-at-end"),
    pytest.param("a=1;\r\n\r\n x", 2, 9, 3, 2, "x", "missing '='", id="crlf-line-count"),
]


@pytest.mark.parametrize(("text", "position", "offset", "line", "column", "raw", "rule"), INVALID)
def test_invalid(
    text: str, position: int, offset: int, line: int, column: int, raw: str, rule: str
) -> None:
    with pytest.raises(StreamError) as info:
        tokenize(text)
    err = info.value
    assert isinstance(err, StreamSyntaxError)
    assert isinstance(err, ValueError)
    assert (err.position, err.offset, err.line, err.column, err.raw) == (
        position,
        offset,
        line,
        column,
        raw,
    )
    assert rule in err.rule
    message = str(err)
    assert message.startswith(f"token {position} {raw!r} at offset {offset} ")
    assert f"(line {line}, column {column}): " in message
    assert message.endswith(err.rule)


@pytest.mark.parametrize(("text", "position", "offset", "line", "column", "raw", "rule"), INVALID)
@pytest.mark.parametrize("size", [1, 2, 5, 1000])
def test_invalid_chunked(
    text: str, position: int, offset: int, line, column, raw, rule, size
) -> None:
    assert outcome(lambda: iter_tokens_from_chunks(chunked(text, size))) == outcome(
        lambda: tokenize(text)
    )


def test_error_message_exact() -> None:
    with pytest.raises(StreamError) as info:
        tokenize("good=value; bad_token; another=good;")
    assert str(info.value) == (
        "token 2 'bad_token' at offset 12 (line 1, column 13): "
        "missing '=' (a token is [prefix:]key=value)"
    )


def test_error_message_shortens_long_tokens() -> None:
    with pytest.raises(StreamError) as info:
        tokenize("a=1;" + "x" * 100)
    err = info.value
    assert str(err).startswith("token 2 '" + "x" * 37 + "...' at offset 4 ")
    assert err.raw == "x" * 100  # the attribute keeps it whole


def test_error_message_stays_short_for_huge_tokens() -> None:
    with pytest.raises(StreamError) as info:
        tokenize("p" * 10_000 + " q:" + "k" * 10_000 + " x=1")
    assert len(str(info.value)) < 200
    assert "whitespace in prefix 'ppp" in str(info.value)


def test_error_message_escapes_newlines() -> None:
    with pytest.raises(StreamError, match=r"'a=1\\n' at offset 0"):
        tokenize("a=1\n;")


def test_tokenize_is_all_or_nothing() -> None:
    result = None
    with pytest.raises(StreamError):
        result = tokenize("good=value; bad_token; another=good;")
    assert result is None


# --------------------------------------------------------------------------- laziness / chunks


def test_iter_tokens_is_lazy() -> None:
    it = iter_tokens("a=1; b=2; bad; c=3")
    assert next(it).key == "a"
    assert next(it).key == "b"
    with pytest.raises(StreamError, match="token 3 'bad'"):
        next(it)


def test_chunks_are_pulled_lazily() -> None:
    pulled = []

    def endless() -> Iterator[str]:
        for i in itertools.count():
            pulled.append(i)
            yield f"k{i}=v{i};"

    first = list(itertools.islice(iter_tokens_from_chunks(endless()), 3))
    assert [t.key for t in first] == ["k0", "k1", "k2"]
    assert pulled == [0, 1, 2]


def test_chunks_from_a_file_object() -> None:
    text = "".join(f"k{i}=v{i};\n" for i in range(1000)) + "last='x y'\n"
    f = io.StringIO(text)
    tokens = list(iter_tokens_from_chunks(iter(partial(f.read, 37), "")))
    assert tokens == tokenize(text)
    assert len(tokens) == 1001
    assert tokens[-1].value == "x y"


def test_chunks_with_empty_chunks_and_a_long_token() -> None:
    value = "v" * 10_000
    chunks = ["", "a=1;", "", "big="] + [value[i : i + 100] for i in range(0, 10_000, 100)]
    chunks += ["", ";", "", "b=2", ""]
    assert triples(list(iter_tokens_from_chunks(chunks))) == [
        (None, "a", "1"),
        (None, "big", value),
        (None, "b", "2"),
    ]


def test_chunks_empty_input() -> None:
    assert list(iter_tokens_from_chunks([])) == []
    assert list(iter_tokens_from_chunks(["", " ", "\n"])) == []


def test_many_tokens() -> None:
    n = 100_000
    text = "".join(f"k{i:06d}=v{i:06d};" for i in range(n))
    tokens = tokenize(text)
    assert len(tokens) == n
    assert tokens[-1] == Token(
        None, f"k{n - 1:06d}", f"v{n - 1:06d}", n, 16 * (n - 1), tokens[-1].raw
    )
    assert sum(1 for _ in iter_tokens_from_chunks(chunked(text, 4096))) == n


# --------------------------------------------------------------------------- oracle


def reference(text: str) -> tuple[list[tuple], tuple[int, int] | None]:
    """A slow, obviously-literal reading of DESIGN §9: tokens as (prefix, key, value, position,
    offset, raw), and (position, offset) of the first bad token or None."""
    tokens: list[tuple] = []
    segments = text.split(";")
    start = 0
    position = 0
    for index, segment in enumerate(segments):
        seg_start = start
        start += len(segment) + 1
        if index == len(segments) - 1:
            segment = segment.rstrip(WS)  # whitespace at the very end of the input
        body = segment.lstrip(WS)
        if not body:
            continue
        position += 1
        offset = seg_start + len(segment) - len(body)
        bad = (position, offset)
        if "=" not in body:
            return tokens, bad
        left, value = body.split("=", 1)
        if value != value.strip(WS):  # around '=' (after) or at the token's end
            return tokens, bad
        if ":" in left:
            prefix, key = left.split(":", 1)
            if not prefix or any(c in WS for c in prefix):
                return tokens, bad
        else:
            prefix, key = None, left
        if not key or any(c in WS for c in key):  # also covers whitespace before '='
            return tokens, bad
        if len(value) >= 2 and value[0] in QUOTES and value[0] == value[-1]:
            value = value[1:-1]
        tokens.append((prefix, key, value, position, offset, body))
    return tokens, None


def check_against_reference(text: str) -> None:
    expected, bad = reference(text)
    if bad is None:
        tokens = tokenize(text)
        assert [(t.prefix, t.key, t.value, t.position, t.offset, t.raw) for t in tokens] == expected
    else:
        with pytest.raises(StreamSyntaxError) as info:
            tokenize(text)
        assert (info.value.position, info.value.offset) == bad
        seen = []
        with pytest.raises(StreamSyntaxError):
            for tok in iter_tokens(text):
                seen.append((tok.prefix, tok.key, tok.value, tok.position, tok.offset, tok.raw))
        assert seen == expected  # the good tokens before the bad one were yielded
        line = text.count("\n", 0, bad[1]) + 1
        column = bad[1] - (text.rfind("\n", 0, bad[1]) + 1) + 1
        assert (info.value.line, info.value.column) == (line, column)


def test_whitespace_sets_agree() -> None:
    assert set(WHITESPACE) == set(WS)


@pytest.mark.parametrize("text", [pytest.param(p.values[0], id=p.id) for p in VALID + INVALID])
def test_tables_agree_with_reference(text: str) -> None:
    check_against_reference(text)


# --------------------------------------------------------------------------- properties

IDENT = st.text(alphabet=string.ascii_letters + string.digits + "_.-", min_size=1, max_size=12)
ANY_CHAR = st.characters(blacklist_categories=("Cs",))
PLAIN_VALUE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=";")).filter(
    lambda v: v == v.strip(WS) and v[:1] not in QUOTES and v[-1:] not in QUOTES
)
LEADING = st.text(alphabet=WS, max_size=3)
ENDING = st.sampled_from(["", ";", "; ", ";\n", "\n", " \n\t", "; ;  \r\n", ";;"])
GRAMMAR_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from(list("ab:=;\"' \t\n\r")), ANY_CHAR), max_size=40
)


@given(
    st.lists(st.tuples(st.none() | IDENT, IDENT, PLAIN_VALUE), max_size=8),
    st.sampled_from(["; ", ";", ";\n", ";\n\t", "; ;", ";;\n"]),
    ENDING,
)
def test_roundtrip(items: list[tuple[str | None, str, str]], sep: str, ending: str) -> None:
    parts = [f"{p}:{k}={v}" if p is not None else f"{k}={v}" for p, k, v in items]
    text = sep.join(parts) + ending
    tokens = tokenize(text)
    assert triples(tokens) == items
    assert [t.raw for t in tokens] == parts
    assert [t.position for t in tokens] == list(range(1, len(items) + 1))
    for tok in tokens:
        assert text.startswith(tok.raw, tok.offset)


@given(
    st.lists(
        st.tuples(
            st.none() | IDENT,
            IDENT,
            st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=";")),
            st.sampled_from(QUOTES),
            LEADING,
        ),
        max_size=6,
    ),
    ENDING,
)
def test_quoted_roundtrip(items: list[tuple], ending: str) -> None:
    text = ";".join(
        f"{lead}{p + ':' if p is not None else ''}{k}={q}{v}{q}" for p, k, v, q, lead in items
    )
    text += ending
    assert triples(tokenize(text)) == [(p, k, v) for p, k, v, _, _ in items]


@settings(max_examples=300)
@given(st.one_of(st.text(), GRAMMAR_TEXT))
def test_any_text_tokenizes_or_raises_stream_error(text: str) -> None:
    try:
        tokenize(text)
    except StreamError:
        pass


@settings(max_examples=500)
@given(st.one_of(GRAMMAR_TEXT, st.text()))
def test_matches_reference(text: str) -> None:
    check_against_reference(text)


@settings(max_examples=300)
@given(GRAMMAR_TEXT, st.lists(st.integers(min_value=0, max_value=40), max_size=6))
def test_chunk_boundaries_do_not_matter(text: str, cuts: list[int]) -> None:
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    assert "".join(chunks) == text
    assert outcome(lambda: iter_tokens_from_chunks(chunks)) == outcome(lambda: tokenize(text))
    assert outcome(lambda: iter_tokens(text)) == outcome(lambda: tokenize(text))
