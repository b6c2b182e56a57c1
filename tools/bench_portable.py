"""Throughput and peak memory of export, import, backup and restore on every backend.

Each operation runs in a fresh child process (so its peak RSS is its own) against a store of
N entries with 100-byte values spread over 100 namespaces. The raw backend's own bulk write
(``put_many`` of ready-made envelopes) and full scan are measured in the same run as the
baselines the ratios refer to.

    /work/venv/bin/python tools/bench_portable.py                  # 1,000,000 entries
    /work/venv/bin/python tools/bench_portable.py -n 100000 -b sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXT = {"sqlite": ".sqlite", "lmdb": ".lmdb", "diskcache": ".diskcache"}
OPS = ("populate", "scan", "export", "import", "backup", "restore")


def child(op: str, engine: str, folder: str, n: int) -> dict:
    """Run one operation in this process and return its figures."""
    import resource

    import prontodb
    from prontodb import keyspace, portable, record
    from prontodb.opener import open_backend

    src = os.path.join(folder, f"src{EXT[engine]}")
    export = os.path.join(folder, "d.jsonl")
    start = time.perf_counter()
    count = n
    if op == "populate":
        backend = open_backend(src, backend=engine)
        layer = keyspace.layer_prefix("default", None)

        def rows():
            for i in range(n):
                key = f"bench\x00ns{i % 100:02d}\x00k{i:07d}\x00".encode()
                value = os.urandom(50).hex().encode()  # 100 bytes, as incompressible as text gets
                yield layer + key, record.pack(value)

        backend.put_many(rows())
        backend.close()
    elif op == "scan":
        backend = open_backend(src, backend=engine, create=False)
        with backend.snapshot():
            count = sum(1 for _ in backend.scan(b"D\x00"))
        backend.close()
    elif op == "export":
        with prontodb.open(src, backend=engine, create=False) as store:
            count = portable.export_file(store, export).entries
    elif op == "import":
        target = os.path.join(folder, f"imp{EXT[engine]}")
        with prontodb.open(target, backend=engine) as store, open(export, "rb") as fh:
            count = portable.import_layer(store, fh).imported
    elif op == "backup":
        with prontodb.open(src, backend=engine, create=False) as store:
            count = portable.backup(store, os.path.join(folder, "b.tar.gz")).entries
    elif op == "restore":
        with prontodb.open(os.path.join(folder, f"res{EXT[engine]}"), backend=engine) as store:
            count = portable.restore(store, os.path.join(folder, "b.tar.gz")).entries
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"op": op, "engine": engine, "entries": count, "seconds": seconds, "rss_mb": rss_mb}


def run(op: str, engine: str, folder: str, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", op, engine, folder, str(n)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--entries", type=int, default=1_000_000)
    parser.add_argument("-b", "--backend", action="append", choices=sorted(EXT))
    parser.add_argument("--dir", help="where to put the stores (default: a temporary dir)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        op, engine, folder, n = args.child
        print(json.dumps(child(op, engine, folder, int(n))))
        return
    engines = args.backend or sorted(EXT)
    base = tempfile.mkdtemp(prefix="bench-portable-", dir=args.dir)
    print(f"{args.entries:,} entries, 100-byte values; python {sys.version.split()[0]}")
    print(
        f"{'backend':<10} {'operation':<9} {'seconds':>8} {'entries/s':>11} {'peak RSS':>9}  ratio"
    )
    try:
        for engine in engines:
            folder = os.path.join(base, engine)
            os.makedirs(folder)
            results = {op: run(op, engine, folder, args.entries) for op in OPS}
            sizes = {
                "d.jsonl": os.path.getsize(os.path.join(folder, "d.jsonl")),
                "b.tar.gz": os.path.getsize(os.path.join(folder, "b.tar.gz")),
            }
            for op in OPS:
                r = results[op]
                rate = r["entries"] / r["seconds"]
                if op in ("export", "backup"):
                    ratio = f"{r['seconds'] / results['scan']['seconds']:5.1f}x raw scan"
                elif op in ("import", "restore"):
                    ratio = f"{r['seconds'] / results['populate']['seconds']:5.1f}x raw put_many"
                else:
                    ratio = "(baseline)"
                print(
                    f"{engine:<10} {op:<9} {r['seconds']:8.2f} {rate:11,.0f} "
                    f"{r['rss_mb']:7.0f}MB  {ratio}"
                )
            print(
                f"{engine:<10} export file {sizes['d.jsonl'] / 1e6:.0f} MB, "
                f"backup archive {sizes['b.tar.gz'] / 1e6:.0f} MB"
            )
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
