"""The gate every deletion or replacement of a store or cursor file passes.

Under a locked context (``PRONTO_FORCE_USER`` / ``PRONTO_FORCE_META``) no operation may delete,
replace or overwrite a file ProntoDB recognises as someone else's data: a file lying under
another user's data or config directory, or a store holding any layer other than the locked
user's (and meta's). The rule lives here, at the layer that destroys files, not in each
command: :func:`remove_store` and :func:`replacing` are what every remover and writer of such
files calls (``cursor delete --purge``, ``cursor migrate --remove-old``/``--replace-target``,
``export -o``, ``backup -o``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO

from prontodb import files, paths
from prontodb.errors import ContextLockedError


def forced(env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """The locked (user, meta): each None when not locked."""
    env = os.environ if env is None else env
    return env.get("PRONTO_FORCE_USER") or None, env.get("PRONTO_FORCE_META") or None


def check_destroy(path: str, env: Mapping[str, str] | None = None) -> None:
    """Raise ContextLockedError when a locked context may not delete or replace ``path``.

    Without a lock everything passes. Under a lock ``path`` (the link itself and, for a
    symlink, what it points at) is refused when it lies under another user's data or config
    directory, or is a ProntoDB store holding a layer outside the locked user/meta — or a
    store whose layers cannot be read (then nobody can say whose data it is)."""
    user, meta = forced(env)
    if user is None and meta is None:
        return
    lock = f"PRONTO_FORCE_USER={user}" if user else f"PRONTO_FORCE_META={meta}"
    from prontodb import backends

    if backends.is_url(path):  # a store on a server: no directory says whose it is, its layers do
        foreign = _foreign_url_layer(path, user, meta)
        if foreign is not None:
            raise ContextLockedError(
                f"refusing to delete or replace {backends.without_password(path)}: it is a "
                f"store holding {foreign} and the context is locked ({lock})"
            )
        return
    candidates = {_lexical(path), os.path.realpath(path)}
    if user is not None:
        for where in candidates:
            owner = _owning_user(where, env)
            if owner is not None and owner != user:
                raise ContextLockedError(
                    f"refusing to delete or replace {path}: it is user {owner!r}'s data and "
                    f"the context is locked ({lock})"
                )
    for where in candidates:
        foreign = _foreign_layer(where, user, meta)
        if foreign is not None:
            raise ContextLockedError(
                f"refusing to delete or replace {path}: it is a store holding {foreign} and the "
                f"context is locked ({lock})"
            )


def remove_store(path: str, env: Mapping[str, str] | None = None) -> bool:
    """:func:`prontodb.files.remove_store` after :func:`check_destroy`."""
    check_destroy(path, env)
    return files.remove_store(path)


@contextmanager
def replacing(
    path: str, env: Mapping[str, str] | None = None, mode: str = "wb", encoding: str | None = None
) -> Iterator[IO]:
    """:func:`prontodb.files.replacing` after :func:`check_destroy` (checked again right
    before the rename, so a store that appeared meanwhile is not replaced either)."""
    check_destroy(path, env)
    with files.replacing(path, mode, encoding) as fh:
        yield fh
        check_destroy(path, env)


def _lexical(path: str) -> str:
    """``path`` absolute, its directory resolved, its last component kept (the link itself)."""
    full = os.path.abspath(os.path.expanduser(path))
    folder, name = os.path.split(full)
    return os.path.join(os.path.realpath(folder), name)


def _owning_user(path: str, env: Mapping[str, str] | None) -> str | None:
    """The user whose data or config directory holds ``path``, or None."""
    for home in (paths.data_home(env), paths.config_home(env)):
        root = os.path.join(os.path.realpath(home), "users")
        rel = os.path.relpath(path, root)
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            continue
        return rel.split(os.sep, 1)[0]
    return None


def _foreign_layer(path: str, user: str | None, meta: str | None) -> str | None:
    """A description of the first layer of the store at ``path`` outside (user, meta), or
    None when ``path`` is no store or holds only the locked layers."""
    from prontodb import backends

    if not os.path.lexists(path) or os.path.islink(path):
        return None
    try:
        engine_name = backends.sniff(path)
    except Exception:  # noqa: BLE001 - an unreadable file is judged below
        engine_name = None
    if engine_name is None:
        return None
    try:
        layers = store_layers(path)
    except Exception:  # noqa: BLE001 - whatever the damage, nobody can say whose data it is
        return "data whose layers cannot be read"
    return _outside(layers, user, meta)


def _foreign_url_layer(url: str, user: str | None, meta: str | None) -> str | None:
    """:func:`_foreign_layer` for a store addressed by URL (None: no store there)."""
    from prontodb.errors import StoreNotFoundError, StoreRetiredError

    try:
        layers = store_layers(url)
    except StoreRetiredError:
        return "data a migrate retired (its layers are not read any more)"
    except StoreNotFoundError:
        return None
    return _outside(layers, user, meta)


def _outside(
    layers: list[tuple[str, str | None]], user: str | None, meta: str | None
) -> str | None:
    for found_user, found_meta in layers:
        if (user is not None and found_user != user) or (meta is not None and found_meta != meta):
            label = found_user if found_meta is None else f"{found_user}/{found_meta}"
            return f"the layer of {label}"
    return None


def store_layers(path: str) -> list[tuple[str, str | None]]:
    """Every (user, meta) layer with entries or TTL definitions in the store at ``path``
    (opened read-only; one seek per layer, not a scan of every entry)."""
    from prontodb import keyspace
    from prontodb.backends.base import prefix_successor
    from prontodb.opener import open_backend

    found: set[tuple[str, str | None]] = set()
    engine = open_backend(path, create=False)
    try:
        with engine.snapshot():
            for family in (keyspace.DATA, keyspace.TTLDEF):
                start: bytes | None = family
                while start is not None:
                    scan = engine.scan(family, start=start)
                    try:
                        first = next(iter(scan), None)
                    finally:
                        getattr(scan, "close", lambda: None)()
                    if first is None:
                        break
                    user_b, meta_b, _ = first[0][len(family) :].split(b"\x00", 2)
                    found.add((user_b.decode(), meta_b.decode() or None))
                    start = prefix_successor(family + user_b + b"\x00" + meta_b + b"\x00")
    finally:
        engine.close()
    return sorted(found, key=lambda layer: (layer[0], layer[1] or ""))
