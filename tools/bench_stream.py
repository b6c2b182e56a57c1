"""Benchmark ``prontodb stream`` against the raw batched-write floor of each engine.

    python tools/bench_stream.py                       # 1,000,000 tokens, sqlite and lmdb
    python tools/bench_stream.py --tokens 200000 --repeat 5 --engines lmdb
    python tools/bench_stream.py --profile sqlite      # cProfile of one library import

The input is ``meta:path=bench.data;`` followed by ``k{i}=v{i};`` tokens, written to a file.
For each engine and each round, three fresh processes run one after the other (so they see the
same machine load): the **floor** writes the very (key, envelope) byte pairs the Store would
write, in one transaction (sqlite: ``executemany`` of ``INSERT OR REPLACE`` into the same
table, WAL + ``synchronous=NORMAL``; lmdb: one write transaction with ``putmulti``,
``sync=True, metasync=False``, map pre-sized so it never grows); **library** reads the file and
calls ``prontodb.stream.plan`` + ``apply`` on a new store (durability normal); **cli** runs
``prontodb --database NEW stream FILE`` (interpreter start-up included). The best round of each
is reported, as microseconds per token and as a ratio to the floor, with the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HEADER = "meta:path=bench.data;"
EXTENSIONS = {"sqlite": ".sqlite", "lmdb": ".lmdb"}


def make_input(path: str, tokens: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(HEADER)
        step = 100_000
        for start in range(0, tokens, step):
            fh.write("".join(f"k{i}=v{i};" for i in range(start, min(start + step, tokens))))


def _pairs(tokens: int) -> list[tuple[bytes, bytes]]:
    """The exact pairs the Store writes for the benchmark stream (default user, no meta)."""
    from prontodb import keyspace, record

    prefix = keyspace.scope_prefix(keyspace.layer_prefix("default", None), ("bench", "data"))
    header = record.pack(b"", None)
    return [(prefix + b"k%d\x00" % i, header + b"v%d" % i) for i in range(tokens)]


def floor_sqlite(path: str, tokens: int) -> float:
    import sqlite3

    pairs = _pairs(tokens)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", pairs)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def floor_lmdb(path: str, tokens: int) -> float:
    import lmdb

    pairs = _pairs(tokens)
    env = lmdb.open(path, subdir=False, map_size=4 << 30, sync=True, metasync=False)
    start = time.perf_counter()
    with env.begin(write=True) as txn, txn.cursor() as cursor:
        cursor.putmulti(pairs)
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed


def library(path: str, engine: str, source: str) -> float:
    import prontodb
    from prontodb import stream

    start = time.perf_counter()
    with open(source, "rb") as fh:
        data = fh.read()
    with prontodb.open(path, backend=engine) as store:
        stream.apply(store, stream.plan(data, user=store.user))
    return time.perf_counter() - start


def cli(path: str, source: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "prontodb", "--database", path, "stream", source],
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"prontodb stream failed: {done.stderr.decode()}")
    return elapsed


def child(kind: str, engine: str, source: str, tokens: int) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench" + EXTENSIONS[engine])
        if kind == "floor":
            seconds = (floor_sqlite if engine == "sqlite" else floor_lmdb)(path, tokens)
        elif kind == "library":
            seconds = library(path, engine, source)
        else:
            seconds = cli(path, source)
    rss = resource.getrusage(
        resource.RUSAGE_CHILDREN if kind == "cli" else resource.RUSAGE_SELF
    ).ru_maxrss
    print(json.dumps({"seconds": seconds, "maxrss_mb": rss / 1024}))


def measure(kind: str, engine: str, source: str, tokens: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, engine, source, "--tokens", str(tokens)],
        capture_output=True,
        check=True,
    )
    return json.loads(done.stdout)


def profile(engine: str, source: str) -> None:
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench" + EXTENSIONS[engine])
        profiler = cProfile.Profile()
        profiler.enable()
        library(path, engine, source)
        profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--engines", default="sqlite,lmdb")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end CLI runs")
    parser.add_argument("--profile", metavar="ENGINE", help="profile one library import")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "ENGINE", "FILE"), help="internal")
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.tokens)
        return
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "input.stream")
        make_input(source, args.tokens)
        size = os.path.getsize(source)
        if args.profile:
            profile(args.profile, source)
            return
        kinds = ["floor", "library"] + ([] if args.no_cli else ["cli"])
        print(f"{args.tokens:,} tokens, {size / 1e6:.1f} MB input, best of {args.repeat} rounds")
        print(f"{'engine':<8}{'run':<9}{'us/token':>10}{'tokens/s':>12}{'x floor':>9}{'RSS MB':>9}")
        for engine in args.engines.split(","):
            best: dict[str, dict[str, float]] = {}
            for _ in range(args.repeat):
                for kind in kinds:
                    got = measure(kind, engine, source, args.tokens)
                    if kind not in best or got["seconds"] < best[kind]["seconds"]:
                        best[kind] = got
            floor = best["floor"]["seconds"]
            for kind in kinds:
                seconds = best[kind]["seconds"]
                print(
                    f"{engine:<8}{kind:<9}{seconds / args.tokens * 1e6:>10.2f}"
                    f"{args.tokens / seconds:>12,.0f}{seconds / floor:>9.2f}"
                    f"{best[kind]['maxrss_mb']:>9.0f}"
                )


if __name__ == "__main__":
    main()
