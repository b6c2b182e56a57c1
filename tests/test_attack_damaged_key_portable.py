"""Attack class: a damaged key on disk meets the portable paths (export, backup, migrate).

Every bit of one entry key (and of one TTL definition key) of a SQLite store is flipped in
the file; ``export``, ``backup`` and ``cursor migrate`` then either work — and what they wrote
is importable/restorable — or refuse with CorruptStoreError, which the CLI shows as a clear
error naming the damaged key (exit 1), never "unexpected" and never a half-written output.
"""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

import prontodb
from prontodb import cursor, portable
from prontodb.cli import cli
from prontodb.errors import CorruptStoreError

NEEDLES = {
    "entry": b"proj\x00ns\x00alpha023\x00",
    "ttl-definition": b"proj\x00cache",
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("pristine") / "pristine.sqlite")
    with prontodb.open(path, backend="sqlite") as store:
        store.create_cache("proj.cache", 3600)
        for i in range(40):
            store.set(f"proj.ns.alpha{i:03d}", b"v")
        store.set("proj.cache.k", b"c")
    return open(path, "rb").read()


def _flips(data: bytes, needle: bytes):
    at = data.find(needle)
    assert at >= 0, f"{needle!r} is not in the file as written"
    for i in range(len(needle)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[at + i] ^= 1 << bit
            yield i, bit, bytes(flipped)


def _cli(home, *args):
    result = CliRunner().invoke(cli, list(args), env={"PRONTO_DEBUG": None})
    return result.exit_code, result.stdout_bytes, result.stderr


def _damaged_or_ok(code: int, err: str, outcomes: dict[str, int]) -> None:
    assert "unexpected" not in err and "Traceback" not in err, err
    if code == 0:
        outcomes["ok"] += 1
    else:
        assert code == 1 and "damaged" in err, (code, err)
        outcomes["refused"] += 1


@pytest.mark.parametrize("which", sorted(NEEDLES))
def test_every_bit_of_a_key_flipped_export_and_backup(home, tmp_path, pristine, which):
    store_path = str(tmp_path / "probe.sqlite")
    out = str(tmp_path / "out.jsonl")
    archive = str(tmp_path / "out.tar.gz")
    outcomes = {"ok": 0, "refused": 0}
    for _, _, data in _flips(pristine, NEEDLES[which]):
        for leftover in (out, archive):
            if os.path.exists(leftover):
                os.unlink(leftover)
        with open(store_path, "wb") as fh:
            fh.write(data)
        code, _, err = _cli(home, "--database", store_path, "export", "-o", out)
        _damaged_or_ok(code, err, outcomes)
        if code == 0:  # what export wrote imports again
            assert _cli(home, "--database", str(tmp_path / "re.sqlite"), "import", out)[0] == 0
        else:
            assert not os.path.exists(out)  # nothing half written
        code, _, err = _cli(home, "--database", store_path, "backup", "-o", archive)
        _damaged_or_ok(code, err, outcomes)
        if code != 0:
            assert not os.path.exists(archive)
    assert outcomes["refused"] > 0
    assert sum(outcomes.values()) == len(NEEDLES[which]) * 8 * 2


@pytest.mark.parametrize("which", sorted(NEEDLES))
def test_every_bit_of_a_key_flipped_migrate(home, tmp_path, pristine, which):
    """``cursor migrate`` copies the raw keys: a damaged one refuses the migrate (the cursor
    stays on the old store, no copy is left) instead of carrying damage into the new store."""
    refused = ok = 0
    for n, (_, _, data) in enumerate(_flips(pristine, NEEDLES[which])):
        store_path = str(tmp_path / f"m{n}.sqlite")
        with open(store_path, "wb") as fh:
            fh.write(data)
        name = f"c{n}"
        cursor.define("default", name, path=store_path, backend="sqlite")
        code, _, err = _cli(home, "cursor", "migrate", name, "--backend", "lmdb")
        assert "unexpected" not in err and "Traceback" not in err, err
        spec = cursor.load("default", name)
        if code == 0:
            ok += 1
            assert spec.backend == "lmdb"
        else:
            assert code == 1 and "damaged" in err, (code, err)
            refused += 1
            assert spec.path == store_path and spec.backend == "sqlite"
            assert not os.path.exists(store_path[: -len(".sqlite")] + ".lmdb")
    assert refused > 0
    assert ok + refused == len(NEEDLES[which]) * 8


def test_the_library_raises_corrupt_store_error(tmp_path, pristine):
    """The same refusal from the library: CorruptStoreError naming the damaged key."""
    import io

    at = pristine.find(NEEDLES["entry"])
    flipped = bytearray(pristine)
    flipped[at + 9] = 0xFF  # inside "alpha023": not UTF-8
    path = str(tmp_path / "bad.sqlite")
    with open(path, "wb") as fh:
        fh.write(bytes(flipped))
    with (
        prontodb.open(path, create=False) as store,
        pytest.raises(CorruptStoreError, match="damaged key"),
    ):
        portable.export_layer(store, io.BytesIO())
