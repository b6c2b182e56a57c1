"""Coordination primitives raced by many processes on one store, per file engine: counters
(CLI and library at once), a set --nx lock, a compare-and-set append loop. The full figures
of the issue (8 processes x 500 CLI increments + 4 x 2,000 library increments) run with
--run-slow; the default run races as many processes with fewer operations each."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import prontodb

from .conftest import EXTENSIONS, FILE_BACKENDS

WORKER = os.path.join(os.path.dirname(__file__), "_coordworker.py")


@pytest.fixture(params=FILE_BACKENDS)
def race_store(request, tmp_path, home):
    path = str(tmp_path / f"race{EXTENSIONS[request.param]}")
    prontodb.open(path, backend=request.param).close()
    return path


def spawn(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, WORKER, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(procs: list[subprocess.Popen]) -> list[dict]:
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, err.decode()
        assert err == b"", err.decode()
        report = json.loads(out)
        assert report["failures"] == []
        reports.append(report)
    return reports


def race_counter(path: str, cli_mode: str, cli_runs: int, lib_runs: int) -> None:
    procs = [spawn(cli_mode, path, cli_runs) for _ in range(8)]
    procs += [spawn("lib-incr", path, lib_runs) for _ in range(4)]
    finish(procs)
    with prontodb.open(path) as store:
        assert store.get("race.c.counter") == str(8 * cli_runs + 4 * lib_runs).encode()


def test_counter_race_loses_no_increment(race_store):
    race_counter(race_store, "cli-incr", 40, 150)


@pytest.mark.slow
def test_counter_race_full_figure(race_store):
    """8 processes x 500 `prontodb incr` + 4 x 2,000 Store.incr = 12,000. Each of the 8 runs
    the CLI entry 500 times in-process (a fresh session, store open and close each time):
    4,000 interpreter start-ups would cost ~20 min of CPU on a shared 2-core machine."""
    race_counter(race_store, "cli-incr", 500, 2000)


@pytest.mark.slow
def test_counter_race_real_cli_processes(race_store):
    """The same race with every `prontodb incr` a new process (8 x 100 + 4 x 2,000)."""
    race_counter(race_store, "exec-incr", 100, 2000)


def test_set_nx_lock_has_exactly_one_winner(race_store):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "prontodb", "--database", race_store]
            + ["set", "race.l.lock", f"owner-{i}", "--nx"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(16)
    ]
    codes = []
    for proc in procs:
        proc.communicate(timeout=300)
        codes.append(proc.returncode)
    assert sorted(codes) == [0] + [4] * 15
    winner = codes.index(0)
    with prontodb.open(race_store) as store:
        assert store.get("race.l.lock") == f"owner-{winner}".encode()


def test_compare_and_set_loop_loses_no_append(race_store):
    per_process = 6
    procs = [spawn("cli-cas", race_store, per_process, f"p{p}-") for p in range(8)]
    finish(procs)
    with prontodb.open(race_store) as store:
        parts = store.get("race.c.log").decode().split(";")
    assert parts[-1] == ""
    appended = parts[:-1]
    assert sorted(appended) == sorted(f"p{p}-{i}" for p in range(8) for i in range(per_process))
    for p in range(8):  # each process's appends are in its own order
        mine = [a for a in appended if a.startswith(f"p{p}-")]
        assert mine == [f"p{p}-{i}" for i in range(per_process)]
