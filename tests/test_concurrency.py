"""Many processes on one store: CLI invocations and library writers at once (DESIGN §7).

For every file backend, 8 processes share one store: 4 slots that run ``prontodb`` CLI
commands one after another (``set``, ``set --ttl``, ``get``, ``gc``) and 4 spawned library
writers with their own ``prontodb.open`` (single sets on a long-lived handle, sets through a
fresh handle per write, ``set_many`` batches). Part of the writes go to a TTL namespace made
with ``create-cache`` whose default is 1 s, interleaved with 1-hour entries in the same
namespace, so the bounded sweeps of concurrent writers (and concurrent ``gc`` runs) work
through it while it is written. At the end:

* no process printed anything on stderr (no ``database is locked``, timeout or readers-full);
* every write whose call returned (library) or exited 0 (CLI) is present with its value;
* no entry that was still live was swept away, while expired ones were (the sweeps ran).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

import prontodb
from prontodb import keyspace

from .conftest import EXTENSIONS, FILE_BACKENDS

CLI_SLOTS = 4
LIBRARY_WRITERS = 4
CLI_RUNS_PER_SLOT = 8
SHORT_TTL = 1
#: Time a library writer keeps going after the CLI slots are done, at least.
MIN_LIBRARY_OPS = 60

LIBRARY_WRITER = r"""
import json, os, sys, time
import prontodb

path, wid, stop, acks = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = open(acks, "w")  # a file, not a pipe: a full pipe would stall the writer
store = prontodb.open(path)
i = 0
begun = time.time()
# At least two short TTLs long, so that sweeps meet expired entries while everyone writes.
while i < MIN_OPS or time.time() < begun + 2 * TTL + 0.5 or not os.path.exists(stop):
    kind = i % 6
    value = f"w{wid}-{i}-" + "x" * (i % 50)
    if kind == 0:
        with prontodb.open(path) as fresh:
            fresh.set(f"w.plain.w{wid}_{i}", value)
        ack = {"address": f"w.plain.w{wid}_{i}", "value": value}
    elif kind == 1:
        store.set(f"w.plain.w{wid}_{i}", value)
        ack = {"address": f"w.plain.w{wid}_{i}", "value": value}
    elif kind in (2, 4):
        started = time.time()
        store.set(f"w.cache.s{wid}_{i}", value)
        ack = {"address": f"w.cache.s{wid}_{i}", "value": value, "live_until": started + TTL}
    elif kind == 3:
        store.set(f"w.cache.l{wid}_{i}", value, ttl=3600)
        ack = {"address": f"w.cache.l{wid}_{i}", "value": value}
    else:
        pairs = [(f"w.bulk.w{wid}_{i}_{j}", f"{value}-{j}") for j in range(20)]
        store.set_many(pairs)
        ack = [{"address": a, "value": v} for a, v in pairs]
    out.write(json.dumps(ack) + "\n")
    out.flush()
    i += 1
store.close()
out.close()
""".replace("MIN_OPS", str(MIN_LIBRARY_OPS)).replace("TTL", str(SHORT_TTL))


def _cli(env, path, *args):
    return subprocess.run(
        [sys.executable, "-m", "prontodb", "--database", path, *args],
        env=env,
        capture_output=True,
        timeout=120,
    )


class CliSlot(threading.Thread):
    """Runs CLI commands one after another; records acknowledged writes and every failure."""

    def __init__(self, env, path, slot, runs=CLI_RUNS_PER_SLOT):
        super().__init__(daemon=True)
        self.env, self.path, self.slot, self.total = env, path, slot, runs
        self.acks: list[dict] = []
        self.failures: list[str] = []
        self.runs = 0

    def run(self):
        for i in range(self.total):
            kind = i % 4
            name = f"c{self.slot}_{i}"
            value = f"cli-{self.slot}-{i}"
            started = time.time()
            if kind == 0:
                args, ack = ("set", f"w.plain.{name}", value), {"address": f"w.plain.{name}"}
            elif kind == 1:
                args = ("set", f"w.cache.s{name}", value)
                ack = {"address": f"w.cache.s{name}", "live_until": started + SHORT_TTL}
            elif kind == 2:
                args = ("set", "--ttl", "1h", f"w.cache.l{name}", value)
                ack = {"address": f"w.cache.l{name}"}
            else:
                args, ack = ("gc",) if self.slot % 2 else ("get", "w.plain.seed"), None
            result = _cli(self.env, self.path, *args)
            self.runs += 1
            if result.returncode != 0 or result.stderr:
                self.failures.append(
                    f"{' '.join(args)}: exit {result.returncode}: {result.stderr.decode()!r}"
                )
            elif ack is not None:
                ack["value"] = value
                self.acks.append(ack)


@pytest.mark.parametrize("backend_name", FILE_BACKENDS)
def test_eight_processes_lose_nothing_and_never_report_busy(home, tmp_path, backend_name):
    hammer(home, tmp_path, backend_name, CLI_SLOTS, CLI_RUNS_PER_SLOT, LIBRARY_WRITERS)


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", FILE_BACKENDS)
def test_soak_sixteen_processes(home, tmp_path, backend_name):
    hammer(home, tmp_path, backend_name, cli_slots=8, runs=40, library_writers=8)


def hammer(home, tmp_path, backend_name, cli_slots, runs, library_writers):
    """Run ``cli_slots`` CLI slots of ``runs`` commands each and ``library_writers`` library
    writers on one store at once, then check what they were told against the store."""
    path = str(tmp_path / f"shared{EXTENSIONS[backend_name]}")
    stop = str(tmp_path / "stop")
    assert _cli(home, path, "create-cache", "w.cache", str(SHORT_TTL)).returncode == 0
    assert _cli(home, path, "set", "w.plain.seed", "seed").returncode == 0

    writers = [
        subprocess.Popen(
            [sys.executable, "-c", LIBRARY_WRITER, path, str(w), stop, str(tmp_path / f"acks{w}")],
            env=home,
            stderr=subprocess.PIPE,
        )
        for w in range(library_writers)
    ]
    slots = [CliSlot(home, path, s, runs) for s in range(cli_slots)]
    for slot in slots:
        slot.start()
    for slot in slots:
        slot.join(300)
    with open(stop, "w"):
        pass
    acks: list[dict] = [ack for slot in slots for ack in slot.acks]
    library_ops = 0
    for w, writer in enumerate(writers):
        _, err = writer.communicate(timeout=300)
        assert err == b"", f"a library writer reported: {err.decode()}"
        assert writer.returncode == 0
        for line in (tmp_path / f"acks{w}").read_text().splitlines():
            library_ops += 1
            ack = json.loads(line)
            acks.extend(ack if isinstance(ack, list) else [ack])
    failures = [f for slot in slots for f in slot.failures]
    assert failures == [], "\n".join(failures)

    checked_at = time.time()
    lost, still_live = [], 0
    # Reads judge expiry at checked_at, however long this loop takes.
    with prontodb.open(path, create=False, clock=lambda: checked_at) as store:
        for ack in acks:
            live_until = ack.get("live_until")
            if live_until is not None and checked_at >= live_until - 0.05:
                continue  # may have expired (and been swept) by now
            still_live += 1
            try:
                value = store.get(ack["address"])
            except KeyError:
                lost.append(ack["address"])
                continue
            assert value == ack["value"].encode(), ack["address"]
        # Short entries written long ago were physically removed by the sweeps and gc runs.
        layer = keyspace.scope_prefix(keyspace.layer_prefix("default", None), ("w", "cache"))
        short_written = sum(1 for a in acks if "live_until" in a)
        short_stored = sum(1 for k, _ in store.backend.scan(layer) if b"\x00s" in k)
        assert store.backend.check() == []
    assert lost == [], f"acknowledged writes lost: {lost[:10]}"
    assert short_stored < short_written, "no expired entry was ever swept: the test is idle"
    print(
        f"\n{backend_name}: {cli_slots} CLI slots x {runs} runs + {library_writers} "
        f"library writers x {library_ops / library_writers:.0f} ops; {len(acks)} acknowledged "
        f"writes, {still_live} verified live, {short_written - short_stored} expired swept"
    )


OPEN_AND_CLOSE = "import sys, prontodb; prontodb.open(sys.argv[1], create=False).close()"


@pytest.mark.parametrize("backend_name", ["sqlite", "diskcache"])
def test_a_second_handle_in_one_process_never_unlocks_the_first(home, tmp_path, backend_name):
    # POSIX drops all of a process's fcntl locks on a file when it closes any descriptor of
    # it. Opening a store sniffs its format; if that read closed a descriptor of a SQLite file
    # the process already had a connection on, the next process to close the store would take
    # itself for the last one and delete the WAL under the first handle (this corrupted
    # stores under concurrent use before the sniff learned to leave such files alone).
    path = str(tmp_path / f"store{EXTENSIONS[backend_name]}")
    wal = os.path.join(path, "cache.db-wal") if backend_name == "diskcache" else path + "-wal"
    first = prontodb.open(path)
    try:
        first.set("p.n.k", "v")
        prontodb.open(path).close()  # a second handle, opened and closed in this process
        subprocess.run([sys.executable, "-c", OPEN_AND_CLOSE, path], env=home, check=True)
        assert os.path.exists(wal), "another process deleted the WAL under an open handle"
        first.set("p.n.k2", "v2")
        assert first.get("p.n.k") == b"v"
    finally:
        first.close()
    with prontodb.open(path, create=False) as store:
        assert store.backend.check() == []
        assert store.keys() == ["p.n.k", "p.n.k2"]
