"""Filesystem helpers: private files and directories, durable renames, removing a store's files.

The one place for the file rules every module shares: directories ProntoDB creates are 0700 and
files 0600 whatever the umask; a store other accounts could write is refused; a file replaced
by ProntoDB appears whole or not at all and survives a power loss once the call returns.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO

from prontodb.errors import InsecureStoreError


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


@contextmanager
def replacing(path: str, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Write ``path`` all or nothing: the block writes a 0600 temporary file beside it, which
    is fsynced and renamed over ``path`` when the block ends. If the block (or the write)
    fails, the temporary file is removed and ``path`` is untouched. Raises OSError when the
    temporary file cannot be created."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
    """Delete a store's files (data file and side files, or the diskcache directory).
    Returns False when there was nothing to remove."""
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
        return True
    removed = False
    for name in (path, path + "-wal", path + "-shm", path + "-lock", path + "-journal"):
        try:
            os.unlink(name)
            removed = True
        except FileNotFoundError:
            pass
    return removed
