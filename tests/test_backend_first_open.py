"""Sixteen processes opening one new store through prontodb.open at the same moment: every
open succeeds on every local engine (the engine choice, the setup and the format record all
race). The kit checks the same at the engine level; this one goes through the opener."""

from __future__ import annotations

import multiprocessing

import pytest

import prontodb
from prontodb import backends

LOCAL = backends.file_engines()


def _open_and_write(path: str, worker: int, go, results) -> None:
    go.wait(60)
    try:
        with prontodb.open(path) as store:
            store.set(f"app.first.w{worker:02d}", b"here")
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put(f"{type(exc).__name__}: {exc}")
    else:
        results.put("ok")


@pytest.mark.parametrize("engine", LOCAL)
def test_sixteen_processes_open_one_new_store(engine, tmp_path, request):
    rounds = 30 if request.config.getoption("--run-slow") else 1
    ctx = multiprocessing.get_context("spawn")
    for round_ in range(rounds):
        path = str(tmp_path / f"new-{round_}{backends.default_extension(engine)}")
        go, results = ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=_open_and_write, args=(path, w, go, results)) for w in range(16)
        ]
        for p in procs:
            p.start()
        go.set()
        outcomes = [results.get(timeout=180) for _ in procs]
        for p in procs:
            p.join(60)
        assert [o for o in outcomes if o != "ok"] == [], f"round {round_}"
        with prontodb.open(path, create=False) as store:
            assert len(store.keys("app.first")) == 16
            assert backends.sniff(path) == engine


def test_a_store_created_between_two_looks_is_recognized(tmp_path, monkeypatch):
    """The opener's first look can catch a store another process is creating: the file is
    empty, then its engine writes the magic. Seen that way (the first sniff finds nothing,
    the file is non-empty afterwards) it is looked at again, not refused as foreign."""
    path = str(tmp_path / "racing.lmdb")
    with prontodb.open(path) as store:
        store.set("app.first.w00", b"here")
    real = backends.sniff
    looks = []

    def first_look_sees_an_empty_file(where: str) -> str | None:
        looks.append(where)
        return None if len(looks) == 1 else real(where)

    monkeypatch.setattr(backends, "sniff", first_look_sees_an_empty_file)
    assert backends.resolve_backend(path) == "lmdb"
    assert len(looks) == 2
    foreign = tmp_path / "foreign.lmdb"
    foreign.write_bytes(b"not a store" * 100)
    monkeypatch.setattr(backends, "_SETTLE_TRIES", 2)
    with pytest.raises(prontodb.CorruptStoreError, match="unrecognized format"):
        backends.resolve_backend(str(foreign))
