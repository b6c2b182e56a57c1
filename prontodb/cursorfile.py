"""The cursor file: each user's named cursors and their persistent selection.

A cursor is a named, per-user pointer (path, backend, meta, default project/namespace,
durability) kept in ``$XDG_CONFIG_HOME/prontodb/users/<user>/cursors.json`` (0600). The user's
persistent selection (``cursor use``) lives in the same file. This module reads and writes
that file and nothing else: creating or removing stores is :mod:`prontodb.cursor`'s, deciding
which store a command uses is :mod:`prontodb.selection`'s.
"""

from __future__ import annotations

import os

from prontodb import files, paths
from prontodb._frozen import Frozen, slot_setters
from prontodb._lazy import contextmanager
from prontodb.errors import ConfigError
from prontodb.names import check_name

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Iterator, Mapping
    from typing import Any

#: The cursor name that means "the user's default store"; no cursor may be saved under it.
DEFAULT_CURSOR = "default"
RESERVED = (DEFAULT_CURSOR,)
CURSORS_FILE = "cursors.json"
#: A cursor file larger than this is refused unread (a thousand cursors take ~250 KB).
MAX_CURSOR_FILE_BYTES = 4 << 20
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


_SPEC_SETTERS = slot_setters(CursorSpec)


# -- the file ----------------------------------------------------------------------------------


def file_path(user: str, env: Mapping[str, str] | None = None) -> str:
    """Where ``user``'s cursor file lives."""
    return os.path.join(paths.user_config_dir(user, env), CURSORS_FILE)


def _check_private(path: str, st: os.stat_result) -> None:
    """Refuse a cursor file other accounts could write: it decides where data goes."""
    import stat

    if st.st_uid != os.geteuid():
        raise ConfigError(f"refusing cursor file {path}: owned by uid {st.st_uid}, not by you")
    if st.st_mode & 0o022:
        raise ConfigError(
            f"refusing cursor file {path}: writable by other accounts (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); fix with chmod 600"
        )


def read(user: str, env: Mapping[str, str] | None = None) -> dict:
    """The parsed cursor file of ``user`` (``{"cursors": {}, "selected": None}`` when there
    is none); ConfigError when it is unreadable, damaged or writable by others."""
    path = file_path(user, env)
    if not os.path.exists(path):
        return {"cursors": {}, "selected": None}
    import json

    try:
        with files.open_regular(path) as fh:
            _check_private(path, os.fstat(fh.fileno()))
            raw = files.read_bounded(fh, MAX_CURSOR_FILE_BYTES)
        if raw is None:
            raise ConfigError(
                f"cannot read cursor file {path}: larger than {MAX_CURSOR_FILE_BYTES} bytes"
            )
        data = json.loads(raw.decode())
    except RecursionError:
        raise ConfigError(f"cannot read cursor file {path}: nested too deeply") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read cursor file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cursors", {}), dict):
        raise ConfigError(f"cursor file {path} is damaged (expected an object with 'cursors')")
    data.setdefault("cursors", {})
    data.setdefault("selected", None)
    return data


def write(user: str, data: dict, env: Mapping[str, str] | None = None) -> None:
    """Replace ``user``'s cursor file with ``data`` (atomically, 0600)."""
    import json

    path = file_path(user, env)
    paths.make_private_dir(os.path.dirname(path))
    with paths.replacing(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")


@contextmanager
def locked(user: str, env: Mapping[str, str] | None = None) -> Iterator[None]:
    """Serialize read-modify-write of one user's cursor file across processes (an advisory
    lock on the user's config directory, so no lock file is left behind)."""
    with files.locked_dir(paths.user_config_dir(user, env)):
        yield


def spec_from(name: str, raw: object, where: str = CURSORS_FILE) -> CursorSpec:
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
    if (
        not _known_engine(spec.backend)
        or spec.durability not in DURABILITIES
        or not _location_fits(spec.path, spec.backend)
    ):
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
    raw = read(user, env)["cursors"].get(name)
    if raw is None:
        raise unknown(user, name)
    return spec_from(name, raw, file_path(user, env))


def unknown(user: str, name: str) -> ConfigError:
    """The error for a cursor ``user`` does not have."""
    return ConfigError(f"unknown cursor {name!r} for user {user!r} (see: prontodb cursor list)")


def exists(user: str, name: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``user`` has a cursor called ``name``."""
    return name in read(user, env)["cursors"]


def list_cursors(user: str, env: Mapping[str, str] | None = None) -> list[CursorSpec]:
    """Every cursor of ``user``, ordered by name."""
    data = read(user, env)
    return [spec_from(n, raw, file_path(user, env)) for n, raw in sorted(data["cursors"].items())]


def save(user: str, spec: CursorSpec, env: Mapping[str, str] | None = None) -> None:
    """Create or replace the cursor ``spec.name`` of ``user`` (the store is not touched)."""
    check_cursor_name(spec.name)
    with locked(user, env):
        data = read(user, env)
        raw = spec.as_dict()
        raw.pop("name")
        data["cursors"][spec.name] = raw
        write(user, data, env)


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


def _location_fits(path: str, backend: str) -> bool:
    """A URL names its own engine, and a url engine's store is always a URL."""
    from prontodb import backends

    engine = backends.url_engine(path)
    if engine is not None:
        return engine == backend
    return backends.kind(backend) != "url"


def selected(user: str, env: Mapping[str, str] | None = None) -> str | None:
    """The user's persistent selection (``cursor use``), or None."""
    name = read(user, env).get("selected")
    return name if isinstance(name, str) else None


def use(user: str, name: str | None, env: Mapping[str, str] | None = None) -> None:
    """Select cursor ``name`` for ``user``; None (or ``default``) clears the selection."""
    if name == DEFAULT_CURSOR:
        name = None
    if name is not None:
        load(user, name, env)  # an unknown cursor is refused before anything is created
    elif selected(user, env) is None:
        return
    with locked(user, env):
        data = read(user, env)
        if name is not None and name not in data["cursors"]:
            raise unknown(user, name)
        data["selected"] = name
        write(user, data, env)


# -- the default store ---------------------------------------------------------------------------


def default_store(
    user: str, env: Mapping[str, str] | None = None, data: dict | None = None
) -> tuple[str, str | None]:
    """(path, engine) of ``user``'s default store: where ``cursor migrate default`` moved it
    (recorded in the cursor file), else ``paths.default_store_path`` with the engine left to
    the file. ``data`` is the already-read cursor file, if the caller has it."""
    if data is None:
        if not os.path.exists(file_path(user, env)):
            return paths.default_store_path(user, env), None
        data = read(user, env)
    moved = data.get("default_store")
    if isinstance(moved, dict):
        where, engine = moved.get("path"), moved.get("backend")
        if isinstance(where, str) and where and isinstance(engine, str) and _known_engine(engine):
            return where, engine
        raise ConfigError(f"cursor file {file_path(user, env)}: 'default_store' is damaged")
    return paths.default_store_path(user, env), None


def set_default_store(
    user: str, path: str, backend: str, env: Mapping[str, str] | None = None
) -> None:
    """Record that ``user``'s default store now lives at ``path`` (engine ``backend``)."""
    with locked(user, env):
        data = read(user, env)
        data["default_store"] = {"path": path, "backend": backend}
        write(user, data, env)
