"""The error classes a command rarely needs, created on first use (docs/performance.md).

They belong to :mod:`prontodb.errors` (``__module__``, pickling, ``repr`` and every import say
``prontodb.errors``): that module hands them out through its module ``__getattr__`` and imports
this one the first time any of them is asked for. Creating an exception class costs about 0.13M
instructions at import, and a one-shot ``get``/``set`` that succeeds needs none of these.
Import them from :mod:`prontodb.errors`, never from here.
"""

from __future__ import annotations

from prontodb.errors import (
    ConflictError,
    ProntoError,
    StoreNotFoundError,
    literal,
)


class ProntoWarning(UserWarning):
    """A warning issued by ProntoDB itself (tests turn these into errors)."""


class NotFoundError(ProntoError, KeyError):
    """The named entry does not exist or has expired."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.address = address

    def __str__(self) -> str:
        return f"not found: {self.address}"


class InvalidDurationError(ProntoError, ValueError):
    """A duration (a TTL) is malformed, not positive, or too large: ``rule`` is one of
    ``"malformed"``, ``"not positive"``, ``"too large"`` (its deadline would fall in or after
    the year 10000) or ``"whole seconds"`` (where only whole seconds are kept); ``argument``
    names the parameter and ``value`` holds what was given."""


class ValueTooLargeError(ProntoError, ValueError):
    """A value is over the configured maximum size."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"value is {size} bytes, over the limit of {limit} bytes",
            argument="value",
            value=size,
            rule="too large",
        )
        self.size = size
        self.limit = limit


class StreamError(ProntoError, ValueError):
    """A token stream breaks the grammar or the state rules; nothing was written."""


class DestinationExistsError(ConflictError):
    """A copy or move found a live entry at its destination and was not told to replace it;
    nothing changed. ``address`` is the destination as written."""

    def __init__(self, address: str) -> None:
        super().__init__(
            None,
            argument="replace",
            value=address,
            rule="destination exists",
            template=f"{literal(repr(address))} exists; pass {{replace=True}} to overwrite it",
        )
        self.address = address


class NotACounterError(ProntoError, ValueError):
    """``incr``/``decr`` found a value that is not an integer counter (ASCII decimal, optionally
    signed, surrounding ASCII whitespace allowed); nothing changed. ``address`` is the entry as
    written, ``value`` its stored bytes (the first 64)."""

    def __init__(self, address: str, value: bytes) -> None:
        super().__init__(f"{address!r} does not hold an integer: {value[:64]!r}")
        self.address = address
        self.value = value[:64]


class CounterOverflowError(ProntoError, ValueError):
    """``incr``/``decr`` would take a counter outside the 64-bit signed range (or was given a
    step outside it); nothing changed. ``address``, ``value`` (the current count) and ``by``
    (the requested change) say which."""

    def __init__(self, address: str, value: int, by: int) -> None:
        super().__init__(
            f"{address!r}: {value} {'+' if by >= 0 else '-'} {abs(by)} is outside the 64-bit "
            "signed range"
        )
        self.address = address
        self.value = value
        self.by = by


class DataFormatError(ProntoError, ValueError):
    """An export file or backup archive is malformed, damaged or unsafe (or data cannot be
    written in the requested format); nothing was written."""


class StoreRetiredError(StoreNotFoundError):
    """The store was taken out of use by ``cursor migrate`` (its data now lives at
    ``successor``); nothing was read or written. Raised by engines whose stores outlive a
    migrate (a store on a server), where a file store would be gone from its path instead."""

    def __init__(self, message: str, *, successor: str | None = None) -> None:
        super().__init__(message)
        self.successor = successor


#: Every class here, by name (what :mod:`prontodb.errors` hands out).
CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        ProntoWarning,
        NotFoundError,
        InvalidDurationError,
        ValueTooLargeError,
        StreamError,
        DestinationExistsError,
        NotACounterError,
        CounterOverflowError,
        DataFormatError,
        StoreRetiredError,
    )
}
for _cls in CLASSES.values():
    _cls.__module__ = "prontodb.errors"
del _cls
