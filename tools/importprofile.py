"""Import profile of one CLI command line, steady on a busy machine (docs/performance.md).

    python tools/importprofile.py PATH/TO/venv/bin/prontodb RUNS get p.n.k

Runs ``python -X importtime prontodb ARGS`` RUNS times with the interpreter next to the
script; prints how many modules were imported, the sum of their own import times (min and
median over the runs) and the modules with the largest cumulative time (min over the runs).
``TOP=N`` in the environment sets how many.
"""

from __future__ import annotations

import collections
import os
import statistics
import subprocess
import sys


def main() -> None:
    exe, runs, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    python = os.path.join(os.path.dirname(exe), "python")
    best: dict[str, int] = collections.defaultdict(lambda: 1 << 62)
    totals: list[int] = []
    count = 0
    for _ in range(runs):
        err = subprocess.run(
            [python, "-X", "importtime", exe, *args], capture_output=True, text=True
        ).stderr
        total, count = 0, 0
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, cumulative, name = line[len("import time:") :].split("|")
            total += int(own)
            count += 1
            key = name.rstrip()
            best[key] = min(best[key], int(cumulative))
        totals.append(total)
    print(
        f"modules imported: {count}; sum of own import times: min {min(totals) / 1000:.1f} ms,"
        f" median {statistics.median(totals) / 1000:.1f} ms ({runs} runs)"
    )
    top = sorted(((v, k) for k, v in best.items()), reverse=True)
    for value, name in top[: int(os.environ.get("TOP", "15"))]:
        print(f"  {value / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    main()
