"""Attack class: durations and deadlines at and past the one range (before the year 10000).

``record.DEADLINE_LIMIT_MS`` is the one range every reader and writer shares: import and
restore accept every deadline below it and refuse the rest with a clear error (never an
overflow reported as "unexpected"); export and backup only write what import and restore
accept — a store written by an earlier release with a deadline or TTL past the range still
exports and backs up into files that load.
"""

from __future__ import annotations

import io
import json

import pytest

import prontodb
from prontodb import keyspace, portable, record, stream
from prontodb.address import Address
from prontodb.errors import DataFormatError, StreamError
from tests._attack import prontodb as run

LIMIT_S = record.DEADLINE_LIMIT_MS / 1000


def _deadline(store, address: str) -> int | None:
    layer = keyspace.layer_prefix(store.user, store.meta)
    project, namespace, key = address.split(".")
    raw = store.backend.get(keyspace.entry_key(layer, Address(project, namespace, key, None)))
    return record.deadline_of(raw)


def _export(expires_at, caches=None) -> bytes:
    head = {"format": "prontodb-export", "version": 1, "caches": caches or {}}
    row = {"address": "p.n.k", "value": "v", "encoding": "utf-8", "expires_at": expires_at}
    return (json.dumps(head) + "\n" + json.dumps(row) + "\n").encode()


def test_the_last_deadline_of_the_range_round_trips(home):
    last = (record.DEADLINE_LIMIT_MS - 1) / 1000
    with prontodb.open() as store:
        assert portable.import_layer(store, io.BytesIO(_export(last))).imported == 1
        assert _deadline(store, "p.n.k") == record.DEADLINE_LIMIT_MS - 1
        out = io.BytesIO()
        portable.export_layer(store, out)
    assert json.loads(out.getvalue().splitlines()[1])["expires_at"] == last


@pytest.mark.parametrize(
    "expires_at",
    [LIMIT_S, LIMIT_S + 0.001, 1e300, -1e300, 2**63, -(2**63) - 1, 10**400],
    ids=["at-limit", "past-limit", "huge-float", "negative-float", "int64", "int64-low", "bigint"],
)
def test_import_refuses_deadlines_outside_the_range(home, expires_at):
    with prontodb.open() as store, pytest.raises(DataFormatError, match="out of range"):
        portable.import_layer(store, io.BytesIO(_export(expires_at)))


@pytest.mark.parametrize("seconds", [int(LIMIT_S), 999999999999 * 86400, 2**70])
def test_import_refuses_ttl_namespaces_past_the_range(home, seconds):
    with prontodb.open() as store, pytest.raises(DataFormatError, match="too large"):
        portable.import_layer(store, io.BytesIO(_export(None, {"p.c": seconds})))


def test_cli_import_of_an_overflowing_deadline_is_a_clear_error(home, tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(_export(1e300))
    code, _, err = run(home, "import", str(path))
    assert code == 1 and "out of range" in err and "unexpected" not in err


def _legacy_store(path: str) -> None:
    """A store as an earlier release could leave it: an entry whose deadline is past the year
    9999 and a TTL namespace whose TTL pushes every write past it."""
    with prontodb.open(path) as store:
        layer = keyspace.layer_prefix(store.user, store.meta)
        far = record.DEADLINE_LIMIT_MS + 10**12
        key = keyspace.entry_key(layer, Address("p", "n", "far", None))
        store.backend.put(key, record.pack(b"x", far))
        ttl_key = keyspace.ttl_key(keyspace.ttl_prefix(store.user, store.meta), "p", "c")
        store.backend.put(ttl_key, str(999999999999 * 86400).encode())
        store.set("p.n.plain", "y")


def test_export_of_a_legacy_store_always_imports(home, tmp_path):
    src = str(tmp_path / "legacy.sqlite")
    _legacy_store(src)
    out = io.BytesIO()
    with prontodb.open(src) as store:
        portable.export_layer(store, out)
    with prontodb.open(str(tmp_path / "copy.lmdb")) as copy:
        summary = portable.import_layer(copy, io.BytesIO(out.getvalue()))
        assert (summary.imported, summary.caches) == (2, 1)
        assert _deadline(copy, "p.n.far") == record.DEADLINE_LIMIT_MS - 1


def test_backup_of_a_legacy_store_always_restores(home, tmp_path):
    src = str(tmp_path / "legacy.sqlite")
    _legacy_store(src)
    with prontodb.open(src) as store:
        archive = portable.backup(store, str(tmp_path / "legacy.tar.gz")).path
    with prontodb.open(str(tmp_path / "restored.diskcache")) as target:
        assert portable.restore(target, archive).entries == 2
        assert target.get("p.n.far") == b"x"


@pytest.mark.parametrize("ttl", ["999999999999d", "3000000d", str(10**12)])
def test_stream_refuses_a_meta_ttl_past_the_range(ttl):
    with pytest.raises(StreamError, match="too large|invalid duration"):
        stream.plan(f"meta:path=p.n; meta:ttl={ttl}; k=v;")


def test_cli_stream_with_an_overflowing_ttl_is_a_clear_error(home):
    code, _, err = run(home, "stream", "-", stdin=b"meta:path=p.n; meta:ttl=999999999999d; k=v;")
    assert code in (1, 3) and "unexpected" not in err
