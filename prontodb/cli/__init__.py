"""The ``prontodb`` command line: a thin edge over the library.

Each command parses its arguments, makes one library call and prints. Exit codes are chosen in
:mod:`prontodb.cli._app` only. Command modules register themselves on :data:`cli`.
"""

from __future__ import annotations

from typing import Any

import click

from prontodb import __version__
from prontodb.cli._app import LazyCommands, ProntoGroup
from prontodb.cli._complete import complete_cursor
from prontodb.cli._session import Session

CONTEXT_SETTINGS = {"help_option_names": ["--help"], "max_content_width": 100}


@click.group(cls=ProntoGroup, context_settings=CONTEXT_SETTINGS)
@click.option("--user", metavar="U", help="User layer (env PRONTO_USER; default 'default').")
@click.option(
    "--cursor",
    metavar="C",
    shell_complete=complete_cursor,
    help="Named cursor to use (env PRONTO_CURSOR).",
)
@click.option(
    "--database", metavar="PATH", help="Store path, engine sniffed from the file (env PRONTO_DB)."
)
@click.option("--meta", metavar="M", help="Meta layer inside the store.")
@click.option("-p", "--project", metavar="P", help="Default project for partial addresses.")
@click.option("-n", "--namespace", metavar="N", help="Default namespace for partial addresses.")
@click.option("--ns-delim", metavar="C", help="Address delimiter: one of . : / | (default .).")
@click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output where output exists."
)
@click.version_option(
    __version__, "--version", prog_name="prontodb", message="%(prog)s %(version)s"
)
@click.pass_context
def cli(ctx: click.Context, **flags: Any) -> None:
    """ProntoDB: values at dot addresses (project.namespace.key__context).

    Global flags work before or after the command. Exit codes: 0 ok, 1 error, 2 not found,
    3 piped content rescued into the pipe cache.
    """
    if flags["ns_delim"] is not None:
        from prontodb.address import check_delim

        check_delim(flags["ns_delim"])
    session = Session.from_flags(flags)
    ctx.obj = session
    ctx.call_on_close(session.close)


def main() -> None:
    """Console entry point."""
    cli.main(prog_name="prontodb")


# Command modules register on ``cli`` when imported, which happens on first use of one of their
# commands (or aliases), so that a one-shot command pays only for its own module; listing the
# commands (help, completion) imports them all. A module missing here is never reached.
cli.commands = LazyCommands(
    {
        "prontodb.cli.data": (
            *("set", "get", "del", "exists", "ttl", "expire", "persist", "copy", "move"),
        ),
        "prontodb.cli.coordination": ("incr", "decr", "watch"),
        "prontodb.cli.listing": (
            *("keys", "list-keys", "ls", "scan", "scan-pairs"),
            *("projects", "namespaces", "nss", "caches"),
        ),
        "prontodb.cli.admin": (
            *("create-cache", "drop-cache", "gc", "info", "version", "help", "completion"),
        ),
        "prontodb.cli.cursor": ("cursor",),
        "prontodb.cli.portable": ("export", "import", "backup", "restore", "cursor"),
        "prontodb.cli.stream": ("stream",),
        "prontodb.cli.doctor": ("doctor",),
    },
    cli.commands,
)
