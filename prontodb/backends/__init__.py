"""The registry of storage engines, loaded lazily by name.

Importing this package imports no engine: ``prontodb --help`` and a sqlite command never pay for
lmdb or diskcache. Each entry is a ``"module:Class"`` string, imported on first use. Third-party
engines can be added with :func:`register_backend`.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import IO, TYPE_CHECKING

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


# POSIX drops every fcntl lock a process holds on a file as soon as the process closes ANY
# descriptor of that file. SQLite's WAL locks are fcntl locks, so reading the header of a SQLite
# file that this process has a connection on (a second open of the same store) would silently
# unlock that connection: another process then checkpoints and deletes the WAL under it, and
# the store is corrupted. SQLite-based engines therefore record the files they hold connections
# on, and sniffing never opens (and so never closes) one of those.
_sqlite_files: dict[tuple[int, int], int] = {}
_sqlite_files_lock = threading.Lock()
_kept_open: list[IO[bytes]] = []


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, or None when there is none."""
    return _file_id(path)


def sqlite_file_opened(path: str) -> tuple[int, int] | None:
    """Record that this process is about to hold a SQLite connection on the file at ``path``;
    call before connecting, and give the result to :func:`sqlite_file_closed` after closing."""
    with _sqlite_files_lock:
        file_id = _file_id(path)
        if file_id is not None:
            _sqlite_files[file_id] = _sqlite_files.get(file_id, 0) + 1
        return file_id


def sqlite_file_closed(file_id: tuple[int, int] | None) -> None:
    """Forget one connection recorded by :func:`sqlite_file_opened`."""
    if file_id is None:
        return
    with _sqlite_files_lock:
        left = _sqlite_files.get(file_id, 0) - 1
        if left > 0:
            _sqlite_files[file_id] = left
        else:
            _sqlite_files.pop(file_id, None)


#: Per opened file, the (inode, mtime) of its directory when the file was last verified and the
#: directory had been quiet for a while: while the directory is unchanged, so is the file.
_settled_dirs: dict[tuple[str, tuple[int, int]], tuple[int, int]] = {}
_SETTLE_NS = 50_000_000
_folder = functools.lru_cache(maxsize=256)(os.path.dirname)


def check_unmoved(path: str, file_id: tuple[int, int] | None) -> None:
    """Raise StoreNotFoundError when ``path`` no longer names the file that was opened as
    ``file_id`` (deleted or replaced while open). Writes check this once the write lock is
    held: a write into a deleted file would be acknowledged and then vanish with it.

    Deleting or replacing the file changes its directory's mtime, so the file itself is only
    stat'ed again when the directory changed (a stat of a store file that is being synced can
    cost tens of microseconds). A directory mtime is trusted only once it is older than 50 ms,
    so that coarse file-system timestamps cannot hide a change made in the same tick."""
    if file_id is None:
        return
    key = (path, file_id)
    try:
        st = os.stat(_folder(path))
        stamp: tuple[int, int] | None = (st.st_ino, st.st_mtime_ns)
    except OSError:
        stamp = None
    if stamp is not None and _settled_dirs.get(key) == stamp:
        return
    if _file_id(path) != file_id:
        _settled_dirs.pop(key, None)
        from prontodb.errors import StoreNotFoundError

        raise StoreNotFoundError(
            f"{path}: the store was deleted or replaced while it was open; nothing was "
            "written (open it again)"
        )
    if stamp is not None and time.time_ns() - stamp[1] > _SETTLE_NS:
        _settled_dirs[key] = stamp


def read_head(path: str, size: int) -> bytes:
    """The first ``size`` bytes of the file at ``path`` (empty when unreadable), read without
    ever closing a descriptor of a file this process holds SQLite connections on (their locks
    would go with it): such a file is known to be SQLite and is not read at all."""
    with _sqlite_files_lock:
        file_id = _file_id(path)
        if file_id is None:
            return b""
        if file_id in _sqlite_files:
            return SQLITE_MAGIC
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below unless that would unlock
        except OSError:
            return b""
        try:
            head = fh.read(size)
        except OSError:
            head = b""
        st = os.fstat(fh.fileno())
        if (st.st_dev, st.st_ino) in _sqlite_files:  # replaced by a live store meanwhile
            _kept_open.append(fh)
        else:
            fh.close()
        return head


_read_head = read_head


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
