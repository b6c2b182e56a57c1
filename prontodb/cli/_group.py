"""The click classes of ``prontodb``: the root group and its commands, built from the
declarations (:mod:`prontodb.cli._build`), and the lazily imported command table.

Every command line is still classified and run by :func:`prontodb.cli._app.run_call`; this
module is imported only when click is needed (help, completion, a command the hot path does
not serve).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from prontodb.cli._app import _flush_stdout, run_call


class LazyCommands(dict):  # type: ignore[type-arg]
    """A group's commands, each command module imported when one of its commands (or
    aliases) is first looked up, and all of them when the commands are listed: a one-shot
    ``prontodb get`` imports only the module that defines ``get``. A name that no module
    claims imports every module before it is looked up, so nothing is ever missed."""

    def __init__(self, modules: dict[str, tuple[str, ...]], *args: Any) -> None:
        super().__init__(*args)
        self._owners: dict[str, list[str]] = {}
        for module, names in modules.items():
            for name in names:
                self._owners.setdefault(name, []).append(module)
        self._pending = list(modules)

    def load(self, name: object = None) -> None:
        """Import the modules that define ``name`` (every module for None or an unknown
        name, or for a name their modules have not registered)."""
        if not self._pending or (name is not None and dict.__contains__(self, name)):
            return
        owners = self._owners.get(name) if isinstance(name, str) else None
        for module in owners or list(self._pending):
            if module in self._pending:
                self._pending.remove(module)
                importlib.import_module(module)
                from prontodb.cli._build import build_pending

                build_pending()
        if owners and not dict.__contains__(self, name):
            self.load()

    def __contains__(self, name: object) -> bool:
        self.load(name)
        return super().__contains__(name)

    def __getitem__(self, name: str) -> click.Command:
        self.load(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        self.load(name)
        return super().get(name, default)

    def __iter__(self) -> Any:
        self.load()
        return super().__iter__()

    def __len__(self) -> int:
        self.load()
        return super().__len__()

    def keys(self) -> Any:
        self.load()
        return super().keys()

    def values(self) -> Any:
        self.load()
        return super().values()

    def items(self) -> Any:
        self.load()
        return super().items()


class ProntoCommand(click.Command):
    """A command built from its declaration (:mod:`prontodb.cli._build`)."""


class ProntoGroup(click.Group):
    """A group whose subcommands are ProntoCommands and that knows their aliases; the root
    group runs every command line through :func:`run_call`."""

    command_class = ProntoCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group_class = ProntoGroup
        self.aliases: dict[str, str] = {}

    def add_alias(self, alias: str, name: str) -> None:
        """Make ``alias`` run the command ``name`` (aliases are not listed in help)."""
        self.aliases[alias] = name

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if isinstance(self.commands, LazyCommands):
            self.commands.load(cmd_name)  # its module may also register aliases
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if os.environ.get("_PRONTODB_COMPLETE"):
            return _complete(self, argv, prog_name, complete_var, standalone_mode, **extra)
        from prontodb.cli.argv import classify

        code = run_call(self, classify(argv), prog_name or "prontodb", **extra)
        if standalone_mode:
            _flush_stdout()
            sys.exit(code)
        return code


def _complete(group: click.Group, argv: list[str], *args: Any, **extra: Any) -> Any:
    """Shell completion; a malformed request (``COMP_CWORD`` not a number...) completes
    nothing instead of printing a traceback."""
    try:
        return click.Group.main(group, argv, *args, **extra)
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001 - completion never prints errors
        sys.exit(1)


def help_text(group: click.Group, path: Sequence[str], prog_name: str = "prontodb") -> str:
    """The formatted help of the command at ``path`` (the root for an empty path)."""
    target: click.Command = group
    ctx = click.Context(target, info_name=prog_name)
    for name in path:
        if not isinstance(target, click.Group):
            break
        sub = target.get_command(ctx, name)
        if sub is None:
            break
        target = sub
        ctx = click.Context(target, info_name=name, parent=ctx)
    return target.get_help(ctx)
