"""The runner of every command line: exit codes in one place, piped content rescued.

This module imports no click (the click classes are in :mod:`prontodb.cli._group`), so the
click-free hot path (:mod:`prontodb.cli._hot`) runs through the same :func:`run`.

Exit codes: 0 success; 1 error (usage — click's 2 is remapped —, invalid address, locked
context, storage failure); 2 miss; 3 piped content rescued into the pipe cache; 4 not applied.
Every command line is classified once by :mod:`prontodb.cli.argv`; :func:`run_call` runs it.
"""

from __future__ import annotations

import os
import sys

from prontodb import errors
from prontodb._lazy import NullContext
from prontodb.cli._echo import echo
from prontodb.errors import ProntoError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Callable
    from typing import Any

    import click

    from prontodb.cli._session import Session
    from prontodb.cli._stdin import Piped
    from prontodb.cli.argv import Call

EXIT_OK, EXIT_ERROR, EXIT_MISS, EXIT_RESCUED, EXIT_NOT_APPLIED = 0, 1, 2, 3, 4
#: A closed stdout ends the command like a tool killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


class Exit(Exception):
    """Ends a command with a given exit code after it has printed what it had to.
    ``message`` (and ``address`` for a miss) are what ``--json`` reports on stderr."""

    def __init__(self, code: int, message: str | None = None, address: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.address = address


def _flush_stdout() -> None:
    """Flush stdout now, so a closed pipe is noticed here (quietly) and not at exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
    except (OSError, ValueError):
        pass


def _help_is_address(call: Call) -> bool:
    """Whether the lone word ``help`` is an address for this call: the command takes an
    address there and the defaults (``-p``/``-n`` or the cursor's) make ``help`` complete."""
    assert call.cmd is not None
    if not any(arg.address for arg in call.cmd.args[:1]):
        return False
    try:
        target = _session(call).target()
    except Exception:  # noqa: BLE001 - no defaults then
        return False
    return target.project is not None and target.namespace is not None


def _help_shown(call: Call, piped: Piped | None) -> bool:
    """Whether ``CMD help`` shows help: not when ``help`` is an address there, and never for
    ``set`` with content piped in (the content is stored or rescued, §4)."""
    assert call.cmd is not None
    if _help_is_address(call):
        return False
    return call.cmd.stdin != "value" or piped is None or not piped.has_content()


def _session(call: Call) -> Session:
    """A Session from the classified global flags (an invalid delimiter is left out: it
    must not stop a rescue)."""
    from prontodb.address import DELIMITERS
    from prontodb.cli._session import Session

    flags = dict(call.globals)
    if flags.get("ns_delim") not in DELIMITERS:
        flags.pop("ns_delim", None)
    return Session.from_flags(flags)


def run_call(group: click.Group, call: Call, prog_name: str, **extra: Any) -> int:
    """Run one classified command line through click (help, the version and every command)
    and turn every outcome into an exit code (:func:`run`)."""
    import click

    from prontodb.cli._group import help_text

    if call.version:
        from prontodb import __version__

        if call.globals.get("as_json"):
            _emit_json({"version": __version__})
        else:
            echo(f"prontodb {__version__}")
        return EXIT_OK
    if call.help:
        echo(help_text(group, call.path, prog_name))
        return EXIT_OK

    def invoke(piped: Piped | None) -> None:
        if call.problem is not None:
            raise click.UsageError(call.problem)
        if not call.path:
            if piped is not None and piped.has_content():
                raise click.UsageError("no command given")
            echo(help_text(group, [], prog_name))
            return
        assert call.cmd is not None
        if call.cmd.group and len(call.path) == 1:
            echo(help_text(group, call.path, prog_name))
            return
        if call.help_word and _help_shown(call, piped):
            echo(help_text(group, call.path, prog_name))
            return
        # click's own main would turn Ctrl-C into Abort and print; run the context here.
        with group.make_context(prog_name, call.click_args(), **extra) as ctx:
            group.invoke(ctx)

    return run(call, invoke)


def run(call: Call, invoke: Callable[[Piped | None], None]) -> int:
    """Run one classified command line by ``invoke`` (given the piped content, if the call
    takes any) and turn every outcome into an exit code: never a traceback for an expected
    failure, and piped content rescued on any exit other than success of a command that
    takes it (docs/pipe-cache.md). The click path and the hot path (:mod:`prontodb.cli._hot`) both
    run through here."""
    from prontodb.cli._session import OPENED

    OPENED.clear()
    as_json = bool(call.globals.get("as_json"))
    piped: Piped | None = None
    if call.rescues:
        from prontodb.cli import _stdin  # only a command that takes piped content pays

        piped = _stdin.Piped(_limit(), call.attempted, os.environ)
        _stdin.CURRENT = piped
    failure: BaseException | None = None
    try:
        with _stdin.stop_on_signals() if piped is not None else NullContext():
            try:
                invoke(piped)
                return EXIT_OK
            except BaseException as exc:  # noqa: BLE001 - every failure is reported or rescued
                code = _exit_code(exc)
                if piped is None or code in (EXIT_OK, EXIT_RESCUED):
                    return _report(exc, as_json)
                failure = exc
        # A rescuing command failed: its piped content goes to the pipe cache.
        assert piped is not None and failure is not None
        try:
            held = piped.has_content()
            if call.cmd is not None and call.cmd.stdin == "file" and piped.spill is None:
                held = bool(piped.data.strip())  # whitespace is no stream worth keeping
        except BaseException:  # noqa: BLE001 - an unreadable stdin holds nothing to rescue
            held = False
        if not held or isinstance(failure, _stdin.NothingPiped):
            return _report(failure, as_json)
        from prontodb.cli.rescue import rescue

        return rescue(_session(call), piped, call.attempted, failure)
    finally:
        if piped is not None:
            _stdin.CURRENT = None  # imported when piped was made


def _click() -> Any:
    """The click module if something imported it (an exception can only be click's then)."""
    return sys.modules.get("click")


def _exit_code(exc: BaseException) -> int | None:
    """The code of an exit requested by a command (ours or click's), else None."""
    if isinstance(exc, Exit):
        return exc.code
    click = _click()
    if click is not None and isinstance(exc, click.exceptions.Exit):
        return int(exc.exit_code)
    return None


def _limit() -> int:
    from prontodb.store import DEFAULT_MAX_VALUE_BYTES

    raw = os.environ.get("PRONTO_MAX_VALUE_BYTES", "")
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_MAX_VALUE_BYTES
    return value if value > 0 else DEFAULT_MAX_VALUE_BYTES


def _emit_json(obj: object, *, err: bool = False) -> None:
    import json

    echo(json.dumps(obj, ensure_ascii=False, separators=(",", ":")), err=err)


def fail(message: str, code: int, as_json: bool, address: str | None = None) -> int:
    """Print an error (one JSON object on stderr under ``--json``) and return ``code``."""
    if as_json:
        obj: dict[str, object] = {"error": message, "exit": code}
        if address is not None:
            obj["address"] = address
        _emit_json(obj, err=True)
    else:
        echo(message if code == EXIT_MISS else f"error: {message}", err=True)
    return code


def _report(exc: BaseException, as_json: bool) -> int:
    """The exit code of an outcome, with its message on stderr."""
    if isinstance(exc, Exit):
        if exc.code != EXIT_OK and as_json:
            fail(exc.message or f"exit {exc.code}", exc.code, True, exc.address)
        return exc.code
    click = _click()
    if click is not None and isinstance(exc, click.exceptions.Exit):
        return int(exc.exit_code)
    if click is not None and isinstance(exc, click.ClickException):
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see: {exc.ctx.command_path} --help)"
        return fail(one_line(exc.format_message()) + hint, EXIT_ERROR, as_json)
    if click is not None and isinstance(exc, click.Abort):
        return fail("aborted", EXIT_ERROR, as_json)
    if isinstance(exc, errors.NotFoundError):
        return fail(str(exc), EXIT_MISS, as_json, getattr(exc, "address", None))
    if isinstance(exc, ProntoError):
        return fail(one_line(_with_store(exc)), EXIT_ERROR, as_json)
    if isinstance(exc, BrokenPipeError):
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    from prontodb.cli._stdin import Interrupted, TooLarge

    if isinstance(exc, KeyboardInterrupt | Interrupted):
        fail("interrupted", 130, as_json)
        return 130
    if isinstance(exc, TooLarge):
        return fail(f"value too large (kept in {exc.path})", EXIT_ERROR, as_json)
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    return report_unexpected(exc, as_json)


#: How the CLI spells the library's Python arguments in messages (the one place that does).
FLAG_SPELLING = {
    "ttl": "--ttl",
    "keep_ttl": "--keep-ttl",
    "project": "-p/--project",
    "namespace": "-n/--namespace",
    "replace": "--replace",
    "on_conflict": "--on-conflict",
    "format": "--format",
    "path": "--to",
    "replace_target": "--replace-target",
    "remove_old": "--remove-old",
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


def report_unexpected(exc: BaseException, as_json: bool = False) -> int:
    """Print one line (the traceback with PRONTO_DEBUG=1) and log the details to a file."""
    where = log_unexpected(exc)
    return fail(
        f"unexpected {type(exc).__name__}: {one_line(str(exc))} (details logged to {where};"
        " PRONTO_DEBUG=1 shows them)",
        EXIT_ERROR,
        as_json,
    )


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
        sys.stderr.write(details)
        sys.stderr.flush()
    return where
