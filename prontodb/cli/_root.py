"""The root click group of ``prontodb``: its global flags come from the declarations in
:mod:`prontodb.cli.spec`; command modules register themselves on :data:`cli` when first used.
"""

from __future__ import annotations

from typing import Any

import click

from prontodb.cli._build import global_params
from prontodb.cli._group import LazyCommands, ProntoGroup
from prontodb.cli._session import Session

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _root(ctx: click.Context, **flags: Any) -> None:
    """ProntoDB: values at dot addresses (project.namespace.key__context).

    Global flags work before or after the command. Exit codes: 0 ok, 1 error, 2 not found,
    3 piped content rescued into the pipe cache, 4 not applied (a condition did not hold).
    """
    if flags["ns_delim"] is not None:
        from prontodb.address import check_delim

        check_delim(flags["ns_delim"])
    session = Session.from_flags(flags)
    ctx.obj = session
    ctx.call_on_close(session.close)


cli = ProntoGroup(
    "prontodb",
    callback=click.pass_context(_root),
    params=[
        *global_params(),
        click.Option(
            ["--version"], is_flag=True, expose_value=False, help="Show the version and exit."
        ),
    ],
    help=_root.__doc__,
    context_settings=CONTEXT_SETTINGS,
)


def _owners() -> dict[str, tuple[str, ...]]:
    from prontodb.cli.spec import COMMANDS, CURSOR_COMMANDS

    owners: dict[str, list[str]] = {}
    for cmd in COMMANDS.values():
        for name in (cmd.name, *cmd.aliases):
            owners.setdefault(cmd.module, []).append(name)
    for cmd in CURSOR_COMMANDS.values():
        if cmd.module != COMMANDS["cursor"].module:
            owners.setdefault(cmd.module, []).append("cursor")
    return {module: tuple(names) for module, names in owners.items()}


# Command modules register on ``cli`` when imported, which happens on first use of one of their
# commands (or aliases), so that a one-shot command pays only for its own module; listing the
# commands (help, completion) imports them all. Which module owns which command is declared in
# prontodb.cli.spec.
cli.commands = LazyCommands(_owners(), cli.commands)
