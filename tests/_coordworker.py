"""The child side of tests/test_coordination.py: one process racing others on one store.

    python tests/_coordworker.py MODE PATH N [TAG]

* ``lib-incr``: N ``Store.incr`` on one counter through one handle;
* ``cli-incr``: N ``prontodb incr`` run in this process through the CLI entry (a fresh
  session, and so a fresh open and close of the store, each time);
* ``exec-incr``: N ``prontodb incr`` each a new ``python -m prontodb`` process;
* ``cli-cas``: append TAG N times to one value with a compare-and-set loop through the CLI
  (``get --json`` for value and version, then ``set --if-version``; exit 4 means retry).

Prints one JSON object: {"failures": [...], "retries": n}.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

COUNTER = "race.c.counter"
LOG = "race.c.log"


def cli(args: list[str]) -> tuple[int, bytes]:
    """Run the CLI in this process; (exit code, stdout)."""
    from prontodb.cli import cli as group

    saved = sys.stdout, sys.stderr
    buffer = io.BytesIO()
    sys.stdout = io.TextIOWrapper(buffer, encoding="utf-8")
    sys.stderr = io.StringIO()  # `not found` and `not applied` are expected here
    try:
        code = group.main(args, standalone_mode=False)
        sys.stdout.flush()
        out = buffer.getvalue()
    finally:
        sys.stdout, sys.stderr = saved
    return code, out


def main() -> None:
    mode, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tag = sys.argv[4] if len(sys.argv) > 4 else ""
    failures: list[str] = []
    retries = 0
    if mode == "lib-incr":
        import prontodb

        with prontodb.open(path) as store:
            for _ in range(n):
                store.incr(COUNTER)
    elif mode == "cli-incr":
        for _ in range(n):
            code, _out = cli(["--database", path, "incr", COUNTER])
            if code != 0:
                failures.append(f"incr exit {code}")
    elif mode == "exec-incr":
        for _ in range(n):
            done = subprocess.run(
                [sys.executable, "-m", "prontodb", "--database", path, "incr", COUNTER],
                capture_output=True,
            )
            if done.returncode != 0 or done.stderr:
                failures.append(f"incr exit {done.returncode}: {done.stderr!r}")
    elif mode == "cli-cas":
        for i in range(n):
            while True:
                code, out = cli(["--database", path, "get", "--json", LOG])
                if code not in (0, 2):
                    failures.append(f"get exit {code}")
                    break
                if code == 2:
                    args = ["set", LOG, f"{tag}{i};", "--nx"]
                else:
                    found = json.loads(out)
                    value = found["value"] + f"{tag}{i};"
                    args = ["set", LOG, value, "--if-version", str(found["version"])]
                code, _out = cli(["--database", path, *args])
                if code == 0:
                    break
                if code != 4:
                    failures.append(f"set exit {code}")
                    break
                retries += 1
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps({"failures": failures, "retries": retries}))


if __name__ == "__main__":
    main()
