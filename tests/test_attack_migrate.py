"""Attack class: ``cursor migrate`` racing writers and a second migrate.

Writers that reach the cursor's store while it migrates either land in the new store or are
refused (never acknowledged and lost): the old store is checked against the copy under its
write lock, then retired before the lock is released, so a writer still holding it open is
refused at its next write, and a writer that finds it gone looks the cursor up again. Two
migrates of one cursor run one after the other (a lock per user), so the second never renames
a stale copy over the first one's live store.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import prontodb
from prontodb import cursor, portable
from tests._attack import ROOT
from tests._attack import prontodb as run

WRITER = r"""
import sys
import prontodb
from prontodb.errors import ProntoError

name, count = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
for i in range(count):
    key = f"w.{name}.k{i:05d}"
    try:
        with prontodb.open(cursor="work") as store:
            store.set(key, key)
    except ProntoError as exc:
        print("refused", key, type(exc).__name__, str(exc).replace("\n", " "), flush=True)
        continue
    print("ack", key, flush=True)
"""

MIGRATE = r"""
import sys
from prontodb import portable
from prontodb.errors import ProntoError

try:
    summary = portable.migrate("default", "work", sys.argv[1])
except ProntoError as exc:
    print("refused", type(exc).__name__, exc, flush=True)
else:
    print("migrated", summary.new_path, flush=True)
"""


def _writers(home, n: int, count: int) -> list[subprocess.Popen]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, f"w{i}", str(count)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=home,
        )
        for i in range(n)
    ]
    for proc in procs:
        assert proc.stdout.readline() == "ready\n"
    return procs


def _collect(procs) -> tuple[list[str], int]:
    acked, refused = [], 0
    for proc in procs:
        out = proc.stdout.read()  # not communicate(timeout=): it would skip what readline buffered
        assert proc.wait(timeout=300) == 0
        assert all(line.startswith(("ack ", "refused ")) for line in out.splitlines()), out
        for line in out.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "ack":
                acked.append(rest)
            elif kind == "refused":
                refused += 1
    return acked, refused


def _seeded(engine: str) -> None:
    cursor.define("default", "work", backend=engine)
    with prontodb.open(cursor="work") as store:
        store.set_many((f"seed.n.k{i:04d}", "s") for i in range(500))
        store.layer(user="other", meta="m").set("o.n.k", "theirs")


def _all_present(keys) -> list[str]:
    """The keys missing from the cursor's store (or holding something else)."""
    missing = []
    with prontodb.open(cursor="work") as store:
        for key in keys:
            try:
                if store.get(key) != key.encode():
                    missing.append(key)
            except prontodb.NotFoundError:
                missing.append(key)
    return missing


CHAINS = [("sqlite", "lmdb", "diskcache"), ("lmdb", "diskcache", "sqlite")]


@pytest.mark.parametrize("chain", CHAINS, ids=["-".join(c) for c in CHAINS])
def test_writes_racing_migrates_are_never_lost(home, chain):
    _seeded(chain[0])
    writers = _writers(home, 3, 150)
    for engine in chain[1:]:
        portable.migrate("default", "work", engine)
    acked, refused = _collect(writers)
    assert acked, "no write was acknowledged at all"
    assert _all_present(acked) == []
    assert len(acked) + refused == 450
    with prontodb.open(cursor="work") as store:
        assert store.backend.name == chain[-1]
        assert store.layer(user="other", meta="m").get("o.n.k") == b"theirs"
        assert len(store.keys("seed")) == 500


def test_two_concurrent_migrates_never_lose_the_live_store(home):
    _seeded("sqlite")
    writers = _writers(home, 2, 150)
    migrates = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, "lmdb"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=home,
        )
        for _ in range(2)
    ]
    outcomes = [m.communicate(timeout=300)[0] for m in migrates]
    acked, _ = _collect(writers)
    assert sum(o.startswith("migrated") for o in outcomes) >= 1, outcomes
    for outcome in outcomes:  # the second, if refused, says why in a documented way
        assert outcome.startswith(("migrated", "refused UsageError")), outcome
    spec = cursor.load("default", "work")
    assert spec.backend == "lmdb" and os.path.exists(spec.path)
    assert _all_present(acked) == []
    with prontodb.open(cursor="work") as store:
        assert len(store.keys("seed")) == 500


def test_replace_target_names_the_copy_an_earlier_migrate_left(home):
    _seeded("sqlite")
    old = cursor.load("default", "work")
    summary = portable.migrate("default", "work", "lmdb")
    # Point the cursor back at the (retired) old store: the lmdb copy is now a leftover.
    os.rename(summary.old_path, old.path)
    cursor.save("default", old)
    code, _, err = run(home, "cursor", "migrate", "work", "--backend", "lmdb")
    assert code == 1 and "earlier migrate of cursor 'work'" in err and "--replace-target" in err
    code, _, err = run(home, "cursor", "migrate", "work", "--backend", "lmdb", "--replace-target")
    assert code == 0, err
    assert _all_present([]) == [] and cursor.load("default", "work").backend == "lmdb"


def test_a_target_holding_another_store_is_never_silently_replaced(home, tmp_path):
    _seeded("sqlite")
    other = str(tmp_path / "other.lmdb")
    assert run(home, "--database", other, "set", "x.y.z", "keep")[0] == 0
    code, _, err = run(home, "cursor", "migrate", "work", "--backend", "lmdb", "--to", other)
    assert code == 1 and "already exists" in err and "earlier migrate" not in err
    with prontodb.open(other) as store:
        assert store.get("x.y.z") == b"keep"


def test_the_default_store_migrates_and_later_commands_find_it(home):
    assert run(home, "set", "d.n.k", "v")[0] == 0
    code, _, err = run(home, "cursor", "migrate", "default", "--backend", "lmdb")
    assert code == 0, err
    assert run(home, "get", "d.n.k")[1] == b"v"
    assert run(home, "set", "d.n.k2", "w")[0] == 0
    folder = os.path.join(home["XDG_DATA_HOME"], "prontodb", "users", "default")
    assert not os.path.exists(os.path.join(folder, "default.sqlite"))  # not recreated
    with prontodb.open() as store:
        assert store.backend.name == "lmdb" and store.get("d.n.k2") == b"w"


@pytest.mark.slow
def test_sweep_writers_racing_migrates(home, capsys):
    """Opt-in (--run-slow): 12 rounds of 4 writers x 200 writes racing 3 migrates each."""
    rounds = acked_total = refused_total = migrations = 0
    engines = ["sqlite", "lmdb", "diskcache"]
    _seeded("sqlite")
    for round_no in range(12):
        writers = _writers(home, 4, 200)
        current = cursor.load("default", "work").backend
        for step in range(3):
            current = engines[(engines.index(current) + 1 + (round_no + step) % 2) % 3]
            portable.migrate("default", "work", current, remove_old=step % 2 == 0)
            migrations += 1
        acked, refused = _collect(writers)
        assert _all_present(acked) == []
        rounds += 1
        acked_total += len(acked)
        refused_total += refused
    with capsys.disabled():
        print(
            f"\nmigrate sweep: {rounds} rounds, {migrations} migrates, {acked_total} writes "
            f"acknowledged (0 lost), {refused_total} refused"
        )
