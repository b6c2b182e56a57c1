"""Cursors: define, delete and select them, creating or removing their stores.

The library side of ``prontodb cursor``: :func:`define` (``cursor set``) creates a cursor's
store before saving it; :func:`delete` removes a cursor and, with ``purge``, its store (under
a locked context only a store no other user's data lives in). The cursor file itself is
:mod:`prontodb.cursorfile`, store selection :mod:`prontodb.selection`, the locked context
:mod:`prontodb.context`; their public names are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from prontodb import cursorfile, files, guard
from prontodb.context import effective_meta, effective_user
from prontodb.cursorfile import (
    CURSORS_FILE,
    DEFAULT_CURSOR,
    DURABILITIES,
    RESERVED,
    CursorSpec,
    check_cursor_name,
    check_namespace,
    check_project,
    default_path,
    exists,
    file_path,
    list_cursors,
    load,
    locked,
    read,
    save,
    selected,
    spec_from,
    unknown,
    use,
    write,
)
from prontodb.errors import ConfigError, UsageError, literal
from prontodb.names import check_name
from prontodb.opener import open_backend
from prontodb.selection import SOURCES, Target, resolve

__all__ = [
    "CURSORS_FILE",
    "DEFAULT_CURSOR",
    "DURABILITIES",
    "RESERVED",
    "SOURCES",
    "CursorSpec",
    "Target",
    "check_cursor_name",
    "check_namespace",
    "check_project",
    "default_path",
    "define",
    "delete",
    "effective_meta",
    "effective_user",
    "exists",
    "list_cursors",
    "load",
    "remove_store",
    "resolve",
    "save",
    "selected",
    "use",
]

remove_store = files.remove_store


def __getattr__(name: str) -> object:
    """``BACKENDS`` and ``EXTENSIONS`` come from the engine registry (see cursorfile)."""
    if name in ("BACKENDS", "EXTENSIONS"):
        return getattr(cursorfile, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    return found or backends.from_extension(path) or fallback or backends.DEFAULT_ENGINE


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


def _warn_password_removed(kept: str) -> None:
    import warnings

    from prontodb.errors import ProntoWarning

    warnings.warn(
        ProntoWarning(
            f"the password was removed from the URL before saving it ({kept}); put it in an "
            "environment variable and add ?password_env=VAR to the URL"
        ),
        stacklevel=3,
    )


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
    with locked(user, env):
        data = read(user, env)
        cursors = data["cursors"]
        old = spec_from(name, cursors[name], file_path(user, env)) if name in cursors else None
        opened = None
        if path is not None:
            where = _local_or_url(path)
            engine = _choose_backend(where, backend, old.backend if old else None)
            from prontodb.backends import without_password

            if without_password(where) != where:
                # A password never lands in the cursor file: it is used for this opening only.
                opened, where = where, without_password(where)
                _warn_password_removed(where)
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
        _create_store(spec if opened is None else spec.replace(path=opened))
        raw = spec.as_dict()
        raw.pop("name")
        data["cursors"][name] = raw
        write(user, data, env)
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
    return found[0] if found else default_path(user, name, backends.DEFAULT_ENGINE, env)


def _create_store(spec: CursorSpec) -> None:
    open_backend(spec.path, backend=spec.backend, durability=spec.durability, create=True).close()


def delete(
    user: str, name: str, *, purge: bool = False, env: Mapping[str, str] | None = None
) -> CursorSpec | None:
    """Remove the cursor; clears the selection when it was selected. With ``purge`` the store's
    files are removed too — refused (nothing changed) when the path holds no ProntoDB store
    engine's files, another cursor of the user points at the same store, or a locked context
    forbids destroying it (:func:`prontodb.guard.check_destroy`).

    A damaged cursor entry can be deleted too (returns None; its store, whatever it is, is
    left alone, and ``purge`` is refused since the entry cannot say which store it is)."""
    check_cursor_name(name)
    if not os.path.exists(file_path(user, env)):
        raise unknown(user, name)  # refused before anything is created
    with locked(user, env):
        data = read(user, env)
        if name not in data["cursors"]:
            raise unknown(user, name)
        where = file_path(user, env)
        try:
            spec: CursorSpec | None = spec_from(name, data["cursors"][name], where)
        except ConfigError:
            if purge:
                raise
            spec = None
        if purge and spec is not None:
            others = [spec_from(n, r, where) for n, r in data["cursors"].items() if n != name]
            _check_purgeable(spec, others)
            guard.check_destroy(spec.path, env)
        del data["cursors"][name]
        if data.get("selected") == name:
            data["selected"] = None
        write(user, data, env)
        if purge and spec is not None:
            guard.remove_store(spec.path, env)
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
