"""Opening a store file: choose the engine, enforce permissions, record or check the format.

This is the one place that turns a path into a :class:`~prontodb.store.Store`. Which path a
command means (cursors, environment, defaults) is decided in :mod:`prontodb.selection`.
"""

from __future__ import annotations

import os

from prontodb import backends, cursorfile, paths
from prontodb.address import DEFAULT_DELIM
from prontodb.backends.base import DURABILITIES, Backend
from prontodb.errors import BackendError, ConfigError, ProntoError, StoreNotFoundError, UsageError
from prontodb.names import DEFAULT_USER
from prontodb.selection import Target
from prontodb.store import DEFAULT_MAX_VALUE_BYTES, Store, check_store_format

TYPE_CHECKING = False
if TYPE_CHECKING:
    from prontodb.clock import Clock

#: A path as the library takes it: ``str`` or any ``os.PathLike`` (``pathlib.Path``).
StrPath = str | os.PathLike[str]


def path_text(path: StrPath, argument: str = "path") -> str:
    """``path`` as a ``str`` (``os.fspath``); bytes paths are decoded as the file system does.
    Anything that is not a path raises UsageError naming ``argument``."""
    try:
        return os.fsdecode(path)
    except TypeError:
        raise UsageError(
            f"{argument} must be a str or os.PathLike, not {type(path).__name__}",
            argument=argument,
            value=path,
            rule="path",
        ) from None


def open_backend(
    path: StrPath,
    *,
    backend: str | None = None,
    durability: str = "normal",
    create: bool = True,
    seen: bool = False,
) -> Backend:
    """Open the engine at ``path``: the existing store's own format wins, then ``backend``,
    then the extension, then sqlite. Without ``create`` a missing store raises
    StoreNotFoundError. The store's files are checked for foreign write access, and a new
    store records its format version and engine inside itself.

    ``seen``: the caller saw a store at ``path`` a moment ago. Such a store is only ever
    opened, never created anew: if it vanished since (a ``cursor migrate`` retired it), this
    raises StoreNotFoundError instead of writing into a fresh empty store."""
    path = path_text(path)
    if durability not in DURABILITIES:
        raise ConfigError(f"unknown durability {durability!r} (choose normal or full)")
    url_engine = backends.url_engine(path)
    if url_engine is not None or (backend is not None and backends.kind(backend) == "url"):
        # A url engine's location is handed over as it is: never expanded or realpath'd.
        name = url_engine or backend
        assert name is not None
        if backend is not None and backend != name:
            raise ConfigError(f"{path} is a {name} location, not {backend}")
        engine = backends.backend_class(name)(path, durability=durability, create=create)
        try:
            check_store_format(engine, writable=create)
        except BaseException:
            engine.close()
            raise
        return engine
    # A symlinked store is followed to its target, and every file of the store is found and
    # checked there: LMDB would otherwise put a second lock file next to the link, and two
    # lock tables on one data file let writers corrupt it.
    path = os.path.realpath(os.path.expanduser(path))
    exists = os.path.exists(path)
    if not exists and (seen or not create):
        raise StoreNotFoundError(f"no store at {path}" + (" (it was moved)" if seen else ""))
    name = backends.resolve_backend(path, backend)
    if not exists:
        parent = os.path.dirname(path)
        try:
            if not os.path.isdir(parent):
                paths.make_private_dir(parent)
        except OSError as exc:
            raise BackendError(f"cannot create directory {parent}: {exc.strerror}") from exc
    if exists:
        paths.check_secure(backends.store_files(path, name))
    # A store that existed a moment ago is never created anew: if it vanished since (a
    # cursor migrate retired it), this open fails instead of writing into a fresh empty store.
    engine = backends.backend_class(name)(path, durability=durability, create=create and not exists)
    try:
        if not os.path.exists(path):
            # Moved away while the engine opened it (before the engine noted which file it
            # opened, so its own moved-store check could not see it): refuse, write nothing.
            raise StoreNotFoundError(f"no store at {path} (it was moved while being opened)")
        paths.check_secure(engine.files())
        check_store_format(engine, writable=create)
    except BaseException:
        engine.close()
        raise
    return engine


def open(  # noqa: A001 - the public name is prontodb.open
    path: StrPath | None = None,
    *,
    backend: str | None = None,
    cursor: str | None = None,
    user: str | None = None,
    meta: str | None = None,
    project: str | None = None,
    namespace: str | None = None,
    durability: str | None = None,
    delim: str = DEFAULT_DELIM,
    clock: Clock | None = None,
    create: bool = True,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> Store:
    """Open a store and return the :class:`Store` of one user/meta layer of it.

    * ``open()`` — the default store of the default user
      (``$XDG_DATA_HOME/prontodb/users/default/default.sqlite``);
    * ``open(path)`` — the store at ``path``, a ``str`` or ``os.PathLike`` (engine from the
      file, else ``backend``, else the extension, else sqlite), or a url engine's URL;
    * ``open(cursor="work", user="keeper")`` — the store a named cursor of that user points
      at, with the cursor's meta, defaults and durability (explicit arguments win).
    """
    user = user or DEFAULT_USER
    where = None if path is None else path_text(path)
    named = cursor if where is None and cursor not in (None, "default") else None
    explicit = where is not None or named is not None
    if named is not None:
        spec = cursorfile.load(user, named)
        where = spec.path
        backend = backend or spec.backend
        meta = meta if meta is not None else spec.meta
        project = project if project is not None else spec.project
        namespace = namespace if namespace is not None else spec.namespace
        durability = durability or spec.durability
    if where is None:
        where, default_backend = cursorfile.default_store(user)
        backend = backend or default_backend
    target = Target(
        path=where,
        user=user,
        cursor=named,
        explicit_path=explicit,
        backend=backend,
        meta=meta,
        project=project,
        namespace=namespace,
        durability=durability or "normal",
    )
    return open_target(
        target, create=create, delim=delim, clock=clock, max_value_bytes=max_value_bytes
    )


def open_target(
    target: Target,
    *,
    create: bool = True,
    delim: str = DEFAULT_DELIM,
    clock: Clock | None = None,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> Store:
    """Open the store a resolved :class:`~prontodb.selection.Target` names, as the Store of
    its user/meta layer with its defaults: the one way both :func:`open` and the CLI open a
    store. Without ``create`` a missing store raises StoreNotFoundError.

    A missing cursor's store or default store is looked up again in the cursor file first: a
    ``cursor migrate`` that finished since the target was resolved has moved it, and
    recreating the old path empty would take writes nobody will ever read."""
    path, backend, durability = target.path, target.backend, target.durability
    follows = target.cursor is not None or not target.explicit_path
    if not follows:
        engine = open_backend(path, backend=backend, durability=durability, create=create)
    else:
        engine = _open_following(target, create)
    try:
        return Store(
            engine,
            user=target.user,
            meta=target.meta,
            project=target.project,
            namespace=target.namespace,
            delim=delim,
            clock=clock,
            max_value_bytes=max_value_bytes,
        )
    except BaseException:
        engine.close()
        raise


def _open_following(target: Target, create: bool) -> Backend:
    """Open a cursor's (or the default) store where the cursor file says it is, following a
    ``cursor migrate`` that moves it meanwhile. A store seen at the path is opened with
    ``seen`` (never created anew there); only a path that held no store when looked at may
    get a new one (the first write of a cursor or a default store)."""
    path, backend, durability = target.path, target.backend, target.durability
    for _ in range(3):
        if not os.path.exists(path):
            path, backend, durability = _where_now(target)
        seen = os.path.exists(path)
        try:
            return open_backend(
                path, backend=backend, durability=durability, create=create, seen=seen
            )
        except StoreNotFoundError:
            # It vanished while being opened (a migrate retired it just then): where the
            # cursor points now, if that moved; otherwise the refusal stands.
            moved = _where_now(target)
            if not seen or moved[0] == path:
                raise
            path, backend, durability = moved
    raise StoreNotFoundError(f"no store at {path} (it kept moving while being opened)")


def _where_now(target: Target) -> tuple[str, str | None, str]:
    """(path, backend, durability) of ``target``'s cursor or default store as the cursor file
    says now (a migrate may have moved it since ``target`` was resolved); ``target``'s own
    when the cursor cannot be read."""
    try:
        if target.cursor is not None:
            moved = cursorfile.load(target.user, target.cursor)
            return moved.path, moved.backend, moved.durability
        path, found = cursorfile.default_store(target.user)
    except ProntoError:
        return target.path, target.backend, target.durability
    return path, found or target.backend, target.durability
