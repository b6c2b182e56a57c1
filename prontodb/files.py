"""Filesystem helpers: private files and directories, durable renames, removing a store's files.

The one place for the file rules every module shares: directories ProntoDB creates are 0700 and
files 0600 whatever the umask; a store other accounts could write is refused; a file replaced
by ProntoDB appears whole or not at all and survives a power loss once the call returns.
"""

from __future__ import annotations

import os
import stat

from prontodb._lazy import contextmanager
from prontodb.errors import InsecureStoreError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Iterable, Iterator
    from typing import IO


#: The bytes :func:`uri_path` keeps as they are (``urllib.parse.quote``'s safe set, with ``/``).
_URI_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def uri_path(path: str | bytes) -> str:
    """``path`` percent-encoded for a ``file:`` URI, as ``urllib.parse.quote(path)`` does (a
    ``str`` is encoded as UTF-8, strictly; every byte outside ``A-Z a-z 0-9 _ . - ~ /``
    becomes ``%XX``), without importing urllib at start-up."""
    data = path.encode("utf-8") if isinstance(path, str) else bytes(path)
    if _URI_SAFE.issuperset(data):
        return data.decode("ascii")
    return "".join(chr(b) if b in _URI_SAFE else f"%{b:02X}" for b in data)


def make_private_dir(path: str) -> str:
    """Create ``path`` and every missing parent with mode 0700, whatever the umask
    (``os.makedirs`` would give the parents the umask's mode). Existing directories are left
    as they are."""
    if os.path.isdir(path):
        return path
    parent = os.path.dirname(os.path.abspath(path))
    if parent != os.path.abspath(path) and not os.path.isdir(parent):
        make_private_dir(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
        return path
    os.chmod(path, 0o700)
    return path


def private_file(path: str) -> None:
    """Set a file we own to 0600 (directories to 0700)."""
    st = os.stat(path)
    if st.st_uid != os.geteuid():
        return
    mode = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)


def check_secure(paths: Iterable[str]) -> None:
    """Refuse a store that other accounts can write: any of its files or directories with
    group/other write bits, or owned by another user. Parent directories are not checked."""
    me = os.geteuid()
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if st.st_uid != me:
            raise InsecureStoreError(
                f"refusing store file {path}: owned by uid {st.st_uid}, not by you (uid {me})"
            )
        if st.st_mode & 0o022:
            raise InsecureStoreError(
                f"refusing store file {path}: writable by other accounts (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); fix with chmod go-w"
            )


def fsync_dir(folder: str) -> None:
    """Make a rename or a new file in ``folder`` durable (best effort: errors are ignored)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: Prefix of every temporary file or directory ProntoDB makes beside a target:
#: ``.prontodb-<kind>-<pid>-<random>``. A later run removes those whose process is gone.
TEMP_PREFIX = ".prontodb-"
_TEMP_NAME = r"\.prontodb-([a-z]+)-(\d+)-[0-9a-f]{16}(?:[.-][A-Za-z0-9.-]+)?"
#: Chunk size of bounded reads.
CHUNK = 1 << 20


def temp_name(folder: str, kind: str, suffix: str = "") -> str:
    """An unpredictable name for a temporary file or directory of ``kind`` in ``folder``."""
    return os.path.join(folder, f"{TEMP_PREFIX}{kind}-{os.getpid()}-{os.urandom(8).hex()}{suffix}")


def create_exclusive(path: str) -> int:
    """Create ``path`` as a new 0600 file and return its descriptor: ``O_EXCL`` (never an
    existing file) and ``O_NOFOLLOW`` (never through a symlink), whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_stale_temps(folder: str, kinds: Iterable[str] = ("tmp", "backup")) -> int:
    """Remove the temporary files and directories (``.prontodb-<kind>-<pid>-…``) that killed
    runs left in ``folder``: only ours (same uid), only when their process is gone, never
    through a symlink. Returns how many were removed. Errors are ignored (best effort)."""
    import re
    import shutil

    wanted = set(kinds)
    removed = 0
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return 0
    for name in names:
        match = re.fullmatch(_TEMP_NAME, name)
        if match is None or match.group(1) not in wanted or pid_alive(int(match.group(2))):
            continue
        full = os.path.join(folder, name)
        try:
            st = os.lstat(full)
            if st.st_uid != os.geteuid():
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(full)
            else:
                os.unlink(full)
            removed += 1
        except OSError:
            continue
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (ours is always alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def replacing(path: str, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Write ``path`` all or nothing — the one safe-file-write of ProntoDB.

    The block writes a new temporary file beside ``path`` with an unpredictable name, created
    exclusively (``O_EXCL|O_NOFOLLOW``, 0600); when the block ends it is fsynced, renamed over
    ``path`` (a symlink at ``path`` is replaced, never written through) and the directory is
    fsynced. If the block (or the write) fails, the temporary file is removed and ``path`` is
    untouched. Temporary files killed runs left in the directory are removed first. Raises
    OSError when the temporary file cannot be created."""
    folder = os.path.dirname(path) or "."
    remove_stale_temps(folder, ("tmp",))
    tmp = temp_name(folder, "tmp")
    fd = create_exclusive(tmp)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(folder)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# -- reading untrusted input -------------------------------------------------------------------


def kind_of(mode: int) -> str:
    """A word for a file type, for error messages."""
    for test, word in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return word
    return "not a regular file"


def open_regular(path: str) -> IO[bytes]:
    """Open ``path`` for reading, refusing anything but a regular file at once (a FIFO,
    socket or device is never opened in a way that could block; the check is repeated on the
    open descriptor, so a swap in between is caught too). Raises NotRegularFileError
    (an OSError subclass) for such a file, and OSError as ``open`` does otherwise."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(path, kind_of(st.st_mode))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path, kind_of(st.st_mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class NotRegularFileError(OSError):
    """A path where a regular file was expected holds a FIFO, socket, device or directory."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file")
        self.path = path
        self.kind = kind
        self.strerror = f"{kind}, not a regular file"


def read_bounded(source: IO[bytes], limit: int) -> bytes | None:
    """All of ``source`` if it holds at most ``limit`` bytes, else None — reading at most
    ``limit + 1`` bytes, so memory stays proportional to the bound, whatever the input."""
    parts: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = source.read(min(left, CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    if left <= 0:
        return None
    return b"".join(parts)


@contextmanager
def locked_dir(folder: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on the directory ``folder`` (created 0700 when missing)
    for the block: serializes read-modify-write of files in it across processes, and leaves
    no lock file behind."""
    import fcntl

    make_private_dir(folder)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_store(path: str) -> bool:
    """Delete a store's files: the store file or directory, and the side files any registered
    engine keeps beside it (the engine registry says which). Returns False when there was
    nothing to remove."""
    import shutil

    from prontodb import backends

    engine_name = backends.url_engine(path)
    if engine_name is not None:  # a store on a server: its engine deletes its keys
        # ``destroy`` also removes a store that cursor migrate retired (opening it refuses).
        destroy = getattr(backends.backend_class(engine_name), "destroy", None)
        return bool(destroy(path)) if destroy is not None else False
    removed = False
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
        removed = True
    for name in [path, *backends.side_files(path)]:
        try:
            os.unlink(name)
            removed = True
        except (FileNotFoundError, IsADirectoryError):
            pass
    return removed


@contextmanager
def disk_errors(action: str) -> Iterator[None]:
    """Turn a file-system failure inside the block into ProntoDB's documented errors: a full
    disk or quota (ENOSPC, EDQUOT, EFBIG) is StorageFullError, any other OSError BackendError,
    both naming ``action`` (``"writing the backup"``) and keeping the OSError as the cause."""
    import errno

    from prontodb.errors import BackendError, StorageFullError

    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise StorageFullError(
                f"no space left on the device while {action}; nothing was changed"
            ) from exc
        raise BackendError(f"{action} failed: {exc.strerror or exc}") from exc
