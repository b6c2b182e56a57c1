"""Cursors and store selection: which store, user and meta layer a command uses.

A cursor is a named, per-user pointer (path, backend, meta, default project/namespace,
durability) kept in ``$XDG_CONFIG_HOME/prontodb/users/<user>/cursors.json`` (0600). The user's
persistent selection (``cursor use``) lives in the same file and changes only through
:func:`use` (and :func:`delete`, which clears a selection of the deleted cursor).

Selection precedence: ``--database`` > ``--cursor`` > ``PRONTO_DB`` > ``PRONTO_CURSOR`` >
the user's selection > the user's default store. The reserved cursor name ``default`` means
the user's default store (``--cursor default`` reaches it past a selection).

``PRONTO_FORCE_USER``/``PRONTO_FORCE_META`` lock the user and meta: any different value from a
flag, the environment or a cursor is refused with :class:`ContextLockedError`; a cursor without
meta takes the forced meta.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prontodb import paths
from prontodb._frozen import Frozen, slot_setters
from prontodb.errors import ConfigError, ContextLockedError, UsageError, literal
from prontodb.names import DEFAULT_USER, check_name

#: The cursor name that means "the user's default store"; no cursor may be saved under it.
DEFAULT_CURSOR = "default"
RESERVED = (DEFAULT_CURSOR,)
CURSORS_FILE = "cursors.json"
DURABILITIES = ("normal", "full")


def __getattr__(name: str) -> Any:
    """``BACKENDS`` and ``EXTENSIONS`` (the file-name extension of a cursor's default store
    path, per engine) are asked of the engine registry, which owns them."""
    from prontodb import backends

    if name == "BACKENDS":
        return backends.engine_names()
    if name == "EXTENSIONS":
        return {n: backends.default_extension(n) for n in backends.engine_names()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Where a Target's store came from (``Target.source``).
SOURCES = ("--database", "--cursor", "PRONTO_DB", "PRONTO_CURSOR", "selection", "default")


class CursorSpec(Frozen):
    """A saved cursor."""

    __slots__ = ("name", "path", "backend", "meta", "project", "namespace", "durability")
    name: str
    path: str
    backend: str
    meta: str | None
    project: str | None
    namespace: str | None
    durability: str

    def __init__(
        self,
        name: str,
        path: str,
        backend: str,
        meta: str | None = None,
        project: str | None = None,
        namespace: str | None = None,
        durability: str = "normal",
    ) -> None:
        values = (name, path, backend, meta, project, namespace, durability)
        for setter, value in zip(_SPEC_SETTERS, values, strict=True):
            setter(self, value)

    def as_dict(self) -> dict[str, Any]:
        """The fields by name (what the cursor file stores, plus ``name``)."""
        return dict(zip(self.__slots__, self._fields(self), strict=True))

    def replace(self, **changes: Any) -> CursorSpec:
        """A copy with the given fields changed."""
        return CursorSpec(**{**self.as_dict(), **changes})


class Target(Frozen):
    """The resolved store of one command: where, which engine, which layer, which defaults.

    ``explicit_path``: a path the user named (flag, environment or cursor), where reading never
    creates a store; ``flags``: the global flags a user must repeat to reach this store again
    (``--user K --cursor C``); ``source``: which rule chose the store, one of :data:`SOURCES`.
    """

    __slots__ = (
        "path", "user", "backend", "meta", "project", "namespace", "durability", "cursor",
        "explicit_path", "flags", "source",
    )  # fmt: skip
    path: str
    user: str
    backend: str | None
    meta: str | None
    project: str | None
    namespace: str | None
    durability: str
    cursor: str | None
    explicit_path: bool
    flags: tuple[str, ...]
    source: str

    def __init__(
        self,
        path: str,
        user: str,
        backend: str | None = None,
        meta: str | None = None,
        project: str | None = None,
        namespace: str | None = None,
        durability: str = "normal",
        cursor: str | None = None,
        explicit_path: bool = False,
        flags: tuple[str, ...] = (),
        source: str = "default",
    ) -> None:
        values = (
            path, user, backend, meta, project, namespace, durability, cursor, explicit_path,
            flags, source,
        )  # fmt: skip
        for setter, value in zip(_TARGET_SETTERS, values, strict=True):
            setter(self, value)


_SPEC_SETTERS = slot_setters(CursorSpec)
_TARGET_SETTERS = slot_setters(Target)


# -- the cursor file ---------------------------------------------------------------------------


def _file(user: str, env: Mapping[str, str] | None = None) -> str:
    return os.path.join(paths.user_config_dir(user, env), CURSORS_FILE)


def _check_private(path: str) -> None:
    """Refuse a cursor file other accounts could write: it decides where data goes."""
    import stat

    st = os.stat(path)
    if st.st_uid != os.geteuid():
        raise ConfigError(f"refusing cursor file {path}: owned by uid {st.st_uid}, not by you")
    if st.st_mode & 0o022:
        raise ConfigError(
            f"refusing cursor file {path}: writable by other accounts (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); fix with chmod 600"
        )


def _read(user: str, env: Mapping[str, str] | None = None) -> dict:
    path = _file(user, env)
    if not os.path.exists(path):
        return {"cursors": {}, "selected": None}
    import json

    try:
        _check_private(path)
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read cursor file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cursors", {}), dict):
        raise ConfigError(f"cursor file {path} is damaged (expected an object with 'cursors')")
    data.setdefault("cursors", {})
    data.setdefault("selected", None)
    return data


def _write(user: str, data: dict, env: Mapping[str, str] | None = None) -> None:
    import json

    path = _file(user, env)
    paths.make_private_dir(os.path.dirname(path))
    with paths.replacing(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")


@contextmanager
def _locked(user: str, env: Mapping[str, str] | None = None) -> Iterator[None]:
    """Serialize read-modify-write of one user's cursor file across processes (an advisory
    lock on the user's config directory, so no lock file is left behind)."""
    import fcntl

    folder = paths.make_private_dir(paths.user_config_dir(user, env))
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _spec(name: str, raw: object, where: str = CURSORS_FILE) -> CursorSpec:
    """The cursor ``name`` read from the cursor file ``where`` (named in errors)."""
    damaged = f"cursor {name!r} in {where} is damaged"
    try:
        if not isinstance(raw, dict):
            raise TypeError("not an object")
        spec = CursorSpec(name=name, **raw)
    except TypeError as exc:
        raise ConfigError(f"{damaged}: {exc}") from exc
    for key in ("path", "backend", "durability", "meta", "project", "namespace"):
        value = getattr(spec, key)
        if not (isinstance(value, str) and value) and not (
            value is None and key in ("meta", "project", "namespace")
        ):
            raise ConfigError(f"{damaged}: {key} is {value!r}")
    if not _known_engine(spec.backend) or spec.durability not in DURABILITIES:
        raise ConfigError(
            f"{damaged}: backend {spec.backend!r}, durability "
            f"{spec.durability!r} (backend is one of {', '.join(_engine_names())}; durability is "
            f"one of {', '.join(DURABILITIES)})"
        )
    return spec


# -- names -------------------------------------------------------------------------------------


def check_cursor_name(name: str) -> str:
    """Cursor names follow the user-name rule; ``default`` is reserved."""
    check_name("cursor", name)
    if name in RESERVED:
        raise ConfigError(f"cursor name {name!r} is reserved (it means the user's default store)")
    return name


def check_project(project: str) -> str:
    """A cursor's default project must be a valid address segment."""
    from prontodb.address import check_segment

    return check_segment(project, "project", project)


def check_namespace(namespace: str) -> str:
    """A cursor's default namespace must be a valid address segment."""
    from prontodb.address import check_segment

    return check_segment(namespace, "namespace", namespace)


# -- cursors of one user -----------------------------------------------------------------------


def load(user: str, name: str, env: Mapping[str, str] | None = None) -> CursorSpec:
    """The cursor ``name`` of ``user``; ConfigError when there is none."""
    check_cursor_name(name)
    raw = _read(user, env)["cursors"].get(name)
    if raw is None:
        raise _unknown(user, name)
    return _spec(name, raw, _file(user, env))


def _unknown(user: str, name: str) -> ConfigError:
    return ConfigError(f"unknown cursor {name!r} for user {user!r} (see: prontodb cursor list)")


def exists(user: str, name: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``user`` has a cursor called ``name``."""
    return name in _read(user, env)["cursors"]


def list_cursors(user: str, env: Mapping[str, str] | None = None) -> list[CursorSpec]:
    """Every cursor of ``user``, ordered by name."""
    data = _read(user, env)
    return [_spec(n, raw, _file(user, env)) for n, raw in sorted(data["cursors"].items())]


def save(user: str, spec: CursorSpec, env: Mapping[str, str] | None = None) -> None:
    """Create or replace the cursor ``spec.name`` of ``user`` (the store is not touched)."""
    check_cursor_name(spec.name)
    with _locked(user, env):
        data = _read(user, env)
        raw = spec.as_dict()
        raw.pop("name")
        data["cursors"][spec.name] = raw
        _write(user, data, env)


def default_path(user: str, name: str, backend: str, env: Mapping[str, str] | None = None) -> str:
    """Where a cursor's store lives when no PATH is given: ``<data dir>/<name>.<ext>``."""
    from prontodb import backends

    if backends.kind(backend) == "url":
        raise ConfigError(f"a {backend} store is addressed by URL, not by a default path")
    return os.path.join(
        paths.user_data_dir(user, env), f"{name}{backends.default_extension(backend)}"
    )


def _engine_names() -> tuple[str, ...]:
    from prontodb import backends

    return backends.engine_names(selectable_only=True)


def _known_engine(name: str) -> bool:
    from prontodb import backends

    try:
        backends.engine_spec(name)
    except ConfigError:
        return False
    return True


def _store_format(path: str) -> str | None:
    """The engine of the existing store at ``path`` (None when there is no store there)."""
    if not os.path.exists(path):
        return None
    from prontodb import backends

    return backends.sniff(path)


def _choose_backend(path: str, requested: str | None, fallback: str | None) -> str:
    """``requested``, else the existing store's own format, else the extension, else
    ``fallback`` (the cursor's current engine), else sqlite."""
    from prontodb import backends

    url_engine = backends.url_engine(path)
    if url_engine is not None:  # a URL names its engine by its scheme
        if requested is not None and requested != url_engine:
            raise ConfigError(f"{path} is a {url_engine} location, not {requested}")
        return url_engine
    found = _store_format(path)
    if found is None and os.path.exists(path):
        backends.resolve_backend(path)  # refuses a file or directory that is not a store
    if requested is not None:
        if found is not None and found != requested:
            raise ConfigError(
                None,
                argument="backend",
                value=requested,
                rule="engine mismatch",
                template=f"{literal(path)} is a {found} store, not {literal(requested)} (to "
                "change a store's engine, migrate it: prontodb.portable.migrate, "
                "or prontodb cursor migrate)",
            )
        return requested
    return found or backends.from_extension(path) or fallback or "sqlite"


def _local_or_url(location: str) -> str:
    """An absolute path for a local store; a url engine's location exactly as given."""
    from prontodb import backends

    if backends.is_url(location):
        return location
    return os.path.abspath(os.path.expanduser(location))


def _change(value: str | None, current: str | None) -> str | None:
    """A field update: None keeps ``current``, an empty string clears it."""
    if value is None:
        return current
    return value or None


def define(
    user: str,
    name: str,
    path: str | None = None,
    *,
    backend: str | None = None,
    meta: str | None = None,
    project: str | None = None,
    namespace: str | None = None,
    durability: str | None = None,
    env: Mapping[str, str] | None = None,
) -> CursorSpec:
    """``cursor set``: create the cursor ``name`` of ``user`` and its store, or update only the
    fields given on an existing cursor (None keeps a field; ``""`` clears meta, project or
    namespace).

    PATH defaults to ``<name>.<ext>`` in the user's data directory. The engine is ``backend``,
    else the existing store's own format, else the extension, else sqlite; a ``backend`` that
    contradicts an existing store is an error. The store is created (so its engine is
    recorded in it) before the cursor is saved; if that fails, nothing is saved.
    """
    env = os.environ if env is None else env
    check_cursor_name(name)
    if backend is not None:
        from prontodb import backends

        backends.engine_spec(backend)  # ConfigError naming the known engines
    if durability is not None and durability not in DURABILITIES:
        raise ConfigError(f"unknown durability {durability!r} (choose normal or full)")
    if path is not None and not path:
        raise UsageError("PATH is empty")
    with _locked(user, env):
        data = _read(user, env)
        cursors = data["cursors"]
        old = _spec(name, cursors[name], _file(user, env)) if name in cursors else None
        if path is not None:
            where = _local_or_url(path)
            engine = _choose_backend(where, backend, old.backend if old else None)
        elif old is not None:
            where = old.path
            engine = _choose_backend(where, backend, old.backend)
            if (
                engine != old.backend
                and where == default_path(user, name, old.backend, env)
                and not os.path.exists(where)
            ):
                where = default_path(user, name, engine, env)  # keep the name telling the truth
        else:
            where = _default_store(user, name, backend, env)
            engine = _choose_backend(where, backend, None)
        spec = CursorSpec(
            name=name,
            path=where,
            backend=engine,
            meta=_change(meta, old.meta if old else None),
            project=_change(project, old.project if old else None),
            namespace=_change(namespace, old.namespace if old else None),
            durability=durability or (old.durability if old else "normal"),
        )
        if spec.meta is not None:
            check_name("meta", spec.meta)
        if spec.project is not None:
            check_project(spec.project)
        if spec.namespace is not None:
            check_namespace(spec.namespace)
        effective_meta(None, spec.meta, env)  # a locked meta refuses a different cursor meta
        _create_store(spec)
        raw = spec.as_dict()
        raw.pop("name")
        data["cursors"][name] = raw
        _write(user, data, env)
    return spec


def _default_store(user: str, name: str, backend: str | None, env: Mapping[str, str]) -> str:
    """The default path of a new cursor: ``<name>.<ext>`` of ``backend``; without one, the
    store a former cursor of that name left behind (whatever its engine), else ``.sqlite``."""
    if backend is not None:
        return default_path(user, name, backend, env)
    from prontodb import backends

    found = [
        p for b in backends.file_engines() if os.path.exists(p := default_path(user, name, b, env))
    ]
    if len(found) > 1:
        raise ConfigError(
            None,
            argument=("path", "backend"),
            value=found,
            rule="ambiguous",
            template=f"several stores are named after cursor {literal(repr(name))} "
            f"({literal(', '.join(found))}); choose one with {{path}} or {{backend}}",
        )
    return found[0] if found else default_path(user, name, "sqlite", env)


def _create_store(spec: CursorSpec) -> None:
    from prontodb.opener import open_backend

    open_backend(spec.path, backend=spec.backend, durability=spec.durability, create=True).close()


def delete(
    user: str, name: str, *, purge: bool = False, env: Mapping[str, str] | None = None
) -> CursorSpec | None:
    """Remove the cursor; clears the selection when it was selected. With ``purge`` the store's
    files are removed too — refused (nothing changed) when the path holds no ProntoDB store
    engine's files or another cursor of the user points at the same store.

    A damaged cursor entry can be deleted too (returns None; its store, whatever it is, is
    left alone, and ``purge`` is refused since the entry cannot say which store it is)."""
    check_cursor_name(name)
    if not os.path.exists(_file(user, env)):
        raise _unknown(user, name)  # refused before anything is created
    with _locked(user, env):
        data = _read(user, env)
        if name not in data["cursors"]:
            raise _unknown(user, name)
        where = _file(user, env)
        try:
            spec: CursorSpec | None = _spec(name, data["cursors"][name], where)
        except ConfigError:
            if purge:
                raise
            spec = None
        if purge and spec is not None:
            others = [_spec(n, r, where) for n, r in data["cursors"].items() if n != name]
            _check_purgeable(spec, others)
        del data["cursors"][name]
        if data.get("selected") == name:
            data["selected"] = None
        _write(user, data, env)
        if purge and spec is not None:
            remove_store(spec.path)
    return spec


def _check_purgeable(spec: CursorSpec, others: list[CursorSpec]) -> None:
    real = os.path.realpath(spec.path)
    sharing = sorted(o.name for o in others if os.path.realpath(o.path) == real)
    if sharing:
        raise ConfigError(
            None,
            argument="purge",
            value=True,
            rule="shared",
            template=f"refusing to purge {literal(spec.path)}: cursor {literal(repr(sharing[0]))} "
            "uses the same store (delete without {purge=True})",
        )
    if os.path.exists(spec.path) and _store_format(spec.path) is None:
        raise ConfigError(
            None,
            argument="purge",
            value=True,
            rule="not a store",
            template=f"refusing to purge {literal(spec.path)}: it is not a ProntoDB store "
            "(delete without {purge=True})",
        )


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


def selected(user: str, env: Mapping[str, str] | None = None) -> str | None:
    """The user's persistent selection (``cursor use``), or None."""
    name = _read(user, env).get("selected")
    return name if isinstance(name, str) else None


def use(user: str, name: str | None, env: Mapping[str, str] | None = None) -> None:
    """Select cursor ``name`` for ``user``; None (or ``default``) clears the selection."""
    if name == DEFAULT_CURSOR:
        name = None
    if name is not None:
        load(user, name, env)  # an unknown cursor is refused before anything is created
    elif selected(user, env) is None:
        return
    with _locked(user, env):
        data = _read(user, env)
        if name is not None and name not in data["cursors"]:
            raise _unknown(user, name)
        data["selected"] = name
        _write(user, data, env)


# -- the locked context ------------------------------------------------------------------------


def effective_user(user_flag: str | None, env: Mapping[str, str]) -> str:
    """The user a command runs as: ``--user`` beats ``PRONTO_USER``, default ``default``.

    A user locked by ``PRONTO_FORCE_USER`` wins and refuses any different value, from the flag
    or from the environment."""
    forced = env.get("PRONTO_FORCE_USER") or None
    from_env = env.get("PRONTO_USER") or None
    if forced is not None:
        check_name("user", forced)
        for source, value in (("--user", user_flag), ("PRONTO_USER", from_env)):
            if value is not None and value != forced:
                raise ContextLockedError(
                    f"user is locked to {forced!r} (PRONTO_FORCE_USER); refusing {source} {value!r}"
                )
        return forced
    asked = user_flag if user_flag is not None else from_env
    return DEFAULT_USER if asked is None else check_name("user", asked)


def effective_meta(
    meta_flag: str | None, cursor_meta: str | None, env: Mapping[str, str]
) -> str | None:
    """The meta layer: ``--meta`` beats the cursor's meta. A meta locked by
    ``PRONTO_FORCE_META`` wins, refuses any different flag or cursor meta, and is given to a
    cursor without meta."""
    forced = env.get("PRONTO_FORCE_META") or None
    if forced is not None:
        check_name("meta", forced)
        for source, value in (("--meta", meta_flag), ("the cursor's meta", cursor_meta)):
            if value is not None and value != forced:
                raise ContextLockedError(
                    f"meta is locked to {forced!r} (PRONTO_FORCE_META); refusing {source} {value!r}"
                )
        return forced
    meta = meta_flag if meta_flag is not None else cursor_meta
    return None if meta is None else check_name("meta", meta)


# -- store selection ---------------------------------------------------------------------------


def resolve(
    *,
    user: str | None = None,
    meta: str | None = None,
    cursor: str | None = None,
    database: str | None = None,
    project: str | None = None,
    namespace: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Target:
    """Decide the store, layer and defaults of one command from flags and the environment.

    ``--database`` > ``--cursor`` > ``PRONTO_DB`` > ``PRONTO_CURSOR`` > the user's selection >
    the default store. An unknown cursor is a ConfigError (never a new store); a locked user
    or meta refuses any different value with ContextLockedError.
    """
    env = os.environ if env is None else env
    who = effective_user(user, env)
    flags: list[str] = []
    if who != DEFAULT_USER and not env.get("PRONTO_FORCE_USER"):
        flags += ["--user", who]
    if database is not None and not database:
        raise UsageError(
            None, argument="database", rule="empty", template="{database} needs a PATH"
        )
    if cursor is not None and not cursor:
        raise UsageError(None, argument="cursor", rule="empty", template="{cursor} needs a NAME")
    path: str | None = None
    name: str | None = None
    if database:
        path, source = database, "--database"
        flags += ["--database", _local_or_url(database)]
    elif cursor:
        name, source = cursor, "--cursor"
        flags += ["--cursor", cursor]
    elif env.get("PRONTO_DB"):
        path, source = env["PRONTO_DB"], "PRONTO_DB"
    elif env.get("PRONTO_CURSOR"):
        name, source = env["PRONTO_CURSOR"], "PRONTO_CURSOR"
    else:
        name, source = selected(who, env), "selection"
        if name is None:
            source = "default"
    spec = load(who, name, env) if name is not None and name != DEFAULT_CURSOR else None
    the_meta = effective_meta(meta, spec.meta if spec else None, env)
    if meta is not None and not env.get("PRONTO_FORCE_META"):
        flags += ["--meta", meta]
    if spec is not None:
        return Target(
            path=spec.path,
            user=who,
            backend=spec.backend,
            meta=the_meta,
            project=project if project is not None else spec.project,
            namespace=namespace if namespace is not None else spec.namespace,
            durability=spec.durability,
            cursor=spec.name,
            explicit_path=True,
            flags=tuple(flags),
            source=source,
        )
    return Target(
        path=path or paths.default_store_path(who, env),
        user=who,
        meta=the_meta,
        project=project,
        namespace=namespace,
        explicit_path=path is not None,
        flags=tuple(flags),
        source=source,
    )
