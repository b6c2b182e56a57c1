"""Durations for TTLs: what a caller may give, and the one check every duration passes.

Two spellings reach a Store:

* Python values (the library): seconds as ``int`` or ``float``, or a ``datetime.timedelta``.
  Precision is kept down to the envelope's millisecond.
* Duration strings (the CLI, also accepted by the library): whole seconds (``90``) or numbers
  with units ``w d h m s`` in that order, each at most once, combinable (``15m``, ``1h30m``,
  ``2w``, ``1d12h``).

Every duration must be positive, at least one millisecond, and short enough that the deadline
it gives (now + duration) falls before the year 10000 (:data:`prontodb.record.DEADLINE_LIMIT_MS`,
the one range). Anything else raises :class:`~prontodb.errors.InvalidDurationError` whose
``rule`` says which: ``"malformed"``, ``"not positive"``, ``"too small"``, ``"too large"`` or
``"whole seconds"``.
"""

from __future__ import annotations

from datetime import timedelta

from prontodb.clock import system_clock
from prontodb.errors import InvalidDurationError, literal
from prontodb.record import DEADLINE_LIMIT_MS

#: What a library caller may give as a TTL.
TTL = int | float | timedelta | str

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
#: ``1h30m``: compiled by re on first use (a bare number, the common case, needs no regex).
_COMBINED = r"(?:(\d{1,15})w)?(?:(\d{1,15})d)?(?:(\d{1,15})h)?(?:(\d{1,15})m)?(?:(\d{1,15})s)?"
_HINT = "use seconds or numbers with units w, d, h, m, s (90, 15m, 1h30m, 2w)"


def _error(argument: str, value: object, rule: str, why: str) -> InvalidDurationError:
    return InvalidDurationError(
        None,
        argument=argument,
        value=value,
        rule=rule,
        template=f"invalid duration {literal(repr(value))} for {{{argument}}}: {why}",
    )


def parse_duration(text: str | int, *, argument: str = "ttl", now: float | None = None) -> int:
    """Whole seconds of a duration string (or an int of seconds), as the CLI takes them.

    ``argument`` names the parameter in errors; ``now`` (epoch seconds, default the system
    clock) is where the "too large" check starts counting."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise _error(argument, text, "malformed", _HINT)
    if isinstance(text, int):
        seconds = text
    else:
        spelled = text.strip()
        negative = spelled.startswith("-")
        if negative:
            spelled = spelled[1:]
        if 0 < len(spelled) <= 15 and spelled.isdecimal():
            seconds = int(spelled)  # the rule \d{1,15} (isdecimal is \d), without importing re
        else:
            import re

            match = re.fullmatch(_COMBINED, spelled)
            if match is None or not spelled:
                raise _error(argument, text, "malformed", _HINT)
            seconds = sum(
                int(count) * unit
                for count, unit in zip(match.groups(), _UNITS.values(), strict=True)
                if count is not None
            )
        if negative:
            seconds = -seconds
    _check_range(argument, text, seconds * 1000, now)
    return seconds


def ttl_seconds(ttl: TTL, *, argument: str = "ttl", now: float | None = None) -> float:
    """Seconds of a library TTL (``int``/``float`` seconds, ``timedelta``, or a duration
    string), rounded to the millisecond. ``now`` (epoch seconds, default the system clock) is
    where the "too large" check starts counting."""
    if isinstance(ttl, str):
        return float(parse_duration(ttl, argument=argument, now=now))
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, int | float) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise _error(
            argument,
            ttl,
            "malformed",
            f"a TTL is seconds (int or float), a timedelta or a duration string, "
            f"not {type(ttl).__name__}",
        )
    if seconds != seconds:  # NaN
        raise _error(argument, ttl, "malformed", "not a number")
    if seconds == float("inf"):
        raise _error(
            argument, ttl, "too large", "too large (its deadline would be after the year 9999)"
        )
    millis = round(seconds * 1000)
    if seconds > 0 and millis == 0:
        raise _error(argument, ttl, "too small", "too small (under the one-millisecond resolution)")
    _check_range(argument, ttl, millis, now)
    return millis / 1000


def whole_seconds(ttl: TTL, *, argument: str = "seconds", now: float | None = None) -> int:
    """:func:`ttl_seconds` for a setting kept in whole seconds (a TTL namespace default): a
    fraction of a second raises InvalidDurationError with rule ``"whole seconds"``."""
    seconds = ttl_seconds(ttl, argument=argument, now=now)
    if seconds != int(seconds):
        raise _error(argument, ttl, "whole seconds", "this setting is kept in whole seconds")
    return int(seconds)


def _check_range(argument: str, value: object, millis: int, now: float | None) -> None:
    if millis <= 0:
        raise _error(argument, value, "not positive", "must be greater than zero")
    start = system_clock() if now is None else now
    if round(start * 1000) + millis >= DEADLINE_LIMIT_MS:
        raise _error(
            argument, value, "too large", "too large (its deadline would be after the year 9999)"
        )
