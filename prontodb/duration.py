"""Durations for TTLs: whole seconds, or a number with a unit ``s m h d`` (``15m``)."""

from __future__ import annotations

import re

from prontodb.errors import InvalidDurationError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d{1,12})([smhd]?)")


def parse_duration(text: str | int) -> int:
    """Return the duration in whole seconds. Zero, negative or malformed input raises
    InvalidDurationError with the reason."""
    if isinstance(text, bool):
        raise InvalidDurationError(f"invalid duration {text!r}")
    if isinstance(text, int):
        seconds = text
    else:
        match = _DURATION.fullmatch(text.strip())
        if match is None:
            raise InvalidDurationError(
                f"invalid duration {text!r}: use whole seconds or a number with s, m, h or d (15m)"
            )
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise InvalidDurationError(f"invalid duration {text!r}: must be greater than zero")
    return seconds
