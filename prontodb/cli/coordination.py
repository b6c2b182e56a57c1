"""Commands for coordinating scripts: incr, decr, watch (docs/coordination.md)."""

from __future__ import annotations

import sys

from prontodb import errors
from prontodb.cli._app import EXIT_ERROR, EXIT_MISS, Exit
from prontodb.cli._commands import declared
from prontodb.cli._echo import echo
from prontodb.cli._session import session

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    import click


def _by(text: str) -> int:
    """BY: a whole number (a negative one goes after --)."""
    try:
        return int(text)
    except ValueError:
        from prontodb.errors import UsageError

        raise UsageError(f"BY must be a whole number, not {text!r}") from None


def _count(ctx: click.Context, address: str, by: int, sign: int) -> None:
    s = session(ctx)
    store = s.open(write=True)
    name = store.format(store.address(address))
    try:
        value = store.incr(address, by) if sign > 0 else store.decr(address, by)
    except errors.NotACounterError as exc:
        echo(
            f"error: {name} holds {exc.value!r}, not an integer "
            "(a counter is ASCII decimal, e.g. 42 or -7)",
            err=True,
        )
        raise Exit(EXIT_ERROR) from None
    except errors.CounterOverflowError as exc:
        echo(
            f"error: {name}: {exc.value} {'+' if exc.by >= 0 else '-'} {abs(exc.by)} "
            "is outside the 64-bit signed range",
            err=True,
        )
        raise Exit(EXIT_ERROR) from None
    if s.json:
        s.emit_json({"address": name, "value": value})
    else:
        echo(value)


@declared("incr")
def incr_cmd(ctx: click.Context, address: str, by: str) -> None:
    """Add BY (default 1) to the integer at ADDRESS atomically; print the new value.

    A missing key counts from 0; the entry keeps its TTL; 64-bit signed. A negative BY goes
    after --: prontodb incr ADDR -- -5.
    """
    _count(ctx, address, _by(by), 1)


@declared("decr")
def decr_cmd(ctx: click.Context, address: str, by: str) -> None:
    """Subtract BY (default 1) from the integer at ADDRESS atomically; print the new value."""
    _count(ctx, address, _by(by), -1)


@declared("watch")
def watch_cmd(ctx: click.Context, address: str, timeout: str | None) -> None:
    """Wait until ADDRESS changes: print the new value when it is written; say `deleted` or
    `expired` on stderr when it goes away (exit 0). A missing key waits for its creation.
    Exit 2 when --timeout passes with no change."""
    from prontodb.cli.data import entry_json
    from prontodb.duration import parse_duration

    seconds = None if timeout is None else parse_duration(timeout)
    s = session(ctx)
    store = s.open(write=False)
    name = store.format(store.address(address))
    event = store.watch(address, timeout=seconds)
    if event is None:
        echo(f"timeout: no change to {name} within {timeout}", err=True)
        raise Exit(EXIT_MISS)
    if s.json:
        if event.entry is None:
            s.emit_json({"event": event.kind, "address": name})
        else:
            s.emit_json({"event": event.kind, **entry_json(name, event.entry.value, event.entry)})
        return
    if event.entry is None:
        echo(event.kind, err=True)
        return
    data = event.entry.value
    if sys.stdout.isatty() and not data.endswith(b"\n"):
        data += b"\n"
    s.out(data)
