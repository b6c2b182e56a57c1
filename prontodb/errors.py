"""The one error hierarchy of ProntoDB.

Every failure the library reports is a :class:`ProntoError`. The CLI alone maps these classes to
exit codes; the library never exits. Backends translate their engine's native errors into
:class:`BackendError` subclasses and keep the original as ``__cause__``.
"""

from __future__ import annotations


class ProntoWarning(UserWarning):
    """A warning issued by ProntoDB itself (tests turn these into errors)."""


class ProntoError(Exception):
    """Base class of every error ProntoDB raises on purpose."""


class NotFoundError(ProntoError, KeyError):
    """The named entry does not exist or has expired."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.address = address

    def __str__(self) -> str:
        return f"not found: {self.address}"


class InvalidAddressError(ProntoError, ValueError):
    """An address (or scope) cannot be parsed; the message names the offending part."""


class InvalidNameError(ProntoError, ValueError):
    """A user, meta or cursor name breaks the naming rule."""


class InvalidDurationError(ProntoError, ValueError):
    """A duration is zero, negative or malformed."""


class UsageError(ProntoError, ValueError):
    """A request that is malformed as a whole (conflicting options, empty input, ...)."""


class ValueTooLargeError(ProntoError, ValueError):
    """A value is over the configured maximum size."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"value is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class ContextLockedError(ProntoError):
    """A user or meta differs from the one locked by PRONTO_FORCE_USER / PRONTO_FORCE_META."""


class ConfigError(ProntoError):
    """A cursor or configuration problem: unknown cursor, unreadable config, bad setting."""


class StreamError(ProntoError, ValueError):
    """A token stream breaks the grammar or the state rules; nothing was written."""


class ConflictError(ProntoError):
    """Existing data stood in the way and nothing was changed: an import or restore met data
    it was told not to overwrite, a copy/move met a live destination, or an optimistic
    engine's commit found that data the transaction read had changed meanwhile."""


class DestinationExistsError(ConflictError):
    """A copy or move found a live entry at its destination and was not told to replace it;
    nothing changed. ``address`` is the destination as written."""

    def __init__(self, address: str) -> None:
        super().__init__(f"{address!r} exists; pass replace=True to overwrite it")
        self.address = address


class WriteConflictError(ConflictError):
    """An optimistic engine could not commit a write transaction because data it read was
    changed by another writer; nothing of the transaction was written. ``run_transaction``
    re-runs the unit of work on this error before giving up."""


class DataFormatError(ProntoError, ValueError):
    """An export file or backup archive is malformed, damaged or unsafe (or data cannot be
    written in the requested format); nothing was written."""


class BackendError(ProntoError):
    """The storage engine failed. The engine's own exception is kept as ``__cause__``."""


class StoreBusyError(BackendError):
    """The store stayed locked by other processes for longer than the busy timeout."""


class StorageFullError(BackendError):
    """The disk (or the engine's map) is full and could not be grown."""


class StoreNotFoundError(BackendError):
    """There is no store at the given path (reading commands never create one)."""


class CorruptStoreError(BackendError):
    """The store file is damaged or is not a ProntoDB store of the expected kind."""


class InsecureStoreError(BackendError):
    """The store can be written by other accounts (group/other write bits or foreign owner)."""


class ReadOnlyStoreError(BackendError):
    """The store cannot be written (read-only file or file system)."""
