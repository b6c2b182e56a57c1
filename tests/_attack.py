"""Helpers of the attack suite (tests/test_attack_*.py): the real CLI in a subprocess, with a
timeout, so that a regression that hangs (a FIFO read, a regex that backtracks) fails the test
instead of stalling the run."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Seconds any single command may take before the attack counts as a hang.
HANG = 60


def prontodb(env, *args, stdin: bytes | None = None, timeout: float = HANG):
    """Run ``prontodb ARGS`` with ``env``; returns (exit code, stdout bytes, stderr text)."""
    done = subprocess.run(
        [sys.executable, "-m", "prontodb", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )
    return done.returncode, done.stdout, done.stderr.decode(errors="replace")


def locked(env, user: str | None = "alice", meta: str | None = None) -> dict[str, str]:
    """``env`` with PRONTO_FORCE_USER / PRONTO_FORCE_META set."""
    out = dict(env)
    if user:
        out["PRONTO_FORCE_USER"] = user
    if meta:
        out["PRONTO_FORCE_META"] = meta
    return out


def snapshot(path: str) -> dict[str, bytes]:
    """Every file of a store (its file plus side files, or its directory) by name -> bytes."""
    found: dict[str, bytes] = {}
    if os.path.isdir(path):
        for root, _, names in os.walk(path):
            for name in names:
                full = os.path.join(root, name)
                with open(full, "rb") as fh:
                    found[os.path.relpath(full, path)] = fh.read()
        return found
    folder, base = os.path.split(path)
    for name in sorted(os.listdir(folder)):
        if name.startswith(base):
            with open(os.path.join(folder, name), "rb") as fh:
                found[name] = fh.read()
    return found
