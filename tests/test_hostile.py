"""A hostile environment: full disk, read-only store, store deleted while open, damaged store
files, a store other accounts can write, broken cursor files, symlinked stores.

What every case asserts: a clear one-line error (exit 1) naming what is wrong — never a
traceback or a crash — and the store still readable, with nothing half-written.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys

import pytest

import prontodb
from prontodb import doctor
from prontodb.errors import StorageFullError, StoreNotFoundError

from ._inprocess import run_cli
from .conftest import EXTENSIONS, FILE_BACKENDS


@pytest.fixture
def store_path(home, tmp_path, file_backend_name):
    path = str(tmp_path / f"store{EXTENSIONS[file_backend_name]}")
    with prontodb.open(path) as store:
        store.set("p.n.first", "hello")
        store.set_many([(f"p.n.k{i}", "v" * 100) for i in range(300)])
    return path


def one_error_line(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


# -- full disk ---------------------------------------------------------------------------------


@pytest.fixture
def small_filesystem(tmp_path):
    """A 2 MiB tmpfs (needs root and a kernel that lets us mount), unmounted afterwards."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_really_full_disk_is_reported_and_the_store_stays_readable(
    home, small_filesystem, file_backend_name
):
    path = str(small_filesystem / f"store{EXTENSIONS[file_backend_name]}")
    written = 0
    with prontodb.open(path) as store:
        store.set("p.n.first", "hello")
        with pytest.raises(StorageFullError):
            for i in range(100):
                store.set(f"p.n.big{i}", os.urandom(100_000))
                written += 1
    big = os.urandom(400_000).hex()
    code, _, err = run_cli(["--database", path, "set", "p.n.more", big])
    assert code == 1
    one_error_line(err, path)
    assert "full" in err or "space" in err
    code, out, _ = run_cli(["--database", path, "get", "p.n.first"])
    assert (code, out) == (0, b"hello")
    # Piped content that cannot be stored is rescued outside the full file system.
    code, out, err = run_cli(["--database", path, "set", "p.n.piped"], stdin=big.encode())
    assert code == 3 and "Traceback" not in err
    with prontodb.open(path, create=False) as store:
        assert store.backend.check() == []
        assert store.get("p.n.first") == b"hello"
        assert len(store.keys("p.n", "big*")) == written


def _full_sqlite(monkeypatch, module):
    """Every write statement fails the way SQLite reports a full disk."""
    real_connect = sqlite3.connect

    class FullConnection:
        def __init__(self, conn):
            self._conn = conn

        def __getattr__(self, name):
            return getattr(self._conn, name)

        def _refuse(self, sql):
            if sql.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
                raise sqlite3.OperationalError("database or disk is full")

        def execute(self, sql, *args):
            self._refuse(sql)
            return self._conn.execute(sql, *args)

        def executemany(self, sql, *args):
            self._refuse(sql)
            return self._conn.executemany(sql, *args)

    monkeypatch.setattr(
        module.sqlite3, "connect", lambda *a, **k: FullConnection(real_connect(*a, **k))
    )


def _inject_disk_full(monkeypatch, backend_name):
    if backend_name == "sqlite":
        from prontodb.backends import sqlite as module

        _full_sqlite(monkeypatch, module)
    elif backend_name == "lmdb":
        import lmdb

        from prontodb.backends import lmdb as module

        def full(txn, op):
            exc = lmdb.Error("mdb_put: No space left on device")
            exc.code = errno.ENOSPC
            raise exc

        monkeypatch.setattr(module, "_run_op", full)
    else:
        from prontodb.backends import diskcache as module

        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        def full_set(*args, **kwargs):
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(module._RawDisk, "_write_private", no_space)
        monkeypatch.setattr(module._Cache, "set", full_set)
        _full_sqlite(monkeypatch, module)


@pytest.mark.parametrize("value", ["small", "x" * 50_000], ids=["inline", "file-sized"])
def test_an_injected_full_disk_is_a_clear_storage_full_error(
    store_path, file_backend_name, monkeypatch, value
):
    before = _content(store_path)
    with monkeypatch.context() as patched:
        _inject_disk_full(patched, file_backend_name)
        with prontodb.open(store_path) as store, pytest.raises(StorageFullError) as caught:
            store.set("p.n.new", value)
        assert store_path in str(caught.value)
        for args in (["set", "p.n.new", value], ["del", "p.n.first"], ["gc"]):
            code, _, err = run_cli(["--database", store_path, *args])
            if args == ["gc"] and code == 0:
                continue  # nothing expired: gc writes nothing
            assert code == 1, (args, err)
            one_error_line(err, store_path)
            assert "full" in err or "space" in err
    assert _content(store_path) == before
    assert run_cli(["--database", store_path, "get", "p.n.first"])[:2] == (0, b"hello")


def _content(path: str) -> list:
    with prontodb.open(path, create=False) as store:
        return list(store.backend.scan(b""))


# -- read-only store ---------------------------------------------------------------------------


def _make_read_only(path: str) -> list[str]:
    """Make the store's data files unwritable, for root too (chattr +i) when we are root.
    Returns what to undo; skips the test when it cannot be done."""
    data = os.path.join(path, "cache.db") if os.path.isdir(path) else path
    if os.geteuid() != 0:
        os.chmod(data, 0o400)
        return []
    done = subprocess.run(["chattr", "+i", data], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"running as root and chattr +i is not available: {done.stderr!r}")
    return [data]


def test_a_read_only_store_reads_and_refuses_writes_clearly(store_path, file_backend_name):
    before = _content(store_path)
    undo = _make_read_only(store_path)
    try:
        code, out, err = run_cli(["--database", store_path, "get", "p.n.first"])
        assert (code, out) == (0, b"hello"), err
        assert run_cli(["--database", store_path, "keys", "p.n", "first"])[1] == b"first\n"
        for args in (["set", "p.n.new", "v"], ["del", "p.n.first"]):
            code, _, err = run_cli(["--database", store_path, *args])
            assert code == 1, err
            one_error_line(err, store_path)
            assert "read-only" in err or "readonly" in err
    finally:
        for data in undo:
            subprocess.run(["chattr", "-i", data], check=False)
        if not undo:
            os.chmod(
                os.path.join(store_path, "cache.db") if os.path.isdir(store_path) else store_path,
                0o600,
            )
    assert _content(store_path) == before


# -- store deleted while open ------------------------------------------------------------------


def _delete_store(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
        return
    for name in (path, path + "-wal", path + "-shm", path + "-lock"):
        if os.path.exists(name):
            os.unlink(name)


def test_writes_to_a_store_deleted_while_open_fail_instead_of_vanishing(store_path):
    with prontodb.open(store_path) as store:
        store.set("p.n.before", "1")
        _delete_store(store_path)
        for write in (
            lambda: store.set("p.n.after", "2"),
            lambda: store.set_many([("p.n.many", "3")]),
            lambda: store.delete("p.n.first"),
        ):
            with pytest.raises(StoreNotFoundError, match="deleted or replaced"):
                write()
    assert not os.path.exists(store_path)
    code, _, err = run_cli(["--database", store_path, "get", "p.n.first"])
    assert code == 1
    one_error_line(err, "no store at", store_path)


def test_a_store_replaced_while_open_is_not_written_through_the_old_handle(store_path, tmp_path):
    with prontodb.open(store_path) as store:
        _delete_store(store_path)
        with prontodb.open(store_path) as newer:
            newer.set("p.n.fresh", "new")
        with pytest.raises(StoreNotFoundError):
            store.set("p.n.stale", "old")
    with prontodb.open(store_path, create=False) as store:
        assert store.keys() == ["p.n.fresh"]


# -- damaged store files -----------------------------------------------------------------------

DAMAGE = ["header", "truncated-half", "truncated-early", "middle"]

PROBE = r"""
import json, sys
from tests._inprocess import run_cli
path = sys.argv[1]
results = {}
commands = {"get": ["get", "p.n.first"], "keys": ["keys"], "set": ["set", "p.n.x", "1"],
            "doctor": ["doctor"]}
for name, args in commands.items():
    code, out, err = run_cli(["--database", path, *args])
    results[name] = [code, out.decode("utf-8", "replace"), err]
print(json.dumps(results))
"""


def _damage(path: str, how: str, rng: random.Random) -> None:
    data = os.path.join(path, "cache.db") if os.path.isdir(path) else path
    size = os.path.getsize(data)
    with open(data, "r+b") as fh:
        if how == "header":
            fh.write(rng.randbytes(100))
        elif how == "truncated-half":
            fh.truncate(size // 2)
        elif how == "truncated-early":
            fh.truncate(rng.randrange(1, 4096))
        else:
            fh.seek(size // 2)
            fh.write(rng.randbytes(8192))


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_store_file_gives_a_clear_error_never_a_crash(
    store_path, file_backend_name, how, home
):
    _damage(store_path, how, random.Random(f"{file_backend_name}-{how}"))
    # In a child process: damage must not be able to kill the process (LMDB maps the file).
    done = subprocess.run(
        [sys.executable, "-c", PROBE, store_path],
        env=home,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, (
        f"the process died (exit {done.returncode}): {done.stderr[-2000:]!r}"
    )
    results = json.loads(done.stdout)
    for name, (code, _out, err) in results.items():
        assert "Traceback" not in err and "error: unexpected" not in err, (name, err)
        if code == 1 and name != "doctor":
            one_error_line(err, os.path.realpath(store_path).split(os.sep)[-1])
        else:
            assert code in (0, 1, 2), (name, code, err)
    doctor_code, report, _ = results["doctor"]
    if doctor_code == 0:  # the damage hit nothing in use: then everything reads back
        assert results["get"][:2] == [0, "hello"]
        assert results["keys"][0] == 0
    else:
        assert "error" in report


# -- a store other accounts can write ----------------------------------------------------------


def test_a_world_writable_store_is_refused(store_path, file_backend_name):
    files = [store_path] + ([store_path + "-lock"] if file_backend_name == "lmdb" else [])
    for name in files:
        victim = os.path.join(name, "cache.db") if os.path.isdir(name) else name
        mode = os.stat(victim).st_mode
        os.chmod(victim, 0o666)
        try:
            code, out, err = run_cli(["--database", store_path, "get", "p.n.first"])
            assert (code, out) == (1, b"")
            one_error_line(err, "refusing", victim, "writable by other accounts")
            report = doctor.examine(store_path)
            assert not report.healthy
            assert any(f.check == "permissions" and f.severity == "error" for f in report.findings)
        finally:
            os.chmod(victim, mode)
    assert run_cli(["--database", store_path, "get", "p.n.first"])[:2] == (0, b"hello")


# -- cursor file -------------------------------------------------------------------------------


def _cursor_file(home) -> str:
    return os.path.join(home["XDG_CONFIG_HOME"], "prontodb", "users", "default", "cursors.json")


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff garbage",
        b"{",
        b"[]",
        b'{"cursors": []}',
        b'{"cursors": {"work": 7}}',
        b'{"cursors": {"work": {"path": 1, "backend": "nope"}}}',
        b'{"cursors": {"work": {"path": 1, "backend": "sqlite"}}}',
        b'{"cursors": {"work": {"path": "/x", "backend": "sqlite", "meta": []}}}',
        b'{"cursors": {"work": {"path": "/x", "backend": "sqlite", "bogus": 1}}}',
        b"",
    ],
    ids=[
        "binary",
        "truncated",
        "array",
        "cursors-list",
        "cursor-number",
        "cursor-fields",
        "path-number",
        "meta-list",
        "unknown-field",
        "empty",
    ],
)
def test_a_malformed_cursor_file_is_a_clear_error(home, content):
    assert run_cli(["cursor", "set", "work", "--backend", "sqlite"])[0] == 0
    path = _cursor_file(home)
    with open(path, "wb") as fh:
        fh.write(content)
    for args in (["cursor", "list"], ["--cursor", "work", "get", "p.n.k"], ["keys"]):
        code, _, err = run_cli(args)
        if code == 0 and args == ["keys"]:
            continue  # a file with no selection does not matter to the default store
        assert code == 1, (args, err)
        one_error_line(err, path)
    # Piped content is still rescued, not lost.
    code, out, err = run_cli(["set", "p.n.k"], stdin=b"precious")
    assert code in (0, 3), err
    assert "Traceback" not in err


def test_an_unreadable_cursor_file_is_a_clear_error(home):
    if os.geteuid() == 0:
        pytest.skip("root reads a mode 0000 file anyway (the malformed-file cases still run)")
    assert run_cli(["cursor", "set", "work"])[0] == 0
    path = _cursor_file(home)
    os.chmod(path, 0)
    try:
        code, _, err = run_cli(["cursor", "list"])
        assert code == 1
        one_error_line(err, path)
    finally:
        os.chmod(path, 0o600)


# -- symlinked store path ----------------------------------------------------------------------


def test_a_symlinked_store_is_followed_and_its_target_checked(home, tmp_path, file_backend_name):
    target_dir = tmp_path / "elsewhere"
    target_dir.mkdir(mode=0o700)
    target = str(target_dir / f"real{EXTENSIONS[file_backend_name]}")
    link = str(tmp_path / f"link{EXTENSIONS[file_backend_name]}")
    prontodb.open(target).close()
    os.symlink(target, link)
    assert run_cli(["--database", link, "set", "p.n.k", "via link"])[0] == 0
    assert run_cli(["--database", target, "get", "p.n.k"])[:2] == (0, b"via link")
    # Every side file lives beside the target: one lock table, one WAL for both paths.
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["elsewhere", os.path.basename(link)]
        + [name for name in os.listdir(tmp_path) if name.startswith("home")]
    )
    with prontodb.open(link) as store:
        assert store.backend.path == os.path.realpath(target)
    # The target's permissions are what counts.
    victim = os.path.join(target, "cache.db") if os.path.isdir(target) else target
    os.chmod(victim, 0o666)
    try:
        code, _, err = run_cli(["--database", link, "get", "p.n.k"])
        assert code == 1
        one_error_line(err, "refusing", victim)
    finally:
        os.chmod(victim, 0o600)


def test_a_symlink_to_something_that_is_not_a_store_is_refused(home, tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    link = tmp_path / "store.sqlite"
    os.symlink(other, link)
    code, _, err = run_cli(["--database", str(link), "set", "p.n.k", "v"])
    assert code == 1
    one_error_line(err, "not a ProntoDB store", str(other))
    assert other.read_text() == "my notes\n"


@pytest.mark.parametrize("file_backend_name", FILE_BACKENDS)
def test_doctor_finds_a_healthy_store_healthy(store_path, file_backend_name):
    code, out, err = run_cli(["--database", store_path, "doctor"])
    assert code == 0, out
    assert out.decode().splitlines()[-1] == "healthy"
    code, out, _ = run_cli(["--database", store_path, "doctor", "--json"])
    report = json.loads(out)
    assert report["healthy"] is True and report["entries"] == 301


# -- prontodb doctor ---------------------------------------------------------------------------


def _put_raw(path: str, address: str, envelope: bytes) -> None:
    from prontodb import keyspace

    with prontodb.open(path) as store:
        key = keyspace.entry_key(keyspace.layer_prefix("default", None), store.address(address))
        store.backend.put(key, envelope)


def test_a_damaged_entry_is_named_by_doctor_and_by_the_cli(store_path):
    _put_raw(store_path, "p.n.future", b"\x07" + bytes(8) + b"from a newer ProntoDB")
    code, _, err = run_cli(["--database", store_path, "keys"])
    assert code == 1
    one_error_line(err, os.path.realpath(store_path), "envelope version 7", "prontodb doctor")
    report = doctor.examine(store_path)
    assert not report.healthy
    (finding,) = [f for f in report.findings if f.check == "envelopes"]
    assert finding.severity == "error" and "p.n.future" in finding.message
    code, out, _ = run_cli(["--database", store_path, "doctor"])
    assert code == 1 and b"p.n.future" in out and out.endswith(b"1 problem found\n")


def test_doctor_counts_the_expired_backlog(store_path):
    from prontodb.clock import FakeClock

    with prontodb.open(store_path, clock=FakeClock(1_000_000)) as store:
        store.set_many([(f"p.old.k{i}", "x") for i in range(25)], ttl=60)
    report = doctor.examine(store_path)
    assert report.healthy and report.expired == 25 and report.entries == 301
    assert any(f.check == "expired" and "25 expired" in f.message for f in report.findings)
    assert run_cli(["--database", store_path, "gc"])[1] == b"25\n"
    assert doctor.examine(store_path).expired == 0


def test_doctor_reports_and_clears_stale_lmdb_readers(home, tmp_path):
    from prontodb.backends import backend_class

    path = str(tmp_path / "readers.lmdb")
    prontodb.open(path).close()
    keeper = backend_class("lmdb")(path)  # keeps the lock file, and dead readers, alive
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", HOLD_A_READER, path], env=home, stdout=subprocess.PIPE
        )
        assert child.stdout.readline() == b"reading\n"
        child.kill()
        child.wait()
        report = doctor.examine(path)
        stale = [f for f in report.findings if f.check == "engine" and f.severity == "warning"]
        assert stale and str(child.pid) in stale[0].message
        assert doctor.examine(path).healthy  # cleared by the first look
    finally:
        keeper.close()


HOLD_A_READER = """
import sys, time
import prontodb
store = prontodb.open(sys.argv[1])
with store.backend.snapshot():
    store.keys()
    print("reading", flush=True)
    time.sleep(60)
"""


def test_doctor_on_a_missing_store_says_so(home, tmp_path):
    code, out, _ = run_cli(["--database", str(tmp_path / "nothing.sqlite"), "doctor"])
    assert code == 1 and b"no store at" in out
    assert not os.path.exists(tmp_path / "nothing.sqlite")
