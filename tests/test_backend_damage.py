"""Damaged pages never abort the interpreter and never surface as an unexpected error.

Every page of a small LMDB and SQLite store is zeroed in turn (``--run-slow``; a sample of
pages runs by default), and on each damaged copy the real CLI runs in a subprocess with an
isolated HOME: ``get`` of several keys, ``keys``, ``export``, ``backup``, ``doctor`` and ``gc``
(which has expired entries to remove, so it writes). For every command: the exit code is never
an abort (134) or a signal, stderr never says "unexpected" or shows a traceback, and whenever
any command's outcome differs from the sound store's, ``doctor`` reports the damage (exits
non-zero). On LMDB, reads check in Python every page liblmdb will touch first
(``prontodb/backends/_lmdb_pages.py``); see docs/reliability.md.

A library-level sweep (one child process for all pages, reads without ``check()`` first)
proves the same for the read paths alone at a finer grain, and unit tests below pin the page
walks against liblmdb on sound stores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

import prontodb
from prontodb.backends import _lmdb_pages as pages
from prontodb.backends.lmdb import SCAN_PAGE, LmdbBackend, verify_pages
from prontodb.clock import FakeClock
from prontodb.errors import CorruptStoreError

PAGE = 4096
GETS = ("app.ns.key0000", "app.ns.key0750", "app.ns.key1499", "app.ns.big", "app.other.k0400")


def _make_store(tmp_path, engine: str) -> tuple[str, int]:
    """~1 MiB: two namespaces, values of many sizes, a big (overflow) value, and 50 entries
    that expired long ago (written with a clock in 2001), for ``gc`` to remove."""
    path = str(tmp_path / f"src.{engine}")
    with prontodb.open(path, backend=engine) as store:
        store.set_many([(f"app.ns.key{i:04d}", b"v" * (i % 700)) for i in range(1500)])
        store.set_many([(f"app.other.k{i:04d}", b"w" * 50) for i in range(800)])
        store.set("app.ns.big", b"b" * 20_000)
    with prontodb.open(path, clock=FakeClock(1_000_000_000.0)) as old:
        for i in range(50):
            old.set(f"app.old.k{i:03d}", b"x" * 30, ttl=60)
    return path, os.path.getsize(path) // PAGE


def _commands(work: str) -> list[tuple[str, list[str]]]:
    out = os.path.dirname(work)
    reads = [(f"get {a}", ["get", a]) for a in GETS]
    reads += [
        ("get missing", ["get", "app.ns.missing"]),
        ("keys", ["keys", "--all"]),
        ("export", ["export", "-o", os.path.join(out, "export.jsonl")]),
        ("backup", ["backup", "-o", os.path.join(out, "backup.tar")]),
    ]
    # doctor before gc: gc writes, and what doctor reports must be the damage the reads saw
    return [*reads, ("doctor", ["doctor"]), ("gc", ["gc"])]


def _run_cli(home: str, work: str, page: int | None) -> dict[str, tuple[int, str, str]]:
    """Zero ``page`` (None: none) of the store copied to ``work``, then run every command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRONTO")}
    env.update(HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"), PYTHONUNBUFFERED="1")
    results = {}
    for name, argv in _commands(work):
        done = subprocess.run(
            [sys.executable, "-m", "prontodb", "--database", work, *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        results[name] = (done.returncode, done.stdout, done.stderr)
    return results


def _one_page(src: str, root: str, page: int | None) -> dict[str, tuple[int, str, str]]:
    where = os.path.join(root, f"p{page}")
    home = os.path.join(where, "home")
    os.makedirs(home)
    work = os.path.join(where, "store" + os.path.splitext(src)[1])
    shutil.copy(src, work)
    if page is not None:
        with open(work, "r+b") as fh:
            fh.seek(page * PAGE)
            fh.write(b"\0" * PAGE)
    try:
        return _run_cli(home, work, page)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _value_only_pages(path: str) -> set[int]:
    """Pages of an LMDB file that hold nothing but the bytes of a big value: the overflow
    pages after the first (they carry no header). Zeroing one changes that value's bytes, and
    nothing can tell — LMDB keeps no checksum, nor does ProntoDB's envelope."""
    with open(path, "rb") as fh:
        data = fh.read()
    tails: set[int] = set()
    for number in range(len(data) // PAGE):
        base = number * PAGE
        if int.from_bytes(data[base : base + 8], "little") != number:
            continue
        if int.from_bytes(data[base + 10 : base + 12], "little") & pages.P_OVERFLOW:
            count = int.from_bytes(data[base + 12 : base + 16], "little")
            tails.update(range(number + 1, number + count))
    return tails


def _value_bytes_only(results: dict[str, tuple[int, str, str]], sound: dict) -> bool:
    """True when the only change is the big value's bytes: its ``get`` succeeded with a value
    of the same length, and nothing else differed. (SQLite: the last overflow page of a chain
    holds only value bytes, its next-page pointer is zero already.)"""
    rc, stdout, _ = results["get app.ns.big"]
    others = [n for n in results if n not in ("get app.ns.big", "doctor", "gc", "export", "backup")]
    return (
        rc == 0
        and len(stdout) == len(sound["get app.ns.big"][1])
        and all(results[n][:2] == sound[n][:2] for n in others)
    )


def _cli_sweep(tmp_path, engine: str, chosen: list[int] | None) -> Counter[str]:
    src, count = _make_store(tmp_path, engine)
    value_only = _value_only_pages(src) if engine == "lmdb" else set()
    numbers = list(range(count)) if chosen is None else sorted({p % count for p in chosen})
    root = str(tmp_path / "runs")
    sound = _one_page(src, root, None)
    assert all(rc == 0 for name, (rc, _, _) in sound.items() if name != "get missing"), sound
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = list(pool.map(lambda p: (p, _one_page(src, root, p)), numbers))
    tally: Counter[str] = Counter()
    failures = []
    for page, results in runs:
        saw = []
        for name, (rc, stdout, stderr) in results.items():
            if rc < 0 or rc >= 128:
                failures.append(f"page {page}: {name} died (exit {rc}): {stderr[-300:]}")
            if "unexpected" in stderr.lower() or "Traceback" in stderr:
                failures.append(f"page {page}: {name}: {stderr[-300:]}")
            same = (
                (rc, stdout) == sound[name][:2]
                if name not in ("export", "backup")
                else (rc == sound[name][0])
            )
            if name not in ("doctor", "gc"):
                tally[f"{name}: {'as sound' if same else f'exit {rc}'}"] += 1
                if not same:
                    saw.append(name)
        doctor_rc = results["doctor"][0]
        tally[f"doctor: exit {doctor_rc}"] += 1
        tally[f"gc: exit {results['gc'][0]}"] += 1
        if saw and doctor_rc == 0:
            if page in value_only or _value_bytes_only(results, sound):
                tally["value bytes changed, no checksum to find it (big value's tail page)"] += 1
            else:
                failures.append(f"page {page}: {saw} saw the damage, doctor called it healthy")
    print(f"\n{engine}: {len(numbers)} of {count} pages zeroed one at a time (CLI): ")
    for line in sorted(tally.items()):
        print(f"  {line[0]}: {line[1]}")
    assert failures == [], "\n".join(failures[:20])
    return tally


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_zeroed_pages_cli_sample(tmp_path, engine):
    # a meta/header page, branch and leaf pages of the main tree, a big value's tail page
    # (LMDB 246, SQLite 187), and the last page
    tally = _cli_sweep(tmp_path, engine, [1, 3, 60, 150, 246 if engine == "lmdb" else 187, -1])
    assert any(key.startswith("doctor: exit 1") for key in tally)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_zeroed_pages_cli_full_sweep(tmp_path, engine):
    _cli_sweep(tmp_path, engine, None)


# -- the library's read paths, every page, in one child -----------------------------------------

#: Zeroes each page given on the command line in a copy of the store and reads it WITHOUT a
#: check first (gets, listings, a snapshot export); reports per page. An abort kills this
#: child: the parent sees which page.
CHILD = r"""
import json, os, shutil, sys
import prontodb
from prontodb.errors import NotFoundError, ProntoError
src, pages = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
ext = os.path.splitext(src)[1]
for page in pages:
    print(json.dumps({"start": page}), flush=True)
    work = os.path.join(os.path.dirname(src), f"work{ext}")
    shutil.copy(src, work)
    with open(work, "r+b") as fh:
        fh.seek(page * 4096)
        fh.write(b"\0" * 4096)
    outcome = {"page": page, "damage": 0, "read": 0}
    try:
        with prontodb.open(work, create=False) as store:
            steps = [lambda a=a: store.get(a, None) for a in sys.argv[3].split(",")]
            steps += [lambda s=s: store.keys(s) for s in ("app.ns", "app.other", "app.old")]
            steps.append(lambda: list(store.backend.scan(b"")))
            for step in steps:
                try:
                    step()
                    outcome["read"] += 1
                except ProntoError:
                    outcome["damage"] += 1
            outcome["problems"] = len(store.backend.check())  # what doctor runs
        outcome["result"] = "opened"
    except ProntoError as exc:
        outcome["result"] = type(exc).__name__
    except Exception as exc:
        outcome["result"] = "unexpected " + type(exc).__name__ + ": " + str(exc)[:200]
    for leftover in (work, work + "-lock", work + "-wal", work + "-shm"):
        if os.path.exists(leftover):
            os.remove(leftover)
    print(json.dumps(outcome), flush=True)
"""


def _library_sweep(path: str, numbers: list[int]) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, path, ",".join(map(str, numbers)), ",".join(GETS)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    started = [line["start"] for line in lines if "start" in line]
    assert done.returncode == 0, (
        f"the reader died (exit {done.returncode}) on page {started[-1] if started else '?'}: "
        f"{done.stderr[-400:]}"
    )
    outcomes = [line for line in lines if "page" in line]
    assert len(outcomes) == len(numbers)
    for o in outcomes:
        assert not str(o["result"]).startswith("unexpected"), o
        if o["result"] == "opened" and o["damage"]:
            assert o["problems"], f"reads saw damage on page {o['page']}, check() did not: {o}"
    return outcomes


def _library_summary(tmp_path, engine: str, step: int) -> None:
    path, count = _make_store(tmp_path, engine)
    numbers = list(range(0, count, step))
    outcomes = _library_sweep(path, numbers)
    summary = Counter(
        str(o["result"])
        if o["result"] != "opened"
        else ("reads saw damage" if o["damage"] else "reads clean")
        + (", check reported it" if o["problems"] else ", check clean")
        for o in outcomes
    )
    print(f"\n{engine}: {len(numbers)} of {count} pages zeroed one at a time (library reads): ")
    print(f"  {dict(summary)}")
    assert sum(1 for o in outcomes if o["result"] != "opened" or o["damage"]) > len(numbers) // 2


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_zeroed_pages_library_sample(tmp_path, engine):
    _library_summary(tmp_path, engine, 9)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_zeroed_pages_library_every_page(tmp_path, engine):
    _library_summary(tmp_path, engine, 1)


# -- the page walks against liblmdb ------------------------------------------------------------


def _lmdb_store(tmp_path, entries: int, size_of=lambda i: i % 300) -> LmdbBackend:
    backend = LmdbBackend(str(tmp_path / "walk.lmdb"))
    backend.put_many((b"k%06d" % i, b"v" * size_of(i)) for i in range(entries))
    return backend


def _fresh_guard(backend: LmdbBackend) -> pages.PageGuard:
    """A guard with nothing checked yet, on the backend's file (as in a new process)."""
    guard = pages.PageGuard(backend.path, os.open(backend.path, os.O_RDONLY))
    backend._shared.guard = guard
    return guard


def test_sound_stores_pass_every_walk(tmp_path):
    backend = _lmdb_store(tmp_path, 20_000, lambda i: 5000 if i % 997 == 0 else i % 300)
    with backend.transaction():
        for i in range(0, 20_000, 3):
            backend.delete(b"k%06d" % i)  # rebalanced and merged pages
    assert verify_pages(backend.path) == []
    guard = _fresh_guard(backend)
    for i in range(0, 20_000, 379):
        assert backend.get(b"k%06d" % i) == (
            None if i % 3 == 0 else b"v" * (5000 if i % 997 == 0 else i % 300)
        )
    assert guard.whole_from is None  # path walks so far, not the whole file
    assert len(list(backend.scan(b"k01"))) == sum(1 for i in range(10_000, 20_000) if i % 3)
    backend.close()


def test_a_scan_is_limited_to_checked_leaves_and_a_get_to_its_path(tmp_path):
    backend = _lmdb_store(tmp_path, 30_000)
    guard = _fresh_guard(backend)
    txn = backend._env.begin()
    meta = guard.meta(txn.id())
    assert meta is not None and meta.main_depth >= 3
    limit = guard.check_range(meta, b"k010000", b"k010001", SCAN_PAGE + 2)
    # one leaf holds the first key past the range: the limit ends with that leaf
    assert limit is not None and 1 < limit < 200
    checked = set(guard._checked)
    assert len(checked) == meta.main_depth  # the path to one leaf, nothing else
    guard.check_get(meta, b"k029999")
    assert len(guard._checked) == len(checked) + meta.main_depth - 1  # same root, new path
    assert guard.check_range(meta, b"k029990", None, SCAN_PAGE + 2) is None  # reaches the end
    txn.abort()
    backend.close()


def test_damage_outside_a_read_does_not_fail_it_damage_inside_does(tmp_path):
    backend = _lmdb_store(tmp_path, 30_000)
    path = backend.path
    backend.close()
    data = open(path, "rb").read()
    metas, _ = pages.read_metas(data, len(data))
    meta = max(metas)
    # the leaf holding the last key: follow the rightmost child down
    pgno = meta.main_root
    for _ in range(meta.main_depth - 1):
        base = pgno * PAGE
        n = (int.from_bytes(data[base + 12 : base + 14], "little") - 16) // 2
        node = base + int.from_bytes(
            data[base + 16 + 2 * (n - 1) : base + 18 + 2 * (n - 1)], "little"
        )
        pgno = (
            int.from_bytes(data[node : node + 4], "little")
            | int.from_bytes(data[node + 4 : node + 6], "little") << 32
        )
    with open(path, "r+b") as fh:
        fh.seek(pgno * PAGE)
        fh.write(b"\0" * PAGE)
    backend = LmdbBackend(path, create=False)
    try:
        assert backend.get(b"k000100") == b"v" * 100  # another leaf: unaffected
        assert len(list(backend.scan(b"k001"))) == 1000
        with pytest.raises(CorruptStoreError, match=f"page {pgno}"):
            backend.get(b"k029999")
        with pytest.raises(CorruptStoreError, match=f"page {pgno}"):
            list(backend.scan(b"k029"))
        with pytest.raises(CorruptStoreError, match=f"page {pgno}"):
            backend.put(b"k000001", b"new")  # the write walks every page first
        assert backend.get(b"k000001") == b"v" * 1
        assert any(f"page {pgno}" in p for p in backend.check())
    finally:
        backend.close()


def test_reads_check_once_then_the_whole_file(tmp_path):
    backend = _lmdb_store(tmp_path, 5_000)
    guard = _fresh_guard(backend)
    for _ in range(3):
        backend.get(b"k000001")
    assert guard.whole_from is None
    for i in range(0, 5_000, 7):
        backend.get(b"k%06d" % i)  # past the file's page count in pages visited
    assert guard.whole_from is not None
    backend.put(b"k000001", b"x")  # a later snapshot is covered without a walk
    txn, meta = backend._begin_checked()
    assert meta is None
    txn.abort()
    backend._reading = False
    backend.close()
