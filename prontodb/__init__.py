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

from prontodb.address import Address
from prontodb.clock import FakeClock
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

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from typing import Any

    from prontodb.aio import AsyncStore
    from prontodb.codec import JsonStore
    from prontodb.stream import StreamEncodingError, StreamStateError
    from prontodb.streamtokens import StreamSyntaxError, TokenError

__version__ = "0.1.0"

#: Names imported only when first asked for (the CLI's start-up never pays for the stream
#: parser, asyncio or json it does not use).
_LAZY = {
    "AsyncStore": "prontodb.aio",
    "JsonStore": "prontodb.codec",
    "StreamEncodingError": "prontodb.stream",
    "StreamStateError": "prontodb.stream",
    "StreamSyntaxError": "prontodb.streamtokens",
    "TokenError": "prontodb.streamtokens",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'prontodb' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


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
