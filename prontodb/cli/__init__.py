"""The ``prontodb`` command line: a thin edge over the library.

Each command parses its arguments, makes one library call and prints. Exit codes are chosen in
:mod:`prontodb.cli._app` only. Every command line is classified once by
:mod:`prontodb.cli.argv` from the declarations in :mod:`prontodb.cli.spec`; the click group
(:data:`cli`, built in :mod:`prontodb.cli._root`) is imported only when it is used, so that the
package itself imports no click. One-shot ``get``/``set``/``del``/``exists``/``incr``/``decr``
run on the click-free hot path (:mod:`prontodb.cli._hot`); ``PRONTO_NO_FAST=1`` forces click.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prontodb.cli._group import ProntoGroup

    cli: ProntoGroup


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs ``argv`` (default ``sys.argv[1:]``) and exits with its code.
    A call the hot path serves never imports click; every other call runs through click."""
    import sys

    from prontodb.cli import _hot

    args = sys.argv[1:] if argv is None else list(argv)
    code = _hot.run(args)
    if code is None:
        from prontodb.cli._root import cli

        cli.main(args, prog_name="prontodb")
        return
    from prontodb.cli._app import _flush_stdout

    _flush_stdout()
    sys.exit(code)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from prontodb.cli._root import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
