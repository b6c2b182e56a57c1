"""The SQLite engine: one file, one ``WITHOUT ROWID`` table, WAL journal.

Durability: ``normal`` is WAL with ``synchronous=NORMAL`` (a killed process loses nothing that
was committed; a power loss may lose the last transactions but never corrupts the file);
``full`` is WAL with ``synchronous=FULL`` (every commit is fsynced). Writers take the lock up
front (``BEGIN IMMEDIATE`` for a transaction; a single put outside one is one autocommit
statement, which locks before it reads) and wait for each other through the busy timeout, so
``database is locked`` never reaches a user under ordinary contention.
"""

from __future__ import annotations

import itertools
import os
import time
from _operator import itemgetter

from prontodb import backends
from prontodb._lazy import contextmanager
from prontodb.backends.base import Backend, parse_counter, prefix_successor
from prontodb.errors import (
    BackendError,
    CorruptStoreError,
    ReadOnlyStoreError,
    StorageFullError,
    StoreBusyError,
    StoreNotFoundError,
)
from prontodb.files import uri_path

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Callable, Iterable, Iterator
    from typing import TypeVar

    _T = TypeVar("_T")

if TYPE_CHECKING:
    import sqlite3
else:  # the C module the sqlite3 package wraps: the package only adds DB-API date and time
    try:  # adapters (never used here) and imports datetime for them (docs/performance.md)
        import _sqlite3 as sqlite3
    except ImportError:  # an interpreter without it
        import sqlite3

BUSY_TIMEOUT_S = 60.0
_PAGE = 2000
_UPSERT = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
#: put_counted in one statement: an upsert of two rows, the counter row then the entry row (the
#: rows of a VALUES list are made and written in order). The counter is raised in its DO UPDATE
#: (``_pronto_next`` parses the old counter and, in the same step, is handed the value under
#: ``?3``); the entry row's value is made after that by ``_pronto_build``. (The counter row's
#: VALUES, ``X'31'``, is "1": written only when there is no counter yet.) The VALUES list itself
#: reads nothing, so SQLite writes the rows as they come instead of first copying them into a
#: temporary table (an INSERT whose source reads its target table does that): a quarter of the
#: statement's cost. A store without a counter yet (its first counted write) has no row to
#: update: ``_pronto_build`` then refuses and the generic transaction does that one write. The
#: functions are this connection's Python functions: nothing about them is stored in the file.
_PUT_COUNTED = (
    "INSERT INTO kv (k, v) VALUES (?1, X'31'), (?2, _pronto_build()) "
    "ON CONFLICT (k) DO UPDATE SET v = CASE WHEN k = ?1 "
    "THEN _pronto_next(v, (SELECT v FROM kv WHERE k = ?3)) ELSE excluded.v END"
)
#: ProntoDB's marker in the SQLite header (``PRAGMA application_id``, bytes 68-71): "Pron".
APPLICATION_ID = 0x50726F6E
_SCHEMA = "CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
_CREATE = (
    "BEGIN IMMEDIATE; "
    "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID; "
    f"PRAGMA application_id = {APPLICATION_ID}; "
    "COMMIT;"
)


def _no_build(n: int, found: bytes | None) -> bytes:
    raise AssertionError("put_counted is not running")


class _NoCounterYet(Exception):
    """put_counted's statement found no counter row to raise (see ``_PUT_COUNTED``)."""


_NO_COUNTED: tuple[bytes, Callable[[int, bytes | None], bytes]] = (b"", _no_build)


def _cannot_open(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "unable to open" in text or "readonly" in text or "read-only" in text


def _read_only_folder(path: str) -> bool:
    """True when the store file exists but its directory cannot be written to."""
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.isfile(path) and not os.access(folder, os.W_OK)


def _same_sql(found: str | None, wanted: str) -> bool:
    """Two CREATE statements equal up to white space and ``IF NOT EXISTS``."""
    if found is None:
        return False

    def norm(sql: str) -> str:
        return " ".join(sql.replace("IF NOT EXISTS ", "").split())

    return norm(found) == norm(wanted)


def translate(exc: sqlite3.Error, path: str) -> BackendError:
    """Map a sqlite3 error onto the ProntoDB hierarchy (the caller keeps it as __cause__)."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StoreBusyError(f"{path}: store stayed locked by other writers ({exc})")
    if "full" in text:
        return StorageFullError(f"{path}: disk is full ({exc})")
    if "readonly" in text or "read-only" in text:
        return ReadOnlyStoreError(f"{path}: store is read-only ({exc})")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return CorruptStoreError(f"{path}: store file is damaged ({exc})")
    if "unable to open" in text:
        return BackendError(f"{path}: cannot open store ({exc})")
    return BackendError(f"{path}: {exc}")


def create_private_file(path: str) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (whatever the umask)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.fchmod(fd, 0o600)
    os.close(fd)


class SqliteBackend(Backend):
    """Key-value pairs in ``kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID``."""

    name = "sqlite"

    def __init__(self, path: str, *, durability: str = "normal", create: bool = True) -> None:
        super().__init__(path, durability=durability, create=create)
        backends.refuse_special(path)  # a FIFO would block, a device is nobody's store
        if not os.path.exists(path):
            if not create:
                raise StoreNotFoundError(f"no store at {path}")
            try:
                create_private_file(path)
            except OSError as exc:
                raise BackendError(f"{path}: cannot create store ({exc.strerror})") from exc
        self._depth = 0
        self._closed = False
        self._counted = _NO_COUNTED
        self._counted_n = 0
        self._counted_found: bytes | None = None
        self._counted_raised = False
        self._counted_error: BaseException | None = None
        self._file_id = backends.sqlite_file_opened(path)  # see backends.read_head
        self._readonly = False
        try:
            self._connect_and_setup(path)
        except sqlite3.Error as exc:
            if not _cannot_open(exc) or not _read_only_folder(path):
                backends.sqlite_file_closed(self._file_id)
                raise translate(exc, path) from exc
            # A store in a directory this process cannot write to: WAL mode needs its -shm
            # file there, so read it read-only (immutable when no -wal exists: then nobody
            # can be writing it either, since no writer could create one).
            self._readonly = True
            try:
                self._connect_and_setup(path)
            except sqlite3.Error as again:
                backends.sqlite_file_closed(self._file_id)
                raise translate(again, path) from exc
        except BaseException:
            backends.sqlite_file_closed(self._file_id)
            raise

    def _connect_and_setup(self, path: str) -> None:
        if self._readonly:
            flags = "mode=ro" if os.path.exists(path + "-wal") else "mode=ro&immutable=1"
            target, uri = f"file:{uri_path(path)}?{flags}", True
        else:
            # mode=rw: the file exists (made above); if it vanished since (a cursor migrate
            # retired it), connecting fails instead of creating an empty store there.
            target, uri = f"file:{uri_path(os.fsencode(path))}?mode=rw", True
        self._conn = sqlite3.connect(
            target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False, uri=uri
        )
        try:
            self._setup()
        except BaseException:
            self._conn.close()
            raise

    def _setup(self) -> None:
        """Adopt the file only when it carries ProntoDB's marker (``PRAGMA application_id``),
        or is a new empty database; anything else is refused before a single write (not even
        the journal mode is changed). A store made before the marker existed (exactly our one
        table, exactly our schema) is adopted and marked."""
        conn = self._conn
        conn.create_function("_pronto_next", 2, self._next_counter)
        conn.create_function("_pronto_build", 0, self._build_counted)
        tables = {
            row[0]: row[1]
            for row in conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table'")
        }
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        legacy = app_id == 0 and set(tables) == {"kv"} and _same_sql(tables["kv"], _SCHEMA)
        if tables and not (app_id == APPLICATION_ID and "kv" in tables) and not legacy:
            # Someone else's SQLite database: never touch it.
            why = (
                f"application id {app_id:#x}"
                if app_id not in (0, APPLICATION_ID)
                else f"tables {', '.join(sorted(tables)[:5])}, no ProntoDB marker"
            )
            raise CorruptStoreError(
                f"{self.path} is a SQLite database but not a ProntoDB store ({why})"
            )
        if self._readonly:
            if not tables:
                raise ReadOnlyStoreError(f"{self.path}: cannot create a store in a read-only place")
            return
        sync = "FULL" if self.durability == "full" else "NORMAL"
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        conn.execute(f"PRAGMA synchronous={sync}")
        conn.execute("PRAGMA temp_store=MEMORY")
        if not tables or legacy:
            self._retry(lambda: conn.executescript(_CREATE))

    def _retry(self, op: Callable[[], _T]) -> _T:
        """Run ``op`` again while SQLite reports a lock that the busy handler did not absorb
        (some WAL states return SQLITE_BUSY at once); give up after the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.001
        while True:
            try:
                return op()
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _get(self, key: bytes) -> bytes | None:
        try:
            row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        return None if row is None else bytes(row[0])

    def _put(self, key: bytes, value: bytes) -> None:
        if self._depth:
            self._exec(_UPSERT, (key, value))
        else:
            self._autocommit(_UPSERT, (key, value))

    def _autocommit(self, sql: str, params: tuple[bytes | None, ...]) -> None:
        """Run the write statement ``sql`` outside a transaction."""
        # Outside a transaction the statement runs in autocommit mode: it is its own write
        # transaction, which takes the write lock before it reads anything (waiting through the
        # busy timeout) and commits with the same synchronous setting, so it is as safe as
        # BEGIN IMMEDIATE / INSERT / COMMIT in one statement instead of three. A busy failure
        # changed nothing and is retried like BEGIN IMMEDIATE is.
        backends.check_unmoved(self.path, self._file_id)
        conn = self._conn
        try:
            conn.execute(sql, params)
        except sqlite3.Error as exc:
            text = str(exc).lower()
            if not isinstance(exc, sqlite3.OperationalError) or (
                "locked" not in text and "busy" not in text
            ):
                raise translate(exc, self.path) from exc
            try:
                self._retry(lambda: conn.execute(sql, params))
            except sqlite3.Error as final:
                raise translate(final, self.path) from final
        # The check above ran before the statement waited for the write lock: a store moved
        # away meanwhile (cursor migrate retires the old store while holding that lock) took
        # this write, which must not be acknowledged. Cheap: a stat only when the directory
        # changed.
        backends.check_unmoved(self.path, self._file_id)

    def _next_counter(self, raw: bytes | None, found: bytes | None) -> bytes:
        try:
            n = parse_counter(raw, self._counted[0]) + 1
        except CorruptStoreError as exc:
            self._counted_error = exc
            raise
        self._counted_n = n
        self._counted_found = found
        self._counted_raised = True
        return str(n).encode()

    def _build_counted(self) -> bytes:
        try:
            if not self._counted_raised:
                raise _NoCounterYet
            return self._counted[1](self._counted_n, self._counted_found)
        except BaseException as exc:
            self._counted_error = exc
            raise

    def _put_counted(
        self,
        counter_key: bytes,
        key: bytes,
        build: Callable[[int, bytes | None], bytes],
        also: bytes | None,
    ) -> int:
        """One upsert statement (``_PUT_COUNTED``) writes the raised counter and the entry:
        outside a transaction it is one autocommit statement (as cheap as a plain put), inside
        one it joins it. The first counted write of a store goes through the generic
        transaction."""
        self._counted = (counter_key, build)
        self._counted_error = None
        self._counted_raised = False
        params = (counter_key, key, also)
        try:
            if self._depth:
                self._exec(_PUT_COUNTED, params)
            else:
                self._autocommit(_PUT_COUNTED, params)
        except BackendError as exc:
            error = self._counted_error
            if isinstance(error, _NoCounterYet):
                self._counted = _NO_COUNTED
                return super()._put_counted(counter_key, key, build, also)
            if error is not None:
                raise error from None
            raise exc
        finally:
            self._counted = _NO_COUNTED
        return self._counted_n

    def _put_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        # Counted by a C-level iterator on the way through: no Python step per pair.
        counter = itertools.count()
        pairs = map(itemgetter(0), zip(items, counter, strict=False))
        with self.transaction():
            try:
                self._conn.executemany(_UPSERT, pairs)
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc
        return next(counter)

    def _delete(self, key: bytes) -> bool:
        with self.transaction():
            cur = self._exec("DELETE FROM kv WHERE k = ?", (key,))
        return cur.rowcount > 0

    def _exec(self, sql: str, params: tuple[bytes | None, ...]) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    def _scan(
        self, prefix: bytes = b"", *, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        low = max(prefix, start) if start is not None else prefix
        high = prefix_successor(prefix)
        inclusive = True
        while True:
            op = ">=" if inclusive else ">"
            if high is None:
                sql = f"SELECT k, v FROM kv WHERE k {op} ? ORDER BY k LIMIT {_PAGE}"
                params: tuple[bytes, ...] = (low,)
            else:
                sql = f"SELECT k, v FROM kv WHERE k {op} ? AND k < ? ORDER BY k LIMIT {_PAGE}"
                params = (low, high)
            try:
                rows = self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc
            yield from rows  # BLOB columns come back as bytes already
            if len(rows) < _PAGE:
                return
            low = bytes(rows[-1][0])
            inclusive = False

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        conn = self._conn
        try:
            self._retry(lambda: conn.execute("BEGIN IMMEDIATE"))
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        try:
            backends.check_unmoved(self.path, self._file_id)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        self._depth = 0
        try:
            self._retry(lambda: conn.execute("COMMIT"))
        except sqlite3.Error as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise translate(exc, self.path) from exc

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        if self._depth:
            yield
            return
        conn = self._conn
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT 1 FROM kv LIMIT 1").fetchall()  # pins the read snapshot
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            try:
                conn.execute("COMMIT")
            except sqlite3.Error:
                pass

    def files(self) -> list[str]:
        return [p for p in (self.path, self.path + "-wal", self.path + "-shm") if os.path.exists(p)]

    def _check(self) -> list[str]:
        try:
            rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.Error as exc:
            return [f"integrity check failed: {exc}"]
        problems = [row[0] for row in rows if row[0] != "ok"]
        return problems

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.close()
        except sqlite3.Error:
            pass
        backends.sqlite_file_closed(self._file_id)
