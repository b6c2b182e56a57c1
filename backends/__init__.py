"""The registry of storage engines, loaded lazily by name.

Importing this package imports no engine: ``prontodb --help`` and a sqlite command never pay for
lmdb or diskcache. Each entry is a ``"module:Class"`` string, imported on first use. Third-party
engines can be added with :func:`register_backend`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from prontodb.errors import ConfigError

if TYPE_CHECKING:
    from prontodb.backends.base import Backend

_REGISTRY: dict[str, str] = {
    "sqlite": "prontodb.backends.sqlite:SqliteBackend",
    "lmdb": "prontodb.backends.lmdb:LmdbBackend",
    "diskcache": "prontodb.backends.diskcache:DiskcacheBackend",
    "memory": "prontodb.backends.memory:MemoryBackend",
}

#: Read-only view of the registry: engine name -> "module:Class".
REGISTRY: Mapping[str, str] = MappingProxyType(_REGISTRY)

#: Engines a user may choose for a store on disk (memory is for tests).
FILE_BACKENDS = ("sqlite", "lmdb", "diskcache")

_EXTENSIONS = {
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
    ".db": "sqlite",
    ".lmdb": "lmdb",
    ".mdb": "lmdb",
    ".diskcache": "diskcache",
}

SQLITE_MAGIC = b"SQLite format 3\x00"
LMDB_MAGIC = (0xBEEFC0DE).to_bytes(4, "little")


def register_backend(name: str, target: str) -> None:
    """Register an engine under ``name`` as ``"module.path:Class"`` (imported lazily)."""
    if ":" not in target:
        raise ValueError(f"backend target must look like 'module:Class', got {target!r}")
    _REGISTRY[name] = target


def backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered under ``name``."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown backend {name!r} (known: {known})") from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Backend] = getattr(module, class_name)
    return cls


def _read_head(path: str, size: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def sniff(path: str) -> str | None:
    """Name the engine of the existing store at ``path`` from its bytes, or None.

    SQLite files start with ``SQLite format 3``; an LMDB file has the LMDB meta-page magic at
    offset 16; a diskcache store is a directory holding a SQLite ``cache.db``.
    """
    if os.path.isdir(path):
        if _read_head(os.path.join(path, "cache.db"), 16) == SQLITE_MAGIC:
            return "diskcache"
        return None
    head = _read_head(path, 32)
    if head[:16] == SQLITE_MAGIC:
        return "sqlite"
    if head[16:20] == LMDB_MAGIC:
        return "lmdb"
    return None


def from_extension(path: str) -> str | None:
    """Name the engine that a path's extension suggests, or None."""
    return _EXTENSIONS.get(os.path.splitext(path.rstrip(os.sep))[1].lower())


def resolve_backend(path: str, requested: str | None = None) -> str:
    """Choose the engine for ``path``: the existing store's own format, else ``requested``,
    else the extension, else sqlite. A request that contradicts an existing store is an error.
    """
    found = sniff(path) if os.path.exists(path) else None
    if requested is not None:
        if requested not in _REGISTRY:
            backend_class(requested)  # raises ConfigError naming the known engines
        if found is not None and found != requested:
            raise ConfigError(f"{path} is a {found} store, not {requested}")
        return requested
    if found is not None:
        return found
    occupied = os.path.exists(path) and (
        bool(os.listdir(path)) if os.path.isdir(path) else os.path.getsize(path) > 0
    )
    if occupied:
        from prontodb.errors import CorruptStoreError

        raise CorruptStoreError(f"{path} is not a ProntoDB store (unrecognized format)")
    return from_extension(path) or "sqlite"
