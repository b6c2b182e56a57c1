"""Peak memory of the bulk write paths, per engine and size, each run in a fresh process.

    python tools/rss_bulk.py [--modes put_many,jsonl,stream] [--engines lmdb,sqlite,diskcache]
                             [--counts 1000000,5000000] [--value-bytes 32] [--dir DIR]
                             [--pythonpath DIR]

Modes:

* ``put_many``: one ``Backend.put_many`` of N pairs ``(b"key-%010d", value)`` from a generator;
* ``jsonl``: ``prontodb --database STORE import FILE`` of an export file of N entries;
* ``stream``: ``prontodb --database STORE stream FILE`` of a token stream of N entries.

The input files are written once per N into DIR (not measured). Each child is watched from
this process, sampling ``/proc/PID/status`` every 10 ms: its peak RSS (``VmHWM``, which the
kernel keeps; ``ru_maxrss`` of a child also counts this parent's size at fork) and the peaks of
``RssAnon`` (heap and other private memory) and ``RssFile`` (pages of mapped files: page cache
the kernel can drop, such as an LMDB map being read).
``base`` is the same kind of process doing no bulk work (the store opened; for the CLI modes,
``prontodb exists`` of one imported entry). Flat memory means the 5M figure is about the 1M figure.
``--pythonpath DIR`` measures another checkout of ProntoDB (a before/after).
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

PUT_MANY = r"""
import sys
from prontodb import backends
engine, path, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b = backends.backend_class(engine)(path)
value = b"v" * size
if n:
    assert b.put_many((b"key-%010d" % i, value) for i in range(n)) == n
b.close()
"""

NAMESPACE = "rss.bulk"
MODES = ("put_many", "jsonl", "stream")


def value_text(i: int, size: int) -> str:
    return (f"{i:010d}" * (size // 10 + 1))[:size]


def write_inputs(folder: str, n: int, size: int) -> dict[str, str]:
    """The JSONL export file and the token stream of N entries (made once per N)."""
    from prontodb import __version__
    from prontodb.portable import EXPORT_FORMAT, EXPORT_VERSION

    jsonl = os.path.join(folder, f"input-{n}-{size}.jsonl")
    tokens = os.path.join(folder, f"input-{n}-{size}.stream")
    step = 100_000
    if not os.path.exists(jsonl):
        header = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "prontodb": __version__,
            "source": {"backend": "rss_bulk"},
            "scope": None,
            "caches": {},
        }
        with open(jsonl + ".part", "w", encoding="ascii") as fh:
            fh.write(json.dumps(header, separators=(",", ":")) + "\n")
            for start in range(0, n, step):
                fh.write(
                    "".join(
                        f'{{"address":"{NAMESPACE}.k{i:010d}","value":"{value_text(i, size)}",'
                        '"encoding":"utf-8","expires_at":null}\n'
                        for i in range(start, min(n, start + step))
                    )
                )
        os.replace(jsonl + ".part", jsonl)
    if not os.path.exists(tokens):
        with open(tokens + ".part", "w", encoding="ascii") as fh:
            fh.write(f"meta:path={NAMESPACE};")
            for start in range(0, n, step):
                fh.write(
                    "".join(
                        f"k{i:010d}={value_text(i, size)};"
                        for i in range(start, min(n, start + step))
                    )
                )
        os.replace(tokens + ".part", tokens)
    return {"jsonl": jsonl, "stream": tokens}


def watch(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``argv``; return its peak RSS and its sampled RssAnon/RssFile peaks (KiB)."""
    peaks = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    status_path = f"/proc/{child.pid}/status"
    start = time.perf_counter()
    while True:
        try:
            with open(status_path, encoding="ascii") as fh:
                for line in fh:
                    name, _, rest = line.partition(":")
                    if name in peaks:
                        peaks[name] = max(peaks[name], int(rest.split()[0]))
        except (OSError, ValueError):
            pass
        done, status = os.waitpid(child.pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({child.returncode}): {stderr[-2000:]}")
    return {
        "peak_kb": peaks["VmHWM"],
        "anon_kb": peaks["RssAnon"],
        "file_kb": peaks["RssFile"],
        "seconds": seconds,
    }


def measure(
    mode: str, engine: str, n: int, size: int, folder: str, pythonpath: str | None
) -> dict[str, dict[str, float]]:
    """The base run and the bulk run of ``mode`` on a new store of ``engine``."""
    from prontodb import backends

    env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else dict(os.environ)
    env["HOME"] = env["XDG_DATA_HOME"] = env["XDG_CONFIG_HOME"] = os.path.join(folder, "home")
    path = os.path.join(folder, f"rss-{mode}-{engine}-{n}{backends.default_extension(engine)}")
    results = {}
    try:
        for run in ("bulk", "base"):
            if mode == "put_many":
                count = n if run == "bulk" else 0
                argv = [sys.executable, "-c", PUT_MANY, engine, path, str(count), str(size)]
            else:
                source = write_inputs(folder, n, size)[mode]
                command = {"jsonl": ["import", source], "stream": ["stream", source]}[mode]
                if run == "base":  # the imported store opened, one entry read
                    command = ["exists", f"{NAMESPACE}.k{0:010d}"]
                argv = [sys.executable, "-m", "prontodb", "--database", path, *command]
            results[run] = watch(argv, env)
        if mode != "put_many":
            count = "import prontodb, sys; print(prontodb.open(sys.argv[1]).count(sys.argv[2]))"
            check = subprocess.run(
                [sys.executable, "-c", count, path, NAMESPACE],
                env=env,
                capture_output=True,
                text=True,
            )
            if check.stdout.strip() != str(n):
                raise SystemExit(f"{mode} wrote {check.stdout.strip()} of {n}: {check.stderr}")
    finally:
        for leftover in backends.store_files(path):
            if os.path.isdir(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
            elif os.path.exists(leftover):
                os.remove(leftover)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--engines", default="lmdb,sqlite,diskcache")
    parser.add_argument("--counts", default="1000000,5000000")
    parser.add_argument("--value-bytes", type=int, default=32)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--pythonpath", default=None, help="measure this ProntoDB checkout")
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="prontodb-rss-")
    print(
        f"{'mode':<9} {'engine':<10} {'entries':>9} {'base MB':>8} {'peak MB':>8} "
        f"{'anon MB':>8} {'file MB':>8} {'seconds':>8}"
    )
    try:
        for mode in args.modes.split(","):
            if mode not in MODES:
                parser.error(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
            for engine in args.engines.split(","):
                for n in map(int, args.counts.split(",")):
                    r = measure(mode, engine, n, args.value_bytes, folder, args.pythonpath)
                    base, bulk = r["base"], r["bulk"]
                    print(
                        f"{mode:<9} {engine:<10} {n:>9} {base['peak_kb'] / 1024:>8.1f} "
                        f"{bulk['peak_kb'] / 1024:>8.1f} {bulk['anon_kb'] / 1024:>8.1f} "
                        f"{bulk['file_kb'] / 1024:>8.1f} {bulk['seconds']:>8.1f}",
                        flush=True,
                    )
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
