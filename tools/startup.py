"""Start-up cost of one-shot CLI commands against ``python -c pass`` (docs/performance.md).

    python tools/startup.py [--runs 21] [--prontodb PATH] [--engines sqlite,lmdb,diskcache]
                            [--instructions]

Runs each command line ``--runs`` times, interleaved with ``python -c pass`` from the same
environment (the interpreter next to the ``prontodb`` script), in a fresh HOME, bytecode
writing allowed and warmed first. Prints medians and the ratio to ``python -c pass``.

``--instructions`` also counts the instructions each command line executes (once, under
valgrind's callgrind; slow, but the same on a busy machine as on a quiet one): a steady
figure to compare changes by when wall times swing with the load of a shared machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = (
    ("get", ["get", "p.n.k"]),
    ("set", ["set", "p.n.k", "value"]),
    ("exists", ["exists", "p.n.k"]),
    ("incr", ["incr", "p.n.c"]),
    ("del", ["del", "p.n.gone"]),  # a miss (exit 2): nothing to set up again
)
TARGETS = {"sqlite": 2.0, "lmdb": 2.2, "diskcache": 3.0}
EXTENSIONS = {"sqlite": ".sqlite", "lmdb": ".lmdb", "diskcache": ".diskcache"}


def _wall(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _instructions(argv: list[str], env: dict[str, str]) -> int | None:
    """Instructions ``argv`` executes (callgrind's total Ir), or None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in done.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    return None


def _script_kind(exe: str) -> str:
    """Whether the console script imports ``re`` before ProntoDB starts (pip < 25 writes one
    that does: about 0.4x of ``python -c pass`` that no package can avoid)."""
    try:
        with open(exe, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if "\nimport re\n" in head:
        return "imports re before ProntoDB (written by pip < 25: ~+0.4x on every ratio)"
    return "does not import re (pip >= 25, uv)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--prontodb", default=shutil.which("prontodb") or "prontodb")
    parser.add_argument("--engines", default="sqlite,lmdb,diskcache")
    parser.add_argument("--instructions", action="store_true", help="count instructions too")
    args = parser.parse_args()
    exe = os.path.realpath(args.prontodb)
    python = os.path.join(os.path.dirname(os.path.abspath(args.prontodb)), "python")
    home = tempfile.mkdtemp(prefix="prontodb-startup-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRONTO")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(HOME=home, XDG_DATA_HOME=f"{home}/data", XDG_CONFIG_HOME=f"{home}/config")
    env["XDG_CACHE_HOME"] = f"{home}/cache"
    print(f"prontodb: {exe}\npython:   {python}\nruns:     {args.runs} (medians)")
    print(f"script:   {_script_kind(exe)}")
    try:
        for engine in args.engines.split(","):
            db = ["--database", f"{home}/store{EXTENSIONS[engine]}"]
            subprocess.run([exe, *db, "set", "p.n.k", "v"], env=env, check=True)
            for _ in range(3):  # warm bytecode and the page cache
                _wall([exe, *db, "get", "p.n.k"], env)
                _wall([python, "-c", "pass"], env)
            for name, words in COMMANDS:
                base, ours = [], []
                for _ in range(args.runs):
                    base.append(_wall([python, "-c", "pass"], env))
                    ours.append(_wall([exe, *db, *words], env))
                b, o = (statistics.median(w for w, _ in runs) for runs in (base, ours))
                bc, oc = (statistics.median(c for _, c in runs) for runs in (base, ours))
                ratio = o / b
                verdict = "met" if ratio <= TARGETS.get(engine, 2.0) else "NOT met"
                counted = ""
                if args.instructions:
                    base_ir = _instructions([python, "-c", "pass"], env)
                    ours_ir = _instructions([exe, *db, *words], env)
                    if base_ir and ours_ir:
                        counted = f"  instructions {ours_ir / 1e6:.1f}M = {ours_ir / base_ir:4.2f}"
                print(
                    f"{engine:9} {name:7} {o * 1000:7.1f} ms  python -c pass {b * 1000:6.1f} ms"
                    f"  ratio {ratio:4.2f} (target <= {TARGETS.get(engine, 2.0)}: {verdict})"
                    f"  cpu {oc * 1000:.1f}/{bc * 1000:.1f} ms = {oc / bc:4.2f}{counted}"
                )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
