"""The ``prontodb`` command line: a thin edge over the library.

Each command parses its arguments, makes one library call and prints. Exit codes are chosen in
:mod:`prontodb.cli._app` only. Every command line is classified once by
:mod:`prontodb.cli.argv` from the declarations in :mod:`prontodb.cli.spec`; the click group
(:data:`cli`, built in :mod:`prontodb.cli._root`) is imported only when it is used, so that the
package itself imports no click.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prontodb.cli._app import ProntoGroup

    cli: ProntoGroup


def main() -> None:
    """Console entry point."""
    from prontodb.cli._root import cli

    cli.main(prog_name="prontodb")


def __getattr__(name: str) -> Any:
    if name == "cli":
        from prontodb.cli._root import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
