#!/usr/bin/env python3
"""ProntoDB next to the raw engines it runs on, measured in one run on one machine.

    python tools/bench.py --quick                    # smaller sizes, under 2 minutes
    python tools/bench.py --json-out bench.json      # the full run, under 15 minutes
    python tools/bench.py --only single,batch --backends sqlite

For each backend it prints ProntoDB (the library ``Store``, or the ``prontodb`` command) next to
the raw engine used directly with the same durability settings, with the ratio:

* sqlite: WAL, ``synchronous=NORMAL``, one ``WITHOUT ROWID`` table, autocommit single
  ``INSERT OR REPLACE`` per set;
* lmdb: one file (``subdir=False``), ``sync=True, metasync=False``;
* diskcache: ``Cache(eviction_policy='none')`` with raw bytes keys and values.

Every figure is the median of several repeats with the min-max range; raw and ProntoDB runs
alternate so both see the same machine load. Peers (sqlitedict, dbm.gnu, shelve, redis-server
through redis-py) are measured in the same run when installed. Results can also be written as
JSON (``--json-out``). ``docs/performance.md`` explains every row.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

BACKENDS = ("sqlite", "lmdb", "diskcache")
EXTENSIONS = {"sqlite": ".sqlite", "lmdb": ".lmdb", "diskcache": ".diskcache"}
SECTIONS = (
    "single",
    "batch",
    "scan",
    "large",
    "import",
    "concurrency",
    "cli",
    "peers",
    "shell",
)
VALUE = bytes(range(100))  # 100 B, not valid UTF-8 on purpose (opaque bytes)
LAYER = b"D\x00default\x00\x00"  # keyspace.layer_prefix("default", None)
UPSERT = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
MB = 1 << 20

# The targets of issue 18 (ratio ProntoDB / raw engine, same run, unless said otherwise).
SINGLE_SET_TARGET = 1.3
GET_TARGET = {"sqlite": 1.5, "lmdb": 2.5, "diskcache": 1.5}
LARGE_TARGET = 1.3  # get and set of 1 MB and 10 MB values
BATCH_TARGET = {"sqlite": 1.5, "lmdb": 2.5, "diskcache": 1.5}  # lmdb: vs a loop of txn.put
BATCH_PUTMULTI_TARGET = 4.0  # lmdb: vs py-lmdb's C putmulti
SCAN_TARGET = 1.5
STREAM_TARGET = {"sqlite": 2.0, "lmdb": 3.0}  # diskcache: no target
JSONL_TARGET = 2.5
THROUGHPUT_TARGET = 0.75  # at least, 4 concurrent writers
P99_TARGET = 2.0
CLI_TARGET = {"sqlite": 2.0, "lmdb": 2.2, "diskcache": 3.0}  # vs python -c pass
LIBRARY_SET_US = 25.0  # library single set on sqlite, absolute

#: The clock of every in-process timing: wall time, or with ``--clock cpu`` this process's CPU
#: time (user + system), which a machine shared with other work disturbs much less. The CLI
#: rows then use the children's CPU time; concurrency and peers are always wall time.
_clock: Callable[[], float] = time.perf_counter


def now() -> float:
    return _clock()


SETTINGS = {
    "sqlite": "WAL + synchronous=NORMAL, WITHOUT ROWID, autocommit INSERT OR REPLACE",
    "lmdb": "subdir=False, sync=True, metasync=False",
    "diskcache": "Cache(eviction_policy='none'), raw bytes, WAL + synchronous=NORMAL",
}


@dataclass
class Sizes:
    """How much each section does (``--quick`` shrinks everything but the CLI runs)."""

    repeats: int
    single: int
    single_fsync: int  # lmdb sets fsync each commit: fewer ops in --quick
    batch: int
    scan_total: int
    scan_part: int
    large: tuple[tuple[int, int], ...]  # (size, count)
    imports: int
    import_repeats: int
    writers: int
    per_writer: int
    writer_repeats: int
    cli_runs: int
    peer_single: int
    peer_batch: int
    shell_loop: int  # commands per loop in the shell-loop scenario


# Sizes are cut to what keeps the medians stable (session 3: the full run took 1,315-2,147 s
# under load; the aim is under 15 minutes, --quick under 2): per-entry costs of batches and
# imports do not move between 200,000 and 1,000,000 entries, and 500 sets per writer already
# give 2,000 latencies per round for the p99.
FULL = Sizes(
    repeats=5,
    single=10_000,
    single_fsync=2_000,
    batch=200_000,
    scan_total=200_000,
    scan_part=10_000,
    large=((1 * MB, 20), (10 * MB, 5)),
    imports=200_000,
    import_repeats=3,
    writers=4,
    per_writer=500,
    writer_repeats=3,
    cli_runs=30,
    peer_single=10_000,
    peer_batch=200_000,
    shell_loop=1_000,
)
QUICK = Sizes(
    repeats=3,
    single=3_000,
    single_fsync=300,
    batch=20_000,
    scan_total=50_000,
    scan_part=5_000,
    large=((1 * MB, 5), (10 * MB, 2)),
    imports=20_000,
    import_repeats=2,
    writers=4,
    per_writer=100,
    writer_repeats=2,
    cli_runs=20,
    peer_single=1_000,
    peer_batch=20_000,
    shell_loop=20,
)
#: The shell loop's ``python -c pass`` floor runs at most this many commands of each kind (a
#: process start costs the same every time; the tools compared run the full loop).
SHELL_FLOOR_MAX = 200


# -- statistics and rows ---------------------------------------------------------------------


def stat(samples: Sequence[float]) -> dict[str, float]:
    """Median, min and max of per-repeat samples (seconds, or seconds per op)."""
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
    }


@dataclass
class Row:
    """One line of a table: ProntoDB next to the raw engine (or a peer) for one case.

    ``ratio`` is ProntoDB's median over the raw median. A target is met when the ratio is at
    most ``target``, or, for a row with ``at_least`` (throughput), at least ``target``. A row
    with a target and no ProntoDB figure is a target *not measured* (``note`` says why)."""

    section: str
    backend: str
    case: str
    unit: str  # how to print: "us", "ms", "s" (values in seconds) or "ops" (per second)
    raw: dict[str, float] | None
    pronto: dict[str, float] | None
    target: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    at_least: bool = False
    raw_label: str = "raw"  # what the raw side is, when it is not the engine's plain floor

    @property
    def ratio(self) -> float | None:
        if not self.raw or not self.pronto or not self.raw["median"]:
            return None
        return self.pronto["median"] / self.raw["median"]

    @property
    def met(self) -> bool | None:
        ratio = self.ratio
        if self.target is None or ratio is None:
            return None
        return ratio >= self.target if self.at_least else ratio <= self.target

    @property
    def target_label(self) -> str:
        if self.target is None:
            return ""
        return f"{'>=' if self.at_least else '<='}{self.target:g}x"

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return {True: "met", False: "NOT met", None: "NOT MEASURED"}[self.met]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        out["met"] = self.met
        return out


SCALE = {"us": (1e6, "µs"), "ms": (1e3, "ms"), "s": (1.0, "s"), "ops": (1.0, "ops/s")}


def fmt(value: dict[str, float] | None, unit: str) -> str:
    if not value:
        return "-"
    factor, label = SCALE[unit]
    med, lo, hi = (value[k] * factor for k in ("median", "min", "max"))
    digits = 2 if med < 10 else 1 if med < 100 else 0
    return f"{med:,.{digits}f} {label} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def interleaved(
    sides: Sequence[Callable[[], float] | None], repeats: int
) -> list[dict[str, float] | None]:
    """Run every side ``repeats`` times, rotating which goes first so all see the same machine
    load; each call returns one sample. Each sample starts after a full garbage collection
    (and runs with the collector on, as an application does)."""
    samples: list[list[float]] = [[] for _ in sides]
    for i in range(repeats):
        for j in range(len(sides)):
            k = (i + j) % len(sides)
            fn = sides[k]
            if fn is None:
                continue
            gc.collect()
            samples[k].append(fn())
    return [stat(x) if x else None for x in samples]


def paired(
    raw: Callable[[], float] | None, pronto: Callable[[], float] | None, repeats: int
) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """:func:`interleaved` for the usual two sides: the raw engine and ProntoDB."""
    r, p = interleaved([raw, pronto], repeats)
    return r, p


# -- the raw engines -------------------------------------------------------------------------


def successor(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


class RawSqlite:
    """sqlite3 used directly, configured like ProntoDB's normal durability."""

    def __init__(self, path: str) -> None:
        import sqlite3

        self.conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
        )
        execute = self.conn.execute
        self.set = lambda k, v: execute(UPSERT, (k, v))
        self.get = lambda k: execute("SELECT v FROM kv WHERE k = ?", (k,)).fetchone()[0]

    def batch(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(UPSERT, pairs)
        self.conn.execute("COMMIT")

    def scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        return self.conn.execute(
            "SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k", (prefix, successor(prefix))
        ).fetchall()

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM kv").fetchone()[0]

    def close(self) -> None:
        self.conn.close()


class RawLmdb:
    """py-lmdb used directly: one file, sync=True, metasync=False, a map that never fills."""

    def __init__(self, path: str) -> None:
        import lmdb

        self.env = lmdb.open(
            path,
            subdir=False,
            sync=True,
            metasync=False,
            map_size=16 << 30,
            max_readers=1024,
            readahead=False,
        )
        env = self.env

        def put(k: bytes, v: bytes) -> None:
            with env.begin(write=True) as txn:
                txn.put(k, v)

        def get(k: bytes) -> bytes:
            with env.begin() as txn:
                return txn.get(k)

        self.set, self.get = put, get

    def batch(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        with self.env.begin(write=True) as txn, txn.cursor() as cursor:
            cursor.putmulti(pairs)

    def batch_loop(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        """The batched floor of a Python program: one ``txn.put`` per pair."""
        with self.env.begin(write=True) as txn:
            put = txn.put
            for key, value in pairs:
                put(key, value)

    def scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        out = []
        with self.env.begin() as txn, txn.cursor() as cursor:
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    out.append((key, value))
        return out

    def count(self) -> int:
        return self.env.stat()["entries"]

    def close(self) -> None:
        self.env.close()


class RawDiskcache:
    """diskcache used directly: no eviction, raw bytes keys and values."""

    def __init__(self, path: str) -> None:
        import diskcache

        self.cache = diskcache.Cache(
            path,
            eviction_policy="none",
            cull_limit=0,
            size_limit=2**62,
            statistics=False,
            tag_index=False,
            timeout=60,
        )
        self.set = self.cache.set
        self.get = self.cache.get

    def batch(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        cache_set = self.cache.set
        with self.cache.transact():
            for key, value in pairs:
                cache_set(key, value)

    def scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        # diskcache has no ordered prefix scan (iterkeys() walks the whole table per page):
        # the raw floor is SQL on its own Cache table, over its (key, raw) index.
        return self.cache._sql(
            "SELECT key, value FROM Cache WHERE key >= ? AND key < ? AND raw = 1 ORDER BY key",
            (prefix, successor(prefix)),
        ).fetchall()

    def count(self) -> int:
        return len(self.cache)

    def close(self) -> None:
        self.cache.close()


RAW = {"sqlite": RawSqlite, "lmdb": RawLmdb, "diskcache": RawDiskcache}


def open_pronto(path: str) -> Any:
    import prontodb

    return prontodb.open(path)


# -- helpers ---------------------------------------------------------------------------------


class Bench:
    """One run: where files go, what is measured, and everything that was found."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.root = tempfile.mkdtemp(prefix="prontodb-bench-", dir=args.dir)
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.facts: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self._n = 0

    def path(self, backend: str, name: str = "store") -> str:
        self._n += 1
        return os.path.join(self.root, f"{name}-{self._n}{EXTENSIONS.get(backend, '')}")

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def skip(self, what: str, why: str) -> None:
        """Say at once, and again at the end of the report, that something could not run."""
        line = f"{what}: NOT RUN: {why}"
        self.skipped.append(line)
        self.log(f"!!! {line}")


def keys_for(prefix: str, n: int) -> tuple[list[str], list[bytes]]:
    """n addresses ``bench.<prefix>.kNNNNNNNN`` and the backend keys ProntoDB gives them."""
    addrs = [f"bench.{prefix}.k{i:08d}" for i in range(n)]
    keys = [LAYER + f"bench\x00{prefix}\x00k{i:08d}\x00".encode() for i in range(n)]
    return addrs, keys


def timed_loop(fn: Callable[..., Any], items: Sequence[Any], *extra: Any) -> Callable[[], float]:
    """A sample function: seconds per call of ``fn(item, *extra)`` over all items."""

    def run() -> float:
        start = now()
        if extra:
            for item in items:
                fn(item, *extra)
        else:
            for item in items:
                fn(item)
        return (now() - start) / len(items)

    return run


def wall_loop(fn: Callable[..., Any], items: Sequence[Any], *extra: Any) -> Callable[[], float]:
    """:func:`timed_loop` in wall time (peers talk to other processes, or wait for the disk)."""

    def run() -> float:
        start = time.perf_counter()
        for item in items:
            fn(item, *extra)
        return (time.perf_counter() - start) / len(items)

    return run


def rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it starts afresh at exec,
    so the parent's memory at fork time does not count)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- sections --------------------------------------------------------------------------------


def bench_single(b: Bench, backend: str) -> None:
    """Single committed set and get of 100 B values, one op at a time."""
    s = b.sizes
    n = s.single_fsync if backend == "lmdb" else s.single
    addrs, keys = keys_for("single", n)
    raw = RAW[backend](b.path(backend, "raw"))
    store = open_pronto(b.path(backend))
    try:
        # warm up statement caches and the first pages, then overwrite in the timed repeats
        for k in keys[: n // 10 or 1]:
            raw.set(k, VALUE)
        for a in addrs[: n // 10 or 1]:
            store.set(a, VALUE)
        repeats = min(s.repeats, 3) if backend == "lmdb" else s.repeats
        r, p = paired(
            timed_loop(raw.set, keys, VALUE), timed_loop(store.set, addrs, VALUE), repeats
        )
        b.add(Row("single", backend, f"set 100 B ({n:,} ops)", "us", r, p, SINGLE_SET_TARGET))
        assert raw.get(keys[-1]) == VALUE and store.get(addrs[-1]) == VALUE
        ng = s.single
        gaddrs, gkeys = (addrs, keys) if ng <= n else keys_for("single", ng)
        if ng > n:  # lmdb in --quick: fill the rest in one transaction
            raw.batch(zip(gkeys[n:], [VALUE] * (ng - n), strict=True))
            store.set_many(zip(gaddrs[n:], [VALUE] * (ng - n), strict=True))
        r, p = paired(timed_loop(raw.get, gkeys), timed_loop(store.get, gaddrs), s.repeats)
        b.add(Row("single", backend, f"get 100 B ({ng:,} ops)", "us", r, p, GET_TARGET[backend]))
    finally:
        raw.close()
        store.close()


def bench_batch(b: Bench, backend: str) -> None:
    """One transaction of many 100 B entries into a new store, per entry."""
    n = b.sizes.batch
    addrs, keys = keys_for("batch", n)
    raw_pairs = list(zip(keys, [VALUE] * n, strict=True))
    pronto_pairs = list(zip(addrs, [VALUE] * n, strict=True))

    def raw_run() -> float:
        engine = RAW[backend](b.path(backend, "raw"))
        start = now()
        engine.batch(raw_pairs)
        took = now() - start
        engine.close()
        return took / n

    def pronto_run() -> float:
        store = open_pronto(b.path(backend))
        start = now()
        store.set_many(pronto_pairs)
        took = now() - start
        store.close()
        return took / n

    case = f"batched set ({n:,} in 1 txn)"
    if backend != "lmdb":
        r, p = paired(raw_run, pronto_run, min(b.sizes.repeats, 3))
        row = b.add(Row("batch", backend, case, "us", r, p, BATCH_TARGET[backend]))
        row.extra["entries"] = n
        return

    def loop_run() -> float:
        engine = RawLmdb(b.path(backend, "raw-loop"))
        start = now()
        engine.batch_loop(raw_pairs)
        took = now() - start
        engine.close()
        return took / n

    loop, multi, p = interleaved([loop_run, raw_run, pronto_run], min(b.sizes.repeats, 3))
    row = b.add(
        Row(
            "batch",
            backend,
            case,
            "us",
            loop,
            p,
            BATCH_TARGET[backend],
            raw_label="a Python loop of txn.put",
        )
    )
    row.extra["entries"] = n
    row = b.add(
        Row(
            "batch",
            backend,
            case,
            "us",
            multi,
            p,
            BATCH_PUTMULTI_TARGET,
            raw_label="py-lmdb's C putmulti",
        )
    )
    row.extra["entries"] = n


def bench_scan(b: Bench, backend: str) -> None:
    """Prefix scan of one namespace (scan_part entries) out of scan_total, as a list."""
    s = b.sizes
    spaces = s.scan_total // s.scan_part
    raw = RAW[backend](b.path(backend, "raw"))
    store = open_pronto(b.path(backend))
    try:
        for ns in range(spaces):
            addrs, keys = keys_for(f"ns{ns:02d}", s.scan_part)
            raw.batch(zip(keys, [VALUE] * len(keys), strict=True))
            store.set_many(zip(addrs, [VALUE] * len(addrs), strict=True))
        middle = f"ns{spaces // 2:02d}"
        prefix = LAYER + f"bench\x00{middle}\x00".encode()

        def raw_run() -> float:
            start = now()
            got = raw.scan(prefix)
            took = now() - start
            assert len(got) == s.scan_part, len(got)
            return took

        def pronto_run() -> float:
            start = now()
            got = list(store.scan(f"bench.{middle}"))
            took = now() - start
            assert len(got) == s.scan_part, len(got)
            return took

        raw_run(), pronto_run()  # warm the page cache on both sides
        r, p = paired(raw_run, pronto_run, s.repeats)
        case = f"prefix scan {s.scan_part:,} of {s.scan_total:,}"
        note = "raw: SQL on diskcache's Cache table" if backend == "diskcache" else ""
        b.add(Row("scan", backend, case, "ms", r, p, SCAN_TARGET, note))
    finally:
        raw.close()
        store.close()


def bench_large(b: Bench, backend: str) -> None:
    """Set then get of 1 MB and 10 MB values."""
    raw = RAW[backend](b.path(backend, "raw"))
    store = open_pronto(b.path(backend))
    try:
        for size, count in b.sizes.large:
            value = os.urandom(size)
            label = f"{size // MB} MB"
            addrs, keys = keys_for(f"large{size // MB}", count)
            r, p = paired(
                timed_loop(raw.set, keys, value),
                timed_loop(store.set, addrs, value),
                b.sizes.repeats,
            )
            note = ""
            if backend == "diskcache":
                note = "ProntoDB fsyncs each value file (normal durability); raw diskcache does not"
            case = f"set {label} ({count} ops)"
            b.add(Row("large", backend, case, "ms", r, p, LARGE_TARGET, note))
            r, p = paired(timed_loop(raw.get, keys), timed_loop(store.get, addrs), b.sizes.repeats)
            b.add(Row("large", backend, f"get {label} ({count} ops)", "ms", r, p, LARGE_TARGET))
            assert store.get(addrs[0]) == value and raw.get(keys[0]) == value
    finally:
        raw.close()
        store.close()


# -- imports: each measurement in its own process, for a clean peak RSS ------------------------

IMPORT_NS = "imp"


def import_value(i: int) -> str:
    return f"{i:08d}" + "x" * 92  # 100 ASCII characters, no ';' or quotes


def make_import_inputs(b: Bench, n: int) -> tuple[str, str]:
    stream_path = os.path.join(b.root, f"input-{n}.stream")
    jsonl_path = os.path.join(b.root, f"input-{n}.jsonl")
    if not os.path.exists(stream_path):
        with open(stream_path, "w", encoding="ascii") as fh:
            fh.write(f"meta:path=bench.{IMPORT_NS};")
            for start in range(0, n, 100_000):
                end = min(start + 100_000, n)
                fh.write("".join(f"k{i:08d}={import_value(i)};" for i in range(start, end)))
    if not os.path.exists(jsonl_path):
        from prontodb import __version__
        from prontodb.portable import EXPORT_FORMAT, EXPORT_VERSION

        header = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "prontodb": __version__,
            "source": {"backend": "bench"},
            "scope": None,
            "caches": {},
        }
        with open(jsonl_path, "w", encoding="ascii") as fh:
            fh.write(json.dumps(header, separators=(",", ":")) + "\n")
            for start in range(0, n, 100_000):
                end = min(start + 100_000, n)
                fh.write(
                    "".join(
                        f'{{"address":"bench.{IMPORT_NS}.k{i:08d}","value":"{import_value(i)}",'
                        '"encoding":"utf-8","expires_at":null}\n'
                        for i in range(start, end)
                    )
                )
    return stream_path, jsonl_path


def child_import(kind: str, backend: str, path: str, source: str, n: int) -> dict[str, float]:
    """One import (or the raw floor) in this fresh process."""
    if kind == "floor":
        from prontodb import record

        header = record.pack(b"", None)
        prefix = LAYER + f"bench\x00{IMPORT_NS}\x00".encode()
        pairs = [(prefix + b"k%08d\x00" % i, header + import_value(i).encode()) for i in range(n)]
        engine = RAW[backend](path)
        start = now()
        engine.batch(pairs)
        took = now() - start
        count = engine.count()
        engine.close()
    elif kind == "stream":
        from prontodb import stream

        store = open_pronto(path)
        start = now()
        # the CLI's path: read once, validated batches spooled to a temp file (flat memory)
        planned = stream.plan_file(source, user=store.user, delim=store.delim)
        stream.apply(store, planned)
        took = now() - start
        count = store.count(f"bench.{IMPORT_NS}")
        store.close()
    elif kind == "jsonl":
        from prontodb import portable

        store = open_pronto(path)
        start = now()
        with open(source, "rb") as fh:
            portable.import_layer(store, fh, name=source)
        took = now() - start
        count = store.count(f"bench.{IMPORT_NS}")
        store.close()
    else:
        raise SystemExit(f"unknown child kind {kind}")
    if count < n:
        raise SystemExit(f"{kind} on {backend}: {count} entries, expected {n}")
    return {"seconds": took, "maxrss_mb": rss_mb()}


def run_child(b: Bench, *argv: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--clock", b.args.clock, "--child", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {argv[:2]} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_import(b: Bench, backend: str) -> None:
    """Stream and JSONL import of N entries, against the raw engine's batched floor of the very
    pairs the Store writes; each run in a fresh process (peak RSS reported)."""
    from importlib.util import find_spec

    n = b.sizes.imports
    kinds = ["floor"]
    for kind, module in (("stream", "prontodb.stream"), ("jsonl", "prontodb.portable")):
        if find_spec(module) is None:
            b.skip(f"{kind} import", f"{module} is absent")
        else:
            kinds.append(kind)
    stream_path, jsonl_path = make_import_inputs(b, n)
    sources = {"floor": "-", "stream": stream_path, "jsonl": jsonl_path}
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    for i in range(b.sizes.import_repeats):
        order = kinds if i % 2 == 0 else kinds[::-1]
        for kind in order:
            path = b.path(backend, f"import-{kind}")
            samples[kind].append(run_child(b, kind, backend, path, sources[kind], str(n)))
            remove(path)
    floor = stat([x["seconds"] / n for x in samples["floor"]])
    floor_rss = max(x["maxrss_mb"] for x in samples["floor"])
    for kind in kinds[1:]:
        got = stat([x["seconds"] / n for x in samples[kind]])
        rss = max(x["maxrss_mb"] for x in samples[kind])
        target = JSONL_TARGET if kind == "jsonl" else STREAM_TARGET.get(backend)
        case = f"{kind} import ({n:,} entries)"
        row = b.add(Row("import", backend, case, "us", floor, got, target))
        row.extra.update(
            {"entries": n, "peak_rss_mb": round(rss), "floor_peak_rss_mb": round(floor_rss)}
        )
        row.note = f"peak RSS {rss:.0f} MB (raw floor {floor_rss:.0f} MB)"
        if not b.args.quick:  # memory bounded? the same import at a tenth of the size
            small = n // 10
            s_stream, s_jsonl = make_import_inputs(b, small)
            source = s_stream if kind == "stream" else s_jsonl
            path = b.path(backend, f"import-{kind}-small")
            got_small = run_child(b, kind, backend, path, source, str(small))
            remove(path)
            row.extra["peak_rss_mb_at_tenth"] = round(got_small["maxrss_mb"])
            row.note += f"; {got_small['maxrss_mb']:.0f} MB at {small:,}"


def remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        for p in (path, path + "-wal", path + "-shm", path + "-lock"):
            try:
                os.remove(p)
            except OSError:
                pass


# -- concurrency -----------------------------------------------------------------------------


def _writer(kind: str, backend: str, path: str, ident: int, n: int, barrier: Any, out: Any) -> None:
    from array import array

    handle = RAW[backend](path) if kind == "raw" else open_pronto(path)
    if kind == "raw":
        keys: list[Any] = [
            LAYER + f"bench\x00conc\x00w{ident}-{i:06d}\x00".encode() for i in range(n)
        ]
    else:
        keys = [f"bench.conc.w{ident}-{i:06d}" for i in range(n)]
    put = handle.set
    latencies = array("d")
    errors: list[str] = []
    clock = time.perf_counter
    barrier.wait()
    began = time.time()
    for key in keys:
        start = clock()
        try:
            put(key, VALUE)
        except Exception as exc:  # counted, never hidden
            errors.append(f"{type(exc).__name__}: {exc}")
        latencies.append(clock() - start)
    ended = time.time()
    handle.close()
    out.put((began, ended, latencies.tobytes(), errors[:5], len(errors)))


def bench_concurrency(b: Bench, backend: str) -> None:
    """Writer processes (spawned, each with its own handle) setting distinct keys at once."""
    import multiprocessing as mp
    from array import array

    ctx = mp.get_context("spawn")
    writers, n = b.sizes.writers, b.sizes.per_writer
    results: dict[str, dict[str, Any]] = {}
    all_runs: dict[str, list[dict[str, Any]]] = {"raw": [], "pronto": []}
    for i in range(b.sizes.writer_repeats):
        for kind in ("raw", "pronto") if i % 2 == 0 else ("pronto", "raw"):
            runs = all_runs[kind]
            path = b.path(backend, f"conc-{kind}")
            RAW[backend](path).close() if kind == "raw" else open_pronto(path).close()
            barrier = ctx.Barrier(writers)
            out = ctx.Queue()
            procs = [
                ctx.Process(target=_writer, args=(kind, backend, path, w, n, barrier, out))
                for w in range(writers)
            ]
            for proc in procs:
                proc.start()
            got = [out.get(timeout=600) for _ in procs]
            for proc in procs:
                proc.join()
            began = min(g[0] for g in got)
            ended = max(g[1] for g in got)
            lat = array("d")
            for g in got:
                lat.frombytes(g[2])
            errors = sum(g[4] for g in got)
            samples = [e for g in got for e in g[3]]
            handle = RAW[backend](path) if kind == "raw" else open_pronto(path)
            present = handle.count() if kind == "raw" else handle.count("bench.conc")
            handle.close()
            ordered = sorted(lat)
            runs.append(
                {
                    "ops_per_s": writers * n / (ended - began),
                    "p99": ordered[int(len(ordered) * 0.99) - 1],
                    "p50": ordered[len(ordered) // 2],
                    "errors": errors,
                    "error_samples": samples,
                    "lost": writers * n - present,
                }
            )
            remove(path)
    for kind, runs in all_runs.items():
        results[kind] = {
            "throughput": stat([r["ops_per_s"] for r in runs]),
            "ops_per_s": statistics.median(r["ops_per_s"] for r in runs),
            "p99": stat([r["p99"] for r in runs]),
            "p50": statistics.median(r["p50"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "lost": sum(r["lost"] for r in runs),
            "error_samples": [e for r in runs for e in r["error_samples"]][:5],
        }
    raw, pronto = results["raw"], results["pronto"]
    label = f"{writers} writers x {n:,} sets"
    row = b.add(
        Row(
            "concurrency",
            backend,
            f"{label}: throughput",
            "ops",
            raw["throughput"],
            pronto["throughput"],
            THROUGHPUT_TARGET,
            at_least=True,
        )
    )
    row.extra = {"raw": raw, "pronto": pronto}
    row.note = (
        f"ProntoDB {pronto['ops_per_s']:,.0f} ops/s, {pronto['errors']} errors, "
        f"{pronto['lost']} lost; raw {raw['ops_per_s']:,.0f} ops/s, {raw['errors']} errors"
    )
    if pronto["error_samples"]:
        row.note += f" ({pronto['error_samples'][0]})"
    case = f"{label}: p99 latency"
    b.add(Row("concurrency", backend, case, "us", raw["p99"], pronto["p99"], P99_TARGET))


# -- the command line ------------------------------------------------------------------------


def cli_env(b: Bench) -> dict[str, str]:
    """The commands' environment: no PRONTO_* variable, XDG dirs inside the benchmark's folder,
    and bytecode cached like an installed package has it (if PYTHONDONTWRITEBYTECODE is set,
    every run would compile ProntoDB's source again while click comes precompiled)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRONTO_")}
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        env[name] = os.path.join(b.root, "xdg", name.lower())
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env["PYTHONPYCACHEPREFIX"] = os.path.join(b.root, "pycache")
        note = (
            "PYTHONDONTWRITEBYTECODE is set here: the CLI runs unset it and use "
            "PYTHONPYCACHEPREFIX inside the benchmark folder (warmed before timing), so every "
            "side runs from cached bytecode as after an install"
        )
        if note not in b.notes:
            b.notes.append(note)
    return env


def wall(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds one run of ``cmd`` takes: wall time, or its CPU time with ``--clock cpu``."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, check=False)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr!r}")
    if _clock is time.process_time:
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took


#: ``--cli-venv``: the virtualenv whose interpreter and ``prontodb`` script the CLI rows run
#: (default: the one running this benchmark).
_cli_venv: str | None = None


def venv_bins() -> tuple[str, str]:
    """The interpreter of the CLI rows and the ``prontodb`` script beside it."""
    python = os.path.join(_cli_venv, "bin", "python") if _cli_venv else sys.executable
    script = os.path.join(os.path.dirname(python), "prontodb")
    return python, script


def build_cli_venv(b: Bench) -> str:
    """A virtualenv with a regular (non-editable) install of this source tree, as a user has
    after ``pip install prontodb``: this interpreter's pip installs the tree (``--no-deps``;
    the build backend comes from the package index) into a new venv, whose dependencies are
    seen through a ``.pth`` line naming this interpreter's site-packages (a ``.pth`` file in
    there, such as an editable install's import hook, is not run)."""
    import sysconfig

    folder = os.path.join(b.root, "cli-venv")
    source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", folder], check=True, capture_output=True
    )
    python = os.path.join(folder, "bin", "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with open(os.path.join(purelib, "bench-deps.pth"), "w", encoding="utf-8") as fh:
        fh.write(sysconfig.get_paths()["purelib"] + "\n")
    with tempfile.TemporaryDirectory(dir=b.root) as build:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps"]
            + ["--disable-pip-version-check", source],
            capture_output=True,
            text=True,
            cwd=build,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(
            f"pip install of {source} failed (use --cli-install editable to measure this "
            f"interpreter's install instead): {done.stderr.strip()[-1000:]}"
        )
    return folder


def choose_cli_venv(b: Bench) -> None:
    """Which installation the CLI rows, the shell loop and the import profile run:
    ``--cli-venv DIR``, this interpreter's (``--cli-install editable``), or by default a
    regular install of this tree built for the run."""
    global _cli_venv
    if b.args.cli_venv:
        _cli_venv = os.path.abspath(b.args.cli_venv)
    elif b.args.cli_install == "regular":
        b.log("         building a venv with a regular install of this tree for the CLI rows")
        _cli_venv = build_cli_venv(b)


def cli_install(b: Bench, env: dict[str, str]) -> str:
    """Where the CLI's interpreter imports prontodb from, and whether that is an editable
    install (whose import hook every interpreter start in that venv pays, the floor too)."""
    python, _ = venv_bins()
    probe = "import prontodb, sys; print(prontodb.__file__)"
    # run outside the source tree: ``-c`` puts the working directory first on sys.path
    done = subprocess.run(
        [python, "-c", probe], env=env, capture_output=True, text=True, cwd=b.root
    )
    where = os.path.dirname(done.stdout.strip()) or "?"
    kind = "regular install" if "site-packages" in where else "editable install"
    return f"{kind}: {where}, python {python}"


#: The one-shot commands of issue 18 and the argv each is timed with (after ``--database``).
#: ``del`` removes a key set before the run (a different one each run); ``incr`` counts up a
#: key that holds ``0`` at the start.
CLI_COMMANDS: dict[str, Callable[[int], list[str]]] = {
    "get": lambda i: ["get", "bench.cli.key"],
    "set": lambda i: ["set", "bench.cli.key", "value"],
    "del": lambda i: ["del", f"bench.cli.gone{i:04d}"],
    "exists": lambda i: ["exists", "bench.cli.key"],
    "incr": lambda i: ["incr", "bench.cli.counter"],
}


def prontodb_command(b: Bench) -> list[str]:
    """How to start the CLI: the ``prontodb`` script beside this interpreter, as installed."""
    python, script = venv_bins()
    if os.path.exists(script):
        return [script]
    b.notes.append(f"{script} not found: the CLI rows run 'python -m prontodb' instead")
    return [python, "-m", "prontodb"]


def available_commands(
    b: Bench, prontodb: list[str], env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The commands of :data:`CLI_COMMANDS` this ``prontodb`` has (``CMD --help`` exits 0),
    and why each other one is missing (found afresh each run, so a new command is picked up
    as soon as it exists)."""
    found, missing = [], {}
    for command in CLI_COMMANDS:
        done = subprocess.run(
            [*prontodb, command, "--help"], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            found.append(command)
        else:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            missing[command] = f"command not available (exit {done.returncode}: {last})"
    return found, missing


def bench_cli(b: Bench, backends: Sequence[str]) -> None:
    """One-shot ``prontodb`` processes (get, set, del, exists, incr) against ``python -c pass``
    in the same interpreter and environment, interleaved, after warm-up runs that leave the
    bytecode of every module cached."""
    python, _ = venv_bins()
    prontodb = prontodb_command(b)
    env = cli_env(b)
    floor_cmd = [python, "-c", "pass"]
    runs = b.sizes.cli_runs
    warm = 1  # one run compiles and caches the bytecode and warms the OS caches
    commands, missing = available_commands(b, prontodb, env)
    for command, why in missing.items():
        b.skip(f"one-shot CLI '{command}'", why)
    stores = {}
    for backend in backends:
        path = b.path(backend, "cli")
        with open_pronto(path) as store:
            store.set("bench.cli.key", b"value")
            store.set("bench.cli.counter", b"0")
            store.set_many((f"bench.cli.gone{i:04d}", b"x") for i in range(warm + runs))
        stores[backend] = path
    samples: dict[tuple[str, str], list[float]] = {}
    failed: dict[tuple[str, str], str] = {}
    floors: list[float] = []
    for i in range(warm + runs):  # the first runs warm the OS caches and compile bytecode
        took = wall(floor_cmd, env)
        if i >= warm:
            floors.append(took)
        for backend in backends:
            for command in commands:
                if (backend, command) in failed:
                    continue
                argv = [*prontodb, "--database", stores[backend], *CLI_COMMANDS[command](i)]
                try:
                    took = wall(argv, env)
                except RuntimeError as exc:
                    failed[(backend, command)] = str(exc)
                    b.skip(f"one-shot CLI '{command}' on {backend}", f"it failed: {exc}")
                    continue
                if i >= warm:
                    samples.setdefault((backend, command), []).append(took)
    floor = stat(floors)
    for backend in backends:
        for command in CLI_COMMANDS:
            case = f"prontodb {command} one-shot ({runs} runs)"
            got = samples.get((backend, command))
            note = "command not available" if command in missing else ""
            if (backend, command) in failed:
                note = "the command failed (see the NOT RUN list)"
            row = Row("cli", backend, case, "ms", floor, stat(got) if got else None, note=note)
            row.target = CLI_TARGET[backend]
            row.raw_label = "python -c pass"
            b.add(row)
    b.extra["cli_commands"] = {"floor": floor_cmd, "prontodb": prontodb, "available": commands}
    b.extra["cli_install"] = cli_install(b, env)
    check_engine_imports(b, prontodb, stores.get("sqlite"), env)
    if "sqlite" in stores:
        argv = ["--database", stores["sqlite"], "get", "bench.cli.key"]
        b.extra["import_profile"] = import_profile(python, prontodb, argv, env)


_LOADED = """
import atexit, json, runpy, sys
# A registered exit callback keeps a hot command from ending the process with os._exit
# (prontodb.cli._end_now), so that this script gets to look at sys.modules afterwards.
atexit.register(lambda: None)
script = sys.argv[1]
sys.argv = [script, *json.loads(sys.argv[2])]
try:
    if script == "-m":
        runpy.run_module("prontodb", run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(script, run_name="__main__")
except SystemExit:
    pass
engines = sorted(m for m in sys.modules if m.split(".")[0] in ("lmdb", "diskcache")
                 or m.startswith(("prontodb.backends.lmdb", "prontodb.backends.diskcache")))
sys.stderr.write("LOADED " + json.dumps(engines) + "\\n")
"""


def check_engine_imports(
    b: Bench, prontodb: list[str], sqlite_store: str | None, env: dict[str, str]
) -> None:
    """A sqlite command and ``--help`` import neither lmdb nor diskcache (checked in
    ``sys.modules`` after the command ran: modules imported through importlib do not show in
    ``-X importtime``)."""
    python, _ = venv_bins()
    script = prontodb[0] if len(prontodb) == 1 else "-m"
    found: dict[str, Any] = {}
    commands = {"--help": ["--help"]}
    if sqlite_store:
        commands["get (sqlite store)"] = ["--database", sqlite_store, "get", "bench.cli.key"]
    for label, argv in commands.items():
        done = subprocess.run(
            [python, "-c", _LOADED, script, json.dumps(argv)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=b.root,  # not the source tree, which ``-c`` would put first on sys.path
        )
        marker = [x for x in done.stderr.splitlines() if x.startswith("LOADED ")]
        found[label] = json.loads(marker[-1][7:]) if marker else ["(check failed)"]
    b.extra["engine_imports"] = found


def import_profile(
    python: str, prontodb: list[str], argv: list[str], env: dict[str, str], runs: int = 5
) -> dict[str, Any]:
    """``python -X importtime`` of one ``prontodb`` command: per module the least self and
    cumulative time over ``runs`` runs (microseconds), its nesting depth, and the median wall
    time of the runs (each with ``-X importtime``, so a little slower than a plain run)."""
    if len(prontodb) == 1:  # the script: run it with this interpreter to pass -X importtime
        cmd = [python, "-X", "importtime", prontodb[0], *argv]
    else:
        cmd = [python, "-X", "importtime", *prontodb[1:], *argv]
    modules: dict[str, dict[str, int]] = {}
    walls = []
    for _ in range(runs + 1):  # the first run only warms the bytecode cache
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - start)
        if len(walls) == 1:
            continue
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
            if not self_us.strip().isdigit():
                continue
            depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
            got = {"self": int(self_us), "cumulative": int(cumulative_us), "depth": depth}
            old = modules.get(name.strip())
            if old is None:
                modules[name.strip()] = got
            else:
                old["self"] = min(old["self"], got["self"])
                old["cumulative"] = min(old["cumulative"], got["cumulative"])
    # The heaviest modules by cumulative time, shown as a tree: importtime prints a module after
    # the modules it imported, so the reversed order puts each parent above its children (a
    # parent's cumulative time is at least its children's, so the selection keeps parents).
    by_cumulative = sorted(modules, key=lambda name: -modules[name]["cumulative"])
    heaviest = set(by_cumulative[:PROFILE_TOP])
    top = [(n, modules[n]) for n in reversed(modules) if n in heaviest]
    return {
        "command": " ".join(["python -X importtime prontodb", *argv[2:]]),
        "modules": len(modules),
        "total_self_ms": round(sum(m["self"] for m in modules.values()) / 1000, 1),
        "wall_ms_median": round(statistics.median(walls[1:]) * 1000, 1),
        "top_cumulative": [{"module": name, **times} for name, times in top[:PROFILE_TOP]],
        "top_self": [
            {"module": name, **times}
            for name, times in sorted(modules.items(), key=lambda kv: -kv[1]["self"])[:10]
        ],
    }


PROFILE_TOP = 25


def profile_lines(profile: dict[str, Any]) -> list[str]:
    """The import profile as text: the heaviest modules by cumulative time, nested."""
    out = [
        f"{profile['command']}: {profile['modules']} modules imported, {profile['total_self_ms']}"
        f" ms of import time in all (least of several runs); wall {profile['wall_ms_median']} ms"
        " with -X importtime",
        f"  {'cumulative':>10} {'self':>8}  module (the {len(profile['top_cumulative'])} "
        "heaviest by cumulative time, as imported: a child under its parent)",
    ]
    for m in profile["top_cumulative"]:
        cumulative, own = m["cumulative"] / 1000, m["self"] / 1000
        out.append(f"  {cumulative:>7.1f} ms {own:>5.1f} ms  {'  ' * m['depth']}{m['module']}")
    heavy = ", ".join(f"{m['module']} {m['self'] / 1000:.1f}" for m in profile["top_self"])
    out.append(f"  heaviest by self time (ms): {heavy}")
    return out


def run_profile_imports(b: Bench) -> str:
    """``--profile-imports``: the import profile of a one-shot ``prontodb get`` on sqlite."""
    python, _ = venv_bins()
    prontodb = prontodb_command(b)
    env = cli_env(b)
    path = b.path("sqlite", "profile")
    with open_pronto(path) as store:
        store.set("bench.cli.key", b"value")
    profile = import_profile(python, prontodb, ["--database", path, "get", "bench.cli.key"], env)
    b.extra["import_profile"] = profile
    return "\n".join(profile_lines(profile))


# -- peers -----------------------------------------------------------------------------------


def bench_peers(b: Bench) -> None:
    """sqlitedict, dbm.gnu, shelve and redis-server (through redis-py), on their own ground."""
    n, nb = b.sizes.peer_single, b.sizes.peer_batch
    reps = min(b.sizes.repeats, 3)
    skeys = [f"bench.peer.k{i:08d}" for i in range(n)]
    bkeys = [f"bench.peerb.k{i:08d}" for i in range(nb)]
    peers: list[dict[str, Any]] = []

    def add(name: str, case: str, samples: Sequence[float], unit: str, note: str = "") -> None:
        peers.append(
            {"peer": name, "case": case, "unit": unit, "value": stat(samples), "note": note}
        )

    # sqlitedict: pickled values in one sqlite table; autocommit commits every set.
    try:
        from sqlitedict import SqliteDict
    except ImportError:
        b.skip("peer sqlitedict", "not installed (pip install -e '.[bench]')")
    else:
        path = b.path("sqlite", "sqlitedict")
        d = SqliteDict(path, autocommit=True)
        sn = min(n, 5_000)
        sets = [wall_loop(d.__setitem__, skeys[:sn], VALUE)() for _ in range(reps)]
        add(
            "sqlitedict",
            f"set, autocommit ({sn:,} ops)",
            sets,
            "us",
            "journal_mode DELETE, synchronous FULL (its defaults)",
        )
        gets = [wall_loop(d.__getitem__, skeys[:sn])() for _ in range(reps)]
        add("sqlitedict", f"get ({sn:,} ops)", gets, "us")
        d.close()
        bulk = []
        for _ in range(reps):
            d = SqliteDict(b.path("sqlite", "sqlitedict-bulk"), autocommit=False)
            start = time.perf_counter()
            for k in bkeys:
                d[k] = VALUE
            d.commit()
            bulk.append((time.perf_counter() - start) / nb)
            d.close()
        add("sqlitedict", f"{nb:,} sets, one commit", bulk, "us")

    # dbm.gnu and shelve: no transactions; sync() at the end of the batch. When this Python
    # lacks the _gdbm module, the system's python3 (Debian: python3-gdbm) runs them.
    python = dbm_python()
    if python is None:
        b.skip(
            "peer dbm.gnu and shelve",
            "dbm.gnu is available neither in this Python nor in /usr/bin/python3 "
            "(tools/bench_setup.sh; Debian: python3-gdbm)",
        )
    else:
        folder = os.path.join(b.root, "dbm")
        os.makedirs(folder, exist_ok=True)
        args = [folder, str(n), str(nb), str(reps)]
        if python == sys.executable:
            found = dbm_peers(*args)
        else:
            b.notes.append(f"dbm.gnu and shelve measured with {python} (this Python lacks _gdbm)")
            done = subprocess.run(
                [python, os.path.abspath(__file__), "--dbm-peers", *args],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode == 0:
                found = json.loads(done.stdout)
            else:
                found = []
                b.skip("peer dbm.gnu and shelve", f"{python} failed: {done.stderr[-500:]}")
        for name, case, samples, note in found:
            add(name, case, samples, "us", note)

    bench_redis(b, add, skeys, bkeys, reps)
    b.extra["peers"] = peers


def dbm_python() -> str | None:
    """An interpreter that has dbm.gnu: this one, else the system's python3."""
    for python in (sys.executable, "/usr/bin/python3"):
        if not os.path.exists(python):
            continue
        if python == sys.executable:
            try:
                import dbm.gnu  # noqa: F401
            except ImportError:
                continue
            return python
        probe = subprocess.run([python, "-c", "import dbm.gnu"], capture_output=True)
        if probe.returncode == 0:
            return python
    return None


def dbm_peers(folder: str, n: str | int, nb: str | int, reps: str | int) -> list[Any]:
    """dbm.gnu single and batched, shelve batched (stdlib only: runs under any python3)."""
    import dbm.gnu as gdbm
    import shelve

    n, nb, reps = int(n), int(nb), int(reps)
    skeys = [f"bench.peer.k{i:08d}" for i in range(n)]
    bkeys = [f"bench.peerb.k{i:08d}" for i in range(nb)]
    out: list[Any] = []
    db = gdbm.open(os.path.join(folder, "single.gdbm"), "c")
    sets = [wall_loop(db.__setitem__, skeys, VALUE)() for _ in range(reps)]
    out.append(("dbm.gnu", f"set ({n:,} ops)", sets, "not synced per set (not durable)"))
    gets = [wall_loop(db.__getitem__, skeys)() for _ in range(reps)]
    out.append(("dbm.gnu", f"get ({n:,} ops)", gets, ""))
    db.close()
    bulk = []
    for i in range(reps):
        db = gdbm.open(os.path.join(folder, f"bulk-{i}.gdbm"), "cf")
        start = time.perf_counter()
        for k in bkeys:
            db[k] = VALUE
        db.sync()
        bulk.append((time.perf_counter() - start) / nb)
        db.close()
    out.append(("dbm.gnu", f"{nb:,} sets + sync", bulk, "fast mode, one sync at the end"))
    bulk = []
    for i in range(reps):
        sh = shelve.open(os.path.join(folder, f"shelve-{i}"))
        start = time.perf_counter()
        for k in bkeys:
            sh[k] = VALUE
        sh.sync()
        bulk.append((time.perf_counter() - start) / nb)
        sh.close()
    out.append(("shelve", f"{nb:,} sets + sync", bulk, "pickled values, over dbm.gnu"))
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def redis_server(b: Bench, what: str) -> Iterator[tuple[Any, int] | None]:
    """A redis-server of its own on a free loopback port (in memory, no persistence): a
    redis-py client to it and the port; ``None`` (said loudly) when redis-py or the server is
    missing or does not answer."""
    server = shutil.which("redis-server")
    try:
        import redis
    except ImportError:
        b.skip(what, "redis-py is not installed (pip install -e '.[bench]')")
        yield None
        return
    if server is None:
        b.skip(what, "redis-server is not installed (tools/bench_setup.sh; Debian: redis-server)")
        yield None
        return
    port = free_port()
    folder = tempfile.mkdtemp(prefix="redis-", dir=b.root)
    argv = [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", folder, "--save", ""]
    argv += ["--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        else:
            client = None
        if client is None or proc.poll() is not None:
            b.skip(what, f"redis-server did not answer on 127.0.0.1:{port}")
            yield None
        else:
            yield client, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_redis(
    b: Bench, add: Callable[..., None], skeys: list[str], bkeys: list[str], reps: int
) -> None:
    with redis_server(b, "peer redis (redis-py)") as server:
        if server is None:
            return
        client = server[0]
        note = "in memory, no persistence (--save '' --appendonly no), loopback TCP"
        sets = [wall_loop(client.set, skeys, VALUE)() for _ in range(reps)]
        add("redis", f"set round trip ({len(skeys):,} ops)", sets, "us", note)
        gets = [wall_loop(client.get, skeys)() for _ in range(reps)]
        add("redis", f"get round trip ({len(skeys):,} ops)", gets, "us")
        piped = []
        for _ in range(reps):
            start = time.perf_counter()
            pipe = client.pipeline(transaction=False)
            for k in skeys:
                pipe.set(k, VALUE)
            pipe.execute()
            piped.append((time.perf_counter() - start) / len(skeys))
        add("redis", f"set pipelined ({len(skeys):,} in one pipeline)", piped, "us")
        mset = []
        for _ in range(reps):
            client.flushall()
            start = time.perf_counter()
            pipe = client.pipeline(transaction=False)
            for i in range(0, len(bkeys), 1000):
                pipe.mset({k: VALUE for k in bkeys[i : i + 1000]})
            pipe.execute()
            mset.append((time.perf_counter() - start) / len(bkeys))
        add("redis", f"{len(bkeys):,} by MSET pipeline (1,000 per MSET)", mset, "us")


# -- the shell loop: 1,000 sets then 1,000 gets from bash --------------------------------------


def shell_seconds(loop: str, n: int, env: dict[str, str]) -> float:
    """Wall seconds of one bash loop running ``loop`` (with ``$i``) for i in 1..n."""
    script = f"set -e\nfor i in $(seq 1 {n}); do {loop}; done >/dev/null\n"
    start = time.perf_counter()
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return took


def bench_shell(b: Bench) -> None:
    """The shell-loop scenario: N ``set`` then N ``get`` one-shot commands from bash, for
    ProntoDB (sqlite store), redis-cli (its own redis-server) and the sqlite3 shell (WAL,
    synchronous=NORMAL, like ProntoDB's store), with ``python -c pass`` as the Python floor.
    Wall time per command; ratios are ProntoDB / peer (a figure for the docs, no target)."""
    n = b.sizes.shell_loop
    env = cli_env(b)
    python, _ = venv_bins()
    prontodb = " ".join(shlex.quote(x) for x in prontodb_command(b))
    results: dict[str, dict[str, float]] = {}
    pronto_db = b.path("sqlite", "shell")
    open_pronto(pronto_db).close()
    db = shlex.quote(pronto_db)
    for _ in range(2):  # warm the bytecode cache and the OS caches
        subprocess.run(
            [*prontodb_command(b), "--database", pronto_db, "set", "bench.loop.k0", "v"],
            env=env,
            capture_output=True,
        )
    loops: dict[str, tuple[str, str]] = {
        "prontodb": (
            f"{prontodb} --database {db} set bench.loop.k$i v$i",
            f"{prontodb} --database {db} get bench.loop.k$i",
        ),
        "python -c pass": (f"{shlex.quote(python)} -c pass", f"{shlex.quote(python)} -c pass"),
    }
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        b.skip("shell loop with the sqlite3 shell", "sqlite3 is not installed (Debian: sqlite3)")
    else:
        lite = os.path.join(b.root, "shell-sqlite3.db")
        subprocess.run(
            [
                sqlite3,
                lite,
                "PRAGMA journal_mode=WAL; CREATE TABLE kv (k TEXT PRIMARY KEY, "
                "v BLOB NOT NULL) WITHOUT ROWID;",
            ],
            check=True,
            capture_output=True,
        )
        q = shlex.quote(lite)
        sq = shlex.quote(sqlite3)
        loops["sqlite3"] = (
            f'{sq} {q} "PRAGMA synchronous=NORMAL; INSERT OR REPLACE INTO kv VALUES '
            "('k$i', 'v$i')\"",
            f"{sq} {q} \"SELECT v FROM kv WHERE k = 'k$i'\"",
        )
    with redis_server(b, "shell loop with redis-cli") as server:
        cli = shutil.which("redis-cli")
        if server is not None and cli is None:
            b.skip("shell loop with redis-cli", "redis-cli is not installed (Debian: redis-tools)")
        elif server is not None:
            rc = f"{shlex.quote(cli or '')} -p {server[1]}"
            loops["redis-cli"] = (f"{rc} set k$i v$i", f"{rc} get k$i")
        for name, (set_loop, get_loop) in loops.items():
            count = min(n, SHELL_FLOOR_MAX) if name == "python -c pass" else n
            b.log(f"         shell loop: {name} ({count:,} + {count:,} commands)")
            try:
                sets = shell_seconds(set_loop, count, env)
                gets = shell_seconds(get_loop, count, env)
            except RuntimeError as exc:
                b.skip(f"shell loop with {name}", f"it failed: {exc}")
                continue
            results[name] = {
                "set": sets / count,
                "get": gets / count,
                "total_s": sets + gets,
                "n": count,
            }
    b.extra["shell_loop"] = {"n": n, "results": results, "store": "sqlite"}


# -- machine facts, report -------------------------------------------------------------------


def machine_facts(b: Bench) -> dict[str, Any]:
    import sqlite3

    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "bench_dir": b.root,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    facts["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as fh:
            facts["memory_gb"] = round(int(fh.readline().split()[1]) / 1024 / 1024, 1)
        facts["filesystem"] = filesystem_of(b.root)
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("prontodb", "lmdb", "diskcache", "click", "sqlitedict", "redis"):
        try:
            facts[f"{dist}_version"] = version(dist)
        except PackageNotFoundError:
            facts[f"{dist}_version"] = None
    try:
        import lmdb

        facts["liblmdb"] = ".".join(map(str, lmdb.version()))
    except ImportError:
        pass
    redis_server = shutil.which("redis-server")
    if redis_server:
        out = subprocess.run([redis_server, "--version"], capture_output=True, text=True)
        facts["redis_server"] = out.stdout.split()[2] if out.stdout else "?"
    here = os.path.dirname(os.path.abspath(__file__))
    rev = subprocess.run(
        ["git", "-C", here, "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    facts["commit"] = rev.stdout.strip() or None
    return facts


def filesystem_of(path: str) -> str:
    best, kind = "", "?"
    path = os.path.realpath(path)
    with open("/proc/mounts", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            mount, fstype = parts[1], parts[2]
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) > len(
                best
            ):
                best, kind = mount, fstype
    return f"{kind} ({best})"


def header_lines(b: Bench) -> list[str]:
    f = b.facts
    load = f"load average {f['load_average_start']} at start, {f.get('load_average_end')} at end"
    return [
        f"ProntoDB benchmark{' (--quick)' if b.args.quick else ''} at commit "
        f"{f.get('commit') or '?'}: python {f['python']}, {f.get('cpu', '?')} x{f['cpus']}, "
        f"{f.get('memory_gb', '?')} GB, {f.get('filesystem', '?')}",
        f"sqlite {f['sqlite']}, lmdb {f.get('lmdb_version')} (liblmdb {f.get('liblmdb')}), "
        f"diskcache {f.get('diskcache_version')}, click {f.get('click_version')}, redis-server "
        f"{f.get('redis_server')}, redis-py {f.get('redis_version')}, sqlitedict "
        f"{f.get('sqlitedict_version')}; {load}; {f.get('seconds', 0):.0f} s",
        *section_times(f),
    ]


def section_times(facts: dict[str, Any]) -> list[str]:
    """The elapsed (wall) seconds of each section of the run, as one line (none if unknown)."""
    times = facts.get("section_seconds") or {}
    if not times:
        return []
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in times.items())
    return [f"elapsed per section: {parts}"]


def case_label(r: Row) -> str:
    return r.case if r.raw_label == "raw" else f"{r.case} [raw: {r.raw_label}]"


def target_summary(b: Bench) -> tuple[list[Row], list[Row], list[Row]]:
    """The rows with a target: met, not met, not measured."""
    with_target = [r for r in b.rows if r.target is not None]
    return (
        [r for r in with_target if r.met is True],
        [r for r in with_target if r.met is False],
        [r for r in with_target if r.met is None],
    )


def aims(b: Bench) -> list[dict[str, Any]]:
    """Issue 18's aims against the peers measured in the same run (seconds per entry)."""
    peers = b.extra.get("peers", [])

    def peer(name: str, prefix: str) -> dict[str, Any] | None:
        for p in peers:
            if p["peer"] == name and p["case"].startswith(prefix):
                return p
        return None

    mset = peer("redis", f"{b.sizes.peer_batch:,} by MSET")
    gdbm = peer("dbm.gnu", f"{b.sizes.peer_batch:,} sets")
    found: list[dict[str, Any]] = []
    for r in b.rows:
        if r.section == "import" and r.backend in ("lmdb", "sqlite") and r.pronto:
            name, other = (
                ("redis MSET pipelining", mset) if r.backend == "lmdb" else ("dbm.gnu", gdbm)
            )
            theirs = other["value"]["median"] if other else None
            found.append(
                {
                    "aim": f"{r.backend} {r.case} faster per entry than {name}",
                    "ours_s": r.pronto["median"],
                    "theirs_s": theirs,
                }
            )
        if (
            r.section == "single"
            and r.backend == "sqlite"
            and r.case.startswith("set")
            and r.pronto
        ):
            found.append(
                {
                    "aim": f"library single set on sqlite <= {LIBRARY_SET_US:g} µs",
                    "ours_s": r.pronto["median"],
                    "theirs_s": LIBRARY_SET_US / 1e6,
                }
            )
    for aim in found:
        theirs = aim["theirs_s"]
        aim["met"] = None if theirs is None else aim["ours_s"] <= theirs
    return found


def aim_line(aim: dict[str, Any]) -> str:
    theirs = "-" if aim["theirs_s"] is None else f"{aim['theirs_s'] * 1e6:.2f}"
    verdict = {True: "met", False: "NOT met", None: "NOT MEASURED (the peer did not run)"}
    return f"{aim['aim']}: {aim['ours_s'] * 1e6:.2f} vs {theirs} µs/entry  {verdict[aim['met']]}"


def shell_rows(b: Bench) -> list[tuple[str, float, float, str]]:
    """(tool, ms per set, ms per get, ProntoDB's ratio to it) of the shell loop."""
    loop = b.extra.get("shell_loop")
    if not loop:
        return []
    got = loop["results"]
    pronto = got.get("prontodb")
    out = []
    for name, r in got.items():
        if pronto and name != "prontodb":
            ratio = (pronto["set"] + pronto["get"]) / (r["set"] + r["get"])
            label = f"{ratio:.1f}x"
        else:
            label = ""
        count = r.get("n", loop["n"])
        shown = name if count == loop["n"] else f"{name} ({count:,} each)"
        out.append((shown, r["set"] * 1e3, r["get"] * 1e3, label))
    return out


def report(b: Bench) -> str:
    out = header_lines(b)
    clock = "CPU time" if b.args.clock == "cpu" else "wall time"
    out.append(
        f"Each cell: median (min–max) of the repeats, in {clock} (concurrency, peers and shell "
        "loop: wall time); ratio = ProntoDB / raw median; a target with >= is a floor."
    )
    for backend in b.args.backends:
        rows = [r for r in b.rows if r.backend == backend]
        if not rows:
            continue
        out.append("")
        out.append(f"== {backend}: {SETTINGS[backend]} (ProntoDB durability normal) ==")
        out.append(f"{'case':<58} {'raw':>27} {'ProntoDB':>27} {'ratio':>6}  target")
        for r in rows:
            ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
            out.append(
                f"{case_label(r):<58} {fmt(r.raw, r.unit):>27} {fmt(r.pronto, r.unit):>27} "
                f"{ratio:>6}  {r.target_label} {r.verdict}".rstrip()
            )
            if r.note:
                out.append(f"    {r.note}")
    if b.extra.get("peers"):
        out.append("")
        out.append("== peers (same run, wall time) ==")
        for p in b.extra["peers"]:
            line = f"{p['peer']:<11} {p['case']:<52} {fmt(p['value'], p['unit']):>27}"
            out.append(line + (f"   {p['note']}" if p["note"] else ""))
    found = aims(b)
    b.extra["aims"] = found
    if found:
        out.append("")
        out.append("== aims against peers (same run) ==")
        out.extend(aim_line(aim) for aim in found)
    shell = shell_rows(b)
    if shell:
        n = b.extra["shell_loop"]["n"]
        out.append("")
        out.append(f"== shell loop: {n:,} set then {n:,} get from bash (wall time per command) ==")
        out.append(f"{'tool':<26} {'set':>9} {'get':>9}  ProntoDB / tool (set + get)")
        for name, set_ms, get_ms, ratio in shell:
            out.append(f"{name:<26} {set_ms:>6.2f} ms {get_ms:>6.2f} ms  {ratio}")
    if "cli_install" in b.extra:
        out.append("")
        out.append(f"CLI rows ran prontodb {b.extra['cli_install']}")
    if "engine_imports" in b.extra:
        for label, engines in b.extra["engine_imports"].items():
            out.append(f"lmdb/diskcache modules after {label}: {', '.join(engines) or 'none'}")
    if "import_profile" in b.extra:
        out.append("")
        out.append("== import profile of a one-shot prontodb get (sqlite store) ==")
        out.extend(profile_lines(b.extra["import_profile"]))
    met, unmet, unmeasured = target_summary(b)
    counts = [len(met), len(unmet), len(unmeasured)]
    for aim in found:
        counts[{True: 0, False: 1, None: 2}[aim["met"]]] += 1
    out.append("")
    out.append(
        f"targets (rows and aims): {counts[0]} met, {counts[1]} NOT met, {counts[2]} NOT MEASURED"
    )
    for r in unmet:
        out.append(f"  NOT met: {r.backend} {case_label(r)}: {r.ratio:.2f}x vs {r.target_label}")
    out.extend(f"  NOT met: {aim_line(aim)}" for aim in found if aim["met"] is False)
    for r in unmeasured:
        out.append(f"  NOT MEASURED: {r.backend} {case_label(r)}: {r.note or 'no figure'}")
    out.extend(f"  NOT MEASURED: {aim_line(aim)}" for aim in found if aim["met"] is None)
    for note in b.notes:
        out.append(f"note: {note}")
    if b.skipped:
        out.append("")
        out.append(f"!!! {len(b.skipped)} thing(s) could NOT run:")
        out.extend(f"!!!   {line}" for line in b.skipped)
    return "\n".join(out)


# -- docs/performance.md ---------------------------------------------------------------------

BEGIN = "<!-- bench:begin (generated by tools/bench.py --markdown-out; edit the tool, not this) -->"
END = "<!-- bench:end -->"


def markdown(b: Bench, command: str) -> str:
    """The generated part of docs/performance.md: the run's facts and every table."""
    f = b.facts
    out = [BEGIN, "", "## Measured", ""]
    out.append(f"`{command}`")
    out.append("")
    out.extend(line + "  " for line in header_lines(b))
    load = f["load_average_start"][0] if f.get("load_average_start") else 0
    if load > 0.5 * (f.get("cpus") or 1):
        out.append(
            f"The machine was shared with other work (load average {load} at the start on "
            f"{f.get('cpus')} cores): single figures move 10–30 % between runs, ratios less."
        )
    out.append("")
    clock = "CPU time" if b.args.clock == "cpu" else "wall time"
    out.append(
        f"Each cell: median (min–max) of the repeats, in {clock} (concurrency, peers and shell "
        "loop: wall time); ratio = ProntoDB / raw median; `>=` marks a floor (throughput)."
    )
    for backend in b.args.backends:
        rows = [r for r in b.rows if r.backend == backend]
        if not rows:
            continue
        out += ["", f"### {backend}: {SETTINGS[backend]}", ""]
        out.append("| case | raw | ProntoDB | ratio | target | |")
        out.append("|---|---:|---:|---:|---|---|")
        for r in rows:
            ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
            case = (case_label(r) + (f" — {r.note}" if r.note else "")).replace("|", "\\|")
            verdict = f"**{r.verdict}**" if r.met is not True and r.verdict else r.verdict
            out.append(
                f"| {case} | {fmt(r.raw, r.unit)} | {fmt(r.pronto, r.unit)} | {ratio} | "
                f"{r.target_label.replace('<=', '≤ ').replace('>=', '≥ ')} | {verdict} |"
            )
    if b.extra.get("peers"):
        out += ["", "### Peers (same run, wall time)", "", "| peer | case | time | note |"]
        out.append("|---|---|---:|---|")
        for p in b.extra["peers"]:
            out.append(
                f"| {p['peer']} | {p['case']} | {fmt(p['value'], p['unit'])} | {p['note']} |"
            )
    found = b.extra.get("aims") or aims(b)
    if found:
        out += ["", "### Aims against peers", ""]
        out.extend(f"- {aim_line(aim)}" for aim in found)
    shell = shell_rows(b)
    if shell:
        n = b.extra["shell_loop"]["n"]
        out += ["", f"### Shell loop: {n:,} `set` then {n:,} `get` from bash", ""]
        out.append("| tool | per set | per get | ProntoDB / tool |")
        out.append("|---|---:|---:|---:|")
        for name, set_ms, get_ms, ratio in shell:
            out.append(f"| {name} | {set_ms:.2f} ms | {get_ms:.2f} ms | {ratio} |")
    if "import_profile" in b.extra:
        out += ["", "### Import profile of a one-shot `prontodb get` (sqlite store)", "", "```"]
        out.extend(profile_lines(b.extra["import_profile"]))
        out.append("```")
    if "cli_install" in b.extra:
        out += ["", f"The CLI rows ran prontodb {b.extra['cli_install']}.  "]
    if "engine_imports" in b.extra:
        for label, engines in b.extra["engine_imports"].items():
            out.append(f"lmdb/diskcache modules after `{label}`: {', '.join(engines) or 'none'}.  ")
    met, unmet, unmeasured = target_summary(b)
    counts = [len(met), len(unmet), len(unmeasured)]
    for aim in found:
        counts[{True: 0, False: 1, None: 2}[aim["met"]]] += 1
    out += [
        "",
        f"**Targets (rows and aims): {counts[0]} met, {counts[1]} not met, {counts[2]} not "
        "measured.**",
    ]
    if unmeasured:
        out.append("")
        out.extend(f"- not measured: {r.backend} {case_label(r)}: {r.note}" for r in unmeasured)
    if b.skipped:
        out += ["", "**Could not run:**", ""]
        out.extend(f"- {line}" for line in b.skipped)
    out += ["", END]
    return "\n".join(out) + "\n"


def write_markdown(path: str, block: str) -> None:
    """Replace the generated part of ``path`` (between the bench markers), keeping the prose
    around it; a file without the markers gets the block at its end."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        text = "# Performance\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="ProntoDB next to the raw engines, in one run (see docs/performance.md)."
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under 2 minutes)")
    parser.add_argument("--json-out", metavar="FILE", help="also write every result as JSON")
    parser.add_argument(
        "--markdown-out",
        metavar="FILE",
        help="write the tables into FILE (docs/performance.md): the part between the bench "
        "markers is replaced, the prose around it kept",
    )
    parser.add_argument(
        "--from-json",
        metavar="FILE",
        help="measure nothing: print (and with --markdown-out write) the report of a run saved "
        "with --json-out",
    )
    parser.add_argument(
        "--profile-imports",
        action="store_true",
        help="measure nothing else: print the import profile (python -X importtime) of a "
        "one-shot 'prontodb get' on a sqlite store",
    )
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated (default: all three)"
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections: {','.join(SECTIONS)}"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time (default), or CPU time on a machine shared with other work",
    )
    parser.add_argument(
        "--cli-install",
        choices=("regular", "editable"),
        default="regular",
        help="the CLI rows run a regular install of this tree built for the run (default: as "
        "a user has it), or this interpreter's own (editable) install: an editable install's "
        "import hook adds ~10 ms to every interpreter start in its venv, the floor included",
    )
    parser.add_argument(
        "--cli-venv",
        metavar="DIR",
        help="run the CLI rows (and the python -c pass floor) with DIR/bin/python and "
        "DIR/bin/prontodb, e.g. a venv with a regular (non-editable) install",
    )
    parser.add_argument("--dir", help="where the stores go (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's files")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--dbm-peers", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backends = [x for x in args.backends.split(",") if x]
    args.only = [x for x in args.only.split(",") if x]
    for name in args.backends:
        if name not in BACKENDS:
            parser.error(f"unknown backend {name!r}")
    for name in args.only:
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}")
    return args


def run_sections(b: Bench) -> None:
    per_backend = {
        "single": bench_single,
        "batch": bench_batch,
        "scan": bench_scan,
        "large": bench_large,
        "import": bench_import,
        "concurrency": bench_concurrency,
    }
    others = {"cli": lambda: bench_cli(b, b.args.backends), "peers": lambda: bench_peers(b)}
    others["shell"] = lambda: bench_shell(b)
    began = time.perf_counter()
    for section in SECTIONS:
        if section not in b.args.only:
            continue
        start = time.perf_counter()
        steps: list[tuple[str, Callable[[], None]]]
        if section in per_backend:
            steps = [
                (f"{section} {backend}", lambda f=per_backend[section], k=backend: f(b, k))
                for backend in b.args.backends
            ]
        else:
            steps = [(section, others[section])]
        for label, step in steps:
            b.log(f"[{time.perf_counter() - began:6.1f}s] {label}")
            try:
                step()
            except Exception as exc:  # one broken section must not lose the others' results
                import traceback

                traceback.print_exc()
                b.skip(label, f"crashed: {type(exc).__name__}: {exc}")
        b.timings[section] = round(time.perf_counter() - start, 1)


def load_run(args: argparse.Namespace) -> tuple[Bench, str]:
    """A :class:`Bench` holding the results of a run saved with ``--json-out``."""
    with open(args.from_json, encoding="utf-8") as fh:
        doc = json.load(fh)
    saved = doc.get("args", {})
    args.quick = doc.get("quick", False)
    args.backends = saved.get("backends", list(BACKENDS))
    args.clock = saved.get("clock", "wall")
    args.dir = None
    b = Bench(args)
    os.rmdir(b.root)
    b.facts, b.extra, b.notes = doc["machine"], doc["extra"], doc["notes"]
    b.skipped = doc.get("skipped", [])
    fields = set(Row.__dataclass_fields__)
    b.rows = [Row(**{k: v for k, v in row.items() if k in fields}) for row in doc["rows"]]
    return b, doc["command"]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dbm_peers:
        print(json.dumps(dbm_peers(*args.dbm_peers)))
        return 0
    global _clock
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.child:
        kind, backend, path, source, n = args.child
        print(json.dumps(child_import(kind, backend, path, source, int(n))))
        return 0
    if args.from_json:
        b, command = load_run(args)
    else:
        import signal

        # a terminated run still removes its stores and stops its redis-server
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        b = Bench(args)
        command = " ".join(["python", *(sys.argv if argv is None else ["tools/bench.py", *argv])])
        began = time.perf_counter()
        try:
            if args.profile_imports or {"cli", "shell"} & set(args.only):
                choose_cli_venv(b)
            if args.profile_imports:
                print(run_profile_imports(b))
                return 0
            b.timings["setup"] = round(time.perf_counter() - began, 1)
            b.facts = machine_facts(b)
            run_sections(b)
        finally:
            if not args.keep:
                shutil.rmtree(b.root, ignore_errors=True)
        b.facts["seconds"] = time.perf_counter() - began
        b.facts["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        b.facts["section_seconds"] = b.timings
    print(report(b))
    if args.json_out and not args.from_json:
        doc = {
            "command": command,
            "args": {"backends": args.backends, "only": args.only, "clock": args.clock},
            "quick": args.quick,
            "sizes": asdict(b.sizes),
            "machine": b.facts,
            "rows": [r.as_dict() for r in b.rows],
            "extra": b.extra,
            "notes": b.notes,
            "skipped": b.skipped,
        }
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, default=str)
    if args.markdown_out:
        write_markdown(args.markdown_out, markdown(b, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
