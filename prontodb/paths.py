"""Where ProntoDB keeps things: the XDG directories and the per-user locations under them.

The file rules (0700/0600, refusing files other accounts can write, durable replacement) are in
:mod:`prontodb.files`.
"""

from __future__ import annotations

import os

# The file rules live in prontodb.files; these names stay importable from here.
from prontodb.files import (  # noqa: F401
    check_secure,
    fsync_dir,
    make_private_dir,
    private_file,
    replacing,
)
from prontodb.names import check_name

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Mapping


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
