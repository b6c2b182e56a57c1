#!/usr/bin/env python3
"""The cost of using a Store from asyncio, next to the sync path, measured in one run.

    python tools/bench_async.py                     # sqlite, 5,000 calls per figure
    python tools/bench_async.py --backend lmdb --calls 20000 --repeats 7

For each of ``get`` and ``set`` it prints the time per call of:

* sync: ``store.get(addr)`` in a plain loop (the floor);
* AsyncStore: ``await astore.get(addr)`` one after another (one worker thread per store);
* to_thread: ``await asyncio.to_thread(store.get, addr)`` one after another (safe only
  because the calls never overlap; see docs/python-api.md);
* AsyncStore gather: ``asyncio.gather`` of 100 calls at a time (queued on the one worker).

Each figure is the median of ``--repeats`` runs (min-max in brackets); variants alternate so they
see the same machine load. The ratio is against sync in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import prontodb  # noqa: E402
from prontodb.aio import AsyncStore  # noqa: E402


def _time_sync(fn: Callable[[int], object], calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return time.perf_counter() - start


async def _time_async(fn: Callable[[int], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        await fn(i)
    return time.perf_counter() - start


async def _time_gather(fn: Callable[[int], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for base in range(0, calls, 100):
        await asyncio.gather(*(fn(i) for i in range(base, min(calls, base + 100))))
    return time.perf_counter() - start


async def measure(backend: str, calls: int, repeats: int) -> dict[str, dict[str, list[float]]]:
    folder = tempfile.mkdtemp(prefix="prontodb-bench-async-")
    path = os.path.join(folder, f"bench.{backend}")
    store = prontodb.open(path, backend=backend)
    astore = AsyncStore(store)
    addrs = [f"bench.async.k{i:06d}" for i in range(calls)]
    store.set_many({a: b"v" * 100 for a in addrs})
    value = b"w" * 100
    variants: dict[str, dict[str, Callable[[], Awaitable[float]]]] = {
        "get": {
            "sync": lambda: _wrap(_time_sync(lambda i: store.get(addrs[i]), calls)),
            "AsyncStore": lambda: _time_async(lambda i: astore.get(addrs[i]), calls),
            "to_thread": lambda: _time_async(
                lambda i: asyncio.to_thread(store.get, addrs[i]), calls
            ),
            "AsyncStore gather": lambda: _time_gather(lambda i: astore.get(addrs[i]), calls),
        },
        "set": {
            "sync": lambda: _wrap(_time_sync(lambda i: store.set(addrs[i], value), calls)),
            "AsyncStore": lambda: _time_async(lambda i: astore.set(addrs[i], value), calls),
            "to_thread": lambda: _time_async(
                lambda i: asyncio.to_thread(store.set, addrs[i], value), calls
            ),
            "AsyncStore gather": lambda: _time_gather(lambda i: astore.set(addrs[i], value), calls),
        },
    }
    results: dict[str, dict[str, list[float]]] = {
        op: {name: [] for name in names} for op, names in variants.items()
    }
    try:
        for _ in range(repeats):
            for op, names in variants.items():
                for name, run in names.items():
                    results[op][name].append(await run() / calls)
    finally:
        await astore.close()
    return results


async def _wrap(value: float) -> float:
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = asyncio.run(measure(args.backend, args.calls, args.repeats))
    print(f"{args.backend}, {args.calls} calls x {args.repeats} repeats, time per call:")
    for op, names in results.items():
        floor = statistics.median(names["sync"])
        for name, times in names.items():
            median = statistics.median(times)
            print(
                f"  {op:4} {name:18} {median * 1e6:8.1f} us "
                f"[{min(times) * 1e6:.1f}-{max(times) * 1e6:.1f}]  x{median / floor:.2f}"
            )


if __name__ == "__main__":
    main()
