#!/usr/bin/env python3
"""What `watch` costs: wake-up latency after a write from another process, and idle CPU.

    python tools/bench_watch.py                       # every file engine, 20 writes, 30 s idle
    python tools/bench_watch.py --backends sqlite --writes 20 --idle 30

Latency: a child process loops ``Store.watch`` on one key; this process writes the key 20 times
(random gaps of 100-300 ms, each value carrying its commit time) and the child reports, for each
wake-up, the wall time since that commit. Idle CPU: a child runs one ``Store.watch(timeout=
IDLE)`` on a key nobody writes and reports its own CPU time (getrusage, user + system) over the
wait, as a share of one core. Both share the machine with whatever else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

EXTENSIONS = {"sqlite": ".sqlite", "lmdb": ".lmdb", "diskcache": ".diskcache"}
KEY = "bench.watch.k"

CHILD = r"""
import json, resource, sys, time
import prontodb

mode, path, n = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = prontodb.open(path)
if mode == "latency":
    print("ready", flush=True)
    for _ in range(int(n)):
        event = store.watch("KEY", timeout=30)
        woke = time.time()
        if event is None or event.entry is None:
            print(json.dumps({"error": repr(event)}), flush=True)
            continue
        print(json.dumps({"latency": woke - float(event.entry.value)}), flush=True)
else:
    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    before, start = cpu(), time.monotonic()
    event = store.watch("KEY", timeout=n)
    elapsed = time.monotonic() - start
    print(json.dumps({"cpu": cpu() - before, "elapsed": elapsed, "event": repr(event)}))
store.close()
""".replace("KEY", KEY)


def latency(path: str, writes: int) -> list[float]:
    import prontodb

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, "latency", path, str(writes)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    found: list[float] = []
    with prontodb.open(path) as store:
        for _ in range(writes):
            time.sleep(random.uniform(0.1, 0.3))
            store.set(KEY, repr(time.time()))  # committed when set returns
            report = json.loads(child.stdout.readline())
            if "latency" not in report:
                raise SystemExit(f"watch failed: {report}")
            found.append(report["latency"])
    child.wait(timeout=60)
    return found


def idle(path: str, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, "idle", path, str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report = json.loads(out)
    return {"cpu_s": report["cpu"], "elapsed_s": report["elapsed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=",".join(EXTENSIONS))
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    import prontodb

    print(f"python {sys.version.split()[0]}, load average {os.getloadavg()} at start")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            path = os.path.join(tmp, "watch" + EXTENSIONS[backend])
            prontodb.open(path, backend=backend).close()
            lat = sorted(latency(path, args.writes))
            ms = [x * 1000 for x in lat]
            cost = idle(path, args.idle)
            share = cost["cpu_s"] / cost["elapsed_s"] * 100
            median = statistics.median(ms)
            print(
                f"{backend:9}  wake-up latency over {len(ms)} writes: median {median:.1f} ms"
                f" (min {ms[0]:.1f}, max {ms[-1]:.1f})   idle watch: {cost['cpu_s']:.3f} s CPU"
                f" in {cost['elapsed_s']:.1f} s = {share:.2f} % of one core"
            )
    print(f"load average {os.getloadavg()} at end")


if __name__ == "__main__":
    main()
