"""ProntoDB: values at dot addresses over pluggable file backends.

>>> import prontodb
>>> with prontodb.open("/tmp/example.sqlite") as store:   # doctest: +SKIP
...     store.set("kb.recipes.pasta", b"red")
...     store.get("kb.recipes.pasta")
b'red'
"""

from __future__ import annotations

from prontodb.address import Address
from prontodb.clock import FakeClock
from prontodb.errors import (
    BackendError,
    ConfigError,
    ContextLockedError,
    InvalidAddressError,
    InvalidDurationError,
    InvalidNameError,
    NotFoundError,
    ProntoError,
    StorageFullError,
    StoreBusyError,
    StoreNotFoundError,
    StreamError,
    UsageError,
    ValueTooLargeError,
)
from prontodb.opener import open
from prontodb.store import Entry, Store

__version__ = "0.1.0"

__all__ = [
    "Address",
    "BackendError",
    "ConfigError",
    "ContextLockedError",
    "Entry",
    "FakeClock",
    "InvalidAddressError",
    "InvalidDurationError",
    "InvalidNameError",
    "NotFoundError",
    "ProntoError",
    "StorageFullError",
    "Store",
    "StoreBusyError",
    "StoreNotFoundError",
    "StreamError",
    "UsageError",
    "ValueTooLargeError",
    "__version__",
    "open",
]
