"""What the LMDB page check costs (docs/reliability.md, "Damaged pages").

Builds a store of 50,000 entries of 100 B in a temporary directory and prints, in CPU time
(min of the repeats): raw py-lmdb get and prefix scan, the same reads through the backend with
the whole file already checked, with path / range walks over pages checked before and over
pages not yet checked, and the whole-file check (what a process's first write transaction and
``doctor`` run). Usage: ``python tools/bench_damage.py``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable

import prontodb
from prontodb.backends import _lmdb_pages as pages
from prontodb.backends.lmdb import LmdbBackend

T = time.process_time


def best(run: Callable[[int], object], n: int, repeats: int = 7) -> float:
    """The smallest CPU time per operation of ``repeats`` runs of ``n`` operations."""
    times = []
    for _ in range(repeats):
        start = T()
        run(n)
        times.append((T() - start) / n)
    return min(times)


def fresh_guard(backend: LmdbBackend, promote: bool = True) -> pages.PageGuard:
    """A guard with nothing checked (as in a new process); without ``promote``, path walks
    never turn into a whole-file check."""
    guard = pages.PageGuard(backend.path, os.open(backend.path, os.O_RDONLY))
    if not promote:
        guard._spend = lambda visited, meta: None  # type: ignore[method-assign]
    backend._shared.guard = guard
    return guard


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.lmdb")
        with prontodb.open(path, backend="lmdb") as store:
            for ns in range(10):
                store.set_many([(f"b.ns{ns:02d}.k{i:06d}", b"v" * 100) for i in range(5000)])
        backend = LmdbBackend(path, create=False)
        env = backend._env
        every = [k for k, _ in backend.scan(b"")]
        keys = every[::17][:2000]
        prefix = every[25_000][:-7]
        mib = os.path.getsize(path) / 2**20
        print(f"store: {mib:.1f} MiB, {os.path.getsize(path) // 4096} pages")

        def raw_get(n: int) -> None:
            for k in keys[:n]:
                with env.begin() as txn:
                    txn.get(k)

        def get(n: int) -> None:
            for k in keys[:n]:
                backend.get(k)

        def raw_scan(n: int) -> None:
            for _ in range(n):
                with env.begin() as txn, txn.cursor() as cursor:
                    cursor.set_range(prefix)
                    got = []
                    for k, v in cursor:
                        if not k.startswith(prefix):
                            break
                        got.append((k, v))

        def scan(n: int) -> None:
            for _ in range(n):
                assert len(list(backend.scan(prefix))) == 5000

        rows = [("raw py-lmdb get", best(raw_get, 2000) * 1e6, "µs")]
        cold = fresh_guard(backend, promote=False)

        def cold_get(n: int) -> None:
            for k in keys[:n]:
                cold._checked_txn = -1  # forget what was checked
                backend.get(k)

        rows.append(("get, path walk checking its pages", best(cold_get, 500) * 1e6, "µs"))
        fresh_guard(backend, promote=False)
        get(2000)
        rows.append(("get, path walk over pages checked before", best(get, 2000) * 1e6, "µs"))
        rows.append(("raw prefix scan 5,000 of 50,000", best(raw_scan, 5) * 1e3, "ms"))
        rows.append(("scan, range walk over pages checked before", best(scan, 5) * 1e3, "ms"))
        cold = fresh_guard(backend, promote=False)

        def cold_scan(n: int) -> None:
            for _ in range(n):
                cold._checked_txn = -1
                scan(1)

        rows.append(("scan, range walk checking its pages", best(cold_scan, 5) * 1e3, "ms"))

        def whole(n: int) -> None:
            for _ in range(n):
                guard = pages.PageGuard(path, os.open(path, os.O_RDONLY))
                txn = env.begin()
                meta = guard.meta(txn.id())
                assert meta is not None
                guard.check_whole(meta)
                txn.abort()
                guard.close()

        took = best(whole, 3)
        rows.append(("whole-file check", took * 1e3, "ms"))
        rows.append(("whole-file check per MiB", took * 1e3 / mib, "ms"))
        fresh_guard(backend)
        whole(1)
        backend._shared.guard.whole_from = 0  # every snapshot counts as checked
        rows.append(("get, whole file checked (no walk)", best(get, 2000) * 1e6, "µs"))
        rows.append(("scan, whole file checked (no walk)", best(scan, 5) * 1e3, "ms"))
        backend.close()
    for label, value, unit in rows:
        print(f"{label:<48} {value:8.2f} {unit}")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
