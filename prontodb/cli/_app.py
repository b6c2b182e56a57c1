"""The root click group: global flags anywhere, help three ways, exit codes in one place.

Exit codes: 0 success; 1 error (usage — click's 2 is remapped —, invalid address, locked
context, storage failure); 2 miss; 3 piped content rescued into the pipe cache.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from prontodb.errors import NotFoundError, ProntoError

#: Global flags that take a value, and their short spellings.
VALUE_FLAGS = {
    "--user",
    "--cursor",
    "--database",
    "--meta",
    "--project",
    "--namespace",
    "--ns-delim",
    "-p",
    "-n",
}
BOOL_FLAGS = {"--json", "--version"}

EXIT_OK, EXIT_ERROR, EXIT_MISS, EXIT_RESCUED, EXIT_NOT_APPLIED = 0, 1, 2, 3, 4


class Exit(Exception):
    """Ends a command with a given exit code after it has printed what it had to."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def hoist_globals(args: Sequence[str]) -> list[str]:
    """Move global flags (and their values) found anywhere before ``--`` to the front, so
    they work before or after the command."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    args = list(args)
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg
        if name in VALUE_FLAGS:
            if "=" in arg or i + 1 >= len(args):
                front.append(arg)
                i += 1
            else:
                front += [arg, args[i + 1]]
                i += 2
            continue
        if len(arg) > 2 and arg[:2] in ("-p", "-n") and not arg.startswith("--"):
            front.append(arg)
            i += 1
            continue
        if name in BOOL_FLAGS:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _help_word(args: list[str]) -> list[str]:
    return ["--help"] if args == ["help"] else args


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
    """A command whose lone argument ``help`` shows its help."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _help_word(args))


class ProntoGroup(click.Group):
    """A group whose commands are ProntoCommands and whose lone ``help`` argument shows help;
    the root group also hoists global flags and maps every failure to an exit code."""

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

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _help_word(args))

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
            return super().main(
                argv, prog_name or "prontodb", complete_var, standalone_mode, **extra
            )
        code = run(self, hoist_globals(argv), prog_name or "prontodb", **extra)
        if standalone_mode:
            sys.exit(code)
        return code


def run(group: click.Group, args: list[str], prog_name: str, **extra: Any) -> int:
    """Run the CLI and turn every outcome into an exit code (never a traceback for an
    expected failure)."""
    from prontodb.cli._session import OPENED

    OPENED.clear()
    try:
        try:
            click.Group.main(group, args, prog_name=prog_name, standalone_mode=False, **extra)
        except (Exit, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            # Content piped to `set`/`stream` that failed before reading it is rescued (§6).
            from prontodb.cli.rescue import rescue_unread

            rescue_unread(group, args, exc)
            raise
        return EXIT_OK
    except Exit as done:
        return done.code
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see: {exc.ctx.command_path} --help)"
        click.echo(f"error: {one_line(exc.format_message())}{hint}", err=True)
        return EXIT_ERROR
    except click.Abort:
        click.echo("aborted", err=True)
        return EXIT_ERROR
    except NotFoundError as exc:
        click.echo(str(exc), err=True)
        return EXIT_MISS
    except ProntoError as exc:
        click.echo(f"error: {one_line(_with_store(exc))}", err=True)
        return EXIT_ERROR
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        return report_unexpected(exc)


#: How the CLI spells the library's Python arguments in messages (the one place that does).
FLAG_SPELLING = {
    "ttl": "--ttl",
    "keep_ttl": "--keep-ttl",
    "project": "-p/--project",
    "namespace": "-n/--namespace",
    "replace": "--replace",
    "on_conflict": "--on-conflict",
    "format": "--format",
    "path": "--path",
    "remove_old": "--remove-old",
    "replace_target": "--replace-target",
    "backend": "--backend",
    "purge": "--purge",
    "database": "--database",
    "cursor": "--cursor",
    "seconds": "DURATION",
    "duration": "DURATION",
    "value": "VALUE",
}


def flag_spelling(argument: str, value: str | None) -> str:
    """A library argument as the CLI user knows it: ``keep_ttl`` -> ``--keep-ttl``,
    ``replace=True`` -> ``--replace``, ``on_conflict='fail'`` -> ``--on-conflict fail``."""
    flag = FLAG_SPELLING.get(argument)
    if flag is None:
        return argument if value is None else f"{argument}={value}"
    if value is None or value == "True":
        return flag
    return f"{flag} {value.strip(chr(39) + chr(34))}"


def flag_message(exc: BaseException) -> str:
    """The message of ``exc`` worded for the command line: a library error that carries a
    template names flags instead of Python arguments; any other error is its plain text."""
    if isinstance(exc, ProntoError):
        return exc.describe(flag_spelling)
    return str(exc)


def _with_store(exc: ProntoError) -> str:
    """The message of ``exc`` (worded for flags); a damaged entry (whose message cannot know
    where it lives) is reported with the store it was read from."""
    from prontodb.cli._session import OPENED
    from prontodb.errors import CorruptStoreError

    text = flag_message(exc)
    if isinstance(exc, CorruptStoreError) and OPENED and not any(p in text for p in OPENED):
        text = f"{OPENED[-1]}: {text} (check it with: prontodb doctor)"
    return text


def one_line(text: str) -> str:
    """Fold a message onto one line."""
    return " ".join(text.split()) if "\n" in text else text


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def report_unexpected(exc: BaseException) -> int:
    """Print one line (the traceback with PRONTO_DEBUG=1) and log the details to a file."""
    where = log_unexpected(exc)
    click.echo(
        f"error: unexpected {type(exc).__name__}: {one_line(str(exc))} (details logged to {where};"
        " PRONTO_DEBUG=1 shows them)",
        err=True,
    )
    return EXIT_ERROR


def log_unexpected(exc: BaseException) -> str:
    """Log the traceback of ``exc`` to the error log (and show it with PRONTO_DEBUG=1);
    return where it was logged."""
    import traceback

    from prontodb import paths

    details = "".join(traceback.format_exception(exc))
    where = os.path.join(paths.cache_home(), "errors.log")
    try:
        paths.make_private_dir(os.path.dirname(where))
        fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            import time

            fh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} pid {os.getpid()}\n{details}\n")
    except OSError:
        where = "nowhere (log file not writable)"
    if os.environ.get("PRONTO_DEBUG"):
        click.echo(details, err=True, nl=False)
    return where
