"""Rescuing piped content: the CLI side of the pipe cache (docs/pipe-cache.md).

When ``set`` (or ``stream``) has read content from stdin and cannot store it, the content goes
to the pipe cache of the store the command addressed, else the user's default store, else a
rescue file (:mod:`prontodb.pipecache`). This module chooses those places from the session,
names the real reason, prints the cache address on stdout and the way home on stderr, and ends
the command with exit code 3.

The runner (:func:`prontodb.cli._app.run_call`) calls :func:`rescue` on every exit other than
success of a command that takes piped content, or of a line that names no command.
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import click

from prontodb import pipecache
from prontodb.cli._app import (
    EXIT_ERROR,
    EXIT_RESCUED,
    _silence_stdout,
    fail,
    flag_message,
    log_unexpected,
    one_line,
)
from prontodb.cli._session import Session
from prontodb.cli._stdin import Interrupted, Piped, TooLarge, ignoring_signals
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


def rescue(session: Session, piped: Piped, address: str | None, exc: BaseException) -> int:
    """Keep the piped content, which could not be stored at ``address`` because of ``exc``,
    in the pipe cache (or a rescue file); print where, how to bring it home and how long it is
    kept; return exit code 3. Signals are ignored meanwhile: a rescue in progress finishes.

    Returns 1 only when not even a file could be written (the message says why)."""
    try:
        reason = describe(exc, address)
    except Exception:  # noqa: BLE001 - nothing may stand between the content and a rescue
        reason = f"{type(exc).__name__}: {one_line(str(exc))}"
    with ignoring_signals():
        if piped.partial is not None:
            reason = (
                f"Interrupted by {piped.partial.name} while reading stdin; "
                f"partial content ({_size(piped)} read)"
            )
        try:
            session.close()
        except Exception:  # noqa: BLE001 - a broken store must not stop the rescue
            pass
        try:
            if piped.spill is not None:
                result = pipecache.Rescued(None, (), piped.spill.path, False)
            else:
                try:
                    where = places(session, exc)
                except Exception:  # noqa: BLE001 - then a rescue file it is
                    where = []
                result = pipecache.rescue(
                    piped.data,
                    address,
                    where,
                    env=session.env,
                    max_value_bytes=_limit(session),
                    delim=session.delim,
                )
        except Exception as err:  # noqa: BLE001 - say so rather than lose the message
            message = f"{reason} - and the content could not be rescued: {one_line(str(err))}"
            if session.json:
                fail(message, EXIT_ERROR, True)
            else:
                session.status(f"❌ {message}")
            return EXIT_ERROR
        report(session, result, reason, piped, address)
    return EXIT_RESCUED


def _size(piped: Piped) -> str:
    size = piped.spill.size if piped.spill is not None else len(piped.data)
    return f"{size} byte{'s' * (size != 1)}"


def report(
    session: Session, result: pipecache.Rescued, reason: str, piped: Piped, address: str | None
) -> None:
    """The cache address (or file path) on stdout; the reason, the way home and how long the
    rescue is kept on stderr. Under ``--json`` one rescue object on stdout and one error
    object on stderr."""
    size = piped.spill.size if piped.spill is not None else len(piped.data)
    head = piped.data[: 1 << 20]
    stream_like = pipecache.looks_like_stream(head)
    lines: list[str] = []
    if result.address is not None:
        key = result.address
        result = _explicit_user(session, result)
        lines.append(f"⚠️  {reason} - content cached as: {key}")
        home = ("copy", key, "<proper.address>", *_home_cursor(session, result))
        hint = _env_fix(session) + command(result.flags, *home)
        if stream_like:
            lines.append(
                f"💡 Looks like a token stream: {command(result.flags, 'get', key)} | {PROG} stream"
            )
        lines.insert(1, f"💡 Use: {hint}")
        lines.append(kept_line(result, _env_fix(session) + command(result.flags, "ttl", key)))
    else:
        path = shlex.quote(str(result.file))
        lines.append(f"⚠️  {reason} - content saved to file: {result.file}")
        over = size > piped.limit or "too large" in reason.lower()
        target = address if over and address else "<proper.address>"
        flags = _typed_flags(session) if target != "<proper.address>" else ()
        raise_limit = f"PRONTO_MAX_VALUE_BYTES={max(size, 1)} " if over else ""
        hint = f"{raise_limit}{command(flags, 'set', shlex.quote(target))} < {path}"
        if target == "<proper.address>":
            hint = hint.replace(shlex.quote(target), target)
        lines.append(f"💡 Use: {hint}")
        if stream_like:
            lines.append(f"💡 Looks like a token stream: {PROG} stream < {path}")
        lines.append("⏳ Kept as a file until you delete it (it does not expire)")
    if session.json:
        _emit(
            {
                "rescued": True,
                "key": result.address,
                "file": result.file,
                "reason": reason,
                "partial": piped.partial is not None,
                "expires_at": result.expires_at,
                "hint": hint,
            }
        )
        fail(reason, EXIT_RESCUED, True)
        return
    try:
        session.line(result.location)
    except BrokenPipeError:
        _silence_stdout()
    for line in lines:
        session.status(line)


def _emit(obj: object) -> None:
    import json

    try:
        click.echo(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    except BrokenPipeError:
        _silence_stdout()


def kept_line(result: pipecache.Rescued, ttl_command: str, now: float | None = None) -> str:
    """``⏳ Kept for 15m, until 14:32 (local time); prontodb ttl KEY`` (a rescue never
    expires unannounced)."""
    import time

    if result.expires_at is None:
        return f"⏳ Kept with no expiry; {ttl_command}"
    now = time.time() if now is None else now
    left = max(0, round(result.expires_at - now))
    stamp = time.localtime(result.expires_at)
    same_day = time.localtime(now)[:3] == stamp[:3]
    until = time.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M", stamp)
    return f"⏳ Kept for {span(left)}, until {until} (local time); {ttl_command}"


def span(seconds: int) -> str:
    """``15m``, ``1h30m``, ``2d``, ``45s``: a duration as the duration parser reads it."""
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            count, seconds = divmod(seconds, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _explicit_user(session: Session, result: pipecache.Rescued) -> pipecache.Rescued:
    """The rescue with ``--user U`` in its flags when the user came from PRONTO_FORCE_USER or
    PRONTO_USER, so that the hint names the layer instead of relying on the environment."""
    import dataclasses

    flags = _with_user(session, result.flags)
    return result if flags == result.flags else dataclasses.replace(result, flags=flags)


def _env_fix(session: Session) -> str:
    """``PRONTO_MAX_VALUE_BYTES= `` when the environment's limit is itself invalid (it would
    stop the hint too); an empty value means the default limit."""
    try:
        session.max_value_bytes()
    except ProntoError:
        return "PRONTO_MAX_VALUE_BYTES= "
    return ""


def _typed_flags(session: Session) -> tuple[str, ...]:
    """The global flags that reach the store the command addressed, with the typed
    project/namespace defaults (for a hint that re-runs ``set`` there)."""
    try:
        flags = list(session.target().flags)
    except Exception:  # noqa: BLE001 - an unusable target: no flags
        flags = []
    flags = list(_with_user(session, tuple(flags)))
    if session.delim != ".":
        flags += ["--ns-delim", session.delim]
    if session.project is not None:
        flags += ["-p", session.project]
    if session.namespace is not None:
        flags += ["-n", session.namespace]
    return tuple(flags)


def _with_user(session: Session, flags: tuple[str, ...]) -> tuple[str, ...]:
    """``flags`` with ``--user U`` first when the user comes from the environment
    (PRONTO_USER, PRONTO_FORCE_USER), so the hint does not depend on it."""
    if "--user" in flags:
        return flags
    env = session.env
    user = env.get("PRONTO_FORCE_USER") or session.user_flag or env.get("PRONTO_USER")
    if not user or not _valid(user):
        return flags
    return ("--user", user, *flags)


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
    if isinstance(exc, TooLarge):
        return (
            f"Value too large: {exc.size} bytes, over the limit of {exc.limit} bytes "
            "(PRONTO_MAX_VALUE_BYTES)"
        )
    if isinstance(exc, Interrupted):
        return f"Interrupted by {exc.name}"
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
    from prontodb import cursor, cursorfile, paths

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
    try:
        # Where `cursor migrate default` moved the default store, if it did.
        path = cursorfile.default_store(user, env)[0]
    except Exception:  # noqa: BLE001 - a damaged cursor file must not stop a rescue
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
