"""Peak RSS of one ``Backend.put_many`` of N generated pairs, per engine, each in a fresh process.

    python tools/rss_bulk.py [--engines lmdb,sqlite,diskcache] [--counts 1000000,5000000]
                             [--value-bytes 32] [--dir DIR]

Each run opens a new store in DIR (a temporary directory by default), writes N pairs
``(b"key-%010d", value)`` from a generator in one put_many, and prints the child's peak RSS
(``ru_maxrss``) next to the baseline of a child that only imported the engine and opened the
store. Flat memory means the 5M figure is about the 1M figure. ``--pythonpath DIR`` measures
another checkout of ProntoDB (e.g. ``--pythonpath /path/to/main`` for a before/after).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
from prontodb import backends
engine, path, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b = backends.backend_class(engine)(path)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
value = b"v" * size
t = time.perf_counter()
written = b.put_many((b"key-%010d" % i, value) for i in range(n))
seconds = time.perf_counter() - t
b.close()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"written": written, "base_kb": base, "peak_kb": peak, "seconds": seconds}))
"""


def measure(
    engine: str, n: int, size: int, folder: str, pythonpath: str | None = None
) -> dict[str, float]:
    from prontodb import backends

    path = os.path.join(folder, f"rss-{engine}-{n}{backends.default_extension(engine)}")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, engine, path, str(n), str(size)],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None,
    )
    for leftover in backends.store_files(path):
        if os.path.isdir(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
        elif os.path.exists(leftover):
            os.remove(leftover)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="lmdb,sqlite,diskcache")
    parser.add_argument("--counts", default="1000000,5000000")
    parser.add_argument("--value-bytes", type=int, default=32)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--pythonpath", default=None, help="measure this ProntoDB checkout")
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="prontodb-rss-")
    print(f"{'engine':<10} {'pairs':>9} {'base MB':>8} {'peak MB':>8} {'seconds':>8}")
    for engine in args.engines.split(","):
        for n in map(int, args.counts.split(",")):
            r = measure(engine, n, args.value_bytes, folder, args.pythonpath)
            assert r["written"] == n, r
            print(
                f"{engine:<10} {n:>9} {r['base_kb'] / 1024:>8.1f} {r['peak_kb'] / 1024:>8.1f} "
                f"{r['seconds']:>8.1f}",
                flush=True,
            )
    if args.dir is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
