"""Peak RSS of ``prontodb stream`` reading a token stream piped on stdin, per input size.

    python tools/rss_stream_stdin.py [--sizes-mb 10,200] [--engine sqlite] [--pythonpath DIR]
                                     [--max-value-bytes N] [--dir DIR]

For each size, a stream of small ``kNNNNNNNNN=value-NNNNNNNNN;`` tokens to one namespace is
written to a file, then piped (``< FILE``) into ``python -m prontodb stream`` in a fresh
process with its own HOME (a new default store of ``--engine``); the child's peak RSS
(``ru_maxrss`` of the waited child) and wall time are printed, with the exit code. Flat memory
means the 200 MB figure is about the 10 MB figure. ``--pythonpath DIR`` measures another
checkout (``--pythonpath /path/to/main`` for a before/after).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

EXTENSIONS = {"sqlite": ".sqlite", "lmdb": ".lmdb", "diskcache": ".diskcache"}


def make_stream(path: str, size: int) -> int:
    """Write about ``size`` bytes of tokens to ``path``; return the number of data tokens."""
    count = 0
    with open(path, "wb") as fh:
        fh.write(b"meta:path=big.ns;\n")
        written = 0
        while written < size:
            block = b"".join(b"k%09d=value-%09d;\n" % (i, i) for i in range(count, count + 10000))
            fh.write(block)
            written += len(block)
            count += 10000
    return count


def measure(
    stream_file: str, engine: str, folder: str, pythonpath: str | None, limit: str | None
) -> tuple[int, int, float, str]:
    """(exit code, peak RSS in KiB, seconds, last stderr line) of one piped ``stream``."""
    home = tempfile.mkdtemp(dir=folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRONTO_")}
    env.update(
        HOME=home,
        XDG_DATA_HOME=os.path.join(home, "data"),
        XDG_CONFIG_HOME=os.path.join(home, "config"),
        XDG_CACHE_HOME=os.path.join(home, "cache"),
    )
    if limit:
        env["PRONTO_MAX_VALUE_BYTES"] = limit
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    store = os.path.join(home, "store" + EXTENSIONS[engine])  # the engine follows from it
    args = [sys.executable, "-m", "prontodb", "--database", store, "stream"]
    start = time.perf_counter()
    with open(stream_file, "rb") as stdin:
        proc = subprocess.Popen(
            args, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    seconds = time.perf_counter() - start
    shutil.rmtree(home, ignore_errors=True)
    code = os.waitstatus_to_exitcode(status)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    return code, usage.ru_maxrss, seconds, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="10,200")
    parser.add_argument("--engine", default="sqlite", choices=["sqlite", "lmdb", "diskcache"])
    parser.add_argument("--pythonpath")
    parser.add_argument("--max-value-bytes")
    parser.add_argument("--dir")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(dir=args.dir)
    try:
        print(f"engine {args.engine}, python {sys.version.split()[0]}, load {os.getloadavg()}")
        for mb in (int(x) for x in args.sizes_mb.split(",")):
            path = os.path.join(folder, f"stream-{mb}.txt")
            tokens = make_stream(path, mb << 20)
            code, peak_kb, seconds, last = measure(
                path, args.engine, folder, args.pythonpath, args.max_value_bytes
            )
            os.unlink(path)
            print(
                f"{mb:>5} MB ({tokens:,} tokens): exit {code}, peak RSS {peak_kb / 1024:.1f} MB, "
                f"{seconds:.1f} s  [{last}]"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
