"""The LMDB engine: one memory-mapped data file at the store's path plus its ``-lock`` file.

Durability: both modes commit with ``sync=True`` (the data pages are fsynced before a commit
returns). ``normal`` adds ``metasync=False``: the meta page is written but not fsynced, so a
killed process loses nothing and a power loss may undo the last commit but never corrupts the
file. ``full`` uses ``metasync=True``: every acknowledged commit survives a power loss. When a
process already has the file open in ``normal`` mode (one LMDB environment per file per process,
see below), a ``full`` backend object on it calls ``env.sync(True)`` after each commit instead,
which gives the same guarantee.

The map starts at 64 MiB, doubles ahead of need when the file passes half of it, and doubles
whenever LMDB reports it full; another process's growth is adopted on ``MapResizedError``. A
write transaction keeps a log of its operations so that it can be replayed after the map has
grown. Growing needs LMDB's write lock released for a moment: other threads of this process
still wait (the transaction keeps the process's writer baton), but if another process committed
in between, every read the transaction made (``get``, ``delete``'s result, scanned pages) is
checked against the new state first, and the transaction is rolled back with ``StoreBusyError``
when one of them changed.

LMDB forbids opening one file twice in a process (its fcntl locks belong to the process), so
every backend object on a file in this process shares one environment. Changing the map size
invalidates every open transaction of that environment, so a resize waits until no backend
object of the process has a transaction or snapshot open. An environment cannot be used or
reopened in a child created by ``fork()`` while the parent has it open (use ``spawn``).
LMDB keys are 1 to 511 bytes.
"""

from __future__ import annotations

import errno
import marshal
import os
import time
from _operator import itemgetter
from bisect import bisect_left
from itertools import chain, islice

import lmdb

from prontodb._lazy import contextmanager
from prontodb._threadsync import Condition, Lock, get_ident
from prontodb.backends import _lmdb_pages as pages
from prontodb.backends import check_unmoved, refuse_special
from prontodb.backends.base import Backend, parse_counter, prefix_successor
from prontodb.errors import (
    BackendError,
    CorruptStoreError,
    ReadOnlyStoreError,
    StorageFullError,
    StoreBusyError,
    StoreNotFoundError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Callable, Iterable, Iterator
    from typing import IO, Any

INITIAL_MAP_SIZE = 64 * 1024 * 1024
MAX_READERS = 1024
#: A reader table this full is a warning (``info()``, shown by ``doctor``).
READERS_WARNING = 0.8
BUSY_TIMEOUT_S = 60.0
#: Items read per short read transaction by a scan outside snapshot()/transaction().
SCAN_PAGE = 1000
#: The first chunk a scan page takes from the cursor (then doubling up to SCAN_PAGE).
_FIRST_CHUNK = 64
#: ``get_split`` reads values over this size through buffers into the map (one copy less).
_SPLIT_COPY = 64 << 10
#: Pairs that ``put_many`` takes from its iterable, checks and writes at a time.
PUT_MANY_CHUNK = 4096
#: At most this many pairs (and bytes) after a full first chunk are set aside by put_many.
TAIL_PAIRS = 64
TAIL_BYTES = 1 << 20
#: Grow the map before a write transaction once the file's high-water mark passes this share.
_GROW_AHEAD = 0.5

_FULL_CODES = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: An I/O error on a file system with less room than this is reported as a full disk.
_FULL_BELOW = 16 << 20
_READONLY_CODES = (errno.EACCES, errno.EPERM, errno.EROFS)
_CORRUPT = tuple(
    getattr(lmdb, name)
    for name in (
        "InvalidError",
        "CorruptedError",
        "VersionMismatchError",
        "PageNotFoundError",
        "PanicError",
        "IncompatibleError",
        "BadChecksumError",
    )
    if hasattr(lmdb, name)
)


def translate(exc: BaseException, path: str) -> BackendError:
    """Map an lmdb (or OS) error onto the ProntoDB hierarchy (the caller keeps it as __cause__)."""
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    if isinstance(exc, lmdb.MapFullError | lmdb.DiskError) or code in _FULL_CODES:
        return StorageFullError(f"{path}: no space left for the store ({exc})")
    if code == errno.EIO and _disk_full(path):
        # LMDB turns a short write (the file system ran out of space mid-commit) into EIO.
        return StorageFullError(f"{path}: no space left for the store: the disk is full ({exc})")
    if isinstance(exc, lmdb.ReadersFullError | lmdb.LockError) or code == errno.EBUSY:
        return StoreBusyError(f"{path}: store is busy ({exc})")
    if isinstance(exc, lmdb.ReadonlyError) or code in _READONLY_CODES:
        return ReadOnlyStoreError(f"{path}: store is read-only ({exc})")
    if isinstance(exc, _CORRUPT):
        return CorruptStoreError(f"{path}: store file is damaged or not an LMDB store ({exc})")
    if isinstance(exc, lmdb.BadValsizeError):
        return BackendError(f"{path}: LMDB keys must be 1 to 511 bytes long ({exc})")
    return BackendError(f"{path}: {exc}")


def _disk_full(path: str) -> bool:
    """True when the file system holding ``path`` has (almost) no room left."""
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _FULL_BELOW


def create_private_file(path: str) -> bool:
    """Create ``path`` empty with mode 0600 if it does not exist (whatever the umask).

    Returns True when this call created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return True


class _Conflict(Exception):
    """A read made by a transaction no longer holds after its replay."""


class _SharedEnv:
    """The one ``lmdb.Environment`` of a store file in this process, shared by every backend
    object on that file, with the bookkeeping that makes resizing its map safe.

    Long-lived users (write transactions, snapshots) register under ``cond`` per thread; short
    reads only raise their backend object's ``_reading`` flag, which a resizer polls. Both sides
    set their own mark before looking at the other's, so a resize never unmaps a live reader.
    """

    def __init__(
        self,
        env: Any,
        file_id: tuple[int, int],
        metasync: bool,
        readonly: bool,
        guard: pages.PageGuard,
    ) -> None:
        self.env = env
        self.guard = guard
        self.page_size: int = env.stat()["psize"]
        self.max_key: int = env.max_key_size()
        self.file_id = file_id
        self.generation = _generation
        self.metasync = metasync
        self.readonly = readonly
        self.refs = 0
        self.members: set[LmdbBackend] = set()
        self.cond = Condition()
        self.resizing = False
        self.holders: dict[int, int] = {}
        self.long_count = 0
        self.writer: int | None = None

    def holds(self) -> bool:
        """True when the calling thread has a transaction or snapshot open on this file."""
        return bool(self.holders.get(get_ident()))

    def take_baton(self, path: str) -> None:
        """Become this process's one writer on the file until ``give_baton``. A transaction
        keeps it while it aborts, grows the map and replays, so that no other thread of this
        process can commit in between (LMDB's own write lock is released meanwhile)."""
        me = get_ident()
        with self.cond:
            while self.writer is not None:
                if self.writer == me:
                    raise StoreBusyError(
                        f"{path}: this thread already has a write transaction open on this "
                        "store through another backend object"
                    )
                if self.resizing and self.holders.get(me):
                    raise StoreBusyError(
                        f"{path}: cannot write while this thread holds a snapshot and another "
                        "thread is growing the LMDB map"
                    )
                self.cond.wait()
            self.writer = me

    def give_baton(self) -> None:
        with self.cond:
            self.writer = None
            self.cond.notify_all()

    def enter_long(self) -> None:
        me = get_ident()
        with self.cond:
            while self.resizing and not self.holders.get(me):
                self.cond.wait()
            self.holders[me] = self.holders.get(me, 0) + 1
            self.long_count += 1

    def leave_long(self) -> None:
        me = get_ident()
        with self.cond:
            left = self.holders.get(me, 0) - 1
            if left > 0:
                self.holders[me] = left
            else:
                self.holders.pop(me, None)
            self.long_count -= 1
            self.cond.notify_all()

    def wait_resized(self) -> None:
        with self.cond:
            while self.resizing:
                self.cond.wait()

    def resize(self, path: str, grow_from: int | None, *, wait: bool = True) -> bool:
        """Double the map (when it is still ``grow_from`` bytes), or adopt the size recorded in
        the file (``grow_from=None``). Returns False when ``wait`` is off and it would wait."""
        me = get_ident()
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        with self.cond:
            while self.resizing:
                if self.holders.get(me) or not wait:
                    return self._cannot_wait(path, wait)
                self.cond.wait()
            self.resizing = True
            self.cond.notify_all()  # baton waiters re-check whether they block this resize
        try:
            while True:
                with self.cond:
                    if not self.long_count and not any(m._reading for m in self.members):
                        self._set_mapsize(path, grow_from)
                        return True
                    if self.holders.get(me) or not wait:
                        return self._cannot_wait(path, wait)
                    if time.monotonic() > deadline:
                        raise StoreBusyError(
                            f"{path}: the LMDB map must grow, but other threads kept "
                            f"transactions open for {BUSY_TIMEOUT_S:.0f} s"
                        )
                    self.cond.wait(0.001)
        finally:
            with self.cond:
                self.resizing = False
                self.cond.notify_all()

    @staticmethod
    def _cannot_wait(path: str, wait: bool) -> bool:
        if not wait:
            return False
        raise StoreBusyError(
            f"{path}: the LMDB map must grow, but this thread holds another transaction or "
            "snapshot on the same store"
        )

    def _set_mapsize(self, path: str, grow_from: int | None) -> None:
        env = self.env
        try:
            if grow_from is None:
                env.set_mapsize(0)
                return
            current = env.info()["map_size"]
            if current > grow_from:
                return  # another thread already grew it
            env.set_mapsize(current * 2)
        except lmdb.Error as exc:
            raise StorageFullError(f"{path}: the LMDB map is full and cannot grow ({exc})") from exc


_registry_lock = Lock()
_open_envs: dict[tuple[int, int], _SharedEnv] = {}
_inherited: list[_SharedEnv] = []
_generation = 0


def _after_fork_in_child() -> None:
    """A forked child must not use (or close) its parent's environments: forget them here."""
    global _registry_lock, _generation
    _generation += 1
    _registry_lock = Lock()
    _inherited.extend(_open_envs.values())  # kept alive so nothing closes them in the child
    _open_envs.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _acquire(path: str, durability: str, create: bool) -> _SharedEnv:
    """Return the shared environment of ``path`` (opening it if needed) with one more reference.

    Without ``create`` the data file is held open (pinned) from the existence check until the
    environment is open, so that a store that vanishes in between is noticed (see
    :func:`_open_env`) instead of being created anew by liblmdb."""
    with _registry_lock:
        pin = None if create else _pin(path)
        try:
            file_id = _file_id(path) if pin is None else _fd_id(pin)
            shared = _open_envs.get(file_id) if file_id is not None else None
            if shared is None:
                shared = _open_env(path, durability, pin)
                _open_envs[shared.file_id] = shared
        finally:
            if pin is not None:
                os.close(pin)
        shared.refs += 1
        return shared


def _pin(path: str) -> int:
    """A read-only descriptor on the existing data file at ``path`` (StoreNotFoundError when
    there is none): the file this open must end up on."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise StoreNotFoundError(f"no store at {path}") from None
    except OSError as exc:
        raise translate_os(exc, path) from exc


def _fd_id(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def translate_os(exc: OSError, path: str) -> BackendError:
    """An OSError met while opening the store's files, as a ProntoDB error."""
    if exc.errno in _READONLY_CODES:
        return ReadOnlyStoreError(f"{path}: cannot open store ({exc.strerror})")
    return BackendError(f"{path}: cannot open store ({exc.strerror})")


def _release(shared: _SharedEnv) -> None:
    with _registry_lock:
        shared.refs -= 1
        if shared.refs > 0:
            return
        if _open_envs.get(shared.file_id) is shared:
            del _open_envs[shared.file_id]
        if shared.generation == _generation:  # never close a parent's environment in a child
            shared.env.close()
            shared.guard.close()


def _open_env(path: str, durability: str, pin: int | None) -> _SharedEnv:
    """Open the environment of the data file at ``path``: the existing file ``pin`` holds
    open, or (``pin`` None) a file created here when there is none.

    liblmdb itself always opens the data file with ``O_CREAT``: if the pinned file was renamed
    or removed (a ``cursor migrate`` retiring it) before liblmdb opened the path, liblmdb made
    a fresh empty file there. That is found by comparing the path's file with the pinned one
    after the open; the environment is closed, a never-committed file at the path is removed,
    and StoreNotFoundError is raised: an open never creates a store it was not told to."""
    try:
        created = False if pin is not None else create_private_file(path)
    except OSError as exc:
        if exc.errno in _READONLY_CODES:
            raise ReadOnlyStoreError(f"{path}: cannot create store ({exc.strerror})") from exc
        raise BackendError(f"{path}: cannot create store ({exc.strerror})") from exc
    try:
        create_private_file(path + "-lock")
    except OSError:
        pass  # a read-only directory: LMDB reports what it cannot do itself
    new = created or os.path.getsize(path) == 0
    options: dict[str, Any] = dict(
        subdir=False,
        mode=0o600,
        max_readers=MAX_READERS,
        max_dbs=0,
        lock=True,
        readahead=False,
        sync=True,
        metasync=durability == "full",
        max_spare_txns=1,
        # An existing file keeps its own map size; a new one starts small.
        map_size=INITIAL_MAP_SIZE if new else 0,
    )
    if new:
        options["lib_version"] = 0  # the 0.9 file format, whatever LMDB_DEFAULT_LIB_VERSION says
    readonly = False
    try:
        env = _lmdb_open(path, options)
    except lmdb.Error as exc:
        error = translate(exc, path)
        if not isinstance(error, ReadOnlyStoreError) or new:
            raise _explain_open_error(error, exc, path) from exc
        try:
            env = lmdb.open(path, readonly=True, **options)
        except lmdb.Error:
            raise error from exc
        readonly = True
    if pin is not None and _file_id(path) != _fd_id(pin):
        _give_up_vanished(env, path)
    try:
        _check_not_truncated(env, path)
        # Without a reader, a writer may recycle the root page right after we read the meta
        # page: damage is only believed when it is seen three times.
        damage = verify_pages(path, deep=False)
        for _ in range(2):
            if not damage:
                break
            time.sleep(0.01)
            damage = verify_pages(path, deep=False)
        if damage:
            raise CorruptStoreError(f"{path}: store file is damaged: {damage[0]}")
        if env.info()["map_size"] < INITIAL_MAP_SIZE and not readonly:
            env.set_mapsize(INITIAL_MAP_SIZE)
        env.reader_check()
    except lmdb.Error as exc:
        env.close()
        raise translate(exc, path) from exc
    except BaseException:
        env.close()
        raise
    file_id = _file_id(path) if pin is None else _fd_id(pin)
    if file_id is None:  # removed right after it was created here
        env.close()
        raise StoreNotFoundError(f"no store at {path} (it was removed while being opened)")
    # The page guard reads the data file through a descriptor of its own (see _lmdb_pages).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        env.close()
        if exc.errno == errno.ENOENT:
            raise StoreNotFoundError(
                f"no store at {path} (it was moved or removed while being opened)"
            ) from exc
        raise BackendError(f"{path}: cannot read the store ({exc.strerror})") from exc
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != file_id:
        os.close(fd)
        env.close()
        raise StoreNotFoundError(
            f"no store at {path} (it was moved or replaced while being opened)"
        )
    guard = pages.PageGuard(path, fd)
    return _SharedEnv(env, file_id, durability == "full", readonly, guard)


def _give_up_vanished(env: Any, path: str) -> None:
    """The store this open was told to open vanished before liblmdb opened its path: close
    the environment liblmdb opened instead, remove the file if it is one liblmdb just made
    (never committed to, no bigger than its two meta pages), and raise StoreNotFoundError."""
    try:
        fresh = env.info()["last_txnid"] == 0
        psize = env.stat()["psize"]
    except lmdb.Error:
        fresh, psize = False, 0
    env.close()
    try:
        if fresh and os.path.getsize(path) <= 2 * psize:
            os.unlink(path)
    except OSError:
        pass  # gone already, or not ours to remove
    raise StoreNotFoundError(
        f"no store at {path} (it was moved or removed while being opened; nothing was written)"
    )


def _lmdb_open(path: str, options: dict[str, Any]) -> Any:
    try:
        return lmdb.open(path, **options)
    except TypeError:
        if "lib_version" not in options:
            raise
        # py-lmdb before 3.0 has one engine (0.9) and no lib_version argument.
        return lmdb.open(path, **{k: v for k, v in options.items() if k != "lib_version"})


def _check_not_truncated(env: Any, path: str) -> None:
    """Refuse a data file shorter than the pages its meta page says are in use: LMDB maps the
    file, and touching a page past its end kills the process with SIGBUS."""
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = os.path.getsize(path)
    if size < needed and verify_pages(path, deep=True):
        # A short file alone is not damage: LMDB counts page numbers a commit never writes
        # (pages freed again in the same transaction), so a sound store can end before its
        # last page. It is damage when the trees reference a page past the end: the walk says.
        raise CorruptStoreError(
            f"{path}: store file is damaged: truncated to {size} bytes, its pages need {needed}"
        )


def _explain_open_error(error: BackendError, exc: lmdb.Error, path: str) -> BackendError:
    if "already open in this process" not in str(exc):
        return error
    if any(shared.file_id == _file_id(path) for shared in _inherited):
        return BackendError(
            f"{path}: this LMDB store is open in the parent of this forked process; LMDB "
            "cannot share it across fork(): open stores after forking, or use 'spawn'"
        )
    return BackendError(f"{path}: the LMDB environment is already open in this process ({exc})")


class LmdbBackend(Backend):
    """Keys and values in the main (unnamed) database of one LMDB environment."""

    name = "lmdb"

    def __init__(self, path: str, *, durability: str = "normal", create: bool = True) -> None:
        path = os.path.realpath(path)  # one lock file per data file, however it is reached
        super().__init__(path, durability=durability, create=create)
        refuse_special(path)  # a FIFO would block, a device is nobody's store
        refuse_special(path + "-lock")
        self._closed = True
        self._reading = False
        self._txn: Any = None
        self._txn_id = 0
        self._log: list[tuple[Any, ...]] = []
        self._spool: IO[bytes] | None = None
        self._broken: BackendError | None = None
        self._snap: Any = None
        self._snap_meta: pages.Meta | None = None
        self._large_values = False
        self._baton = False
        shared = _acquire(path, durability, create)
        self._shared: _SharedEnv = shared
        self._env = shared.env
        self._sync_after_commit = durability == "full" and not shared.metasync
        with shared.cond:
            shared.members.add(self)
        self._closed = False

    # -- reads ---------------------------------------------------------------------------

    def _get(self, key: bytes) -> bytes | None:
        if self._base_txn_depth:
            return self._txn_get(key)
        try:
            if self._snap is not None:
                self._check_get(self._snap_meta, key)
                found: bytes | None = self._snap.get(key)
                return found
            txn, meta = self._begin_checked()
            try:
                self._check_get(meta, key)
                value: bytes | None = txn.get(key)
                return value
            finally:
                txn.abort()
                self._reading = False
        except lmdb.BadValsizeError:
            return None  # an empty or over-long key can never be stored
        except lmdb.Error as exc:
            raise translate(exc, self.path) from exc

    def _get_split(self, key: bytes, head: int) -> tuple[bytes, bytes] | None:
        """Outside a transaction or snapshot: a small value (the usual case) is read through a
        plain read transaction and cut; while this backend object's values are large, through
        one that hands out buffers into the map, so each part is copied once. (A buffer
        transaction costs about 0.8 µs more to begin, too much for a 100-byte get; which one
        to use is learnt from the previous value's size, so a switch costs one extra copy.)

        This is a committed get's hot path: when every page of the current snapshot is known
        to be sound and no resize or fork is in the way, the read transaction is begun here
        (the steps of ``_begin_short``, in its order: ``_reading`` is raised before
        ``resizing`` is looked at); anything else goes through ``_begin_checked``."""
        if self._base_txn_depth or self._snap is not None:
            return super()._get_split(key, head)
        large = self._large_values
        shared = self._shared
        try:
            self._reading = True
            txn = None
            if not (self._closed or shared.resizing or shared.generation != _generation):
                try:
                    txn = self._env.begin(buffers=large)
                except lmdb.MapResizedError:
                    pass  # the slow path adopts the new size
                except BaseException:
                    self._reading = False
                    raise
                else:
                    whole = shared.guard.whole_from
                    if whole is None or txn.id() < whole:
                        txn.abort()  # its pages need a check: begin again on the slow path
                        txn = None
            if txn is None:
                self._reading = False
                txn, meta = self._begin_checked(buffers=large)
                if meta is not None:
                    try:
                        self._check_get(meta, key)
                    except BaseException:
                        txn.abort()
                        self._reading = False
                        raise
            try:
                found = txn.get(key)
                if found is None:
                    return None
                self._large_values = len(found) > _SPLIT_COPY
                if not large:
                    return found[:head], found[head:]
                view = memoryview(found)
                return bytes(view[:head]), bytes(view[head:])
            finally:
                txn.abort()
                self._reading = False
        except lmdb.BadValsizeError:
            return None  # an empty or over-long key can never be stored
        except lmdb.Error as exc:
            raise translate(exc, self.path) from exc

    def _txn_get(self, key: bytes) -> bytes | None:
        txn = self._live_txn()
        try:
            value: bytes | None = txn.get(key)
        except lmdb.BadValsizeError:
            return None
        except lmdb.Error as exc:
            raise translate(exc, self.path) from exc
        self._log.append(("get", _as_bytes(key), value))
        return value

    def _scan(
        self, prefix: bytes = b"", *, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        prefix = bytes(prefix)
        low = max(prefix, bytes(start)) if start is not None else prefix
        inclusive = True
        while True:
            page = self._page(prefix, low, inclusive)
            yield from page
            if len(page) < SCAN_PAGE:
                return
            low = page[-1][0]
            inclusive = False

    def _page(self, prefix: bytes, low: bytes, inclusive: bool) -> list[tuple[bytes, bytes]]:
        """Read the next page of a scan through the open transaction, snapshot or a short read."""
        try:
            if self._base_txn_depth:
                page = _read_page(self._live_txn(), prefix, low, inclusive)
                self._log.append(("page", (prefix, low, inclusive), hash(tuple(page))))
                return page
            if self._snap is not None:
                limit = self._check_range(self._snap_meta, prefix, low)
                return _read_page(self._snap, prefix, low, inclusive, limit)
            txn, meta = self._begin_checked()
            try:
                limit = self._check_range(meta, prefix, low)
                return _read_page(txn, prefix, low, inclusive, limit)
            finally:
                txn.abort()
                self._reading = False
        except lmdb.Error as exc:
            raise translate(exc, self.path) from exc

    # -- page checks before liblmdb reads (see _lmdb_pages) ---------------------------------

    def _begin_checked(self, *, buffers: bool = False) -> tuple[Any, pages.Meta | None]:
        """A short read transaction and the meta page of its snapshot, or None for the meta
        when every page of that snapshot is known to be sound (then no walk is needed)."""
        guard = self._shared.guard
        while True:
            txn = self._begin_short(buffers=buffers)
            whole = guard.whole_from
            if whole is not None and txn.id() >= whole:
                return txn, None
            try:
                meta = guard.meta(txn.id())
            except pages.Damage as exc:
                txn.abort()
                self._reading = False
                raise self._damaged(exc) from None
            except BaseException:
                txn.abort()
                self._reading = False
                raise
            if meta is not None:
                return txn, meta
            txn.abort()  # two commits overwrote its meta page meanwhile: begin again
            self._reading = False

    def _check_get(self, meta: pages.Meta | None, key: bytes) -> None:
        """Check the pages liblmdb will read to look ``key`` up (CorruptStoreError)."""
        if meta is None:
            return
        try:
            self._shared.guard.check_get(meta, bytes(key))
        except pages.Damage as exc:
            raise self._damaged(exc) from None

    def _check_range(self, meta: pages.Meta | None, prefix: bytes, low: bytes) -> int | None:
        """Check the pages the next scan page will read; how many entries from ``low`` on the
        cursor may pass over (None: no limit)."""
        if meta is None:
            return None
        try:
            return self._shared.guard.check_range(
                meta, low, prefix_successor(prefix), SCAN_PAGE + 2
            )
        except pages.Damage as exc:
            raise self._damaged(exc) from None

    def _check_before_write(self) -> None:
        """Before a write transaction's first read: every page of the committed trees is
        checked once per process (liblmdb's writes read the paths they change, their
        neighbours and the free-list tree) — for files up to PAGE_CHECK_ON_WRITE_BYTES."""
        guard = self._shared.guard
        txn = self._txn
        base = txn.id() - 1  # the snapshot a write transaction starts from
        if guard.whole_from is not None and base >= guard.whole_from:
            return
        try:
            if guard.file_size() > PAGE_CHECK_ON_WRITE_BYTES:
                return
            meta = guard.meta(base)
            if meta is not None:
                guard.check_whole(meta)
        except pages.Damage as exc:
            self._end_txn()
            raise self._damaged(exc) from None

    def _damaged(self, exc: pages.Damage) -> CorruptStoreError:
        return CorruptStoreError(f"{self.path}: store file is damaged: {exc}")

    # -- writes --------------------------------------------------------------------------

    def _put(self, key: bytes, value: bytes) -> None:
        key, value = _as_bytes(key), _as_bytes(value)
        with self.transaction():
            self._apply(("put", key, value))

    def _put_counted(
        self,
        counter_key: bytes,
        key: bytes,
        build: Callable[[int, bytes | None], bytes],
        also: bytes | None,
    ) -> int:
        """One committed set (the store revision's hot path): the same transaction as the
        base class's unit of work, without its layers. LMDB's writer holds the write lock, so
        the unit never conflicts and needs no retry loop (``run_transaction``); the two reads
        and two writes run straight on the open transaction, logged for a map-growth replay
        as ``_txn_get``/``_put`` log them. Inside an open transaction: the generic form."""
        if self._base_txn_depth:
            return super()._put_counted(counter_key, key, build, also)
        with self._transaction():  # what Backend.transaction does for the outermost level
            self._base_txn_depth = 1
            try:
                n = parse_counter(self._txn_get(counter_key), counter_key) + 1
                value = build(n, None if also is None else self._txn_get(also))
                self._apply(("put", _as_bytes(counter_key), str(n).encode()))
                self._apply(("put", _as_bytes(key), _as_bytes(value)))
            finally:
                self._base_txn_depth = 0
        return n

    def _put_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        # Written in chunks as they come, so memory stays flat whatever the number of pairs:
        # each chunk is checked in bulk (C-level iterators, no Python step per pair), written,
        # and spooled to a temporary file for a replay after the map grows. The pairs of a
        # list are in memory already: its chunks (new lists of the caller's pairs, tuples of
        # bytes, which nothing can change) are kept for the replay instead of a spooled copy.
        # A bad key or a failing iterator rolls the whole transaction back — also an outer
        # one, which is then broken (its commit raises) so that half a batch never commits.
        # A large batch sets aside the few pairs after it (see _set_aside) until it is written.
        nested = self._base_txn_depth > 0
        limit = self._shared.max_key
        count = 0
        in_memory = type(items) is list
        aside: list[tuple[bytes, bytes]] = []
        with self.transaction():
            try:
                source = iter(items)
                while chunk := list(islice(source, PUT_MANY_CHUNK)):
                    if set(map(type, chain.from_iterable(chunk))) != {bytes}:
                        chunk = [(_as_bytes(key), _as_bytes(value)) for key, value in chunk]
                    lengths = list(map(len, map(itemgetter(0), chunk)))
                    if min(lengths) < 1 or max(lengths) > limit:
                        bad = next(n for n in lengths if not 0 < n <= limit)
                        raise BackendError(
                            f"{self.path}: LMDB keys must be 1 to {limit} bytes long, got {bad}"
                        )
                    keys = list(map(itemgetter(0), chunk))
                    if not count and len(chunk) == PUT_MANY_CHUNK:
                        aside = self._set_aside(min(keys), max(keys))
                    elif aside and max(keys) >= aside[0][0]:
                        self._apply(("many", aside, True))  # this chunk reaches them: back first
                        aside = []
                    self._apply(("many", chunk, in_memory))
                    count += len(chunk)
                if aside:
                    self._apply(("many", aside, True))
            except BaseException as exc:
                if nested and self._txn is not None:
                    error = (
                        exc
                        if isinstance(exc, BackendError)
                        else BackendError(f"{self.path}: put_many failed: {exc!r}")
                    )
                    self._break(error)
                raise
        return count

    def _set_aside(self, low: bytes, high: bytes) -> list[tuple[bytes, bytes]]:
        """Delete, for the length of a large ``put_many``, the few pairs whose keys sort after
        its first chunk (``low``..``high``), and return them to be written back after it.

        LMDB fills its leaf pages only where keys are added at the very end of the tree, and
        splits a page in half anywhere else; the Store's info keys sort after the entries, so
        a bulk load of new keys would leave every page half full: twice the pages, the memory
        a write transaction holds until its commit, and the file. Nothing is set aside when a
        key of the chunk falls among them, or when there are more than TAIL_PAIRS of them or
        TAIL_BYTES (a load between existing data). The pairs are logged as reads, so a replay
        after another process changed one of them rolls back instead of writing it back stale.
        """
        txn = self._live_txn()
        try:
            with txn.cursor() as cursor:
                if not cursor.set_range(low):
                    return []
                tail = list(islice(cursor.iternext(), TAIL_PAIRS + 1))
        except lmdb.Error as exc:
            raise translate(exc, self.path) from exc
        if (
            len(tail) > TAIL_PAIRS
            or tail[0][0] <= high
            or sum(map(len, chain.from_iterable(tail))) > TAIL_BYTES
        ):
            return []
        for key, value in tail:
            self._log.append(("get", key, value))
            self._apply(("del", key, None))
        return tail

    def _delete(self, key: bytes) -> bool:
        key = _as_bytes(key)
        if not 0 < len(key) <= self._shared.max_key:
            return False  # an empty or over-long key can never be stored
        with self.transaction():
            return bool(self._apply(("del", key, None)))

    def _apply(self, op: tuple[Any, ...]) -> Any:
        """Run one write inside the open transaction, growing the map when it is full, and log
        it (with what it observed) for a replay."""
        while True:
            txn = self._live_txn()
            try:
                result = _run_op(txn, op)
                break
            except lmdb.MapFullError as exc:
                self._recover(exc)
            except lmdb.Error as exc:
                raise translate(exc, self.path) from exc
        if op[0] == "del":
            op = ("del", op[1], result)
        elif op[0] == "many":
            op = ("many", op[1], True) if op[2] else self._spooled(op[1])
        self._log.append(op)
        return result

    def _spooled(self, pairs: list[tuple[bytes, bytes]]) -> tuple[Any, ...]:
        """Keep a written chunk for a replay in this transaction's spool file, not in memory."""
        if self._spool is None:
            import tempfile  # a large write transaction only (start-up: docs/performance.md)

            self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the transaction
        spool = self._spool
        spool.seek(0, os.SEEK_END)
        offset = spool.tell()
        blob = marshal.dumps(pairs)
        spool.write(blob)  # read back whole: marshal.load from a file reads in tiny pieces
        return ("spooled", spool, offset, len(blob))

    def _recover(self, exc: lmdb.Error) -> None:
        """The map is full: abort, grow the map, begin again and replay the log."""
        cause: lmdb.Error = exc
        while True:
            grow_from = self._env.info()["map_size"]
            self._end_txn()
            try:
                self._env.reader_check()  # a dead reader pins pages that could be reused
            except lmdb.Error:
                pass
            try:
                self._shared.resize(self.path, grow_from)
                self._start_txn()
            except BackendError as error:
                self._break(error)
                raise error from cause
            # The log's reads are known to hold at self._txn_id; any later commit by another
            # process means each of them must be checked again during this replay.
            replay_id = self._txn.id()
            try:
                _replay(self._txn, self._log, validate=replay_id != self._txn_id)
                self._txn_id = replay_id
                return
            except lmdb.MapFullError as again:
                cause = again
            except _Conflict:
                busy = StoreBusyError(
                    f"{self.path}: transaction rolled back: another process changed data it "
                    "had read while the LMDB map was being grown; nothing was written, retry"
                )
                self._break(busy)
                raise busy from cause
            except lmdb.Error as failure:
                translated = translate(failure, self.path)
                self._break(translated)
                raise translated from failure

    def _break(self, error: BackendError) -> None:
        """Abandon the open transaction: nothing in it will commit."""
        self._end_txn()
        self._broken = error

    def _live_txn(self) -> Any:
        if self._txn is None:
            raise BackendError(
                f"{self.path}: the transaction was rolled back after an error: {self._broken}"
            ) from self._broken
        return self._txn

    def _check_writable(self) -> None:
        if self._closed:
            raise BackendError(f"{self.path}: store is closed")
        if self._shared.readonly:
            raise ReadOnlyStoreError(
                f"{self.path}: store is read-only (opened without write access)"
            )

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # The base class calls this for the outermost transaction only, never in a snapshot.
        self._check_writable()
        self._check_fork()
        shared = self._shared
        shared.take_baton(self.path)
        self._baton = True
        try:
            self._grow_ahead()
            self._start_txn()
            try:
                check_unmoved(self.path, shared.file_id)
            except BaseException:
                self._end_txn()
                raise
            self._txn_id = self._txn.id()
            self._log = []
            self._broken = None
            try:
                yield
            except BaseException:
                self._end_txn()
                raise
            self._commit()
        finally:
            self._log = []
            if self._spool is not None:
                self._spool.close()
                self._spool = None
            if self._baton:
                self._baton = False
                shared.give_baton()

    def _commit(self) -> None:
        if self._closed:
            raise BackendError(f"{self.path}: store closed inside a transaction; nothing committed")
        if self._txn is None:
            broken, self._broken = self._broken, None
            raise BackendError(
                f"{self.path}: transaction rolled back after an error: {broken}"
            ) from broken
        while True:
            try:
                self._txn.commit()
                break
            except lmdb.MapFullError as exc:
                self._recover(exc)  # LMDB aborted the transaction: replay it into a larger map
            except lmdb.Error as exc:
                self._end_txn()
                raise translate(exc, self.path) from exc
        try:
            if self._sync_after_commit:
                self._env.sync(True)
        except lmdb.Error as exc:
            raise translate(exc, self.path) from exc
        finally:
            self._txn = None
            self._shared.leave_long()

    def _grow_ahead(self) -> None:
        """Grow the map before it is nearly full, so that growing inside a transaction (which
        briefly releases the write lock) stays rare."""
        try:
            info = self._env.info()
        except lmdb.Error:
            return
        used = (info["last_pgno"] + 1) * self._shared.page_size
        if used > info["map_size"] * _GROW_AHEAD:
            self._shared.resize(self.path, info["map_size"], wait=False)

    def _start_txn(self) -> None:
        """Begin the write transaction, adopting a map that another process has grown."""
        self._txn = self._begin_long(write=True)
        self._check_before_write()

    def _begin_long(self, *, write: bool) -> lmdb.Transaction:
        """Begin a transaction held for a block (counted as long-lived, so map growth waits
        for it), adopting a map that another process has grown meanwhile."""
        shared = self._shared
        self._check_fork()
        while True:
            shared.enter_long()
            try:
                txn: lmdb.Transaction = self._env.begin(write=write)
                return txn
            except lmdb.MapResizedError:
                shared.leave_long()
                shared.resize(self.path, None)
            except lmdb.Error as exc:
                shared.leave_long()
                raise translate(exc, self.path) from exc
            except BaseException:
                shared.leave_long()
                raise

    def _end_txn(self) -> None:
        txn, self._txn = self._txn, None
        if txn is None:
            return
        try:
            txn.abort()
        except lmdb.Error:
            pass
        self._shared.leave_long()

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        # The outermost read view only: inside a transaction or another snapshot the base
        # class joins the view that is already fixed.
        snap = self._begin_snapshot()
        self._snap = snap
        try:
            yield
        finally:
            if self._snap is snap:  # close() may have released it already
                self._end_snapshot()

    def _begin_snapshot(self) -> Any:
        """A long read transaction, with the meta page of its snapshot in ``_snap_meta``
        (None when every page of it is known to be sound)."""
        guard = self._shared.guard
        while True:
            snap = self._begin_long(write=False)
            whole = guard.whole_from
            if whole is not None and snap.id() >= whole:
                self._snap_meta = None
                return snap
            try:
                self._snap_meta = guard.meta(snap.id())
            except pages.Damage as exc:
                snap.abort()
                self._shared.leave_long()
                raise self._damaged(exc) from None
            if self._snap_meta is not None:
                return snap
            snap.abort()  # two commits overwrote its meta page meanwhile: begin again
            self._shared.leave_long()

    def _end_snapshot(self) -> None:
        snap, self._snap = self._snap, None
        self._snap_meta = None
        try:
            snap.abort()
        except lmdb.Error:
            pass
        self._shared.leave_long()

    def _begin_short(self, *, buffers: bool = False) -> Any:
        """Begin a short read transaction (``buffers``: its reads are memoryviews into the map,
        valid until it ends); the caller aborts it and clears ``_reading``."""
        if self._closed:
            raise BackendError(f"{self.path}: store is closed")
        shared = self._shared
        if shared.generation != _generation:
            self._check_fork()
        while True:
            self._reading = True
            if shared.resizing and not shared.holds():
                self._reading = False
                shared.wait_resized()
                continue
            try:
                return self._env.begin(buffers=buffers)
            except lmdb.MapResizedError:
                self._reading = False
                shared.resize(self.path, None)
            except BaseException:
                self._reading = False
                raise

    def _check_fork(self) -> None:
        if self._closed:
            raise BackendError(f"{self.path}: store is closed")
        if self._shared.generation != _generation:
            raise BackendError(
                f"{self.path}: this LMDB store was opened before fork(); a child process must "
                "open it again (and the parent must not have it open)"
            )

    # -- maintenance -----------------------------------------------------------------------

    def info(self) -> dict[str, object]:
        """The reader table: slots in use of :data:`MAX_READERS`, and slots held by processes
        that no longer run, which are cleared here (liblmdb's ``reader_check``, which every
        open also runs) and reported under ``warnings``, with a table at least
        :data:`READERS_WARNING` full. ``notes`` holds the slot count as one line."""
        self._require_open()
        try:
            table = self._env.readers()
        except lmdb.Error as exc:
            raise translate(exc, self.path) from exc
        pids = [int(row.split()[0]) for row in table.splitlines()[1:] if row.strip()]
        stale = sorted({pid for pid in pids if not _alive(pid)})
        warnings: list[str] = []
        if stale:
            cleared = self._env.reader_check()
            shown = ", ".join(map(str, stale[:5])) + (", ..." if len(stale) > 5 else "")
            warnings.append(
                f"{len(stale)} reader slots held by processes that no longer run (pids "
                f"{shown}); cleared {cleared}"
            )
        used = sum(1 for pid in pids if pid not in stale)
        if used >= READERS_WARNING * MAX_READERS:
            warnings.append(f"the reader table is nearly full: {used} of {MAX_READERS} slots")
        facts: dict[str, object] = {
            "reader_slots_used": used,
            "reader_slots": MAX_READERS,
            "notes": [f"{used} of {MAX_READERS} LMDB reader slots in use"],
        }
        if warnings:
            facts["warnings"] = warnings
        return facts

    def files(self) -> list[str]:
        return [p for p in (self.path, self.path + "-lock") if os.path.exists(p)]

    def _check(self) -> list[str]:
        problems: list[str] = []
        if self._closed:
            raise BackendError(f"{self.path}: store is closed")
        try:
            self._env.reader_check()
            txn = self._begin_short()
        except (lmdb.Error, BackendError) as exc:
            return [f"cannot read the store: {exc}"]
        try:
            damage = verify_pages(self.path)  # under the open reader: pages stay put
            if damage:
                return damage  # liblmdb would abort the process walking these pages
            count = 0
            previous: bytes | None = None
            for key, _value in txn.cursor():
                if previous is not None and key <= previous:
                    problems.append(f"keys out of order: {previous!r} before {key!r}")
                previous = key
                count += 1
            entries = txn.stat()["entries"]
            if entries != count:
                problems.append(f"the header counts {entries} entries, the walk found {count}")
            problems.extend(_verify_file(self.path))  # under the open reader: pages stay put
        except lmdb.Error as exc:
            problems.append(f"reading the store failed: {exc}")
        finally:
            txn.abort()
            self._reading = False
        return problems

    def _close(self) -> None:
        if self._closed:
            return
        self._end_txn()
        if self._baton:
            self._baton = False
            self._shared.give_baton()
        if self._snap is not None:
            self._end_snapshot()
        self._closed = True
        shared = self._shared
        with shared.cond:
            shared.members.discard(self)
        _release(shared)


def _as_bytes(data: Any) -> bytes:
    return data if type(data) is bytes else bytes(data)


def _run_op(txn: Any, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if kind == "put":
        return txn.put(op[1], op[2])
    if kind == "del":
        return txn.delete(op[1])
    if kind == "many":
        with txn.cursor() as cursor:
            return cursor.putmulti(op[1])
    if kind == "spooled":
        spool, offset, size = op[1], op[2], op[3]
        spool.seek(offset)
        with txn.cursor() as cursor:
            return cursor.putmulti(marshal.loads(spool.read(size)))
    raise AssertionError(kind)


def _replay(txn: Any, log: list[tuple[Any, ...]], validate: bool) -> None:
    """Redo the logged writes; with ``validate``, first prove every logged read still holds."""
    for op in log:
        kind = op[0]
        if kind == "get":
            if validate and txn.get(op[1]) != op[2]:
                raise _Conflict
        elif kind == "page":
            if validate and hash(tuple(_read_page(txn, *op[1]))) != op[2]:
                raise _Conflict
        elif kind == "del":
            if bool(txn.delete(op[1])) != op[2] and validate:
                raise _Conflict
        else:
            _run_op(txn, op)


def _read_page(
    txn: Any, prefix: bytes, low: bytes, inclusive: bool, limit: int | None = None
) -> list[tuple[bytes, bytes]]:
    """Up to SCAN_PAGE pairs with keys starting with ``prefix``, from ``low`` on (excluded when
    not ``inclusive``), ascending. With ``limit``, the cursor never moves past the first
    ``limit`` entries from ``low`` on (the ones whose pages were checked).

    Pairs are taken from the cursor in chunks by C-level iteration (64, then doubling, so a
    short scan such as the TTL sweep reads little past its end), and each chunk is cut at the
    first key past the prefix by a bisection: no Python step per pair."""
    page: list[tuple[bytes, bytes]] = []
    high = prefix_successor(prefix)
    end = None if high is None else (high,)  # (key, value) < (high,) exactly when key < high
    budget = SCAN_PAGE + 1 if limit is None else limit  # entries the cursor may still reach
    with txn.cursor() as cursor:
        if not cursor.set_range(low):
            return page
        if not inclusive and cursor.key() == low:
            # The next entry must be checked too; when it is not, the walk stopped at an
            # entry past the prefix: low itself, and so the page is empty.
            budget -= 1
            if budget < 1 or not cursor.next():
                return page
        pairs = cursor.iternext()
        want = _FIRST_CHUNK
        while len(page) < SCAN_PAGE:
            want = min(want, SCAN_PAGE - len(page), budget)
            if want <= 0:
                break
            chunk = list(islice(pairs, want))
            budget -= len(chunk)
            if end is not None and chunk and chunk[-1] >= end:
                page += chunk[: bisect_left(chunk, end)]
                break
            page += chunk
            if len(chunk) < want:
                break
            want *= 2
    return page


def _verify_file(path: str) -> list[str]:
    """The offline structural verifier of py-lmdb, when this version ships it."""
    try:
        from lmdb import verify
    except ImportError:
        return []
    try:
        return list(verify.verify(path, subdir=False))  # type: ignore[no-untyped-call]
    except Exception as exc:  # VerifyError: the file cannot even be walked
        return [f"structural check failed: {exc}"]


# -- page check --------------------------------------------------------------------------------
# liblmdb asserts (and so aborts the whole interpreter) when a page in the tree is not what its
# parent says it is: one zeroed 4 KiB page is enough. _lmdb_pages reads the file's pages with
# plain Python before the C library walks them, and such damage becomes CorruptStoreError.

#: Files up to this size have every page of their trees checked before the first write
#: transaction of a process (about 5 ms per MiB). A larger file's writes are not checked: a
#: damaged page there can still abort a write (reads are always checked; doctor finds it).
PAGE_CHECK_ON_WRITE_BYTES = 64 << 20


def verify_pages(path: str, *, deep: bool = True) -> list[str]:
    """Problems found in the LMDB file at ``path`` by walking its B-trees from the newest
    valid meta page, reading pages directly (never through liblmdb): each reachable page must
    be what its place in the tree calls for, and everything it points at must lie inside the
    page or the file (see ``_lmdb_pages.check_page``). Empty when the trees are sound. Without
    ``deep`` only the meta pages and the two root pages are checked (constant time, done on
    every open); the deep walk reads every page and is what ``check()`` runs first."""
    import mmap

    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return []
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        return [f"cannot read the file: {exc}"]

    def remap(end: int) -> mmap.mmap:
        raise pages.Damage(f"a page the tree uses lies past the end of the file ({size} bytes)")

    try:
        metas, problems = pages.read_metas(data, size)
        if not metas:
            return problems
        meta = max(metas)
        if deep:
            return problems + pages.walk(data, meta, remap)
        for tree, root, depth in (
            ("free list tree", meta.free_root, meta.free_depth),
            ("main tree", meta.main_root, meta.main_depth),
        ):
            if root == pages.P_INVALID:
                continue
            try:
                if not 2 <= root <= meta.last:
                    raise pages.Damage(f"{tree}, page {root}: page number out of range")
                if (root + 1) * meta.psize > size:
                    remap((root + 1) * meta.psize)
                kind = pages.P_LEAF if depth == 1 else pages.P_BRANCH
                pages.check_page(data, meta, root, kind, remap, tree)
            except pages.Damage as exc:
                problems.append(str(exc))
        return problems
    finally:
        data.close()


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (possibly under another account)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
