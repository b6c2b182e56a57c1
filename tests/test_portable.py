"""Portability: export/import, backup/restore onto any backend, cursor migrate (DESIGN §10)."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import textwrap

import pytest
from click.testing import CliRunner

import prontodb
from prontodb import cursor, keyspace, portable, record
from prontodb.clock import FakeClock
from prontodb.errors import ConflictError, DataFormatError
from prontodb.streamtokens import tokenize
from tests.conftest import EXTENSIONS, FILE_BACKENDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_MIGRATION = importlib.import_module("prontodb.portable.migration")


def _available(name: str) -> bool:
    try:
        importlib.import_module(f"prontodb.backends.{name}")
    except ImportError:
        return False
    return True


ENGINES = [
    pytest.param(
        name, marks=pytest.mark.skipif(not _available(name), reason=f"{name} backend missing")
    )
    for name in FILE_BACKENDS
]
PAIRS = [
    pytest.param(
        a,
        b,
        id=f"{a}-{b}",
        marks=pytest.mark.skipif(
            not (_available(a) and _available(b)), reason="backend not importable yet"
        ),
    )
    for a in FILE_BACKENDS
    for b in FILE_BACKENDS
]

BINARY = bytes(range(256))


def open_store(tmp_path, engine: str, name: str, clock=None, **kwargs):
    return prontodb.open(
        str(tmp_path / f"{name}{EXTENSIONS[engine]}"), backend=engine, clock=clock, **kwargs
    )


def populate(store, clock) -> None:
    """Text, empty, binary, context keys, TTLs, a TTL namespace, an expired entry, and
    entries in other user and meta layers."""
    store.set("kb.recipes.pasta", 'red sauce\nwith "quotes" and ünïcode ✓')
    store.set("kb.recipes.pasta__dev", b"")
    store.set("kb.recipes.bin", BINARY)
    store.set("kb.recipes.pasta__v2", "context two")
    store.set("kb.notes.semi", "a;b")
    store.set("kb.notes.soon", "gone", ttl=1)
    store.set("kb.notes.later", "stays", ttl=3600)
    store.create_cache("kb.cache", 600)
    store.set("kb.cache.hit", "cached")
    store.set("zz.last.k", "last")
    store.layer(user="alice").set("a.b.c", "alice's")
    store.layer(user="alice").create_cache("a.tmp", 30)
    store.layer(meta="m1").set("a.b.c", b"\x00meta\xff")
    store.layer(user="bob", meta="m2").create_cache("only.defs", 5)
    clock.advance(2)  # kb.notes.soon has expired


def dump(store) -> tuple[list, dict]:
    """The live view of one layer: entries with deadlines, and TTL namespaces."""
    return [(str(e.address), e.value, e.expires_at) for e in store.entries()], store.caches()


def raw_dump(backend, now: float) -> list[tuple[bytes, object]]:
    """Every live entry and TTL definition of every layer: raw keys, with each entry's value
    and deadline (a restore gives entries fresh versions) or a definition's raw bytes."""
    rows: list[tuple[bytes, object]] = []
    for key, raw in backend.scan(b""):
        if key.startswith(keyspace.INFO):
            continue
        if key.startswith(keyspace.DATA):
            if record.expired(raw, now):
                continue
            rec = record.unpack(raw)
            rows.append((key, (rec.value, rec.deadline_ms)))
        else:
            rows.append((key, raw))
    return rows


def everything(backend) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in backend.scan(b"") if not k.startswith(keyspace.INFO)]


def export_bytes(store, **kwargs) -> bytes:
    out = io.BytesIO()
    portable.export_layer(store, out, **kwargs)
    return out.getvalue()


# -- export / import -----------------------------------------------------------------------


def _fresh(lines: bytes) -> bytes:
    """Export lines without their versions."""
    return re.sub(rb',"version":\d+\}', b"}", lines)


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_round_trip_between_every_pair_of_backends(tmp_path, src, dst):
    clock = FakeClock()
    a = open_store(tmp_path, src, "a", clock)
    b = open_store(tmp_path, dst, "b", clock)
    populate(a, clock)
    data = export_bytes(a)
    summary = portable.import_layer(b, io.BytesIO(data))
    assert (summary.entries, summary.imported, summary.expired) == (8, 8, 0)
    assert summary.caches == 1
    assert dump(b) == dump(a)
    assert b.get("kb.recipes.bin") == BINARY
    assert b.get("kb.recipes.pasta__dev") == b""
    assert b.ttl("kb.notes.later") == a.ttl("kb.notes.later") == 3598
    assert b.ttl("kb.recipes.pasta") is None
    # the same bytes come out again, whatever the engine (only the header's source differs,
    # and the versions: an import gives fresh ones; write times are kept)
    assert _fresh(export_bytes(b).split(b"\n", 1)[1]) == _fresh(data.split(b"\n", 1)[1])
    assert b.get_entry("kb.recipes.pasta").written_at == a.get_entry("kb.recipes.pasta").written_at
    a.close()
    b.close()


def test_export_format_header_order_and_encodings(tmp_path):
    clock = FakeClock()
    store = open_store(tmp_path, "sqlite", "a", clock)
    populate(store, clock)
    lines = export_bytes(store).decode().splitlines()
    head = json.loads(lines[0])
    assert head["format"] == "prontodb-export" and head["version"] == 1
    assert head["prontodb"] == prontodb.__version__
    assert head["source"] == {"backend": "sqlite"}
    assert head["caches"] == {"kb.cache": 600}
    rows = [json.loads(line) for line in lines[1:]]
    addresses = [r["address"] for r in rows]
    assert "kb.notes.soon" not in addresses  # expired entries are never exported
    assert addresses == sorted(addresses, key=_order)
    by = {r["address"]: r for r in rows}
    assert by["kb.recipes.bin"]["encoding"] == "base64"
    assert by["kb.recipes.pasta"]["encoding"] == "utf-8"
    assert by["kb.notes.later"]["expires_at"] == clock.now - 2 + 3600
    assert by["kb.recipes.pasta"]["expires_at"] is None
    assert set(by["kb.cache.hit"]) == {
        "address",
        "value",
        "encoding",
        "expires_at",
        "written_at",
        "version",
    }
    assert by["kb.cache.hit"]["written_at"] == clock.now - 2  # written before the clock moved
    assert isinstance(by["kb.cache.hit"]["version"], int) and by["kb.cache.hit"]["version"] > 0
    assert export_bytes(store) == export_bytes(store)  # deterministic


def _order(address: str) -> tuple[bytes, ...]:
    project, namespace, name = address.split(".")
    key, _, context = name.partition("__")
    return project.encode(), namespace.encode(), key.encode(), context.encode()


def test_export_scope_limits_entries_and_ttl_definitions(tmp_path):
    clock = FakeClock()
    store = open_store(tmp_path, "sqlite", "a", clock)
    populate(store, clock)
    lines = export_bytes(store, scope="kb.cache").decode().splitlines()
    assert json.loads(lines[0])["scope"] == "kb.cache"
    assert json.loads(lines[0])["caches"] == {"kb.cache": 600}
    assert [json.loads(line)["address"] for line in lines[1:]] == ["kb.cache.hit"]
    lines = export_bytes(store, scope="zz").decode().splitlines()
    assert json.loads(lines[0])["caches"] == {}
    assert len(lines) == 2


def test_import_keeps_absolute_deadlines_and_skips_expired(tmp_path):
    clock = FakeClock()
    a = open_store(tmp_path, "sqlite", "a", clock)
    a.set("p.n.short", "x", ttl=10)
    a.set("p.n.long", "y", ttl=100)
    a.set("p.n.none", "z")
    data = export_bytes(a)
    clock.advance(50)
    b = open_store(tmp_path, "sqlite", "b", clock)
    summary = portable.import_layer(b, io.BytesIO(data))
    assert (summary.entries, summary.imported, summary.expired) == (3, 2, 1)
    assert b.ttl("p.n.long") == 50
    assert b.ttl("p.n.none") is None
    assert not b.exists("p.n.short")


def test_on_conflict_overwrite_skip_fail(tmp_path):
    clock = FakeClock()
    a = open_store(tmp_path, "sqlite", "a", clock)
    a.set_many([("p.n.k1", "new1"), ("p.n.k2", "new2")])
    a.create_cache("p.c", 60)
    data = export_bytes(a)
    b = open_store(tmp_path, "sqlite", "b", clock)
    b.set("p.n.k1", "old1")
    b.set("p.n.gone", "expired", ttl=1)
    b.create_cache("p.c", 30)
    clock.advance(5)
    before = everything(b.backend)
    with pytest.raises(ConflictError, match="p.c"):
        portable.import_layer(b, io.BytesIO(data), on_conflict="fail")
    b.drop_cache("p.c")
    before = everything(b.backend)
    with pytest.raises(ConflictError, match="p.n.k1"):
        portable.import_layer(b, io.BytesIO(data), on_conflict="fail")
    assert everything(b.backend) == before
    b.create_cache("p.c", 30)
    skipped = portable.import_layer(b, io.BytesIO(data), on_conflict="skip")
    assert (skipped.imported, skipped.existing, skipped.caches) == (1, 1, 0)
    assert (b.get("p.n.k1"), b.get("p.n.k2"), b.caches()["p.c"]) == (b"old1", b"new2", 30)
    replaced = portable.import_layer(b, io.BytesIO(data))
    assert (replaced.imported, replaced.existing, replaced.caches) == (2, 0, 1)
    assert (b.get("p.n.k1"), b.caches()["p.c"]) == (b"new1", 60)


def _export_text(*rows: object, header: object = None) -> bytes:
    head = header or {"format": "prontodb-export", "version": 1, "caches": {}}
    return "\n".join(json.dumps(x) if not isinstance(x, str) else x for x in (head, *rows)).encode()


GOOD = {"address": "p.n.k", "value": "v", "encoding": "utf-8", "expires_at": None}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty input"),
        (b"k=v;", "token stream"),
        (_export_text(header={"format": "other"}), "not a ProntoDB export header"),
        (_export_text(header={"format": "prontodb-export", "version": 9}), "newer ProntoDB"),
        (_export_text(GOOD, "{not json"), "line 3: not valid JSON"),
        (_export_text(json.dumps(GOOD) + " {}"), "line 2: not valid JSON .Extra data"),
        (_export_text(json.dumps(GOOD) + "x"), "line 2: not valid JSON .Extra data"),
        (_export_text({**GOOD, "address": "p.n"}), "line 2: invalid address"),
        (_export_text({**GOOD, "address": "p.n.bad key"}), "bad character"),
        (_export_text({**GOOD, "encoding": "base64", "value": "***"}), "not valid base64"),
        (_export_text({**GOOD, "encoding": "rot13"}), "unknown encoding"),
        (_export_text({**GOOD, "value": 5}), "'value' must be a string"),
        (_export_text({**GOOD, "expires_at": "soon"}), "expires_at must be"),
        (_export_text({**GOOD, "expires_at": 1e300}), "out of range"),
        (_export_text(GOOD).replace(b"null", b"NaN"), "NaN is not allowed"),
        (_export_text({**GOOD, "value": "x" * 2000}), "over the limit of 1000 bytes"),
        (
            _export_text(header={"format": "prontodb-export", "version": 1, "caches": {"p": 5}}),
            "bad TTL namespace",
        ),
        (_export_text({**GOOD, "value": "\ud800"}), "not valid Unicode"),
    ],
)
def test_import_refuses_malformed_input_and_writes_nothing(tmp_path, data, message):
    store = open_store(tmp_path, "sqlite", "b", FakeClock(), max_value_bytes=1000)
    store.set("p.n.keep", "kept")
    before = everything(store.backend)
    with pytest.raises(DataFormatError, match=message):
        portable.import_layer(store, io.BytesIO(data))
    assert everything(store.backend) == before


def test_import_takes_white_space_around_a_line(tmp_path):
    store = open_store(tmp_path, "sqlite", "b", FakeClock())
    line = json.dumps(GOOD)
    data = _export_text(f" \t{line}", f"{line.replace('p.n.k', 'p.n.j')}  \r")
    assert portable.import_layer(store, io.BytesIO(data)).imported == 2
    assert (store.get("p.n.k"), store.get("p.n.j")) == (b"v", b"v")


def test_import_bounds_line_length(tmp_path):
    store = open_store(tmp_path, "sqlite", "b", FakeClock(), max_value_bytes=100)
    huge = _export_text(GOOD) + b"\n" + b"x" * (10 << 20)
    with pytest.raises(DataFormatError, match="longer than"):
        portable.import_layer(store, io.BytesIO(huge))
    assert store.count() == 0


def test_stream_format_round_trips_through_the_tokenizer(tmp_path):
    clock = FakeClock()
    store = open_store(tmp_path, "sqlite", "a", clock)
    store.set("p.n.k", 'ends with quote"')
    store.set("p.n.k__ctx", "")
    store.set("p.n.multi", 'line 1\n  line 2 \' "x" ')
    store.set("p.m.t", "ttl'd", ttl=90)
    store.set("p.m.u", "=:=")
    clock.advance(0.5)
    text = export_bytes(store, format="stream").decode()
    tokens = tokenize(text)
    values = {}
    namespace, ttl = None, None
    for tok in tokens:
        if tok.prefix == "meta" and tok.key == "path":
            namespace = tok.value
        elif tok.prefix == "meta" and tok.key == "ttl":
            ttl = tok.value
        else:
            values[f"{namespace}.{tok.key}"] = (tok.value, ttl)
    assert values == {
        "p.m.t": ("ttl'd", "90"),
        "p.m.u": ("=:=", "none"),
        "p.n.k": ('ends with quote"', "none"),
        "p.n.k__ctx": ("", "none"),
        "p.n.multi": ('line 1\n  line 2 \' "x" ', "none"),
    }


@pytest.mark.parametrize(("value", "why"), [(b"a;b", "contains ';'"), (b"\xff", "not valid UTF-8")])
def test_stream_format_refuses_what_it_cannot_carry(tmp_path, value, why):
    store = open_store(tmp_path, "sqlite", "a", FakeClock())
    store.set("p.n.fine", "ok")
    store.set("p.n.bad", value)
    out = io.BytesIO()
    with pytest.raises(DataFormatError, match=f"p.n.bad.*{why}"):
        portable.export_layer(store, out, format="stream")
    assert out.getvalue() == b""  # refused before anything was written


# -- CLI -----------------------------------------------------------------------------------


@pytest.fixture
def cli_run(home):
    from prontodb.cli import cli

    runner = CliRunner()

    def invoke(*args, input=None):
        result = runner.invoke(cli, list(args), input=input)
        return result.exit_code, result.stdout_bytes, result.stderr

    return invoke


@pytest.mark.parametrize("engine", ENGINES)
def test_cli_export_import_gives_identical_scan_json(cli_run, tmp_path, engine):
    run = cli_run
    assert run("set", "kb.recipes.pasta", "red")[0] == 0
    assert run("set", "kb.recipes.bin", input=BINARY)[0] == 0
    assert run("set", "kb.recipes.pasta__dev", "")[0] == 0
    assert run("set", "kb.notes.later", "x", "--ttl", "1h")[0] == 0
    assert run("create-cache", "kb.cache", "600")[0] == 0
    assert run("set", "kb.cache.hit", "cached")[0] == 0
    code, data, err = run("export")
    assert code == 0 and "exported 5 entries and 1 TTL namespace" in err
    assert run("cursor", "set", "other", "--backend", engine)[0] == 0
    code, out, err = run("--cursor", "other", "import", input=data)
    assert code == 0, err
    assert "imported 5 of 5 entries" in err

    def scanned(*flags: str) -> list[dict]:
        # an import gives fresh versions (and, until export carries it, a fresh write time)
        rows = [json.loads(line) for line in run(*flags, "scan", "--json")[1].splitlines()]
        return [{k: v for k, v in r.items() if k not in ("version", "written_at")} for r in rows]

    assert scanned("--cursor", "other") == scanned()
    assert run("--cursor", "other", "caches")[1] == run("caches")[1]
    target = tmp_path / "d.jsonl"
    code, out, _ = run("--json", "export", "kb.recipes", "-o", str(target))
    assert json.loads(out) == {"entries": 3, "caches": 0, "scope": "kb.recipes", "format": "jsonl"}
    assert oct(os.stat(target).st_mode & 0o777) == "0o600"
    code, out, err = run(
        "--cursor", "other", "--json", "import", str(target), "--on-conflict", "fail"
    )
    assert code == 1 and out == b"" and "already exists" in err


def test_cli_stream_export_feeds_prontodb_stream(cli_run, tmp_path):
    run = cli_run
    assert run("set", "p.n.k", 'ends with quote"')[0] == 0
    assert run("set", "p.n.k__ctx", "")[0] == 0
    assert run("set", "p.n.multi", input=b'line 1\r\n  line 2 \' "x" ')[0] == 0
    assert run("set", "p.m.t", "ttl'd", "--ttl", "90")[0] == 0
    code, data, _ = run("export", "--format", "stream")
    assert code == 0
    other = str(tmp_path / "from-stream.sqlite")
    code, _, err = run("--database", other, "stream", input=data)
    assert code == 0, err
    assert run("--database", other, "scan")[1] == run("scan")[1]
    assert 85 < int(run("--database", other, "ttl", "p.m.t")[1]) <= 90


def test_cli_errors_exit_1(cli_run, tmp_path):
    run = cli_run
    assert run("set", "p.n.k", "a;b")[0] == 0
    code, out, err = run("export", "--format", "stream")
    assert (code, out) == (1, b"") and "p.n.k" in err and "';'" in err
    assert run("import", str(tmp_path / "missing.jsonl"))[0] == 1
    code, _, err = run("import", input=b"not an export\n")
    assert code == 1 and "line 1" in err
    assert run("restore", str(tmp_path / "missing.tar.gz"))[0] == 1


# -- backup / restore ----------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_backup_restores_every_layer_onto_any_backend(tmp_path, src, dst):
    clock = FakeClock()
    a = open_store(tmp_path, src, "a", clock)
    populate(a, clock)
    summary = portable.backup(a, str(tmp_path / "b.tar.gz"))
    assert (summary.layers, summary.entries, summary.caches) == (4, 10, 3)
    b = open_store(tmp_path, dst, "b", clock)
    restored = portable.restore(b, summary.path)
    assert (restored.layers, restored.entries, restored.caches) == (4, 10, 3)
    assert raw_dump(b.backend, clock.now) == raw_dump(a.backend, clock.now)
    assert b.layer(user="alice").get("a.b.c") == b"alice's"
    assert b.layer(meta="m1").get("a.b.c") == b"\x00meta\xff"
    assert b.layer(user="bob", meta="m2").caches()["only.defs"] == 5
    a.close()
    b.close()


def test_backup_default_location_permissions_and_list(home, tmp_path):
    clock = FakeClock()
    store = open_store(tmp_path, "sqlite", "mystore", clock)
    populate(store, clock)
    first = portable.backup(store)
    second = portable.backup(store)
    folder = portable.backup_dir()
    assert folder == os.path.join(home["XDG_DATA_HOME"], "prontodb", "backups")
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert os.path.dirname(first.path) == folder
    assert os.path.basename(first.path).startswith("mystore-")
    assert first.path.endswith(".tar.gz") and first.path != second.path
    assert os.stat(first.path).st_mode & 0o777 == 0o600
    listed = portable.list_backups()
    assert [item["path"] for item in listed] == sorted([first.path, second.path])
    assert listed[0]["entries"] == 10 and listed[0]["backend"] == "sqlite"
    assert not [n for n in os.listdir(folder) if n.startswith(".")]  # no temporary leftovers
    manifest = portable.read_manifest(first.path)
    assert manifest["created"].endswith("Z")
    with tarfile.open(first.path) as tar:
        names = tar.getnames()
        assert names[0] == "manifest.json"
        for name, facts in manifest["members"].items():
            data = tar.extractfile(name).read()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (facts["size"], facts["sha256"])


def test_restore_needs_replace_for_a_non_empty_target(tmp_path):
    clock = FakeClock()
    a = open_store(tmp_path, "sqlite", "a", clock)
    populate(a, clock)
    archive = portable.backup(a, str(tmp_path / "b.tar.gz")).path
    b = open_store(tmp_path, "lmdb" if _available("lmdb") else "sqlite", "b", clock)
    b.set("old.data.k", "v")
    b.layer(user="carol").set("c.c.c", "carol")
    with pytest.raises(ConflictError, match="replace=True"):
        portable.restore(b, archive)
    assert b.get("old.data.k") == b"v"
    summary = portable.restore(b, archive, replace=True)
    assert summary.cleared == 2
    assert raw_dump(b.backend, clock.now) == raw_dump(a.backend, clock.now)
    clock.advance(4000)  # kb.notes.later has expired by now
    c = open_store(tmp_path, "sqlite", "c", clock)
    assert portable.restore(c, archive).expired == 2  # and kb.cache.hit


BACKUP_WRITER = """
import sys, prontodb
path, engine = sys.argv[1], sys.argv[2]
store = prontodb.open(path, backend=engine)
i = 0
while True:
    store.set_many([(f"w.a.k{i:07d}", str(i)), (f"w.z.k{i:07d}", str(i))])
    i += 1
    if i == 20:
        print("writing", flush=True)
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_backup_is_a_consistent_snapshot_while_another_process_writes(tmp_path, engine):
    store = open_store(tmp_path, engine, "live")
    # filler between the two halves of each pair, so a scan takes a while to get across
    store.set_many((f"w.m.f{i:06d}", "x" * 50) for i in range(20_000))
    writer = subprocess.Popen(
        [sys.executable, "-c", BACKUP_WRITER, store.backend.path, engine],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    pairs: list[int] = []
    try:
        assert writer.stdout.readline() == b"writing\n"
        # at least 3 backups, more (up to 10) until the writer is seen to have moved on
        for attempt in range(10):
            archive = portable.backup(store, str(tmp_path / f"b{attempt}.tar.gz")).path
            with tarfile.open(archive) as tar:
                lines = tar.extractfile("layers/default.jsonl").read().splitlines()[1:]
            names = [json.loads(line)["address"] for line in lines]
            halves = {
                side: {n.rsplit(".", 1)[1] for n in names if n.startswith(f"w.{side}.")}
                for side in "az"
            }
            assert halves["a"] == halves["z"]  # never half a pair
            assert sum(n.startswith("w.m.") for n in names) == 20_000
            pairs.append(len(halves["a"]))
            if attempt >= 2 and pairs[-1] > pairs[0]:
                break
    finally:
        writer.kill()
        writer.wait()
    assert pairs[0] > 0 and pairs[-1] > pairs[0]  # the writer really ran during the backups


def _members(archive: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar.getmembers()]


def _write_tar(path: str, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _edit_manifest(members, change):
    manifest = json.loads(members[0][1])
    change(manifest)
    return [(members[0][0], json.dumps(manifest).encode()), *members[1:]]


def _member(name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, data


def _bomb(members):
    """A consistent archive (sizes and checksums agree) whose member inflates to 64 MiB."""
    info, data = members[2]
    bomb = data.split(b"\n", 1)[0] + b"\n" + b"0" * (64 << 20)
    facts = {"size": len(bomb), "sha256": hashlib.sha256(bomb).hexdigest()}
    members = _edit_manifest(members, lambda man: man["members"][info.name].update(facts))
    return [*members[:2], (info, bomb), *members[3:]]


def _flip(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]


CORRUPTIONS = {
    "flipped-byte": lambda raw, m: _flip(raw),
    "truncated": lambda raw, m: raw[: len(raw) * 2 // 3],
    "not-gzip": lambda raw, m: b"hello, I am not an archive\n",
    "missing-member": lambda raw, m: m[:-1],
    "wrong-checksum": lambda raw, m: _edit_manifest(
        m, lambda man: man["members"]["layers/default.jsonl"].update(sha256="0" * 64)
    ),
    "content-changed-same-size": lambda raw, m: [
        *m[:2],
        m[2],
        (m[3][0], m[3][1].replace(b"cached", b"CACHED")),
        *m[4:],
    ],
    "count-changed": lambda raw, m: _edit_manifest(
        m, lambda man: man["layers"][1].update(entries=99)
    ),
    "escaping-path": lambda raw, m: [*m, _member("../escape.jsonl", b"{}\n")],
    "absolute-path": lambda raw, m: [*m, _member("/tmp/evil.jsonl", b"{}\n")],
    "symlink-member": lambda raw, m: [
        *m[:3],
        _member("layers/default.jsonl", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        *m[4:],
    ],
    "hardlink-member": lambda raw, m: [
        *m[:3],
        _member("layers/default.jsonl", kind=tarfile.LNKTYPE, link="layers/alice.jsonl"),
        *m[4:],
    ],
    "unexpected-member": lambda raw, m: [*m, _member("layers/extra.jsonl", b"{}\n")],
    "duplicate-member": lambda raw, m: [*m, m[-1]],
    "manifest-not-first": lambda raw, m: [*m[1:], m[0]],
    "decompression-bomb": lambda raw, m: _bomb(m),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_archives_are_refused_and_the_target_is_untouched(tmp_path, kind):
    clock = FakeClock()
    source = open_store(tmp_path, "sqlite", "a", clock)
    populate(source, clock)
    good = portable.backup(source, str(tmp_path / "good.tar.gz")).path
    raw = open(good, "rb").read()
    damaged = CORRUPTIONS[kind](raw, _members(good))
    bad = str(tmp_path / "bad.tar.gz")
    if isinstance(damaged, bytes):
        open(bad, "wb").write(damaged)
    else:
        _write_tar(bad, damaged)
    target = open_store(tmp_path, "sqlite", "target", clock, max_value_bytes=1 << 20)
    target.set("keep.this.k", "precious")
    target.layer(user="alice").set("a.b.c", "different")
    before = everything(target.backend)
    with pytest.raises(DataFormatError):
        portable.restore(target, bad, replace=True)
    assert everything(target.backend) == before


def test_restore_caps_the_uncompressed_size(tmp_path):
    clock = FakeClock()
    source = open_store(tmp_path, "sqlite", "a", clock)
    source.set_many((f"p.n.k{i:06d}", "v" * 100) for i in range(10_000))
    archive = portable.backup(source, str(tmp_path / "b.tar.gz")).path
    target = open_store(tmp_path, "sqlite", "t", clock)
    with pytest.raises(DataFormatError, match="limit|more than"):
        portable.restore(target, archive, max_uncompressed=256 << 10)
    assert target.count() == 0
    assert portable.restore(target, archive).entries == 10_000


def test_cli_restore_refuses_a_damaged_archive_with_exit_1(cli_run, tmp_path):
    run = cli_run
    assert run("set", "p.n.k", "v")[0] == 0
    code, out, _ = run("backup", "-o", str(tmp_path / "b.tar.gz"))
    assert code == 0 and out.decode().strip() == str(tmp_path / "b.tar.gz")
    raw = (tmp_path / "b.tar.gz").read_bytes()
    (tmp_path / "b.tar.gz").write_bytes(raw[: len(raw) // 2])
    assert run("set", "p.n.k", "changed")[0] == 0
    code, out, err = run("restore", str(tmp_path / "b.tar.gz"), "--replace")
    assert (code, out) == (1, b"") and "damaged or truncated" in err
    assert run("get", "p.n.k")[1] == b"changed"


def test_cli_backup_list_restore_into_cursor(cli_run, monkeypatch):
    run = cli_run
    assert run("set", "p.n.k", "v")[0] == 0
    assert run("--meta", "m1", "set", "a.b.c", "al")[0] == 0
    code, out, err = run("backup")
    assert code == 0 and "2 entries" in err
    archive = out.decode().strip()
    code, out, _ = run("backup", "--list")
    assert out.decode().startswith(archive + "\t")
    code, out, _ = run("--json", "backup", "--list")
    assert json.loads(out)["entries"] == 2
    assert run("cursor", "set", "copy", "--backend", "diskcache")[0] == 0
    code, out, err = run("--json", "restore", archive, "--into", "copy")
    assert code == 0, err
    assert json.loads(out)["entries"] == 2
    copy = cursor.load("default", "copy").path
    assert run("--database", copy, "--meta", "m1", "get", "a.b.c")[1] == b"al"
    assert run("--cursor=copy", "get", "p.n.k")[1] == b"v"
    assert run("--cursor=copy", "restore", archive)[0] == 1  # not empty any more
    code, _, err = run("restore", archive, "--user", "alice")  # alice's own default store
    assert code == 0, err
    monkeypatch.setenv("PRONTO_FORCE_USER", "alice")
    code, _, err = run("restore", archive, "--replace")
    assert code == 1 and "locked" in err


# -- migrate -------------------------------------------------------------------------------


def _cursor_store(engine: str, clock):
    cursor.define("default", "work", backend=engine)
    store = prontodb.open(cursor="work", clock=clock)
    populate(store, clock)
    return store


@pytest.mark.parametrize(("src", "dst"), [p for p in PAIRS if p.values[0] != p.values[1]])
def test_migrate_preserves_everything_and_repoints(home, src, dst):
    clock = FakeClock()
    store = _cursor_store(src, clock)
    old_path = store.backend.path
    expected = raw_dump(store.backend, clock.now)
    revision = store.revision()
    assert revision > 0
    store.close()
    summary = portable.migrate("default", "work", dst, clock=clock)
    spec = cursor.load("default", "work")
    assert (spec.backend, spec.path) == (dst, summary.new_path)
    assert summary.new_path == os.path.splitext(old_path)[0] + EXTENSIONS[dst]
    assert (summary.layers, summary.entries, summary.caches) == (4, 10, 3)
    assert not summary.removed_old and not os.path.exists(old_path)
    retired = summary.old_path  # kept, under a name no process still holding it can write to
    assert os.path.basename(retired).startswith("work.migrated-") and os.path.exists(retired)
    with prontodb.open(retired, clock=clock) as kept:
        assert raw_dump(kept.backend, clock.now) == expected
    moved = prontodb.open(cursor="work", clock=clock)
    assert moved.backend.name == dst
    assert raw_dump(moved.backend, clock.now) == expected
    assert moved.revision() == revision  # versions are carried, so is the counter
    assert moved.ttl("kb.notes.later") == 3598
    folder = os.path.dirname(old_path)
    assert not [n for n in os.listdir(folder) if n.startswith(".prontodb-")]
    moved.close()


def test_migrate_remove_old_and_refusals(home, tmp_path):
    clock = FakeClock()
    store = _cursor_store("sqlite", clock)
    old = store.backend.path
    store.close()
    with pytest.raises(prontodb.UsageError):
        portable.migrate("default", "work", "sqlite")
    taken = tmp_path / "taken.diskcache"
    taken.mkdir()
    with pytest.raises(prontodb.ConfigError, match="already exists"):
        portable.migrate("default", "work", "diskcache", path=str(taken))
    cursor.define("default", "twin", old)
    with pytest.raises(prontodb.ConfigError, match="twin"):
        portable.migrate("default", "work", "diskcache", remove_old=True)
    cursor.delete("default", "twin")
    target = str(tmp_path / "elsewhere" / "moved.db")
    summary = portable.migrate("default", "work", "sqlite", path=target, remove_old=True)
    assert summary.removed_old and not os.path.exists(old)
    assert cursor.load("default", "work").path == target
    assert prontodb.open(cursor="work").get("kb.recipes.bin") == BINARY


def test_a_failed_migrate_leaves_the_cursor_on_the_old_store(home, monkeypatch):
    clock = FakeClock()
    store = _cursor_store("sqlite", clock)
    expected = everything(store.backend)
    store.close()
    spec = cursor.load("default", "work")

    def crash(tmp, new):
        raise RuntimeError("power cut")

    monkeypatch.setattr(_MIGRATION, "_move_store", crash)
    with pytest.raises(RuntimeError):
        portable.migrate("default", "work", "diskcache", clock=clock)
    assert cursor.load("default", "work") == spec
    folder = os.path.dirname(spec.path)
    assert sorted(os.listdir(folder)) == ["work.sqlite"]
    with prontodb.open(cursor="work") as again:
        assert everything(again.backend) == expected


def test_a_write_during_the_copy_is_carried_over_not_lost(home, monkeypatch):
    clock = FakeClock()
    store = _cursor_store("sqlite", clock)
    path = store.backend.path
    store.close()
    spec = cursor.load("default", "work")
    copy = _MIGRATION._copy_store

    calls = []

    def copy_then_write(*args, **kwargs):
        stats = copy(*args, **kwargs)
        calls.append(kwargs["consistent"])
        if len(calls) == 1:  # another process writes once the first copy is done
            with prontodb.open(path) as other:
                other.set("late.write.k", "would be lost")
        return stats

    monkeypatch.setattr(_MIGRATION, "_copy_store", copy_then_write)
    summary = portable.migrate("default", "work", "diskcache", clock=clock)
    assert cursor.load("default", "work") == spec.replace(
        path=summary.new_path, backend="diskcache"
    )
    assert calls == [False, True]  # the copy was redone under the write lock
    with prontodb.open(cursor="work") as moved:
        assert moved.get("late.write.k") == b"would be lost"
    assert summary.entries == 11


def test_cli_cursor_migrate(cli_run):
    run = cli_run
    assert run("cursor", "set", "w")[0] == 0
    assert run("--cursor", "w", "set", "p.n.k", "v", "--ttl", "1h")[0] == 0
    code, out, err = run("cursor", "migrate", "w", "--backend", "diskcache")
    assert code == 0 and out == b"", err
    assert "stays at" in err and "w.migrated-" in err
    assert run("--cursor", "w", "get", "p.n.k")[1] == b"v"
    assert 3590 < int(run("--cursor", "w", "ttl", "p.n.k")[1]) <= 3600
    occupied = os.path.join(os.environ["XDG_DATA_HOME"], "taken.sqlite")
    assert run("--database", occupied, "set", "o.t.k", "v")[0] == 0
    code, out, err = run("cursor", "migrate", "w", "--backend", "sqlite", "--to", occupied)
    assert code == 1 and "already exists" in err and "--replace-target" in err
    code, out, _ = run(
        "--json",
        "cursor",
        "migrate",
        "w",
        "--backend",
        "sqlite",
        "--path",
        os.path.join(os.environ["XDG_DATA_HOME"], "w2.sqlite"),
        "--remove-old",
    )
    assert code == 0 and json.loads(out)["removed_old"] is True
    assert run("cursor", "migrate", "nope", "--backend", "lmdb")[0] == 1


# -- crash safety --------------------------------------------------------------------------


KILLED_IMPORT = """
import os, sys, time, prontodb
from prontodb import portable
path, engine, source = sys.argv[1:4]

class Stall:
    def start(self, label, total, unit):
        self.label, self.done = label, 0
    def advance(self, n):
        self.done += n
        if self.label == "importing" and self.done >= 5000:
            print("applying", flush=True)
            time.sleep(60)
    def finish(self):
        pass

store = prontodb.open(path, backend=engine)
with open(source, "rb") as fh:
    portable.import_layer(store, fh, size=os.path.getsize(source), progress=Stall())
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_a_killed_import_leaves_the_target_unchanged(tmp_path, engine):
    clock = FakeClock()
    source = open_store(tmp_path, "sqlite", "src", clock)
    source.set_many((f"p.n.k{i:06d}", f"new {i}") for i in range(20_000))
    source.create_cache("p.c", 60)
    export = tmp_path / "big.jsonl"
    portable.export_file(source, str(export))
    target = open_store(tmp_path, engine, "target")
    target.set_many((f"p.n.k{i:06d}", f"old {i}") for i in range(0, 20_000, 7))
    path = target.backend.path
    before = everything(target.backend)
    target.close()
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_IMPORT, path, engine, str(export)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert child.stdout.readline() == b"applying\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with prontodb.open(path, backend=engine) as again:
        assert everything(again.backend) == before
        assert again.backend.check() == []
        # and the same import, not killed, goes through
        with open(export, "rb") as fh:
            assert portable.import_layer(again, fh).imported == 20_000


KILLED_MIGRATE = textwrap.dedent(
    """
    import sys, time
    from prontodb import portable

    class Stall:
        def start(self, label, total, unit):
            self.done = 0
        def advance(self, n):
            self.done += n
            if self.done >= 2000:
                print("copying", flush=True)
                time.sleep(60)
        def finish(self):
            pass

    portable.migrate("default", "work", sys.argv[1], progress=Stall())
    """
)


def test_a_killed_migrate_leaves_the_cursor_on_the_intact_old_store(home):
    clock = FakeClock()
    store = _cursor_store("sqlite", clock)
    store.set_many((f"bulk.n.k{i:05d}", "x") for i in range(5000))
    expected = everything(store.backend)
    store.close()
    spec = cursor.load("default", "work")
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_MIGRATE, "diskcache"],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=home,
    )
    try:
        assert child.stdout.readline() == b"copying\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert cursor.load("default", "work") == spec
    assert not os.path.exists(portable.migrate_path(spec.path, "diskcache"))
    with prontodb.open(cursor="work") as again:
        assert everything(again.backend) == expected
    # a later migrate is not blocked by what the killed one left behind
    assert portable.migrate("default", "work", "diskcache", clock=clock).entries == 5010
    assert not [n for n in os.listdir(os.path.dirname(spec.path)) if n.startswith(".prontodb-")]


def test_backup_under_a_locked_context_holds_only_the_locked_layers(home, tmp_path):
    import subprocess
    import sys
    import tarfile

    db = str(tmp_path / "shared.sqlite")
    cli = [sys.executable, "-m", "prontodb", "--database", db]
    subprocess.run(
        cli + ["--user", "alice", "set", "p.n.secret", "alice-secret"], env=home, check=True
    )
    subprocess.run(
        cli + ["--user", "bob", "--meta", "m", "set", "p.n.x", "bob"], env=home, check=True
    )
    subprocess.run(cli + ["--user", "bob", "set", "p.n.y", "bob-plain"], env=home, check=True)
    locked = dict(home, PRONTO_FORCE_USER="bob", PRONTO_FORCE_META="m")
    out = str(tmp_path / "b.tar.gz")
    subprocess.run(cli + ["backup", "-o", out], env=locked, check=True, capture_output=True)
    with tarfile.open(out) as tar:
        data = b"".join(
            tar.extractfile(m).read()
            for m in tar.getmembers()
            if m.isfile()  # type: ignore[union-attr]
        )
    assert b"bob" in data
    assert b"alice-secret" not in data
    assert b"bob-plain" not in data


def test_stream_export_of_a_key_named_ns_round_trips(tmp_path):
    from prontodb import portable, stream

    path = str(tmp_path / "out.stream")
    with prontodb.open(str(tmp_path / "a.sqlite")) as a:
        a.set("p.n.ns", b"value")
        a.set("p.n.other", b"x")
        portable.export_file(a, path, format="stream")
    with prontodb.open(str(tmp_path / "b.sqlite")) as b:
        stream.load(b, open(path, "rb").read())
        assert dict(b.scan("p.n")) == {"ns": b"value", "other": b"x"}


def test_import_and_restore_keep_write_times_and_give_fresh_versions(tmp_path):
    clock = FakeClock()
    a = open_store(tmp_path, "sqlite", "a", clock)
    a.set("p.n.k", "v1")
    a.set("p.n.k", "v2")
    written = a.get_entry("p.n.k").written_at
    clock.advance(100)
    data = export_bytes(a)
    row = json.loads(data.splitlines()[1])
    assert row["written_at"] == written and row["version"] == a.get_entry("p.n.k").version
    b = open_store(tmp_path, "lmdb", "b", clock)
    b.set("x.y.z", "bump the revision")
    portable.import_layer(b, io.BytesIO(data))
    entry = b.get_entry("p.n.k")
    assert entry.written_at == written  # kept
    assert entry.version == b.revision()  # fresh: the import's own write
    archive = portable.backup(a, str(tmp_path / "a.tar.gz")).path
    c = open_store(tmp_path, "diskcache", "c", clock)
    portable.restore(c, archive)
    assert c.get_entry("p.n.k").written_at == written
    for store in (a, b, c):
        store.close()


def test_exports_of_earlier_releases_without_write_times_import_unchanged(tmp_path):
    clock = FakeClock()
    store = open_store(tmp_path, "sqlite", "a", clock)
    head = {"format": "prontodb-export", "version": 1, "caches": {}}
    row = {"address": "p.n.k", "value": "v", "encoding": "utf-8", "expires_at": None}
    data = (json.dumps(head) + "\n" + json.dumps(row) + "\n").encode()
    assert portable.import_layer(store, io.BytesIO(data)).imported == 1
    assert store.get_entry("p.n.k").written_at == clock.now  # written now
    store.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("written_at", "yesterday"),
        ("written_at", -5),
        ("written_at", 1e300),
        ("version", -1),
        ("version", 1.5),
        ("version", True),
    ],
)
def test_import_refuses_bad_write_times_and_versions(tmp_path, field, value):
    store = open_store(tmp_path, "sqlite", "a", FakeClock())
    head = {"format": "prontodb-export", "version": 1, "caches": {}}
    row = {"address": "p.n.k", "value": "v", "encoding": "utf-8", "expires_at": None}
    row[field] = value
    data = (json.dumps(head) + "\n" + json.dumps(row) + "\n").encode()
    with pytest.raises(DataFormatError, match=field):
        portable.import_layer(store, io.BytesIO(data))
    store.close()


@pytest.mark.parametrize("name", ["____0", "a____b", "x__y__z", "a___b", "k_", "_k__c"])
def test_export_keeps_keys_that_hold_double_underscores_before_a_context(tmp_path, name):
    """``p.n.____0`` is key ``__`` with context ``0`` (split at the last ``__``): a set accepts
    it, so export must write it and import must read back the same entry (hypothesis found
    export refusing it as a damaged key)."""
    with prontodb.open(str(tmp_path / "a.sqlite")) as source:
        source.set(f"p.n.{name}", b"v")
        out = io.BytesIO()
        portable.export_layer(source, out)
        wanted = [(e.address, e.value) for e in source.entries()]
    with prontodb.open(str(tmp_path / "b.sqlite")) as target:
        portable.import_layer(target, io.BytesIO(out.getvalue()))
        assert [(e.address, e.value) for e in target.entries()] == wanted
