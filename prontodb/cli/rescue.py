"""Rescuing piped content: the CLI side of the pipe cache (DESIGN §6).

When ``set`` (or ``stream``) has read content from stdin and cannot store it, the content goes
to the pipe cache of the store the command addressed, else the user's default store, else a
rescue file (:mod:`prontodb.pipecache`). This module chooses those places from the session,
names the real reason, prints the cache address on stdout and the way home on stderr, and ends
the command with exit code 3.

It also rescues content piped to a command that failed before its body could read stdin (an
unknown option, a bad global flag): :func:`rescue_unread`, called from :func:`_app.run`.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn

import click

from prontodb import pipecache
from prontodb.cli._app import (
    EXIT_ERROR,
    EXIT_RESCUED,
    VALUE_FLAGS,
    Exit,
    _silence_stdout,
    flag_message,
    log_unexpected,
    one_line,
)
from prontodb.cli._session import Session
from prontodb.errors import (
    BackendError,
    ContextLockedError,
    InvalidAddressError,
    InvalidNameError,
    ProntoError,
    UsageError,
    ValueTooLargeError,
)
from prontodb.names import DEFAULT_USER

PROG = "prontodb"
#: Commands whose body reads stdin, and so whose early failures must rescue it.
PIPED_COMMANDS = ("set", "stream")


def rescue_piped(
    session: Session, content: bytes, address: str | None, exc: BaseException
) -> NoReturn:
    """Keep ``content``, which could not be stored at ``address`` because of ``exc``, in the
    pipe cache (or a rescue file); print where and how to bring it home; exit 3.

    Exits 1 only when not even a file could be written (the message says why)."""
    try:
        reason = describe(exc, address)
    except Exception:  # noqa: BLE001 - nothing may stand between the content and a rescue
        reason = f"{type(exc).__name__}: {one_line(str(exc))}"
    with _uninterrupted():
        try:
            session.close()
        except Exception:  # noqa: BLE001 - a broken store must not stop the rescue
            pass
        try:
            where = places(session, exc)
        except Exception:  # noqa: BLE001 - then a rescue file it is
            where = []
        try:
            result = pipecache.rescue(
                content,
                address,
                where,
                env=session.env,
                max_value_bytes=_limit(session),
                delim=session.delim,
            )
        except Exception as err:  # noqa: BLE001 - say so rather than lose the message
            session.status(
                f"❌ {reason} - and the content could not be rescued: {one_line(str(err))}"
            )
            raise Exit(EXIT_ERROR) from None
    report(session, result, reason, content)
    raise Exit(EXIT_RESCUED)


def report(session: Session, result: pipecache.Rescued, reason: str, content: bytes) -> None:
    """The cache address (or file path) on stdout; the reason and the way home on stderr."""
    try:
        session.line(result.location)
    except BrokenPipeError:
        _silence_stdout()
    stream_like = pipecache.looks_like_stream(content)
    if result.address is not None:
        key = result.address
        session.status(f"⚠️  {reason} - content cached as: {key}")
        home = ("copy", key, "<proper.address>", *_home_cursor(session, result))
        session.status(f"💡 Use: {command(result.flags, *home)}")
        if stream_like:
            session.status(
                f"💡 Looks like a token stream: {command(result.flags, 'get', key)} | {PROG} stream"
            )
        return
    path = shlex.quote(str(result.file))
    session.status(f"⚠️  {reason} - content saved to file: {result.file}")
    session.status(f"💡 Use: {PROG} set <proper.address> < {path}")
    if stream_like:
        session.status(f"💡 Looks like a token stream: {PROG} stream < {path}")


def _home_cursor(session: Session, result: pipecache.Rescued) -> tuple[str, ...]:
    """``--to-cursor C`` when the command addressed cursor C but the content had to go to
    another store, so that the suggested copy lands where the user meant it to."""
    try:
        target = session.target()
    except Exception:  # noqa: BLE001 - no resolvable cursor, nothing to add
        return ()
    if target.cursor is None or target.cursor == "default":
        return ()
    flags = list(result.flags)
    reached = any(
        a == "--cursor" and b == target.cursor for a, b in zip(flags, flags[1:], strict=False)
    )
    return () if reached else ("--to-cursor", target.cursor)


def command(flags: Sequence[str], *words: str) -> str:
    """A ``prontodb`` command line with the global flags before the command."""
    quoted = [shlex.quote(f) for f in flags]
    return " ".join([PROG, *quoted, *words])


# -- why -----------------------------------------------------------------------------------------


def describe(exc: BaseException, address: str | None) -> str:
    """The real reason content could not be stored, as the start of a sentence. Unexpected
    exceptions are logged (with the traceback under PRONTO_DEBUG=1)."""
    message = one_line(flag_message(exc))
    if (
        isinstance(exc, InvalidAddressError)
        and message.startswith("invalid address")
        and address is not None
    ):
        return f"Invalid address '{address}'"
    if isinstance(exc, UsageError) and address is None and "ADDRESS" in message:
        return "No address given"
    if isinstance(exc, ValueTooLargeError):
        return (
            f"Value too large: {exc.size} bytes, over the limit of {exc.limit} bytes "
            "(PRONTO_MAX_VALUE_BYTES)"
        )
    if isinstance(exc, ContextLockedError):
        return f"Locked context: {message}"
    if isinstance(exc, BackendError):
        return f"Storage failure: {message}"
    if isinstance(exc, ProntoError):
        return _sentence(message)
    if isinstance(exc, click.ClickException):
        return f"Usage error: {one_line(exc.format_message()).rstrip('.')}"
    if isinstance(exc, KeyboardInterrupt):
        return "Interrupted"
    if isinstance(exc, Exception):
        where = log_unexpected(exc)
        return f"Unexpected {type(exc).__name__}: {message} (details logged to {where})"
    return f"Stopped by {type(exc).__name__}"


def _sentence(message: str) -> str:
    if message.endswith(")") and " (see: " in message:
        message = message[: message.rindex(" (see: ")]
    message = message.rstrip(".")
    return message[:1].upper() + message[1:]


# -- where ---------------------------------------------------------------------------------------


def places(session: Session, exc: BaseException) -> list[pipecache.Place]:
    """Where a rescue may go, in order: the store the command addressed (unless it is the store
    that just failed), then the default store of the effective — or locked — user."""
    delim_flags: tuple[str, ...] = () if session.delim == "." else ("--ns-delim", session.delim)
    found: list[pipecache.Place] = []
    failed: set[str] = set()
    try:
        target = session.target()
    except Exception:  # noqa: BLE001 - an unresolvable target is just not a place
        target = None
    if target is not None:
        if isinstance(exc, BackendError):
            failed.add(_real(target.path))
        else:
            found.append(
                pipecache.Place(
                    target.path,
                    target.user,
                    target.meta,
                    target.backend,
                    target.durability,
                    target.flags + delim_flags,
                )
            )
    home = default_place(session)
    if home is not None and _real(home.path) not in failed:
        same = [p for p in found if _real(p.path) == _real(home.path)]
        if not any(p.user == home.user and p.meta == home.meta for p in same):
            found.append(
                pipecache.Place(home.path, home.user, home.meta, flags=home.flags + delim_flags)
            )
    return found


def default_place(session: Session) -> pipecache.Place | None:
    """The default store of the effective (or locked) user, in the effective (or locked) meta
    layer, with the flags that reach it from this environment. None when a locked user or meta
    is itself invalid (no command could reach a store then)."""
    from prontodb import cursor, paths

    env = session.env
    forced_user = env.get("PRONTO_FORCE_USER") or None
    forced_meta = env.get("PRONTO_FORCE_META") or None
    if (forced_user and not _valid(forced_user)) or (forced_meta and not _valid(forced_meta)):
        return None
    if forced_user:
        user = forced_user
    else:
        asked = [u for u in (session.user_flag, env.get("PRONTO_USER")) if u is not None]
        user = asked[0] if asked and _valid(asked[0]) else DEFAULT_USER
    meta = forced_meta or (session.meta_flag if _valid(session.meta_flag) else None)
    path = paths.default_store_path(user, env)
    user_flag = None if forced_user else user
    flags: list[str] = []
    if user_flag is not None and (user != DEFAULT_USER or env.get("PRONTO_USER")):
        flags += ["--user", user]
    meta_flag = None if forced_meta else meta
    try:
        plain = cursor.resolve(user=user_flag, meta=meta_flag, env=env)
        reached = (_real(plain.path), plain.user, plain.meta) == (_real(path), user, meta)
    except Exception:  # noqa: BLE001 - then the path must be spelled out
        reached = False
    if not reached:
        flags += ["--database", path]
    if meta_flag is not None:
        flags += ["--meta", meta_flag]
    return pipecache.Place(path, user, meta, flags=tuple(flags))


def _valid(name: str | None) -> bool:
    from prontodb.names import check_name

    if name is None:
        return False
    try:
        check_name("user", name)
    except InvalidNameError:
        return False
    return True


def _real(path: str) -> str:
    if path.startswith("memory://"):
        return path
    return os.path.realpath(os.path.expanduser(path))


def _limit(session: Session) -> int:
    from prontodb.store import DEFAULT_MAX_VALUE_BYTES

    try:
        return session.max_value_bytes()
    except ProntoError:
        return DEFAULT_MAX_VALUE_BYTES


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ctrl-C while content is being rescued must not lose it: ignore SIGINT meanwhile."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# -- content piped to a command that failed before reading it ------------------------------------


@dataclass(frozen=True)
class PipedCall:
    """A command line that would have read stdin: which command, and the address typed."""

    command: str
    address: str | None


def piped_call(group: click.Group, args: Sequence[str]) -> PipedCall | None:
    """Whether ``args`` (global flags hoisted to the front) run a command that reads stdin —
    ``set`` without an explicit VALUE (or with ``-``/``--stdin``), ``stream`` without FILE and
    without ``--dry-run`` — judged leniently, as click would have parsed it."""
    rest = list(args)
    name = None
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            return None
        if arg in VALUE_FLAGS:
            rest = rest[1:]
        elif not arg.startswith("-"):
            name = arg
            break
    aliases = getattr(group, "aliases", {})
    name = aliases.get(name, name)
    if name not in PIPED_COMMANDS or name not in group.commands:
        return None
    positionals: list[str] = []
    options: set[str] = set()
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            positionals += rest
            break
        if arg.startswith("-") and arg != "-":
            option = arg.split("=", 1)[0]
            options.add(option)
            if option == "--ttl" and "=" not in arg:
                rest = rest[1:]
            continue
        positionals.append(arg)
    if positionals == ["help"]:
        return None
    if name == "stream":
        if "--dry-run" in options or positionals[:1] not in ([], ["-"]):
            return None
        return PipedCall(name, None)
    explicit_value = len(positionals) >= 2 and positionals[1] != "-"
    if explicit_value and "--stdin" not in options:
        return None
    return PipedCall(name, positionals[0] if positionals else None)


def rescue_unread(group: click.Group, args: Sequence[str], exc: BaseException) -> None:
    """When ``args`` ran a command that would have read piped stdin and it failed (``exc``)
    before its body did, read stdin now and rescue it (raising Exit). Returns when there is
    nothing to rescue: not such a command, stdin a terminal, or stdin empty or already read."""
    call = piped_call(group, args)
    if call is None:
        return
    try:
        if sys.stdin is None:
            return
        stdin = sys.stdin.buffer
        if stdin.isatty():
            return
        content = stdin.read()
    except (OSError, ValueError, RuntimeError):  # closed or unusable stdin: nothing to rescue
        return
    if not content or (call.command == "stream" and not content.strip()):
        return
    rescue_piped(lenient_session(args), content, call.address, exc)


def lenient_session(args: Sequence[str]) -> Session:
    """A Session from the global flags at the front of ``args``, keeping what is valid."""
    from prontodb.address import DELIMITERS

    found: dict[str, str] = {}
    short = {"-p": "--project", "-n": "--namespace"}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            break
        if arg.startswith("--") and "=" in arg:
            flag, value = arg.split("=", 1)
        elif arg in VALUE_FLAGS and rest:
            flag, value = arg, rest.pop(0)
        elif arg[:2] in short and len(arg) > 2:
            flag, value = arg[:2], arg[2:]
        else:
            continue
        found.setdefault(short.get(flag, flag).lstrip("-").replace("-", "_"), value)
    if found.get("ns_delim") not in DELIMITERS:
        found.pop("ns_delim", None)
    return Session.from_flags(found)
