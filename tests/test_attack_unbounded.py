"""Attack class: inputs without an end — unterminated tokens, endless lines, deep nesting,
oversized addresses and files.

Every untrusted input is read with a bound, in memory proportional to the bound: the reader
stops pulling input once the bound is passed, and refuses with a clear error.
"""

from __future__ import annotations

import json
import os

import pytest

import prontodb
from prontodb import cursor, portable, stream
from prontodb.errors import ConfigError, DataFormatError, StreamError
from prontodb.portable.jsonl import Reader
from tests._attack import prontodb as run


class Endless:
    """An endless input in chunks of ``piece`` that counts what was pulled from it."""

    def __init__(self, piece: bytes, first: bytes = b"") -> None:
        self.piece = piece
        self.first = first
        self.pulled = 0

    def __iter__(self):
        if self.first:
            self.pulled += len(self.first)
            yield self.first
        while True:
            self.pulled += len(self.piece)
            yield self.piece


LIMIT = 64 << 10


@pytest.mark.parametrize(
    "piece",
    [b"a" * 4096, b" " * 4096, b"\0" * 4096, b'k="' + b"v" * 4093, "é".encode() * 2048],
    ids=["letters", "whitespace", "nul", "open-quote", "multibyte"],
)
def test_an_unterminated_stream_token_stops_at_the_bound(piece):
    source = Endless(piece, first=b"meta:path=p.n; k=1;")
    with pytest.raises(stream.TokenTooLongError) as caught:
        stream.plan(source, max_value_bytes=LIMIT)
    assert source.pulled <= LIMIT + stream.TOKEN_SLACK + 2 * len(piece) + 64
    assert caught.value.offset == len(b"meta:path=p.n; k=1;")


def test_an_unterminated_str_stream_stops_at_the_bound():
    source = Endless("x" * 1000)  # type: ignore[arg-type]
    with pytest.raises(StreamError, match="longer than"):
        stream.plan(source, max_value_bytes=LIMIT)
    assert source.pulled <= LIMIT + stream.TOKEN_SLACK + 2000


@pytest.mark.parametrize("chunk", [1, 4096, 1 << 20])
def test_an_endless_import_line_stops_at_the_bound_in_linear_work(chunk):
    reader = Reader("<test>", LIMIT, now_ms=0.0)
    source = Endless(b"z" * chunk, first=b'{"format":"prontodb-export","version":1}\n')
    lines = reader.lines(source)
    reader.header(next(lines))
    with pytest.raises(DataFormatError, match="longer than"):
        next(lines)
    assert source.pulled <= reader.max_line + chunk + 64


def test_long_lines_that_end_are_joined_exactly():
    reader = Reader("<test>", 1 << 20, now_ms=0.0)
    pieces = [b"a" * 1000] * 50 + [b"a\nb" + b"c" * 10, b"\n", b"tail"]
    assert list(reader.lines(pieces)) == [b"a" * 50_001, b"b" + b"c" * 10, b"tail"]


@pytest.mark.parametrize("nesting", [b"[" * 200_000, b'{"a":' * 200_000])
def test_deeply_nested_import_lines_are_refused(home, nesting):
    source = b'{"format":"prontodb-export","version":1}\n' + nesting + b"\n"
    with prontodb.open() as store, pytest.raises(DataFormatError, match="nested too deeply"):
        portable.import_layer(store, __import__("io").BytesIO(source))


def test_a_deeply_nested_or_oversized_cursor_file_is_refused(home):
    folder = os.path.join(home["XDG_CONFIG_HOME"], "prontodb", "users", "default")
    os.makedirs(folder, mode=0o700)
    path = os.path.join(folder, "cursors.json")
    with open(path, "wb") as fh:
        fh.write(b"[" * 200_000)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="nested too deeply"):
        cursor.list_cursors("default")
    code, _, err = run(home, "cursor", "list")
    assert code == 1 and "unexpected" not in err
    with open(path, "wb") as fh:
        fh.write(b'{"cursors": {}, "pad": "' + b"x" * (5 << 20) + b'"}')
    with pytest.raises(ConfigError, match="larger than"):
        cursor.list_cursors("default")


def _export_with(address: str) -> bytes:
    head = {"format": "prontodb-export", "version": 1, "caches": {}}
    row = {"address": address, "value": "v", "encoding": "utf-8", "expires_at": None}
    return (json.dumps(head) + "\n" + json.dumps(row) + "\n").encode()


@pytest.mark.parametrize(
    "address",
    [
        # every segment valid (the fast path), 514 characters in all
        "p" * 128 + "." + "n" * 128 + "." + "k" * 128 + "__" + "c" * 128,
        "p" * 128 + "." + "n" * 128 + "." + "k" * 100 + "__" + "c" * 100,
        "p" * 100 + "." + "n" * 100 + "." + "k" * 128 + "__" + "c" * 120,
    ],
    ids=["all-at-128", "context", "key-and-context"],
)
def test_import_refuses_addresses_over_the_cap(home, address):
    import io

    with prontodb.open() as store:
        with pytest.raises(DataFormatError, match="too long"):
            portable.import_layer(store, io.BytesIO(_export_with(address)))
        assert list(store.keys()) == []


@pytest.mark.parametrize(
    "tokens",
    [
        "meta:path=" + "p" * 128 + "." + "n" * 128 + "; " + "k" * 128 + "__" + "c" * 128 + "=v;",
        "meta:path=" + "p" * 128 + "." + "n" * 128 + "; " + "k" * 100 + "__" + "c" * 100 + "=v;",
        "p" * 128 + "." + "n" * 128 + ":" + "k" * 120 + "__" + "c" * 120 + "=v;",
    ],
    ids=["context", "long-namespace", "prefixed"],
)
def test_stream_refuses_addresses_over_the_cap(tokens):
    with pytest.raises(StreamError, match="too long"):
        stream.plan(tokens)


def test_an_address_at_the_cap_is_accepted_by_import_and_stream(home):
    import io

    address = "p" * 128 + "." + "n" * 128 + "." + "k" * 92 + "__" + "c" * 90  # 440 characters
    with prontodb.open() as store:
        assert portable.import_layer(store, io.BytesIO(_export_with(address))).imported == 1
        planned = stream.plan(f"{address[: 128 + 1 + 128]}:{address[258:]}=v;")
        assert planned.entries == 1
