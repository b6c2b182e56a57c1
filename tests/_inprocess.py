"""Running the CLI in-process: ``cli.main(args, standalone_mode=False)`` returns the exit code."""

from __future__ import annotations

import io
import sys

from prontodb.cli import cli


def run_cli(args, stdin: bytes = b"") -> tuple[int, bytes, str]:
    """Run ``prontodb ARGS`` in this process with ``stdin`` piped in; returns (exit code,
    stdout bytes, stderr text). stdout is strict UTF-8 like a real one; stderr escapes."""
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    sys.stdout = io.TextIOWrapper(out, encoding="utf-8")
    sys.stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace")
    try:
        code = cli.main(list(args), standalone_mode=False)
        sys.stdout.flush()
        sys.stderr.flush()
        result = code, out.getvalue(), err.getvalue().decode()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return result
