"""ProntoDB: values at dot addresses over pluggable storage engines.

Everything public is importable from here: :func:`open`, :class:`Store` and its value classes,
:class:`FakeClock` and every error class. See docs/python-api.md.

>>> import prontodb
>>> with prontodb.open("memory://doctest") as store:
...     store["kb.recipes.pasta"] = "red"
...     store["kb.recipes.pasta"]
b'red'
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from prontodb.address import Address
    from prontodb.aio import AsyncStore
    from prontodb.clock import FakeClock
    from prontodb.codec import JsonStore
    from prontodb.errors import (
        BackendError,
        ConfigError,
        ConflictError,
        ContextLockedError,
        CorruptStoreError,
        CounterOverflowError,
        DataFormatError,
        DestinationExistsError,
        InsecureStoreError,
        InvalidAddressError,
        InvalidDurationError,
        InvalidNameError,
        NotACounterError,
        NotFoundError,
        ProntoError,
        ProntoWarning,
        ReadOnlyStoreError,
        StorageFullError,
        StoreBusyError,
        StoreNotFoundError,
        StoreRetiredError,
        StreamError,
        UsageError,
        ValueTooLargeError,
        WriteConflictError,
    )
    from prontodb.opener import open
    from prontodb.store import CopyResult, Entry, Store, WatchEvent
    from prontodb.stream import StreamEncodingError, StreamStateError
    from prontodb.streamtokens import StreamSyntaxError, TokenError

__version__ = "0.1.0"

#: Where each public name lives. Every name is imported when first asked for
#: (``prontodb.Store``, ``from prontodb import open``): importing the package imports nothing,
#: so that the command line (a subpackage) can set itself up before it loads what a command
#: needs, and never pays for the stream parser, asyncio or json it does not use.
_LAZY = {
    "Address": "prontodb.address",
    "AsyncStore": "prontodb.aio",
    "CopyResult": "prontodb.store",
    "Entry": "prontodb.store",
    "FakeClock": "prontodb.clock",
    "JsonStore": "prontodb.codec",
    "Store": "prontodb.store",
    "StreamEncodingError": "prontodb.stream",
    "StreamStateError": "prontodb.stream",
    "StreamSyntaxError": "prontodb.streamtokens",
    "TokenError": "prontodb.streamtokens",
    "WatchEvent": "prontodb.store",
    "open": "prontodb.opener",
    "BackendError": "prontodb.errors",
    "ConfigError": "prontodb.errors",
    "ConflictError": "prontodb.errors",
    "ContextLockedError": "prontodb.errors",
    "CorruptStoreError": "prontodb.errors",
    "CounterOverflowError": "prontodb.errors",
    "DataFormatError": "prontodb.errors",
    "DestinationExistsError": "prontodb.errors",
    "InsecureStoreError": "prontodb.errors",
    "InvalidAddressError": "prontodb.errors",
    "InvalidDurationError": "prontodb.errors",
    "InvalidNameError": "prontodb.errors",
    "NotACounterError": "prontodb.errors",
    "NotFoundError": "prontodb.errors",
    "ProntoError": "prontodb.errors",
    "ProntoWarning": "prontodb.errors",
    "ReadOnlyStoreError": "prontodb.errors",
    "StorageFullError": "prontodb.errors",
    "StoreBusyError": "prontodb.errors",
    "StoreNotFoundError": "prontodb.errors",
    "StoreRetiredError": "prontodb.errors",
    "StreamError": "prontodb.errors",
    "UsageError": "prontodb.errors",
    "ValueTooLargeError": "prontodb.errors",
    "WriteConflictError": "prontodb.errors",
}


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use and then kept here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'prontodb' has no attribute {name!r}")
    import sys

    __import__(module)
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Address",
    "AsyncStore",
    "BackendError",
    "ConfigError",
    "ConflictError",
    "ContextLockedError",
    "CopyResult",
    "CorruptStoreError",
    "CounterOverflowError",
    "DataFormatError",
    "DestinationExistsError",
    "Entry",
    "FakeClock",
    "InsecureStoreError",
    "JsonStore",
    "InvalidAddressError",
    "InvalidDurationError",
    "InvalidNameError",
    "NotACounterError",
    "NotFoundError",
    "ProntoError",
    "ProntoWarning",
    "ReadOnlyStoreError",
    "StorageFullError",
    "Store",
    "StoreBusyError",
    "StoreNotFoundError",
    "StoreRetiredError",
    "StoreRetiredError",
    "StreamEncodingError",
    "StreamError",
    "StreamStateError",
    "StreamSyntaxError",
    "TokenError",
    "UsageError",
    "ValueTooLargeError",
    "WatchEvent",
    "WriteConflictError",
    "__version__",
    "open",
]
