"""The BackendContract: every sentence of backends/base.py, checked on every engine."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from prontodb.backends import backend_class, sniff
from prontodb.backends.base import prefix_successor
from prontodb.errors import StoreNotFoundError


def test_round_trip_of_awkward_bytes(open_backend):
    b = open_backend()
    values = {b"empty": b"", b"nul": b"\x00a\x00", b"bin": bytes(range(256)), b"\x00k": b"v"}
    for k, v in values.items():
        b.put(k, v)
    for k, v in values.items():
        assert b.get(k) == v
        assert type(b.get(k)) is bytes


def test_ten_megabyte_value(open_backend):
    b = open_backend()
    big = os.urandom(10 * 1024 * 1024)
    b.put(b"big", big)
    assert b.get(b"big") == big


def test_missing_key_is_none_never_raises(open_backend):
    assert open_backend().get(b"nope") is None


def test_overwrite_replaces(open_backend):
    b = open_backend()
    b.put(b"k", b"1")
    b.put(b"k", b"2")
    assert b.get(b"k") == b"2"
    assert list(b.scan(b"k")) == [(b"k", b"2")]


def test_delete_reports_whether_removed(open_backend):
    b = open_backend()
    b.put(b"k", b"1")
    assert b.delete(b"k") is True
    assert b.delete(b"k") is False
    assert b.get(b"k") is None


def test_prefix_scan_is_ascending_by_bytes(open_backend):
    b = open_backend()
    keys = [
        b"p\x00b",
        b"p\x00a",
        "p\x00é".encode(),
        b"p\x00\xff",
        b"p\x00",
        b"p\x01",
        b"o",
        b"p\x00a\x00",
    ]
    for k in keys:
        b.put(k, k)
    got = [k for k, _ in b.scan(b"p\x00")]
    assert got == sorted(k for k in keys if k.startswith(b"p\x00"))
    assert [v for _, v in b.scan(b"p\x00")] == got
    assert [k for k, _ in b.scan()] == sorted(keys)


def test_scan_with_start(open_backend):
    b = open_backend()
    for i in range(10):
        b.put(b"n%02d" % i, b"")
    assert [k for k, _ in b.scan(b"n", start=b"n05")] == [b"n%02d" % i for i in range(5, 10)]
    assert [k for k, _ in b.scan(b"n", start=b"n045")] == [b"n%02d" % i for i in range(5, 10)]
    assert list(b.scan(b"n", start=b"o")) == []
    assert [k for k, _ in b.scan(b"n0", start=b"a")] == [b"n%02d" % i for i in range(10)]


def test_scan_crosses_page_boundaries(open_backend):
    b = open_backend()
    n = 4500
    b.put_many((b"x%05d" % i, b"v") for i in range(n))
    b.put(b"y", b"")
    got = [k for k, _ in b.scan(b"x")]
    assert got == [b"x%05d" % i for i in range(n)]


def test_scan_with_ff_prefix(open_backend):
    b = open_backend()
    b.put(b"\xff\xff", b"1")
    b.put(b"\xff", b"0")
    b.put(b"\xfe", b"x")
    assert [k for k, _ in b.scan(b"\xff")] == [b"\xff", b"\xff\xff"]


def test_prefix_successor():
    assert prefix_successor(b"ab") == b"ac"
    assert prefix_successor(b"a\xff") == b"b"
    assert prefix_successor(b"\xff") is None
    assert prefix_successor(b"") is None


def test_put_many_counts_and_last_wins(open_backend):
    b = open_backend()
    assert b.put_many([(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]) == 3
    assert b.get(b"a") == b"3"
    assert b.put_many(iter([])) == 0


def test_put_many_is_all_or_nothing(open_backend):
    b = open_backend()
    b.put(b"keep", b"old")

    def pairs():
        yield b"keep", b"new"
        yield b"other", b"x"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        b.put_many(pairs())
    assert b.get(b"keep") == b"old"
    assert b.get(b"other") is None


def test_transaction_commits_together(open_backend):
    b = open_backend()
    with b.transaction():
        b.put(b"a", b"1")
        assert b.get(b"a") == b"1"  # reads see the transaction's own writes
        b.put(b"b", b"2")
        b.delete(b"a")
        assert [k for k, _ in b.scan()] == [b"b"]
    other = open_backend()
    assert other.get(b"b") == b"2"
    assert other.get(b"a") is None


def test_transaction_rolls_back_on_exception(open_backend):
    b = open_backend()
    b.put(b"a", b"old")
    b.put(b"gone", b"x")
    with pytest.raises(KeyError), b.transaction():
        b.put(b"a", b"new")
        b.put(b"b", b"new")
        b.delete(b"gone")
        b.put_many([(b"c", b"1")])
        raise KeyError("boom")
    assert b.get(b"a") == b"old"
    assert b.get(b"b") is None
    assert b.get(b"c") is None
    assert b.get(b"gone") == b"x"


def test_nested_transaction_joins_outer(open_backend):
    b = open_backend()
    with pytest.raises(ValueError), b.transaction():
        with b.transaction():
            b.put(b"inner", b"1")
        raise ValueError
    assert b.get(b"inner") is None


def test_snapshot_reads(open_backend):
    b = open_backend()
    b.put_many((b"s%03d" % i, b"v") for i in range(50))
    with b.snapshot():
        assert len(list(b.scan(b"s"))) == 50
        assert b.get(b"s001") == b"v"


def test_persistence_across_reopen(open_backend):
    b = open_backend()
    b.put(b"k", b"v")
    b.close()
    b.close()  # closing twice is harmless
    assert open_backend().get(b"k") == b"v"


def test_two_handles_see_each_other(open_backend):
    one, two = open_backend(), open_backend()
    one.put(b"k", b"1")
    assert two.get(b"k") == b"1"
    two.put(b"k", b"2")
    assert one.get(b"k") == b"2"


def test_missing_store_without_create(backend_name, tmp_path):
    with pytest.raises(StoreNotFoundError):
        backend_class(backend_name)(str(tmp_path / "absent.x"), create=False)


def test_check_sound_store(open_backend):
    b = open_backend()
    b.put(b"k", b"v")
    assert b.check() == []


def test_full_durability_round_trip(open_backend):
    b = open_backend(durability="full")
    b.put(b"k", b"v")
    assert b.get(b"k") == b"v"


def test_files_private_and_sniffable(file_backend_name, tmp_path):
    from tests.conftest import store_path

    old = os.umask(0)
    try:
        path = store_path(tmp_path, file_backend_name)
        b = backend_class(file_backend_name)(path)
        b.put(b"k", b"v" * 100_000)
        files = b.files()
        assert files and path in files
        for f in files:
            mode = os.stat(f).st_mode & 0o777
            assert mode in (0o600, 0o700), (f, oct(mode))
        b.close()
    finally:
        os.umask(old)
    assert sniff(path) == file_backend_name
    assert backend_class(file_backend_name).sniff(path)


def test_close_leaves_no_side_files(file_backend_name, tmp_path):
    from tests.conftest import store_path

    path = store_path(tmp_path, file_backend_name)
    b = backend_class(file_backend_name)(path)
    b.put(b"k", b"v")
    b.close()
    leftovers = [
        f
        for root, _, names in os.walk(tmp_path)
        for f in names
        if f.endswith(("-wal", "-shm", "-journal"))
    ]
    assert leftovers == []


def _writer(name: str, path: str, worker: int, count: int) -> None:
    b = backend_class(name)(path)
    for i in range(count):
        b.put(b"w%d-%05d" % (worker, i), b"x" * 100)
    b.close()


def test_four_processes_write_concurrently(file_backend_name, tmp_path):
    from tests.conftest import store_path

    path = store_path(tmp_path, file_backend_name)
    backend_class(file_backend_name)(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(file_backend_name, path, w, 1500)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    b = backend_class(file_backend_name)(path)
    assert len(list(b.scan(b"w"))) == 6000
    b.close()
