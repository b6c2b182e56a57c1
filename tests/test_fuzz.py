"""Hostile input: property tests of every parser, and every CLI command fed garbage.

* address, duration and stream-token parsers: any text gives a result or the parser's own
  error (never another exception), and what they accept round-trips;
* JSONL import: any line gives a DataFormatError naming the line or a clean import, never a
  partial one; export then import is byte-exact;
* backup archives: path traversal, absolute names, links, devices, unexpected members,
  decompression bombs and random damage are refused before anything changes (CLI: one line,
  exit 1);
* every CLI command and subcommand (walked from the click group) with garbage arguments: exit
  1 (2 for a plain miss) with one clear line on stderr, never a traceback or an "unexpected"
  error, and the store and the cursor file unchanged.

The CLI runs in-process (``cli.main(args, standalone_mode=False)`` returns the exit code).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import tarfile

import click
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import prontodb
from prontodb import portable
from prontodb.address import Address, parse
from prontodb.cli import cli
from prontodb.duration import parse_duration
from prontodb.errors import (
    DataFormatError,
    InvalidAddressError,
    InvalidDurationError,
    ProntoError,
    StreamError,
)
from prontodb.store import Store
from prontodb.streamtokens import iter_tokens_from_chunks, tokenize

from ._casecount import count as _count
from ._inprocess import run_cli

FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

segment = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith("-")
)
hostile_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=".:/|_-aZ9 \t\n;=\"'*\\", max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")),
)


# -- parsers -----------------------------------------------------------------------------------


@FAST
@given(text=hostile_text, delim=st.sampled_from([".", ":", "/", "|"]))
def test_address_parser_accepts_or_names_the_problem(text, delim):
    _count("address parser")
    try:
        address = parse(text, project="p", namespace="n", delim=delim)
    except InvalidAddressError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert parse(address.format(delim), delim=delim) == address


@FAST
@given(
    parts=st.tuples(segment, segment, segment, st.one_of(st.none(), segment)),
    delim=st.sampled_from([".", ":", "/", "|"]),
)
def test_valid_addresses_round_trip(parts, delim):
    _count("address round trip")
    project, namespace, key, context = parts
    # A key ending in "_" or a context with "__" or a leading "_" cannot be told apart from
    # the "__" that joins them.
    ctx = context or "x"
    assume("__" not in key + "|" + ctx and not key.endswith("_") and not ctx.startswith("_"))
    address = Address(project, namespace, key, context)
    assert parse(address.format(delim), delim=delim) == address


@FAST
@given(text=st.one_of(hostile_text, st.integers().map(str), st.integers()))
def test_duration_parser_accepts_positive_durations_only(text):
    _count("duration parser")
    try:
        seconds = parse_duration(text)
    except InvalidDurationError as exc:
        assert str(exc)
        return
    assert isinstance(seconds, int) and seconds > 0


@FAST
@given(
    number=st.integers(min_value=1, max_value=10**6), unit=st.sampled_from(["", "s", "m", "h", "d"])
)
def test_duration_units(number, unit):
    _count("duration parser")
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{number}{unit}") == number * factor


token_soup = st.lists(
    st.one_of(
        st.sampled_from(["meta:path=p.n", "k=v", "a:b=c", " x='y'", "ns=q", "=", ";", " ", "\n"]),
        hostile_text,
    ),
    max_size=12,
).map("".join)


@FAST
@given(text=token_soup, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=5))
def test_stream_tokenizer_is_total_and_chunking_changes_nothing(text, cuts):
    _count("stream tokenizer")
    try:
        whole = tokenize(text)
    except StreamError as exc:
        whole = exc.args
    points = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    try:
        chunked = list(iter_tokens_from_chunks(chunks))
    except StreamError as exc:
        chunked = exc.args
    assert chunked == whole


@FAST
@given(text=token_soup)
def test_stream_planner_fails_only_with_its_own_errors(text):
    from prontodb import stream

    _count("stream planner")
    try:
        stream.plan(text, project="p", namespace="n", user="default")
    except ProntoError as exc:
        assert str(exc)


# -- JSONL import ------------------------------------------------------------------------------


@pytest.fixture
def layer(tmp_path):
    store = prontodb.open(str(tmp_path / "fuzz.sqlite"))
    store.set("keep.n.k", "kept")
    yield store
    store.close()


def _everything(store) -> list:
    return list(store.backend.scan(b""))


HEADER = json.dumps({"format": "prontodb-export", "version": 1, "caches": {}})
row_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    hostile_text,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
rows = st.fixed_dictionaries(
    {},
    optional={
        "address": st.one_of(hostile_text, st.just("p.n.k"), st.just("p.n.k__c")),
        "value": row_values,
        "encoding": st.one_of(st.sampled_from(["utf-8", "base64"]), hostile_text),
        "expires_at": row_values,
    },
)
lines = st.one_of(rows.map(json.dumps), hostile_text, st.just(""), st.just("{"))


@FAST
@given(body=st.lists(lines, max_size=6), header=st.one_of(st.just(HEADER), hostile_text))
def test_import_of_garbage_is_clean_or_refused_whole(layer, body, header):
    _count("JSONL import")
    before = _everything(layer)
    data = "\n".join([header, *body]).encode("utf-8", "surrogateescape")
    try:
        summary = portable.import_layer(layer, io.BytesIO(data), name="fuzz.jsonl")
    except (DataFormatError, ProntoError) as exc:
        assert "\n" not in str(exc) and str(exc)
        assert _everything(layer) == before
        return
    assert summary.imported <= len(body)


def _valid_key(key: str) -> bool:
    try:
        parse(f"p.n.{key}")
    except InvalidAddressError:
        return False
    return True


entries = st.lists(
    st.tuples(
        segment.filter(_valid_key),
        st.binary(max_size=30),
        st.one_of(st.none(), st.integers(1, 10**6)),
    ),
    max_size=8,
    unique_by=lambda e: e[0],
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=entries)
def test_export_import_round_trip_is_byte_exact(tmp_path_factory, items):
    _count("JSONL round trip")
    folder = tmp_path_factory.mktemp("rt")
    with prontodb.open(str(folder / "a.sqlite")) as source:
        for key, value, ttl in items:
            source.set(f"p.n.{key}", value, ttl=ttl)
        out = io.BytesIO()
        portable.export_layer(source, out)
        wanted = [(e.address, e.value, e.expires_at) for e in source.entries()]
    with prontodb.open(str(folder / "b.lmdb")) as target:
        portable.import_layer(target, io.BytesIO(out.getvalue()))
        assert [(e.address, e.value, e.expires_at) for e in target.entries()] == wanted


# -- backup archives -----------------------------------------------------------------------


def _archive(path, members, *, manifest=None) -> str:
    """A .tar.gz with ``members``: (TarInfo, bytes or None) pairs, after a manifest."""
    with tarfile.open(path, "w:gz") as tar:
        if manifest is not None:
            data = json.dumps(manifest).encode()
            info = tarfile.TarInfo(portable.MANIFEST)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in members:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return str(path)


def _member(name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


@pytest.fixture
def real_backup(tmp_path, home):
    source = str(tmp_path / "source.sqlite")
    with prontodb.open(source) as store:
        store.set_many([(f"p.n.k{i}", f"v{i}") for i in range(20)])
        path = portable.backup(store, str(tmp_path / "good.tar.gz")).path
    return path


def _manifest_of(archive: str) -> dict:
    return portable.read_manifest(archive)


HOSTILE_MEMBERS = {
    "traversal": _member("../../evil.jsonl", b"x"),
    "traversal-inside": _member("layers/../../evil.jsonl", b"x"),
    "absolute": _member("/etc/evil.jsonl", b"x"),
    "windows-drive": _member("C:evil.jsonl", b"x"),
    "backslash": _member("layers\\..\\evil.jsonl", b"x"),
    "symlink": _member("layers/default.jsonl", kind=tarfile.SYMTYPE, link="/etc/passwd"),
    "hardlink": _member("layers/default.jsonl", kind=tarfile.LNKTYPE, link="manifest.json"),
    "device": _member("layers/default.jsonl", kind=tarfile.CHRTYPE),
    "fifo": _member("layers/default.jsonl", kind=tarfile.FIFOTYPE),
    "directory": _member("layers", kind=tarfile.DIRTYPE),
    "unexpected": _member("layers/extra.jsonl", b"{}\n"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_MEMBERS))
def test_restore_refuses_hostile_members_and_changes_nothing(tmp_path, real_backup, kind, capsys):
    manifest = _manifest_of(real_backup)
    hostile = _archive(tmp_path / f"{kind}.tar.gz", [HOSTILE_MEMBERS[kind]], manifest=manifest)
    _count("hostile archives")
    target = str(tmp_path / "target.lmdb")
    with prontodb.open(target) as store:
        store.set("mine.n.k", "mine")
        before = _everything(store)
        with pytest.raises(DataFormatError) as caught:
            portable.restore(store, hostile, replace=True)
        assert "refused" in str(caught.value) or "unexpected" in str(caught.value)
        assert _everything(store) == before
    code, err = _cli(["--database", target, "restore", "--replace", hostile])
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    assert not os.path.exists(tmp_path.parent / "evil.jsonl")


@pytest.mark.parametrize("lie", ["announced", "hidden-in-member", "trailing-zeros"])
def test_restore_refuses_a_decompression_bomb(tmp_path, real_backup, lie):
    """8 MiB of zeros (a few KiB compressed) against a 1 MiB limit: announced in the manifest,
    hidden behind a manifest that announces a small member, or appended after a valid archive
    where only the decompressed byte count can catch it."""
    manifest = _manifest_of(real_backup)
    member = portable.member_name("default", None)
    zeros = 8 << 20
    if lie == "announced":
        manifest["members"][member] = {"size": zeros, "sha256": "0" * 64}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo(portable.MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        if lie == "trailing-zeros":
            with tarfile.open(real_backup) as good:
                for item in good.getmembers()[1:]:
                    tar.addfile(item, good.extractfile(item))
        else:
            info = tarfile.TarInfo(member)
            info.size = zeros
            tar.addfile(info, io.BytesIO(bytes(zeros)))
    payload = raw.getvalue() + (bytes(zeros) if lie == "trailing-zeros" else b"")
    bomb = tmp_path / "bomb.tar.gz"
    bomb.write_bytes(gzip.compress(payload, compresslevel=9))
    assert os.path.getsize(bomb) < zeros // 200  # beyond the allowed compression ratio
    with prontodb.open(str(tmp_path / "t.sqlite")) as store:
        reason = {
            "announced": "over the limit",
            "hidden-in-member": "the manifest says",
            "trailing-zeros": "decompresses to more than",
        }[lie]
        with pytest.raises(DataFormatError, match=reason):
            portable.restore(store, str(bomb), max_uncompressed=1 << 20)
        assert store.count() == 0
    _count("hostile archives")


def test_restore_refuses_a_gzip_bomb_of_garbage(tmp_path):
    bomb = tmp_path / "bomb.tar.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        for _ in range(64):
            fh.write(bytes(1 << 20))
    with prontodb.open(str(tmp_path / "t.sqlite")) as store:
        with pytest.raises(DataFormatError):
            portable.restore(store, str(bomb))
        assert store.count() == 0
    _count("hostile archives")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_restore_refuses_damaged_archives_whole(tmp_path_factory, real_backup, data):
    _count("damaged archives")
    raw = bytearray(open(real_backup, "rb").read())
    how = data.draw(st.sampled_from(["flip", "truncate", "garbage"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw = bytearray(data.draw(st.binary(max_size=300)))
    folder = tmp_path_factory.mktemp("damaged")
    damaged = folder / "damaged.tar.gz"
    damaged.write_bytes(bytes(raw))
    with prontodb.open(str(folder / "t.sqlite")) as store:
        store.set("mine.n.k", "mine")
        before = _everything(store)
        try:
            portable.restore(store, str(damaged), replace=True)
        except ProntoError as exc:
            assert str(exc) and "\n" not in str(exc)
            assert _everything(store) == before
        else:  # a flip the checksums cannot see (gzip header fields): the data is intact
            assert store.count() == 20


# -- every CLI command with garbage arguments --------------------------------------------------

GARBAGE = [
    "",
    " ",
    "..",
    ".",
    "-",
    "--",
    "x" * 5000,
    "../../etc/passwd",
    "/",
    "a..b",
    ".a.b.c",
    "a.b.c.",
    "p.n.k__",
    "p.n.__c",
    "ключ.значение.k",
    "🙂",
    "\udcff\udcfe",
    "\t\n",
    "*",
    "[",
    "\\",
    ";",
    "'",
    '"',
    "meta:ttl=x",
    "$(reboot)",
    "%s%n",
    "0",
    "-1",
    "1e9",
    "99999999999999999999",
    "15x",
    "timeout=0",
    "--bogus",
    "-Z",
    "--ttl",
    "--ttl=-5",
    "--json=1",
    "--backend=nope",
    "--on-conflict=maybe",
    "--durability=kinda",
    "nope.nope.nope",
]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group, info_name="prontodb")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


ALL_COMMANDS = sorted(_commands(cli))


def _cli(args, stdin: bytes = b"") -> tuple[int, str]:
    """Run the CLI in-process; returns (exit code, stderr)."""
    code, _, err = run_cli(args, stdin)
    return code, err


def _state(home) -> tuple:
    """Everything a command could change: every store under the data dir and the config."""
    found = []
    for root in (home["XDG_DATA_HOME"], home["XDG_CONFIG_HOME"]):
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                if name.endswith(".sqlite"):
                    with prontodb.open(path, create=False) as store:
                        found.append((path, tuple(store.backend.scan(b""))))
                elif name.endswith(".json"):
                    with open(path, "rb") as fh:
                        found.append((path, fh.read()))
    return tuple(found)


def test_every_command_fed_garbage_fails_cleanly(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # garbage output paths land here
    monkeypatch.setenv("PRONTO_MAX_VALUE_BYTES", "65536")
    real_watch = Store.watch
    # `watch` of a valid address waits for a change: here it looks once and times out
    monkeypatch.setattr(Store, "watch", lambda self, a, timeout=None: real_watch(self, a, 0))
    assert _cli(["set", "p.n.k", "v"])[0] == 0
    assert _cli(["create-cache", "p.c", "60"])[0] == 0
    assert _cli(["cursor", "set", "work", "--backend", "lmdb"])[0] == 0
    rng = random.Random(9)
    problems: list[str] = []
    cases = 0
    for command in ALL_COMMANDS:
        shapes = [[g] for g in GARBAGE]
        shapes += [[g, rng.choice(GARBAGE)] for g in GARBAGE]
        shapes += [["p.n.k", g] for g in GARBAGE]
        for tail in shapes:
            args = [*command, *tail]
            before = _state(home)
            code, err = _cli(args)
            cases += 1
            problem = _judge(args, code, err, before, _state(home))
            if problem:
                problems.append(problem)
    for flag in GLOBAL_FLAGS:
        for g in GARBAGE:
            for tail in (["keys"], ["set", "p.n.k2", "v"], ["get", "k"]):
                args = [flag, g, *tail]
                before = _state(home)
                code, err = _cli(args)
                cases += 1
                problem = _judge(args, code, err, before, _state(home))
                if problem:
                    problems.append(problem)
    _count("CLI garbage", cases)
    assert not problems, f"{len(problems)} of {cases} cases:\n" + "\n".join(problems[:40])


GLOBAL_FLAGS = ["--user", "--cursor", "--database", "--meta", "-p", "-n", "--ns-delim"]
PIPED = [["set", "p.n.piped"], ["set"], ["set", "bad..address"], ["stream"], ["import", "-"]]
STDIN_GARBAGE = [
    b"",
    b" \n",
    b"\x00\xff\xfe",
    b"a=1; b=2",
    b"meta:path=p.n; k=v; meta:bogus=1",
    b"{not json",
    b'{"format":"prontodb-export","version":99}',
    os.urandom(64),
    b"x" * 70000,
]


def test_piped_garbage_is_stored_rescued_or_refused(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRONTO_MAX_VALUE_BYTES", "65536")
    problems, cases = [], 0
    for command in PIPED:
        for stdin in STDIN_GARBAGE:
            before = _state(home)
            code, err = _cli(command, stdin=stdin)
            cases += 1
            shown = f"{command} < {stdin[:20]!r}"
            if "Traceback" in err or "error: unexpected " in err:
                problems.append(f"{shown}: crashed: {err[:300]!r}")
            elif code == 3:
                if "cached as" not in err and "saved to" not in err and "rescue" not in err:
                    problems.append(f"{shown}: exit 3 without saying where: {err[:300]!r}")
            elif code == 1:
                if before != _state(home):
                    problems.append(f"{shown}: exit 1 but the store changed")
                if len(err.splitlines()) != 1:
                    problems.append(f"{shown}: exit 1 without one line: {err[:300]!r}")
            elif code != 0:
                problems.append(f"{shown}: exit {code}: {err[:200]!r}")
    _count("CLI piped garbage", cases)
    assert not problems, "\n".join(problems)


def _judge(args, code, err, before, after) -> str | None:
    shown = " ".join(repr(a)[:30] for a in args)
    if "Traceback" in err or "error: unexpected " in err:
        return f"{shown}: crashed: {err[:300]!r}"
    if code == 0:
        return None
    if code not in (1, 2, 4):  # 4: not applied (a live copy/move destination, a condition)
        return f"{shown}: exit {code}: {err[:200]!r}"
    if before != after:
        return f"{shown}: exit {code} but the store or config changed"
    lines = err.splitlines()
    if code == 1 and (len(lines) != 1 or not lines[0].startswith("error: ")):
        return f"{shown}: exit 1 without one 'error:' line: {err[:300]!r}"
    if code == 4 and not all(line.startswith(("❌", "x ", "not applied: ")) for line in lines):
        return f"{shown}: exit 4 with {err[:200]!r}"
    if code == 2 and not all(
        line.startswith(("not found: ", "timeout: ", "❌", "x ")) for line in lines
    ):
        return f"{shown}: exit 2 with {err[:200]!r}"
    return None
