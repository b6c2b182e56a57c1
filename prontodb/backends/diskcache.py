"""The diskcache engine: a directory holding diskcache's SQLite ``cache.db`` plus value files.

The store is a directory (conventionally ``*.diskcache``) opened with
``diskcache.Cache(eviction_policy='none', cull_limit=0, size_limit=2**62, statistics=False,
tag_index=False, timeout=60)``: nothing is ever evicted or culled, and diskcache's own expiry is
never set (TTL lives in the Store's envelope). Keys and values are raw bytes only: a custom
``Disk`` refuses anything else, so nothing is ever pickled on the way in, and an entry that is
not raw bytes (written by some other program) is reported as corrupt instead of being unpickled.

Durability:

- ``normal``: diskcache's defaults, WAL with ``synchronous=NORMAL``; values of 32 KiB
  (``disk_min_file_size``) and more live in files under two levels of subdirectories. Each value
  file and its directory entry are fsynced before the row that points at it commits, so a power
  loss can lose the last moments but never leaves an entry pointing at a missing or truncated
  file (diskcache alone does not fsync value files).
- ``full``: WAL with ``synchronous=FULL`` and ``disk_min_file_size`` set out of reach, so every
  value lives inline in the database and every commit is fsynced.

Permissions: the directory and its subdirectories are created 0700, ``cache.db`` is created
empty with 0600 before SQLite opens it (SQLite gives ``-wal``/``-shm`` the database file's mode),
and value files are created by this module with ``os.open(..., 0o600)`` followed by ``fchmod``.
So every mode is exact whatever the umask, without touching the process-global umask (which
would race with other threads).

Transactions use ``Cache.transact()`` (``BEGIN IMMEDIATE``; a nested call joins the outer one).
diskcache deletes the file of an overwritten or deleted value as soon as the *innermost* write
finishes, and never deletes the new value files of a rolled-back transaction; here the Disk
defers every file removal to the outer commit and removes the transaction's new files on
rollback, so a rollback restores file-backed values too.

``snapshot()`` pins an SQLite read transaction (deferred ``BEGIN`` plus a read) when the store
holds no file-backed values at that moment: WAL readers see one point in time and never block
writers. When file-backed values exist, a read transaction is not enough — writers delete an
overwritten value's file right after their commit, under the reader's feet — so the snapshot
takes the write lock with ``Cache.transact()`` instead: it is consistent, and other writers wait
(up to the 60 s busy timeout) until it ends.

Reads and scans query diskcache's ``Cache`` table directly (``WHERE raw = 1 AND key >= ? AND
key < ? ORDER BY key``, served by its unique ``(key, raw)`` index, paged after the last key), so
a scan costs what it yields. diskcache's ``expire_time`` is ignored. A reader that finds a value
file gone (a writer replaced the entry and removed the old file after its commit) looks the key
up again. ``put`` is ``Cache.set``; ``put_many`` writes inline values in batched upserts with
the columns ``Cache.set`` would write, and file-backed ones through ``Cache.set``.

diskcache keeps one SQLite connection per thread; this module keeps one per backend object (the
interface promises one thread at a time), so ``close()`` really closes it, and the last close of
the directory leaves no ``-wal``/``-shm`` side file. ``Cache.__init__`` rewrites all its settings
on every open (~15 ms of WAL writes and checkpoint per process); once a store is set up with
this module's settings, opening it only reads them and writes nothing.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from operator import itemgetter
from typing import Any

# Absolute import: this module is ``prontodb.backends.diskcache``; ``diskcache`` is the library.
import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW

from prontodb import backends
from prontodb.backends.base import Backend, parse_counter, prefix_successor
from prontodb.backends.sqlite import create_private_file, translate
from prontodb.errors import (
    BackendError,
    CorruptStoreError,
    ReadOnlyStoreError,
    StorageFullError,
    StoreBusyError,
    StoreNotFoundError,
)
from prontodb.files import uri_path

BUSY_TIMEOUT_S = 60.0
DBNAME = diskcache.core.DBNAME
#: Rows fetched per scan query, and the inline bytes after which a page is cut short.
_PAGE_ROWS = 500
_PAGE_BYTES = 8 << 20
_INLINE_MODE = {MODE_RAW}
_BYTES = {bytes}
_ENGINE_ERRORS = (sqlite3.Error, OSError, diskcache.Timeout)
_OS_FULL = {errno.ENOSPC, errno.EDQUOT}
_OS_READONLY = {errno.EROFS, errno.EACCES, errno.EPERM}

_GET = "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
_SCAN = (
    "SELECT key, mode, filename, value FROM Cache WHERE raw = 1 AND key {op} ?{upper}"
    " ORDER BY key LIMIT {limit}"
)
#: Settings of every Cache opened here. They live in diskcache's shared Settings table.
_SETTINGS = {
    "eviction_policy": "none",
    "cull_limit": 0,
    "size_limit": 2**62,
    "statistics": False,
    "tag_index": False,
}
_SHARED_SETTINGS = {"sqlite_journal_mode": "wal", "sqlite_auto_vacuum": 1}
#: Per object, whatever the Settings table says (another process may use the other mode).
_SYNCHRONOUS = {"normal": 1, "full": 2}
_MIN_FILE_SIZE = {"normal": diskcache.DEFAULT_SETTINGS["disk_min_file_size"], "full": 2**62}
_SCHEMA = frozenset(
    {
        "Cache",
        "Settings",
        "Cache_key_raw",
        "Cache_expire_time",
        "Settings_count_insert",
        "Settings_count_delete",
        "Settings_size_insert",
        "Settings_size_update",
        "Settings_size_delete",
    }
)
#: ``put_many`` writes inline values in batches: the old value files of a batch's keys, then
#: one upsert per pair with the columns ``Cache.set`` would write (no expiry, no tag).
_BATCH = 500
_OLD_FILES = "SELECT filename FROM Cache WHERE raw = 1 AND filename IS NOT NULL AND key IN ({})"
_UPSERT = (
    "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag,"
    f" size, mode, filename, value) VALUES (?, 1, ?, NULL, ?, 0, NULL, 0, {MODE_RAW}, NULL, ?)"
    " ON CONFLICT (key, raw) DO UPDATE SET store_time = excluded.store_time,"
    " expire_time = NULL, access_time = excluded.access_time, access_count = 0, tag = NULL,"
    f" size = 0, mode = {MODE_RAW}, filename = NULL, value = excluded.value"
)


class _RawDisk(diskcache.Disk):  # type: ignore[misc]
    """A ``Disk`` for raw bytes only, with private value files and transactional file removal.

    While ``begin()`` is in force, removals are deferred to ``commit()`` and the files written
    are remembered so that ``abort()`` can delete them.
    """

    def __init__(self, directory: str, **settings: Any) -> None:
        super().__init__(directory, **settings)
        self._created: list[str] | None = None
        self._doomed: list[str] | None = None

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not bytes:
            raise TypeError(f"diskcache store keys must be bytes, not {type(key).__name__}")
        return sqlite3.Binary(key), True

    def get(self, key: Any, raw: bool) -> bytes:
        if not raw:
            raise CorruptStoreError(f"{self._directory}: a key is not raw bytes (pickled)")
        return bytes(key)

    def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> tuple[Any, ...]:
        if read or type(value) is not bytes:
            raise TypeError(f"diskcache store values must be bytes, not {type(value).__name__}")
        if len(value) < self.min_file_size:
            return 0, MODE_RAW, None, sqlite3.Binary(value)
        filename, full_path = self.filename(key, value)
        self._write_private(full_path, value)
        if self._created is not None:
            self._created.append(filename)
        return len(value), MODE_BINARY, filename, None

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> bytes:
        if not read:
            if mode == MODE_RAW and isinstance(value, bytes):
                return value
            if mode == MODE_BINARY and filename is not None:
                with open(os.path.join(self._directory, filename), "rb") as fh:
                    return fh.read()
        raise CorruptStoreError(
            f"{self._directory}: an entry is not raw bytes (diskcache mode {mode}); "
            "refusing to decode it"
        )

    def remove(self, file_path: str) -> None:
        if self._doomed is not None:
            self._doomed.append(file_path)
        else:
            super().remove(file_path)

    def begin(self) -> None:
        self._created, self._doomed = [], []

    def commit(self) -> None:
        doomed = self._doomed or []
        self._created = self._doomed = None
        for name in doomed:
            super().remove(name)

    def abort(self) -> None:
        created = self._created or []
        self._created = self._doomed = None
        for name in created:
            super().remove(name)

    def _write_private(self, full_path: str, value: bytes) -> None:
        """Write ``value`` to a new 0600 file in 0700 directories, fsynced with its entry."""
        full_dir = os.path.dirname(full_path)
        for attempt in range(10):
            try:
                self._make_private_dirs(full_dir)
                fd = os.open(full_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                break
            except FileNotFoundError:
                # Another process removed the (then empty) subdirectory in between.
                if attempt == 9:
                    raise
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(value)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            super().remove(os.path.relpath(full_path, self._directory))
            raise
        os.close(fd)
        _fsync_dir(full_dir)

    def _make_private_dirs(self, full_dir: str) -> None:
        parent = self._directory
        for part in os.path.relpath(full_dir, parent).split(os.sep):
            path = os.path.join(parent, part)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            else:
                os.chmod(path, 0o700)
                _fsync_dir(parent)
            parent = path


#: The Settings row that marks a diskcache directory as a ProntoDB store. Only a directory
#: carrying it (or set up by an earlier ProntoDB with exactly this module's settings) is
#: adopted; another program's cache is refused without a write.
MARKER = "prontodb_store"


def _legacy_store(stored: dict[str, Any]) -> bool:
    """A store set up by a ProntoDB that wrote no marker yet: exactly this module's settings."""
    return all(stored.get(key) == value for key, value in _SETTINGS.items())


@contextmanager
def _directory_lock(directory: str) -> Iterator[None]:
    """An exclusive lock between processes on the store directory itself (flock on its fd)."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class _Cache(diskcache.Cache):  # type: ignore[misc]
    """``diskcache.Cache`` with one connection per object, fixed per-connection pragmas, and an
    open that writes nothing once the store is set up."""

    def __init__(
        self, directory: str, *, synchronous: int, min_file_size: int, timeout: float
    ) -> None:
        self._pronto_con: sqlite3.Connection | None = None
        self._pronto_pid = 0
        self._pronto_synchronous = synchronous
        self._pronto_closed = False
        if self._adopt(directory, timeout, min_file_size):
            return
        # Setting a store up (or finishing an interrupted setup) is serialized between
        # processes by a lock on the directory: two concurrent Cache.__init__ on a new
        # cache.db race on its journal mode and schema.
        with _directory_lock(directory):
            if self._adopt(directory, timeout, min_file_size, locked=True):
                return
            super().__init__(
                directory,
                timeout=timeout,
                disk=_RawDisk,
                sqlite_synchronous=synchronous,
                disk_min_file_size=min_file_size,
                **_SETTINGS,
            )
            self._con.execute(
                "INSERT OR REPLACE INTO Settings (key, value) VALUES (?, ?)", (MARKER, 1)
            )

    def _adopt(
        self, directory: str, timeout: float, min_file_size: int, *, locked: bool = False
    ) -> bool:
        """Take over a store that an earlier open set up, without ``Cache.__init__``.

        ``Cache.__init__`` rewrites every setting on each open: a write transaction, a new WAL
        and a checkpoint per process (~15 ms), and a failure on a read-only store. When the
        schema and the shared settings already are what this module asks for, setting the
        attributes ``__init__`` would set is all there is to do. Otherwise (a new store, one
        set up by other diskcache settings) the full ``__init__`` runs.
        """
        self._directory = directory
        self._timeout = timeout
        self._local = threading.local()
        self._txn_id = None
        try:
            con = self._con
            names = {name for (name,) in con.execute("SELECT name FROM sqlite_master")}
            if not names:
                self.close()
                return False  # a new, empty cache.db: set it up
            stored = (
                dict(con.execute("SELECT key, value FROM Settings").fetchall())
                if "Settings" in names
                else {}
            )
            if MARKER not in stored and not _legacy_store(stored):
                # Another program's diskcache (or SQLite file), or a setup that another
                # process is running right now: only under the setup lock can it be told.
                self.close()
                if locked:
                    raise CorruptStoreError(
                        f"{directory} is a diskcache directory of another program (it carries "
                        "no ProntoDB marker); refusing to adopt it"
                    )
                return False
            journal = con.execute("PRAGMA journal_mode").fetchone()[0]
            page_size = con.execute("PRAGMA page_size").fetchone()[0]
        except sqlite3.Error:
            self.close()  # the full __init__ meets the same error and reports it
            return False
        wanted = {**_SETTINGS, **_SHARED_SETTINGS}
        settled = all(key in stored for key in diskcache.DEFAULT_SETTINGS) and all(
            stored.get(key) == value for key, value in wanted.items()
        )
        if not settled or journal.lower() != "wal" or MARKER not in stored:
            self.close()
            return False  # ours, not (or not completely) set up: the locked setup finishes it
        for key, value in stored.items():
            setattr(self, key, value)
        self.sqlite_synchronous = self._pronto_synchronous
        self.disk_min_file_size = min_file_size
        self._disk = _RawDisk(
            directory, min_file_size=min_file_size, pickle_protocol=stored["disk_pickle_protocol"]
        )
        self._page_size = page_size
        return True

    @property
    def _con(self) -> sqlite3.Connection:
        con = self._pronto_con
        if con is not None and self._pronto_pid == os.getpid():
            return con
        if self._pronto_closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        if con is not None:  # inherited across fork: never share it with the parent
            self.close()
        database = os.path.join(self._directory, DBNAME)
        file_id = backends.sqlite_file_opened(database)  # see backends.read_head
        try:
            # mode=rw: cache.db exists (the backend made it, or found it); one that vanished
            # since (a cursor migrate retired the store) is never created anew here.
            con = sqlite3.connect(
                f"file:{uri_path(os.fsencode(database))}?mode=rw",
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=True,
            )
        except BaseException:
            backends.sqlite_file_closed(file_id)
            raise
        self._pronto_con, self._pronto_pid = con, os.getpid()
        self._pronto_file_id = file_id
        con.execute(f"PRAGMA synchronous = {self._pronto_synchronous}")
        con.execute(f"PRAGMA cache_size = {diskcache.DEFAULT_SETTINGS['sqlite_cache_size']}")
        con.execute(f"PRAGMA mmap_size = {diskcache.DEFAULT_SETTINGS['sqlite_mmap_size']}")
        return con

    def close(self) -> None:
        con, self._pronto_con = self._pronto_con, None
        if con is not None:
            try:
                con.close()
            finally:
                backends.sqlite_file_closed(self._pronto_file_id)


class DiskcacheBackend(Backend):
    """Key-value pairs as raw-bytes rows of diskcache's ``Cache`` table (and value files)."""

    name = "diskcache"

    def __init__(self, path: str, *, durability: str = "normal", create: bool = True) -> None:
        super().__init__(path, durability=durability, create=create)
        self._closed = False
        backends.refuse_special(path)  # a FIFO would block, a device is nobody's store
        backends.refuse_special(os.path.join(path, DBNAME))
        if not backends.looks_like(path, "diskcache"):
            self._prepare(path, create)
        database = os.path.join(path, DBNAME)
        # The cache.db this open must end up on: without ``create``, one that is renamed or
        # removed meanwhile (a cursor migrate retiring the store) fails the open.
        found = backends.identity(database)
        if found is None and not create:
            raise StoreNotFoundError(f"no store at {path}")
        try:
            self._cache = _Cache(
                path,
                synchronous=_SYNCHRONOUS[durability],
                min_file_size=_MIN_FILE_SIZE[durability],
                timeout=BUSY_TIMEOUT_S,
            )
        except _ENGINE_ERRORS as exc:
            if not create and backends.identity(database) != found:
                raise self._vanished(path) from exc
            raise self._translate(exc) from exc
        self._disk: _RawDisk = self._cache.disk
        self._file_id = backends.identity(database)  # see check_unmoved
        if self._file_id is None or (not create and self._file_id != found):
            self._cache.close()
            raise self._vanished(path)

    @staticmethod
    def _vanished(path: str) -> StoreNotFoundError:
        """The store was renamed or removed while it was being opened. diskcache may have
        made its directory again on the way (``Cache.__init__`` does): an empty one is
        removed, so that nothing is left behind where the store was."""
        try:
            os.rmdir(path)  # only ever removes an empty directory
        except OSError:
            pass
        return StoreNotFoundError(
            f"no store at {path} (it was moved or removed while being opened; nothing was written)"
        )

    @staticmethod
    def _prepare(path: str, create: bool) -> None:
        """Make the 0700 directory and an empty 0600 ``cache.db`` for SQLite to fill in."""
        if os.path.exists(path) and not os.path.isdir(path):
            raise CorruptStoreError(f"{path} is not a diskcache store (not a directory)")
        if not os.path.isfile(os.path.join(path, DBNAME)) and not create:
            raise StoreNotFoundError(f"no store at {path}")
        try:
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            else:
                os.chmod(path, 0o700)
            create_private_file(os.path.join(path, DBNAME))
        except OSError as exc:
            raise _translate_os(exc, path, "cannot create store") from exc

    # -- reads ---------------------------------------------------------------------------------

    def _get(self, key: bytes) -> bytes | None:
        key = _as_bytes(key, "key")
        try:
            row = self._cache._con.execute(_GET, (key,)).fetchone()
            if row is None:
                return None
            return self._disk.fetch(row[0], row[1], row[2], False)
        except FileNotFoundError:
            return self._refetch(key, row[1])
        except _ENGINE_ERRORS as exc:
            raise self._translate(exc) from exc

    def _get_split(self, key: bytes, head: int) -> tuple[bytes, bytes] | None:
        """A value kept in a file is read as its two parts (each copied once)."""
        key = _as_bytes(key, "key")
        try:
            row = self._cache._con.execute(_GET, (key,)).fetchone()
        except _ENGINE_ERRORS as exc:
            raise self._translate(exc) from exc
        if row is None:
            return None
        mode, filename, value = row
        if mode == MODE_RAW and type(value) is bytes:
            return value[:head], value[head:]
        if mode == MODE_BINARY and filename is not None and value is None:
            try:
                fd = os.open(os.path.join(self._disk._directory, filename), os.O_RDONLY)
                try:
                    return _read_split(fd, head)
                finally:
                    os.close(fd)
            except FileNotFoundError:
                pass  # replaced meanwhile: the general path looks again
        return super()._get_split(key, head)

    def _refetch(self, key: bytes, missing: str) -> bytes | None:
        """Look ``key`` up again after its value file ``missing`` could not be opened.

        Outside a transaction a writer may have replaced or deleted the entry since its row
        was read; writers remove the old file only after their commit, so a fresh look finds
        the new state. Inside ``transaction()``/``snapshot()`` no file can vanish, and a file
        still missing under an unchanged row is damage either way.
        """
        while not (self._base_txn_depth or self._base_snap_depth):
            try:
                row = self._cache._con.execute(_GET, (key,)).fetchone()
                if row is None:
                    return None
                if row[1] == missing:
                    break
                missing = row[1]
                return self._disk.fetch(row[0], row[1], row[2], False)
            except FileNotFoundError:
                continue
            except _ENGINE_ERRORS as exc:
                raise self._translate(exc) from exc
        raise CorruptStoreError(f"{self.path}: the value file {missing} of an entry is missing")

    def _scan(
        self, prefix: bytes = b"", *, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        prefix = _as_bytes(prefix, "prefix")
        low = prefix if start is None else max(prefix, _as_bytes(start, "start"))
        high = prefix_successor(prefix)
        upper = "" if high is None else " AND key < ?"
        tail = () if high is None else (high,)
        first = _SCAN.format(op=">=", upper=upper, limit=_PAGE_ROWS)
        after = _SCAN.format(op=">", upper=upper, limit=_PAGE_ROWS)
        sql = first
        while True:
            rows, complete = self._page(sql, (low, *tail))
            values = list(map(itemgetter(3), rows))
            if set(map(itemgetter(1), rows)) == _INLINE_MODE and set(map(type, values)) == _BYTES:
                # every value inline and raw (the common page): what fetch would return, in C
                yield from zip(map(itemgetter(0), rows), values, strict=True)
            else:
                yield from self._fetch_page(rows)
            if complete:
                return
            low, sql = rows[-1][0], after

    def _fetch_page(self, rows: list[tuple[Any, ...]]) -> Iterator[tuple[bytes, bytes]]:
        """The (key, value) pairs of a page of scanned rows, one value at a time (a value in a
        file is read; one deleted since the page was read is skipped)."""
        for key, mode, filename, value in rows:
            try:
                data = self._disk.fetch(mode, filename, value, False)
            except FileNotFoundError:
                again = self._refetch(key, filename)
                if again is None:  # deleted by another writer since the page was read
                    continue
                data = again
            except _ENGINE_ERRORS as exc:
                raise self._translate(exc) from exc
            yield key, data

    def _page(self, sql: str, params: tuple[bytes, ...]) -> tuple[list[tuple[Any, ...]], bool]:
        """One page of rows from ``params[0]``, and whether it reached the end of the range.

        A page stops early after ``_PAGE_BYTES`` of inline values, so a scan of large values
        held inline (``full``) never loads hundreds of them at once.
        """
        rows: list[tuple[Any, ...]] = []
        size = 0
        try:
            cursor = self._cache._con.execute(sql, params)
            try:
                for row in cursor:
                    rows.append(row)
                    if row[3] is not None:
                        size += len(row[3])
                        if size > _PAGE_BYTES:
                            return rows, False
            finally:
                cursor.close()
        except _ENGINE_ERRORS as exc:
            raise self._translate(exc) from exc
        return rows, len(rows) < _PAGE_ROWS

    # -- writes --------------------------------------------------------------------------------

    def _put(self, key: bytes, value: bytes) -> None:
        key, value = _as_bytes(key, "key"), _as_bytes(value, "value")
        if self._base_txn_depth:
            self._set(key, value)
        elif len(value) < self._disk.min_file_size:
            self._set_alone(key, value)
        else:
            with self.transaction():
                self._set(key, value)

    def _set_alone(self, key: bytes, value: bytes) -> None:
        """``Cache.set`` in its own transaction: the fast path for an inline value, which
        writes no file that a failure would have to clean up."""
        backends.check_unmoved(os.path.join(self.path, DBNAME), self._file_id)
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.001
        while True:
            try:
                self._cache.set(key, value)
                # Checked again now that the write is done: it waited for the lock, and a
                # store moved away meanwhile (cursor migrate) must not acknowledge it.
                backends.check_unmoved(os.path.join(self.path, DBNAME), self._file_id)
                return
            except diskcache.Timeout as exc:
                if not _is_busy(exc.__context__) or time.monotonic() > deadline:
                    raise self._translate(exc) from exc
            except _ENGINE_ERRORS as exc:
                self._abort(None, exc)  # diskcache leaves the transaction open if COMMIT fails
                raise self._translate(exc) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _set(self, key: bytes, value: bytes) -> None:
        try:
            self._cache.set(key, value)
        except _ENGINE_ERRORS as exc:
            raise self._translate(exc) from exc

    def _put_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Inline values go in batches of one upsert statement each (``Cache.set`` costs a
        SELECT plus an INSERT or UPDATE per pair); file-backed values go through ``Cache.set``
        one at a time, in order, so later pairs still win."""
        count = 0
        with self.transaction():
            inline = self._disk.min_file_size
            batch: list[tuple[bytes, bytes]] = []
            for key, value in items:
                key, value = _as_bytes(key, "key"), _as_bytes(value, "value")
                count += 1
                if len(value) < inline:
                    batch.append((key, value))
                    if len(batch) == _BATCH:
                        self._upsert_inline(batch)
                        batch = []
                    continue
                if batch:
                    self._upsert_inline(batch)
                    batch = []
                self._set(key, value)
            if batch:
                self._upsert_inline(batch)
        return count

    def _put_counted(
        self,
        counter_key: bytes,
        key: bytes,
        build: Callable[[int, bytes | None], bytes],
        also: bytes | None,
    ) -> int:
        """The counter and an inline entry go in one upsert statement inside one transaction
        (``Cache.set`` would cost a SELECT and a write for each)."""
        counter_key, key = _as_bytes(counter_key, "key"), _as_bytes(key, "key")
        with self.transaction():
            n = parse_counter(self._get(counter_key), counter_key) + 1
            value = _as_bytes(build(n, None if also is None else self._get(also)), "value")
            counter = (counter_key, str(n).encode())
            if len(value) < self._disk.min_file_size:
                self._upsert_inline([counter, (key, value)])
            else:
                self._upsert_inline([counter])
                self._set(key, value)
        return n

    def _upsert_inline(self, batch: list[tuple[bytes, bytes]]) -> None:
        """Write inline values the way ``Cache.set`` does, inside the open transaction."""
        now = time.time()
        keys = [key for key, _ in batch]
        try:
            con = self._cache._con
            old_files = con.execute(_OLD_FILES.format(",".join("?" * len(keys))), keys).fetchall()
            con.executemany(_UPSERT, [(key, now, now, value) for key, value in batch])
        except _ENGINE_ERRORS as exc:
            raise self._translate(exc) from exc
        for (filename,) in old_files:
            self._disk.remove(filename)  # deferred to the commit

    def _delete(self, key: bytes) -> bool:
        key = _as_bytes(key, "key")
        with self.transaction():
            try:
                execute = self._cache._con.execute
                row = execute("SELECT rowid, filename FROM Cache WHERE key = ? AND raw = 1", (key,))
                found = row.fetchone()
                if found is None:
                    return False
                execute("DELETE FROM Cache WHERE rowid = ?", (found[0],))
            except _ENGINE_ERRORS as exc:
                raise self._translate(exc) from exc
            if found[1] is not None:
                self._disk.remove(found[1])  # deferred to the commit
            return True

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # The base class calls this for the outermost transaction only, never in a snapshot.
        outer = self._lock()
        try:
            backends.check_unmoved(os.path.join(self.path, DBNAME), self._file_id)
        except BaseException as exc:
            self._abort(outer, exc)
            raise
        self._disk.begin()
        try:
            yield
        except BaseException as exc:
            self._abort(outer, exc)
            raise
        try:
            outer.__exit__(None, None, None)  # COMMIT
        except BaseException as exc:
            self._abort(None, exc)
            if isinstance(exc, _ENGINE_ERRORS):
                raise self._translate(exc) from exc
            raise
        self._disk.commit()

    def _lock(self) -> AbstractContextManager[Any]:
        """Enter ``Cache.transact()`` (``BEGIN IMMEDIATE``), waiting out other writers.

        SQLite's busy handler already waits up to the busy timeout; some WAL states report
        busy at once, so those are retried here until the same deadline.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.001
        while True:
            outer: AbstractContextManager[Any] = self._cache.transact()
            try:
                outer.__enter__()
                return outer
            except diskcache.Timeout as exc:
                if not _is_busy(exc.__context__) or time.monotonic() > deadline:
                    raise self._translate(exc) from exc
            except _ENGINE_ERRORS as exc:
                raise self._translate(exc) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _abort(self, outer: AbstractContextManager[Any] | None, exc: BaseException) -> None:
        """Roll back the open SQLite transaction and delete the value files it wrote."""
        try:
            if outer is not None:
                outer.__exit__(type(exc), exc, exc.__traceback__)  # ROLLBACK
        except BaseException:
            pass
        finally:
            self._cache._txn_id = None
            try:
                con = self._cache._pronto_con
                if con is not None and con.in_transaction:
                    con.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._disk.abort()

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        # The outermost read view only (the base class joins nested and in-transaction use).
        end = self._begin_snapshot()
        try:
            yield
        finally:
            end()

    def _begin_snapshot(self) -> Callable[[], None]:
        """Open the read view and return what ends it (see the module docstring)."""
        try:
            con = self._cache._con
            con.execute("BEGIN")
            # The first read pins the WAL snapshot; Settings.size sums the file-backed bytes.
            (file_bytes,) = con.execute("SELECT value FROM Settings WHERE key = 'size'").fetchone()
            if not file_bytes:
                return lambda: _quiet_end(con)
            con.execute("ROLLBACK")
        except _ENGINE_ERRORS as exc:
            _quiet_end(self._cache._pronto_con)
            raise self._translate(exc) from exc
        outer = self._lock()

        def end() -> None:
            try:
                outer.__exit__(None, None, None)
            except _ENGINE_ERRORS:
                self._cache._txn_id = None
                _quiet_end(self._cache._pronto_con)

        return end

    # -- maintenance ---------------------------------------------------------------------------

    def files(self) -> list[str]:
        found = [self.path]
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames.sort()
            found.extend(os.path.join(dirpath, name) for name in dirnames)
            found.extend(os.path.join(dirpath, name) for name in sorted(filenames))
        return found

    def _check(self) -> list[str]:
        """SQLite's integrity check, then diskcache's own ``check(fix=False)``.

        ``Cache.check`` only reports when ``fix`` is false; it holds the write lock while it
        compares the value files with the rows (writers wait meanwhile). Value files no row
        points at, and empty value directories, are not problems: a writer killed between
        writing a value file and its commit leaves them, and every entry is still intact.
        """
        if self._base_snap_depth and not self._base_txn_depth:
            raise BackendError(f"{self.path}: check() cannot run inside snapshot()")
        try:
            con = self._cache._con
            rows = con.execute("PRAGMA integrity_check").fetchall()
        except _ENGINE_ERRORS as exc:
            error = self._translate(exc)
            if isinstance(error, CorruptStoreError):
                return [f"integrity check failed: {exc}"]
            raise error from exc
        problems = [row[0] for row in rows if row[0] != "ok"]
        if problems:
            return problems
        try:
            (foreign,) = con.execute(
                "SELECT COUNT(*) FROM Cache WHERE raw IS NOT 1 OR mode NOT IN (?, ?)",
                (MODE_RAW, MODE_BINARY),
            ).fetchone()
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                found = self._cache.check(fix=False)
        except _ENGINE_ERRORS as exc:
            raise self._translate(exc) from exc
        if foreign:
            problems.append(f"{foreign} entries are not raw bytes (pickled or text)")
        problems.extend(str(warning.message) for warning in found if not _leftover(warning))
        return problems

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        cache = getattr(self, "_cache", None)
        if cache is None:
            return
        cache._pronto_closed = True
        self._disk.abort()  # a transaction left open: its rows roll back, its files go too
        try:
            cache.close()
        except sqlite3.Error:
            pass

    # -- errors --------------------------------------------------------------------------------

    def _translate(self, exc: BaseException) -> BackendError:
        """Map a diskcache, sqlite3 or OS error onto the ProntoDB hierarchy."""
        if isinstance(exc, diskcache.Timeout):
            # diskcache raises Timeout "from None" for any failed BEGIN; the real error stays
            # in __context__.
            inner = exc.__context__
            if isinstance(inner, sqlite3.Error) and not _is_busy(inner):
                return translate(inner, self.path)
            return StoreBusyError(f"{self.path}: store stayed locked by other writers")
        if isinstance(exc, sqlite3.Error):
            return translate(exc, self.path)
        if isinstance(exc, OSError):
            return _translate_os(exc, self.path, "cannot access a value file")
        return BackendError(f"{self.path}: {exc}")


def _translate_os(exc: OSError, path: str, doing: str) -> BackendError:
    if exc.errno in _OS_FULL:
        return StorageFullError(f"{path}: disk is full ({exc.strerror})")
    if exc.errno in _OS_READONLY:
        return ReadOnlyStoreError(f"{path}: store is read-only ({exc.strerror})")
    return BackendError(f"{path}: {doing} ({exc})")


def _leftover(warning: warnings.WarningMessage) -> bool:
    """Whether a ``Cache.check`` warning is about an orphan value file or an empty directory."""
    if issubclass(warning.category, diskcache.EmptyDirWarning):
        return True
    return issubclass(warning.category, diskcache.UnknownFileWarning) and str(
        warning.message
    ).endswith(".val")


def _read_split(fd: int, head: int) -> tuple[bytes, bytes]:
    """The first ``head`` bytes of the open file ``fd`` and the rest, each read into a bytes
    object of its final size (no buffer that grows and is copied again)."""
    first = os.read(fd, head)
    size = os.fstat(fd).st_size - len(first)
    parts = [os.read(fd, max(size, 0))]
    while chunk := os.read(fd, 1 << 20):  # the file grew meanwhile: never cut it short
        parts.append(chunk)
    rest = parts[0] if len(parts) == 1 else b"".join(parts)
    return first, rest


def _is_busy(exc: BaseException | None) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _quiet_end(con: sqlite3.Connection | None) -> None:
    """End a read transaction, ignoring errors (there is nothing to keep)."""
    try:
        if con is not None and con.in_transaction:
            con.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _as_bytes(data: Any, what: str) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"{what} must be bytes, not {type(data).__name__}")


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
