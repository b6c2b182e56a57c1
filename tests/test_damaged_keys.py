"""Keys damaged on disk (issue 19): a flipped byte in a SQLite file's key is reported as
CorruptStoreError by every listing, never an unexpected UnicodeDecodeError or ValueError, and
doctor reports it as an unreadable entry (docs/reliability.md, "Damaged keys")."""

from __future__ import annotations

import shutil

import pytest

import prontodb
from prontodb import doctor, keyspace
from prontodb.errors import CorruptStoreError

NAMES = [f"alpha{i:03d}" for i in range(40)]


def _listings(store: prontodb.Store) -> None:
    store.keys()
    store.keys("proj.ns")
    list(store.scan("proj.ns"))
    list(store.scan("proj.ns", "alpha*"))
    list(store.entries("proj"))
    store.projects()
    store.namespaces("proj")
    store.caches()


@pytest.fixture
def pristine(tmp_path):
    path = str(tmp_path / "pristine.db")
    with prontodb.open(path, backend="sqlite") as store:
        store.create_cache("proj.cache", 3600)
        for name in NAMES:
            store.set(f"proj.ns.{name}", b"v")
            store.set(f"proj.ns.{name}__ctx", b"w")
        store.set("proj.cache.k", b"c")
        _listings(store)
    return path


def _flipped(pristine: str, target: str, needle: bytes, offset: int, byte: int) -> str:
    data = bytearray(open(pristine, "rb").read())
    at = data.find(needle)
    assert at >= 0, f"{needle!r} is not in the file as written"
    data[at + offset] = byte
    open(target, "wb").write(bytes(data))
    return target


# (what is found in the file, which of its bytes is changed, to what)
FLIPS = [
    (b"alpha017", 5, 0xFF),  # not UTF-8
    (b"alpha017", 0, 0xC3),  # a UTF-8 lead byte without its continuation
    (b"alpha017", 3, 0x00),  # one more segment
    (b"alpha017\x00ctx", 8, 0x01),  # one segment fewer (the context joins the key)
    (b"ns\x00alpha017", 2, 0x80),  # the separator itself
    (b"cache\x00k\x00", 5, 0x01),
    (b"proj\x00cache", 1, 0xFE),  # a TTL definition key
]


@pytest.mark.parametrize(("needle", "offset", "byte"), FLIPS)
def test_flipped_key_byte_is_corruption(pristine, tmp_path, needle, offset, byte):
    path = _flipped(pristine, str(tmp_path / "flipped.db"), needle, offset, byte)
    with (
        prontodb.open(path, backend="sqlite") as store,
        pytest.raises(CorruptStoreError, match="damaged key"),
    ):
        _listings(store)
    report = doctor.examine(path)
    assert not report.healthy
    assert any("damaged key" in f.message or "integrity" in f.check for f in report.findings)


def test_every_byte_of_a_key_flipped(pristine, tmp_path):
    """The probe of issue 19 in small: each byte of one entry key, each bit flipped; every
    listing either works or raises CorruptStoreError."""
    data = open(pristine, "rb").read()
    needle = b"proj\x00ns\x00alpha023\x00"
    at = data.find(needle)
    assert at >= 0
    target = tmp_path / "probe.db"
    outcomes = {"ok": 0, "corrupt": 0}
    for i in range(len(needle)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[at + i] ^= 1 << bit
            target.write_bytes(bytes(flipped))
            with prontodb.open(str(target), backend="sqlite") as store:
                try:
                    _listings(store)
                    outcomes["ok"] += 1
                except CorruptStoreError:
                    outcomes["corrupt"] += 1
    assert outcomes["corrupt"] > 0
    assert sum(outcomes.values()) == len(needle) * 8


def test_pristine_copy_lists(pristine, tmp_path):
    assert doctor.examine(pristine).healthy
    copy = str(tmp_path / "copy.db")
    shutil.copy(pristine, copy)
    with prontodb.open(copy, backend="sqlite") as store:
        assert len(store.keys("proj.ns")) == 2 * len(NAMES)


def test_segments_refuses_what_the_store_never_writes():
    layer = keyspace.layer_prefix("u", None)
    ok = layer + b"p\x00n\x00k\x00"
    assert keyspace.decode_entry(len(layer), ok) == prontodb.Address("p", "n", "k")
    for bad in (layer + b"p\x00n\x00k", layer + b"p\x00\x00k\x00", layer + b"\xffp\x00n\x00k\x00"):
        with pytest.raises(CorruptStoreError, match="damaged key"):
            keyspace.decode_entry(len(layer), bad)
        with pytest.raises(CorruptStoreError, match="damaged key"):
            keyspace.split_layer(bad)
