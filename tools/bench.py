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
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

BACKENDS = ("sqlite", "lmdb", "diskcache")
EXTENSIONS = {"sqlite": ".sqlite", "lmdb": ".lmdb", "diskcache": ".diskcache"}
SECTIONS = ("single", "batch", "scan", "large", "import", "concurrency", "cli", "peers")
VALUE = bytes(range(100))  # 100 B, not valid UTF-8 on purpose (opaque bytes)
LAYER = b"D\x00default\x00\x00"  # keyspace.layer_prefix("default", None)
UPSERT = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
MB = 1 << 20

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
    cli_runs: int
    peer_single: int
    peer_batch: int


FULL = Sizes(
    repeats=5,
    single=20_000,
    single_fsync=20_000,
    batch=200_000,
    scan_total=200_000,
    scan_part=10_000,
    large=((1 * MB, 20), (10 * MB, 5)),
    imports=1_000_000,
    import_repeats=3,
    writers=4,
    per_writer=2_000,
    cli_runs=30,
    peer_single=20_000,
    peer_batch=200_000,
)
QUICK = Sizes(
    repeats=3,
    single=5_000,
    single_fsync=1_000,
    batch=50_000,
    scan_total=50_000,
    scan_part=5_000,
    large=((1 * MB, 5), (10 * MB, 2)),
    imports=100_000,
    import_repeats=2,
    writers=4,
    per_writer=300,
    cli_runs=20,
    peer_single=2_000,
    peer_batch=50_000,
)


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
    """One line of a table: ProntoDB next to the raw engine (or a peer) for one case."""

    section: str
    backend: str
    case: str
    unit: str  # how to print: "us", "ms" or "s" (values are stored in seconds)
    raw: dict[str, float] | None
    pronto: dict[str, float] | None
    target: float | None = None  # the ratio ProntoDB/raw must not exceed
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

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
        return ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        out["met"] = self.met
        return out


SCALE = {"us": (1e6, "µs"), "ms": (1e3, "ms"), "s": (1.0, "s")}


def fmt(value: dict[str, float] | None, unit: str) -> str:
    if not value:
        return "-"
    factor, label = SCALE[unit]
    med, lo, hi = (value[k] * factor for k in ("median", "min", "max"))
    digits = 2 if med < 10 else 1 if med < 100 else 0
    return f"{med:.{digits}f} {label} ({lo:.{digits}f}–{hi:.{digits}f})"


def paired(
    raw: Callable[[], float] | None, pronto: Callable[[], float] | None, repeats: int
) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """Run both sides ``repeats`` times, alternating which goes first; each call returns one
    sample. Each sample starts after a full garbage collection (and runs with the collector
    on, as an application does)."""
    raws: list[float] = []
    prontos: list[float] = []
    for i in range(repeats):
        order = [(raw, raws), (pronto, prontos)]
        if i % 2:
            order.reverse()
        for fn, into in order:
            if fn is None:
                continue
            gc.collect()
            into.append(fn())
    return (stat(raws) if raws else None, stat(prontos) if prontos else None)


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
        self._n = 0

    def path(self, backend: str, name: str = "store") -> str:
        self._n += 1
        return os.path.join(self.root, f"{name}-{self._n}{EXTENSIONS.get(backend, '')}")

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


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
        b.add(Row("single", backend, f"set 100 B ({n:,} ops)", "us", r, p, 1.3))
        assert raw.get(keys[-1]) == VALUE and store.get(addrs[-1]) == VALUE
        ng = s.single
        gaddrs, gkeys = (addrs, keys) if ng <= n else keys_for("single", ng)
        if ng > n:  # lmdb in --quick: fill the rest in one transaction
            raw.batch(zip(gkeys[n:], [VALUE] * (ng - n), strict=True))
            store.set_many(zip(gaddrs[n:], [VALUE] * (ng - n), strict=True))
        target = 4.0 if backend == "lmdb" else 2.0
        r, p = paired(timed_loop(raw.get, gkeys), timed_loop(store.get, gaddrs), s.repeats)
        b.add(Row("single", backend, f"get 100 B ({ng:,} ops)", "us", r, p, target))
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

    r, p = paired(raw_run, pronto_run, b.sizes.repeats)
    row = b.add(Row("batch", backend, f"batched set ({n:,} in 1 txn)", "us", r, p, 1.5))
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
        target = None if backend == "diskcache" else 1.5
        note = "raw: SQL on diskcache's Cache table" if backend == "diskcache" else ""
        b.add(Row("scan", backend, case, "ms", r, p, target, note))
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
            b.add(Row("large", backend, f"set {label} ({count} ops)", "ms", r, p, None, note))
            r, p = paired(timed_loop(raw.get, keys), timed_loop(store.get, addrs), b.sizes.repeats)
            b.add(Row("large", backend, f"get {label} ({count} ops)", "ms", r, p))
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
        with open(source, "rb") as fh:
            planned = stream.plan(
                iter(lambda: fh.read(1 << 20), b""), user=store.user, delim=store.delim
            )
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
            b.notes.append(f"{module} is absent: {kind} import not measured")
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
        row = b.add(Row("import", backend, f"{kind} import ({n:,} entries)", "us", floor, got, 3.0))
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
    for kind in ("raw", "pronto"):
        runs = []
        for _ in range(min(b.sizes.repeats, 3)):
            path = b.path(backend, f"conc-{kind}")
            RAW[backend](path).close() if kind == "raw" else open_pronto(path).close()
            barrier = ctx.Barrier(writers)
            out = ctx.Queue()
            procs = [
                ctx.Process(target=_writer, args=(kind, backend, path, i, n, barrier, out))
                for i in range(writers)
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
        results[kind] = {
            "per_op": stat([1 / r["ops_per_s"] for r in runs]),
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
            f"{label}: time per op (1/throughput)",
            "us",
            raw["per_op"],
            pronto["per_op"],
        )
    )
    row.extra = {"raw": raw, "pronto": pronto}
    row.note = (
        f"ProntoDB {pronto['ops_per_s']:,.0f} ops/s, {pronto['errors']} errors, "
        f"{pronto['lost']} lost; raw {raw['ops_per_s']:,.0f} ops/s, {raw['errors']} errors"
    )
    if pronto["error_samples"]:
        row.note += f" ({pronto['error_samples'][0]})"
    b.add(Row("concurrency", backend, f"{label}: p99 latency", "us", raw["p99"], pronto["p99"]))


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
        b.notes.append(
            "PYTHONDONTWRITEBYTECODE is set here: the CLI runs use PYTHONPYCACHEPREFIX inside "
            "the benchmark folder, so both sides run from cached bytecode as an install does"
        )
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


def venv_bins() -> tuple[str, str]:
    """The interpreter running this benchmark and the ``prontodb`` script beside it."""
    python = sys.executable
    script = os.path.join(os.path.dirname(python), "prontodb")
    return python, script


def bench_cli(b: Bench, backends: Sequence[str]) -> None:
    """One-shot ``prontodb get``/``set`` processes against ``python -c "import click"``."""
    python, script = venv_bins()
    if not os.path.exists(script):
        b.notes.append(f"{script} not found: the CLI rows run 'python -m prontodb' instead")
        prontodb_cmd = [python, "-m", "prontodb"]
    else:
        prontodb_cmd = [script]
    env = cli_env(b)
    floor_cmd = [python, "-c", "import click"]
    stores = {}
    for backend in backends:
        path = b.path(backend, "cli")
        with open_pronto(path) as store:
            store.set("bench.cli.key", b"value")
        stores[backend] = path
    runs = b.sizes.cli_runs
    floors: list[float] = []
    gets: dict[str, list[float]] = {k: [] for k in backends}
    sets: dict[str, list[float]] = {k: [] for k in backends}
    for _ in range(2):  # warm the OS caches
        wall(floor_cmd, env)
        for backend in backends:
            wall(prontodb_cmd + ["--database", stores[backend], "get", "bench.cli.key"], env)
    for _ in range(runs):
        floors.append(wall(floor_cmd, env))
        for backend in backends:
            base = prontodb_cmd + ["--database", stores[backend]]
            gets[backend].append(wall(base + ["get", "bench.cli.key"], env))
            sets[backend].append(wall(base + ["set", "bench.cli.key", "value"], env))
    floor = stat(floors)
    for backend in backends:
        b.add(
            Row(
                "cli",
                backend,
                f"prontodb get vs import click ({runs} runs)",
                "ms",
                floor,
                stat(gets[backend]),
                1.25 if backend == "sqlite" else None,
            )
        )
        b.add(
            Row(
                "cli",
                backend,
                f"prontodb set vs import click ({runs} runs)",
                "ms",
                floor,
                stat(sets[backend]),
            )
        )
    b.extra["cli_commands"] = {"floor": floor_cmd, "prontodb": prontodb_cmd}
    check_imports(b, python, stores.get("sqlite"), env)


_LOADED = """
import json, runpy, sys
sys.argv = ["prontodb", *json.loads(sys.argv[1])]
try:
    runpy.run_module("prontodb", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
engines = sorted(m for m in sys.modules if m.split(".")[0] in ("lmdb", "diskcache")
                 or m.startswith(("prontodb.backends.lmdb", "prontodb.backends.diskcache")))
sys.stderr.write("LOADED " + json.dumps(engines) + "\\n")
"""


def check_imports(b: Bench, python: str, sqlite_store: str | None, env: dict[str, str]) -> None:
    """A sqlite command and --help import neither lmdb nor diskcache (checked in
    ``sys.modules`` after the command ran, since modules imported through importlib do not
    show in ``-X importtime``); the heaviest imports (least of 3 runs of ``python -X importtime
    -m prontodb``) are listed."""
    found: dict[str, Any] = {}
    commands = {"--help": ["--help"]}
    if sqlite_store:
        commands["get (sqlite store)"] = ["--database", sqlite_store, "get", "bench.cli.key"]
    for label, argv in commands.items():
        done = subprocess.run(
            [python, "-c", _LOADED, json.dumps(argv)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        marker = [x for x in done.stderr.splitlines() if x.startswith("LOADED ")]
        engines = json.loads(marker[-1][7:]) if marker else ["(check failed)"]
        modules: dict[str, list[int]] = {}
        for _ in range(3):
            done = subprocess.run(
                [python, "-X", "importtime", "-m", "prontodb", *argv],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            for line in done.stderr.splitlines():
                if not line.startswith("import time:") or "|" not in line:
                    continue
                parts = [p.strip() for p in line[len("import time:") :].split("|")]
                if not parts[0].isdigit():
                    continue
                name, times = parts[2], [int(parts[0]), int(parts[1])]
                old = modules.get(name)
                modules[name] = times if old is None else list(map(min, old, times))
        heaviest = sorted(modules.items(), key=lambda kv: -kv[1][0])[:8]
        found[label] = {
            "engine_imports": engines,
            "modules": len(modules),
            "prontodb_cumulative_ms": round(modules.get("prontodb", [0, 0])[1] / 1000, 1),
            "heaviest_self_ms": {m: round(t[0] / 1000, 1) for m, t in heaviest},
        }
    b.extra["importtime"] = found


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
        b.notes.append("sqlitedict not installed (pip install 'prontodb[bench]'): skipped")
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
        b.notes.append(
            "dbm.gnu is available neither in this Python nor in /usr/bin/python3 "
            "(Debian: apt-get install python3-gdbm): dbm.gnu and shelve skipped"
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
                check=True,
            )
            found = json.loads(done.stdout)
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


def bench_redis(
    b: Bench, add: Callable[..., None], skeys: list[str], bkeys: list[str], reps: int
) -> None:
    server = shutil.which("redis-server")
    try:
        import redis
    except ImportError:
        b.notes.append("redis-py not installed (pip install 'prontodb[bench]'): redis skipped")
        return
    if server is None:
        b.notes.append(
            "redis-server not installed (Debian: apt-get install redis-server): redis skipped"
        )
        return
    port = free_port()
    folder = os.path.join(b.root, "redis")
    os.makedirs(folder)
    proc = subprocess.Popen(
        [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            folder,
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
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
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def report(b: Bench) -> str:
    out: list[str] = []
    f = b.facts
    out.append(
        f"ProntoDB benchmark{' (--quick)' if b.args.quick else ''}: {f.get('commit') or ''} "
        f"python {f['python']}, {f.get('cpu', '?')} x{f['cpus']}, {f.get('memory_gb', '?')} GB, "
        f"{f.get('filesystem', '?')}"
    )
    out.append(
        f"sqlite {f['sqlite']}, lmdb {f.get('lmdb_version')} (liblmdb {f.get('liblmdb')}), "
        f"diskcache {f.get('diskcache_version')}, click {f.get('click_version')}; load average "
        f"{f['load_average_start']} at start, {f.get('load_average_end')} at end; "
        f"{f.get('seconds', 0):.0f} s"
    )
    clock = "CPU time" if b.args.clock == "cpu" else "wall time"
    out.append(
        f"Each cell: median (min–max) of the repeats, in {clock} (concurrency and peers: wall "
        "time); ratio = ProntoDB / raw median."
    )
    for backend in b.args.backends:
        rows = [r for r in b.rows if r.backend == backend]
        if not rows:
            continue
        out.append("")
        out.append(f"== {backend}: {SETTINGS[backend]} (ProntoDB durability normal) ==")
        out.append(f"{'case':<52} {'raw engine':>26} {'ProntoDB':>26} {'ratio':>6}  target")
        for r in rows:
            ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
            target = "" if r.target is None else f"<={r.target:g}x"
            verdict = {True: "met", False: "NOT met", None: ""}[r.met]
            raw_label = fmt(r.raw, r.unit)
            out.append(
                f"{r.case:<52} {raw_label:>26} {fmt(r.pronto, r.unit):>26} {ratio:>6}  "
                f"{target} {verdict}".rstrip()
            )
            if r.note:
                out.append(f"    {r.note}")
    cross = scan_cross_check(b)
    if cross:
        out.append("")
        out.append(cross)
    if "peers" in b.extra:
        out.append("")
        out.append("== peers (same run) ==")
        for p in b.extra["peers"]:
            line = f"{p['peer']:<11} {p['case']:<52} {fmt(p['value'], p['unit']):>26}"
            out.append(line + (f"   {p['note']}" if p["note"] else ""))
        out.extend(aims(b))
    if "importtime" in b.extra:
        out.append("")
        out.append("== start-up imports (python -X importtime -m prontodb) ==")
        for label, got in b.extra["importtime"].items():
            engines = ", ".join(got["engine_imports"]) or "none"
            heavy = ", ".join(f"{m} {t}" for m, t in list(got["heaviest_self_ms"].items())[:5])
            out.append(
                f"{label}: {got['modules']} modules, prontodb {got['prontodb_cumulative_ms']} ms "
                f"cumulative; lmdb/diskcache imported: {engines}; heaviest (ms self): {heavy}"
            )
    met = [r for r in b.rows if r.met is True]
    unmet = [r for r in b.rows if r.met is False]
    out.append("")
    out.append(f"targets: {len(met)} met, {len(unmet)} not met")
    for r in unmet:
        out.append(f"  NOT met: {r.backend} {r.case}: {r.ratio:.2f}x > {r.target:g}x")
    for note in b.notes:
        out.append(f"note: {note}")
    return "\n".join(out)


def scan_cross_check(b: Bench) -> str:
    """diskcache's prefix scan within 10x of sqlite's (both through ProntoDB)."""
    scans = {r.backend: r for r in b.rows if r.section == "scan"}
    if "diskcache" not in scans or "sqlite" not in scans:
        return ""
    ratio = scans["diskcache"].pronto["median"] / scans["sqlite"].pronto["median"]
    b.extra["diskcache_scan_vs_sqlite"] = ratio
    verdict = "met" if ratio <= 10 else "NOT met"
    return (
        f"diskcache prefix scan / sqlite prefix scan (both ProntoDB): {ratio:.2f}x  <=10x {verdict}"
    )


def aims(b: Bench) -> list[str]:
    """The issue's aims against the peers measured in this run."""
    peers = {(p["peer"], p["case"].split(" (")[0]): p for p in b.extra.get("peers", [])}
    rows = {(r.backend, r.section, r.case.split(" (")[0]): r for r in b.rows}
    out = ["", "== aims against peers =="]
    found = []

    def peer(name: str, prefix: str) -> dict[str, Any] | None:
        for (pname, case), p in peers.items():
            if pname == name and case.startswith(prefix):
                return p
        return None

    mset = peer("redis", f"{b.sizes.peer_batch:,} by MSET")
    for backend in ("lmdb",):
        for (be, section, case), r in rows.items():
            if be == backend and section in ("batch", "import") and mset:
                ours = r.pronto["median"]
                theirs = mset["value"]["median"]
                found.append((f"{backend} {case} faster than redis MSET pipelining", ours, theirs))
    gdbm = peer("dbm.gnu", f"{b.sizes.peer_batch:,} sets")
    batch = rows.get(("sqlite", "batch", "batched set"))
    if gdbm and batch:
        found.append(
            (
                "sqlite batched set faster than dbm.gnu",
                batch.pronto["median"],
                gdbm["value"]["median"],
            )
        )
    single = rows.get(("sqlite", "single", "set 100 B"))
    if single:
        found.append(("library single set on sqlite <= 25 µs", single.pronto["median"], 25e-6))
    for label, ours, theirs in found:
        verdict = "met" if ours <= theirs else "NOT met"
        out.append(f"{label}: {ours * 1e6:.2f} vs {theirs * 1e6:.2f} µs/entry  {verdict}")
    b.extra["aims"] = [
        {"aim": label, "ours_s": ours, "theirs_s": theirs, "met": ours <= theirs}
        for label, ours, theirs in found
    ]
    return out


# -- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="ProntoDB next to the raw engines, in one run (see docs/performance.md)."
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under 2 minutes)")
    parser.add_argument("--json-out", metavar="FILE", help="also write every result as JSON")
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
    parser.add_argument("--dir", help="where the stores go (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's files")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--dbm-peers", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dbm_peers:
        print(json.dumps(dbm_peers(*args.dbm_peers)))
        return 0
    global _clock
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.child:
        kind, backend, path, source, n = args.child
        print(json.dumps(child_import(kind, backend, path, source, int(n))))
        return 0
    args.backends = [x for x in args.backends.split(",") if x]
    args.only = [x for x in args.only.split(",") if x]
    for name in args.backends:
        if name not in BACKENDS:
            parser.error(f"unknown backend {name!r}")
    for name in args.only:
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}")
    b = Bench(args)
    began = time.perf_counter()
    b.facts = machine_facts(b)
    per_backend = {
        "single": bench_single,
        "batch": bench_batch,
        "scan": bench_scan,
        "large": bench_large,
        "import": bench_import,
        "concurrency": bench_concurrency,
    }
    try:
        for section in SECTIONS:
            if section not in args.only:
                continue
            start = time.perf_counter()
            if section in per_backend:
                for backend in args.backends:
                    b.log(f"[{time.perf_counter() - began:6.1f}s] {section} {backend}")
                    per_backend[section](b, backend)
            elif section == "cli":
                b.log(f"[{time.perf_counter() - began:6.1f}s] cli")
                bench_cli(b, args.backends)
            elif section == "peers":
                b.log(f"[{time.perf_counter() - began:6.1f}s] peers")
                bench_peers(b)
            b.timings[section] = round(time.perf_counter() - start, 1)
    finally:
        if not args.keep:
            shutil.rmtree(b.root, ignore_errors=True)
    b.facts["seconds"] = time.perf_counter() - began
    b.facts["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    b.facts["section_seconds"] = b.timings
    text = report(b)
    print(text)
    if args.json_out:
        doc = {
            "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
            "quick": args.quick,
            "sizes": asdict(b.sizes),
            "machine": b.facts,
            "rows": [r.as_dict() for r in b.rows],
            "extra": b.extra,
            "notes": b.notes,
        }
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
