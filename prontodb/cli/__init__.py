"""The ``prontodb`` command line: a thin edge over the library.

Each command parses its arguments, makes one library call and prints. Exit codes are chosen in
:mod:`prontodb.cli._app` only. Every command line is classified once by
:mod:`prontodb.cli.argv` from the declarations in :mod:`prontodb.cli.spec`; the click group
(:data:`cli`, built in :mod:`prontodb.cli._root`) is imported only when it is used, so that the
package itself imports no click. One-shot ``get``/``set``/``del``/``exists``/``incr``/``decr``
run on the click-free hot path (:mod:`prontodb.cli._hot`); ``PRONTO_NO_FAST=1`` forces click.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Callable
    from typing import Any

    from prontodb.cli._group import ProntoGroup

    cli: ProntoGroup


def run(argv: list[str]) -> int:
    """Run ``prontodb ARGV`` in this process and return its exit code (nothing exits): on the
    hot path when it serves the call, else through click."""
    return _run(argv)


def _run(argv: list[str], before_click: Callable[[], object] | None = None) -> int:
    from prontodb.cli import _hot

    code = _hot.run(argv)
    if code is None:
        if before_click is not None:
            before_click()
        from prontodb.cli._root import cli

        code = cli.main(list(argv), prog_name="prontodb", standalone_mode=False)
    return int(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs ``argv`` (default ``sys.argv[1:]``) and exits with its code.
    A call the hot path serves never imports click; every other call runs through click.

    The process is one command: while a hot command loads and runs, the cyclic garbage
    collector is off (it would walk every module and class being imported, about 5% of the
    start-up, and a one-shot get or set leaves no cycles worth freeing). Every other command
    (bulk imports, streams, watch) runs with it on. After a hot command the process ends
    without the interpreter's clean-up when nothing is left for it to do (see
    :func:`_end_now`). This is the process's entry point: call :func:`run` to run a command
    inside a longer-lived process."""
    import gc
    import sys

    hot = [True]

    def before_click() -> None:
        hot[0] = False
        gc.enable()

    gc.disable()  # left off after a hot command: the process exits (a collection then costs)
    code = _run(sys.argv[1:] if argv is None else list(argv), before_click=before_click)
    from prontodb.cli._app import _flush_stdout

    _flush_stdout()
    if hot[0]:
        _end_now(code)
    sys.exit(code)


def _end_now(code: int) -> None:
    """End the process with ``code`` at once (``os._exit``), skipping the interpreter's
    clean-up, when that clean-up has nothing left to do; else return (the caller exits as
    usual).

    A hot command has closed its store and written its output by now; what the interpreter
    would still do is free every object and module one by one (with a last garbage
    collection over all of them): about 10M instructions, 13% of a one-shot ``get``, which the
    operating system does for free when the process ends. Nothing observable is skipped: it
    returns (and the normal exit runs) when an ``atexit`` callback is registered, another
    thread is alive, or stdout or stderr cannot be flushed (the normal exit then reports that
    as it always did)."""
    import atexit
    import os
    import sys

    registered = getattr(atexit, "_ncallbacks", None)  # CPython's; unknown elsewhere
    if registered is None or registered():
        return
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except Exception:  # noqa: BLE001 - the normal exit reports it, as before
        return
    os._exit(code)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from prontodb.cli._root import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
