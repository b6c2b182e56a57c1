"""The page guard's caches (prontodb/backends/_lmdb_pages.py): a branch page read into lists
after its first visit, and the meta of the newest snapshot, must lead every read to exactly
the pages the uncached walk (liblmdb's own descent) leads it to."""

from __future__ import annotations

import os
import shutil
import struct

from prontodb.backends import _lmdb_pages as pages
from prontodb.backends.lmdb import LmdbBackend


def _store(tmp_path, entries: int = 30_000) -> LmdbBackend:
    backend = LmdbBackend(str(tmp_path / "walk.lmdb"))
    backend.put_many((b"k%06d" % i, b"v" * (i % 300)) for i in range(entries))
    return backend


def _guard(path: str) -> pages.PageGuard:
    return pages.PageGuard(path, os.open(path, os.O_RDONLY))


def _probes() -> list[bytes]:
    keys = [b"k%06d" % i for i in range(0, 30_000, 97)]
    return keys + [b"", b"a", b"k", b"k0", b"k015000x", b"k1", b"z", b"\xff" * 10]


def _leaf(guard: pages.PageGuard, meta: pages.Meta, key: bytes) -> int:
    checked = guard._checked_for(meta.txnid)
    return guard._descend(meta, key, checked, [])[1]


def _cold_leaf(path: str, meta: pages.Meta, key: bytes) -> int:
    guard = _guard(path)
    try:
        return _leaf(guard, meta, key)
    finally:
        guard.close()


def test_a_cached_branch_leads_to_the_leaf_the_first_descent_reaches(tmp_path):
    backend = _store(tmp_path)
    guard = _guard(backend.path)
    txn = backend._env.begin()
    meta = guard.meta(txn.id())
    assert meta is not None and meta.main_depth >= 3
    for key in _probes():
        first = _cold_leaf(backend.path, meta, key)  # every branch bisected in place
        assert _leaf(guard, meta, key) == first  # first or second visit of its branches
        assert _leaf(guard, meta, key) == first  # branches read into lists by now
    assert any(entry is not None for entry in guard._branches.values())
    assert all(entry is None or entry[2] for entry in guard._branches.values())  # sound: ordered
    txn.abort()
    guard.close()
    backend.close()


def test_a_branch_page_with_keys_out_of_order_is_descended_as_liblmdb_does(tmp_path):
    backend = _store(tmp_path)
    txn = backend._env.begin()
    meta = _guard(backend.path).meta(txn.id())
    assert meta is not None
    txn.abort()
    backend.close()
    damaged = str(tmp_path / "disordered.lmdb")
    shutil.copyfile(str(tmp_path / "walk.lmdb"), damaged)
    # Swap two node pointers of the root (a branch page): keys and children move together,
    # so every page stays valid for check_page, but keys 1.. no longer ascend.
    base = meta.main_root * meta.psize
    with open(damaged, "r+b") as f:
        f.seek(base)
        _pgno, _pad, _flags, lower, _upper = struct.unpack("=QHHHH", f.read(16))
        n = (lower - pages.PAGEHDRSZ) // 2
        assert n >= 4
        f.seek(base + pages.PAGEHDRSZ + 2)
        pointers = list(struct.unpack(f"={n - 1}H", f.read(2 * (n - 1))))
        pointers[0], pointers[-1] = pointers[-1], pointers[0]
        f.seek(base + pages.PAGEHDRSZ + 2)
        f.write(struct.pack(f"={n - 1}H", *pointers))
    guard = _guard(damaged)
    for key in _probes():
        first = _cold_leaf(damaged, meta, key)
        assert _leaf(guard, meta, key) == first
        assert _leaf(guard, meta, key) == first
    assert guard._branches[meta.main_root] is not None
    assert guard._branches[meta.main_root][2] is False  # searched step for step, not bisect
    guard.close()


def test_the_meta_of_a_snapshot_is_read_once(tmp_path):
    backend = _store(tmp_path, 100)
    guard = _guard(backend.path)
    txn = backend._env.begin()
    meta = guard.meta(txn.id())
    assert meta is not None and meta.txnid == txn.id()
    assert guard.meta(txn.id()) is meta  # remembered, not read again
    assert guard.meta(txn.id() + 1) is None  # no such snapshot yet
    txn.abort()
    backend.put(b"later", b"x")
    backend.put(b"later2", b"y")  # two commits: meta page of the old snapshot overwritten
    txn = backend._env.begin()
    newer = guard.meta(txn.id())
    assert newer is not None and newer.txnid == txn.id() > meta.txnid
    assert guard.meta(txn.id()) is newer
    txn.abort()
    guard.close()
    backend.close()
