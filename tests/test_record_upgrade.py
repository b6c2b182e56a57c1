"""A store written by the previous release (envelope format 1, frozen in tests/fixtures/v1 by
make_v1_stores.py) opens unchanged, reads as version 0, and is upgraded entry by entry."""

from __future__ import annotations

import os
import shutil

import pytest

import prontodb
from prontodb.clock import FakeClock

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "v1")
FILES = {"sqlite": "v1.sqlite", "lmdb": "v1.lmdb", "diskcache": "v1.diskcache"}
LIVE = {
    "app.cfg.blob": bytes(range(256)),
    "app.cfg.empty": b"",
    "app.cfg.name": b"pronto",
    "app.cfg.name__dev": b"pronto-dev",
    "app.run.counter": b"41\n",
    "app.run.lease": b"long",
    "app.tmp.cached": b"in a ttl namespace",
}


@pytest.fixture(params=sorted(FILES))
def old_store(request, tmp_path):
    name = FILES[request.param]
    source = os.path.join(FIXTURES, name)
    target = str(tmp_path / name)
    if os.path.isdir(source):
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    for root, dirs, files in os.walk(target) if os.path.isdir(target) else ():
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
        for f in files:
            os.chmod(os.path.join(root, f), 0o600)
    os.chmod(target, 0o700 if os.path.isdir(target) else 0o600)
    clock = FakeClock(1_800_000_000.0)
    store = prontodb.open(target, clock=clock)  # engine sniffed from the file itself
    assert store.backend.name == request.param
    yield store, clock
    store.close()


def test_old_store_reads_unchanged_as_version_zero(old_store):
    store, _ = old_store
    assert store.revision() == 0
    assert dict(store.scan()) == LIVE
    for address, value in LIVE.items():
        entry = store.entry(address)
        assert (entry.value, entry.version, entry.written_at) == (value, 0, None)
    assert store.ttl("app.run.lease") is not None
    assert not store.exists("app.run.gone")  # expired long ago, still stored
    assert store.caches()["app.tmp"] == 36500 * 86400
    assert store.layer(user="alice").get("app.cfg.name") == b"alice's"
    assert store.layer(meta="prod").get("app.cfg.name") == b"prod's"
    assert store.envelope_formats() == {1: 10}


def test_old_store_upgrades_entry_by_entry(old_store):
    store, clock = old_store
    assert store.set("app.cfg.name", b"v2", if_version=0)  # a live old entry has version 0
    assert store.incr("app.run.counter") == 42
    lease = store.entry("app.run.lease")
    store.persist("app.run.lease")
    assert store.envelope_formats() == {1: 7, 2: 3}
    entry = store.entry("app.cfg.name")
    assert (entry.value, entry.version, entry.written_at) == (b"v2", 1, clock.now)
    assert store.entry("app.run.counter").version == 2
    assert store.entry("app.run.lease").value == lease.value
    assert store.revision() == 3
    # the rest still reads as before
    assert store.get("app.cfg.blob") == bytes(range(256))
    assert store.entry("app.cfg.name__dev").version == 0
    assert store.gc() == 1  # the expired old entry
    assert store.envelope_formats() == {1: 6, 2: 3}
    store.set_many([(a, store.get(a)) for a in store.keys(None) if store.entry(a).version == 0])
    for s in (store.layer(user="alice"), store.layer(meta="prod")):
        s.set("app.cfg.name", s.get("app.cfg.name"))
    assert store.envelope_formats() == {2: 9}
    assert dict(store.scan("app.cfg"))["name__dev"] == b"pronto-dev"
