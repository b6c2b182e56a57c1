"""Where ProntoDB keeps things (XDG directories) and the file-permission rules.

Directories ProntoDB creates are 0700 and files 0600, whatever the umask. A store that other
accounts could write is refused: the OS account is the security boundary.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO

from prontodb.errors import InsecureStoreError
from prontodb.names import check_name


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> str:
    value = env.get(var)
    if value and os.path.isabs(value):
        return value
    return os.path.join(os.path.expanduser("~"), fallback)


def data_home(env: Mapping[str, str] | None = None) -> str:
    """``$XDG_DATA_HOME/prontodb`` (default ``~/.local/share/prontodb``)."""
    return os.path.join(_xdg(env or os.environ, "XDG_DATA_HOME", ".local/share"), "prontodb")


def config_home(env: Mapping[str, str] | None = None) -> str:
    """``$XDG_CONFIG_HOME/prontodb`` (default ``~/.config/prontodb``)."""
    return os.path.join(_xdg(env or os.environ, "XDG_CONFIG_HOME", ".config"), "prontodb")


def cache_home(env: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/prontodb`` (default ``~/.cache/prontodb``)."""
    return os.path.join(_xdg(env or os.environ, "XDG_CACHE_HOME", ".cache"), "prontodb")


def user_data_dir(user: str, env: Mapping[str, str] | None = None) -> str:
    """The data directory of ``user`` (holds the default store and cursor stores)."""
    return os.path.join(data_home(env), "users", check_name("user", user))


def user_config_dir(user: str, env: Mapping[str, str] | None = None) -> str:
    """The config directory of ``user`` (holds cursor definitions)."""
    return os.path.join(config_home(env), "users", check_name("user", user))


def default_store_path(user: str, env: Mapping[str, str] | None = None) -> str:
    """``$XDG_DATA_HOME/prontodb/users/<user>/default.sqlite``."""
    return os.path.join(user_data_dir(user, env), "default.sqlite")


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
