"""Click commands built from the declarations in :mod:`prontodb.cli.spec`.

A command module writes ``@declared("set")`` (:mod:`prontodb.cli._commands`) over its function
instead of a stack of ``@click.argument``/``@click.option``: the parameters, their help and
their completion come from the declaration, so the argv classifier and click can never
disagree about them. The click command is built when the module is loaded for the click group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from prontodb.cli._commands import PENDING, declared
from prontodb.cli.spec import COMMANDS, ENGINES, GLOBAL_OPTIONS, Arg, Cmd, Opt, subcommands


class EngineChoice(click.Choice):  # type: ignore[type-arg]
    """The engines a user may choose, asked of the registry when first needed (so outside
    engines registered through entry points are accepted, and start-up never scans them)."""

    def __init__(self) -> None:
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from prontodb import backends

        return backends.engine_names(selectable_only=True)

    @choices.setter
    def choices(self, value: object) -> None:
        pass


def _choice(choices: tuple[str, ...] | str | None) -> click.ParamType | None:
    if choices is None:
        return None
    if choices == ENGINES:
        return EngineChoice()
    return click.Choice(choices)


def _completer(name: str | None) -> Any:
    if name is None:
        return None
    from prontodb.cli import _complete

    return {"cursor": _complete.complete_cursor, "address": _complete.complete_address}[name]


def option(opt: Opt) -> click.Option:
    """The click option of a declaration."""
    names = [*opt.flags, opt.dest]
    if not opt.value:
        return click.Option(names, is_flag=True, default=False, help=opt.help)
    return click.Option(
        names,
        metavar=opt.metavar,
        type=_choice(opt.choices),
        default=opt.default,
        show_default=opt.default is not None,
        help=opt.help,
        shell_complete=_completer(opt.complete),
    )


def argument(arg: Arg) -> click.Argument:
    """The click argument of a declaration."""
    return click.Argument(
        [arg.dest],
        metavar=arg.metavar,
        required=arg.required,
        nargs=-1 if arg.many else 1,
        default=arg.default,
        shell_complete=_completer(arg.complete),
    )


def params(cmd: Cmd) -> list[click.Parameter]:
    """The click parameters of a command declaration."""
    return [*(argument(a) for a in cmd.args), *(option(o) for o in cmd.opts)]


def global_params() -> list[click.Parameter]:
    """The click options of the global flags (``--version`` and help are added by click)."""
    return [option(o) for o in GLOBAL_OPTIONS]


def build(path: tuple[str, ...], fn: Callable[..., Any]) -> click.Command:
    """Build and register the click command at ``path`` (``("set",)`` or ``("cursor",
    "set")``) from its declaration, running ``fn``; the function receives the click context
    first and then the parameters by their declared names. A group declaration makes a group."""
    from prontodb.cli import cli
    from prontodb.cli._group import ProntoCommand, ProntoGroup

    table = COMMANDS if len(path) == 1 else subcommands(path[0])
    cmd = table[path[-1]]
    callback = click.pass_context(fn)
    doc = fn.__doc__
    made: click.Command
    if cmd.group:
        made = ProntoGroup(cmd.name, callback=callback, params=params(cmd), help=doc)
    else:
        made = ProntoCommand(cmd.name, callback=callback, params=params(cmd), help=doc)
    parent = cli if len(path) == 1 else cli.commands[path[0]]
    assert isinstance(parent, ProntoGroup)
    parent.add_command(made)
    for alias in cmd.aliases:
        parent.add_alias(alias, cmd.name)
    return made


def build_pending() -> None:
    """Build the click command of every function recorded by ``@declared`` and not built yet
    (called after a command module is imported for the click group)."""
    while PENDING:
        path, fn = PENDING.pop(0)
        build(path, fn)


__all__ = ["build", "build_pending", "declared", "global_params", "option", "argument", "params"]
