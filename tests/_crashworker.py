"""The child side of tests/test_crash.py: each function does one kind of work on a store and
reports over ``conn`` — ``"start"`` once its setup is done (the parent's kill clock starts
then), an acknowledgement after each single write returns, ``"done"`` when the work is over.

Kept free of pytest so that the fork server that preloads it (with prontodb and its engines)
stays small; every child is forked from that server in a few milliseconds.
"""

from __future__ import annotations

import json
import os
import time

import prontodb
import prontodb.backends.diskcache  # noqa: F401 - preloaded in the fork server
import prontodb.backends.lmdb  # noqa: F401
import prontodb.backends.sqlite  # noqa: F401
from prontodb import portable, stream
from prontodb.clock import FakeClock

BIG = 40 * 1024  # over diskcache's inline limit: such values live in files


def single_sets(conn, path, run):
    with prontodb.open(path) as store:
        conn.send("start")
        i = 0
        while True:
            store.set(f"s.r{run}.k{i}", f"value-{run}-{i}")
            conn.send(i)
            i += 1


def set_many(conn, path, run, count):
    with prontodb.open(path) as store:
        pairs = [
            (f"m.r{run}.k{j}", (b"x" * BIG) if j % 500 == 0 else f"v{j}".encode())
            for j in range(count)
        ]
        conn.send("start")
        store.set_many(pairs)
        conn.send("done")


def stream_load(conn, path, run, count):
    with prontodb.open(path) as store:
        text = f"meta:path=t.r{run}; " + "; ".join(f"k{j}=v{j}" for j in range(count))
        conn.send("start")
        stream.load(store, text)
        conn.send("done")


def import_file(conn, path, run, count, folder):
    export = os.path.join(folder, f"import-{run}.jsonl")
    with open(export, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"format": "prontodb-export", "version": 1, "caches": {}}) + "\n")
        for j in range(count):
            row = {"address": f"i.r{run}.k{j}", "value": f"v{j}", "expires_at": None}
            fh.write(json.dumps(row) + "\n")
    with prontodb.open(path) as store, open(export, "rb") as source:
        conn.send("start")
        portable.import_layer(store, source, name=export)
        conn.send("done")


def gc(conn, path, run, expired, live):
    past = FakeClock(time.time() - 100)
    with prontodb.open(path, clock=past) as store:
        store.set_many([(f"g.r{run}.x{j}", b"x") for j in range(expired)], ttl=10)
        store.set_many([(f"g.live{run}.k{j}", f"v{j}") for j in range(live)])
    with prontodb.open(path) as store:
        conn.send("start")
        store.gc()
        conn.send("done")


def restore(conn, path, archive):
    with prontodb.open(path) as store:
        conn.send("start")
        portable.restore(store, archive, replace=True)
        conn.send("done")


def migrate(conn, env, name, backend):
    conn.send("start")
    portable.migrate("default", name, backend, env=env)
    conn.send("done")
