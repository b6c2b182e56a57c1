"""Damaged pages never abort the interpreter and never surface as an unexpected error: every
page of a small LMDB and SQLite store is zeroed in turn; the store is opened and checked (what
doctor does), and read (get, keys, scan) when the check found nothing. A quick sample runs in
CI; the sweep over every page runs with --run-slow. (On LMDB, reading a damaged store that was
not checked first can still reach a liblmdb assertion: see docs/reliability.md.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import prontodb

PAGE = 4096
#: Zeroes each page given on the command line in a copy of the store and reports, per page,
#: what reading and checking it did. An abort kills this child: the parent sees which page.
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
    outcome = {"page": page}
    try:
        with prontodb.open(work, create=False) as store:
            outcome["problems"] = len(store.backend.check())  # what doctor runs first
            if not outcome["problems"]:
                try:
                    store.get("app.ns.key0100")
                except NotFoundError:
                    pass
                outcome["keys"] = len(store.keys("app.ns"))
                outcome["scanned"] = sum(1 for _ in store.scan("app.ns"))
        outcome["result"] = "read"
    except ProntoError as exc:
        outcome["result"] = type(exc).__name__
    except Exception as exc:
        outcome["result"] = "unexpected " + type(exc).__name__ + ": " + str(exc)[:200]
    for leftover in (work, work + "-lock", work + "-wal", work + "-shm"):
        if os.path.exists(leftover):
            os.remove(leftover)
    print(json.dumps(outcome), flush=True)
"""


def _make_store(tmp_path, engine: str) -> tuple[str, int]:
    path = str(tmp_path / f"src.{engine}")
    with prontodb.open(path, backend=engine) as store:
        store.set_many([(f"app.ns.key{i:04d}", b"v" * (i % 700)) for i in range(1500)])
        store.set("app.ns.big", b"b" * 20_000)
    return path, os.path.getsize(path) // PAGE


def _sweep(path: str, pages: list[int]) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, path, ",".join(map(str, pages))],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    started = [line["start"] for line in lines if "start" in line]
    assert done.returncode == 0, (
        f"the reader died (exit {done.returncode}) on page {started[-1] if started else '?'}: "
        f"{done.stderr[-400:]}"
    )
    return [line for line in lines if "page" in line]


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_zeroed_pages_sample(tmp_path, engine):
    path, pages = _make_store(tmp_path, engine)
    sample = sorted({0, 1, 2, 3, pages // 3, pages // 2, (2 * pages) // 3, pages - 1})
    outcomes = _sweep(path, sample)
    assert len(outcomes) == len(sample)
    for o in outcomes:
        assert not str(o["result"]).startswith("unexpected"), o
    # the damage is found: refused at open, or reported by check
    assert any(o["result"] != "read" or o["problems"] for o in outcomes)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
def test_zeroed_pages_full_sweep(tmp_path, engine):
    path, pages = _make_store(tmp_path, engine)
    outcomes = _sweep(path, list(range(pages)))
    assert len(outcomes) == pages
    unexpected = [o for o in outcomes if str(o["result"]).startswith("unexpected")]
    assert unexpected == []
    summary: dict[str, int] = {}
    for o in outcomes:
        key = (
            o["result"]
            if o["result"] != "read"
            else ("read, damage reported" if o["problems"] else "read clean")
        )
        summary[str(key)] = summary.get(str(key), 0) + 1
    print(f"\n{engine}: {pages} pages zeroed one at a time: {summary}")
