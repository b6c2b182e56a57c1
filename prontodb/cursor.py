"""Cursors and store selection: which store, user and meta layer a command uses.

A cursor is a named, per-user pointer (path, backend, meta, default project/namespace,
durability) kept in ``$XDG_CONFIG_HOME/prontodb/users/<user>/cursors.json`` (0600). The user's
persistent selection (``cursor use``) lives in the same file and changes only through
:func:`use`.

Selection precedence: ``--database`` > ``--cursor`` > ``PRONTO_DB`` > ``PRONTO_CURSOR`` >
the user's selection > the user's default store. ``PRONTO_FORCE_USER``/``PRONTO_FORCE_META``
lock the user and meta: any different value from a flag, the environment or a cursor is
refused with :class:`ContextLockedError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

from prontodb import paths
from prontodb.errors import ConfigError, ContextLockedError
from prontodb.names import DEFAULT_USER, check_name

RESERVED = ("default",)
CURSORS_FILE = "cursors.json"


@dataclass(frozen=True)
class CursorSpec:
    """A saved cursor."""

    name: str
    path: str
    backend: str
    meta: str | None = None
    project: str | None = None
    namespace: str | None = None
    durability: str = "normal"


@dataclass(frozen=True)
class Target:
    """The resolved store of one command: where, which engine, which layer, which defaults."""

    path: str
    user: str
    backend: str | None = None
    meta: str | None = None
    project: str | None = None
    namespace: str | None = None
    durability: str = "normal"
    cursor: str | None = None
    explicit_path: bool = False
    #: flags a user must repeat to reach this store again (``--user K --cursor C``)
    flags: tuple[str, ...] = field(default=())


def _file(user: str, env: Mapping[str, str] | None = None) -> str:
    return os.path.join(paths.user_config_dir(user, env), CURSORS_FILE)


def _read(user: str, env: Mapping[str, str] | None = None) -> dict:
    path = _file(user, env)
    if not os.path.exists(path):
        return {"cursors": {}, "selected": None}
    import json

    try:
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
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _spec(name: str, raw: dict) -> CursorSpec:
    try:
        return CursorSpec(name=name, **raw)
    except TypeError as exc:
        raise ConfigError(f"cursor {name!r} is damaged: {exc}") from exc


def check_cursor_name(name: str) -> str:
    """Cursor names follow the user-name rule; ``default`` is reserved."""
    check_name("cursor", name)
    if name in RESERVED:
        raise ConfigError(f"cursor name {name!r} is reserved")
    return name


def load(user: str, name: str, env: Mapping[str, str] | None = None) -> CursorSpec:
    """The cursor ``name`` of ``user``; ConfigError when there is none."""
    check_cursor_name(name)
    raw = _read(user, env)["cursors"].get(name)
    if raw is None:
        raise ConfigError(f"unknown cursor {name!r} for user {user!r} (see: prontodb cursor list)")
    return _spec(name, raw)


def list_cursors(user: str, env: Mapping[str, str] | None = None) -> list[CursorSpec]:
    """Every cursor of ``user``, ordered by name."""
    data = _read(user, env)
    return [_spec(n, raw) for n, raw in sorted(data["cursors"].items())]


def save(user: str, spec: CursorSpec, env: Mapping[str, str] | None = None) -> None:
    """Create or replace the cursor ``spec.name`` of ``user``."""
    check_cursor_name(spec.name)
    data = _read(user, env)
    raw = asdict(spec)
    raw.pop("name")
    data["cursors"][spec.name] = raw
    _write(user, data, env)


def delete(user: str, name: str, env: Mapping[str, str] | None = None) -> CursorSpec:
    """Remove the cursor; clears the selection when it was selected. Returns what was removed."""
    spec = load(user, name, env)
    data = _read(user, env)
    del data["cursors"][name]
    if data.get("selected") == name:
        data["selected"] = None
    _write(user, data, env)
    return spec


def selected(user: str, env: Mapping[str, str] | None = None) -> str | None:
    """The user's persistent selection (``cursor use``), or None."""
    name = _read(user, env).get("selected")
    return name if isinstance(name, str) else None


def use(user: str, name: str | None, env: Mapping[str, str] | None = None) -> None:
    """Select cursor ``name`` for ``user`` (None clears the selection)."""
    if name is not None:
        load(user, name, env)
    data = _read(user, env)
    data["selected"] = name
    _write(user, data, env)


def effective_user(user_flag: str | None, env: Mapping[str, str]) -> str:
    """The user a command runs as: a locked user wins and refuses any other."""
    forced = env.get("PRONTO_FORCE_USER") or None
    asked = user_flag or env.get("PRONTO_USER") or None
    if forced is not None:
        check_name("user", forced)
        if asked is not None and asked != forced:
            raise ContextLockedError(
                f"user is locked to {forced!r} (PRONTO_FORCE_USER); refusing user {asked!r}"
            )
        return forced
    return check_name("user", asked) if asked else DEFAULT_USER


def effective_meta(
    meta_flag: str | None, cursor_meta: str | None, env: Mapping[str, str]
) -> str | None:
    """The meta layer: a locked meta wins and refuses any different flag or cursor meta."""
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
    """Decide the store, layer and defaults of one command from flags and the environment."""
    env = os.environ if env is None else env
    who = effective_user(user, env)
    flags: list[str] = []
    if who != DEFAULT_USER and not env.get("PRONTO_FORCE_USER"):
        flags += ["--user", who]
    spec: CursorSpec | None = None
    path: str | None = None
    explicit = False
    if database:
        path, explicit = database, True
        flags += ["--database", os.path.abspath(database)]
    elif cursor:
        spec = load(who, cursor, env)
        flags += ["--cursor", cursor]
    elif env.get("PRONTO_DB"):
        path, explicit = env["PRONTO_DB"], True
    elif env.get("PRONTO_CURSOR"):
        spec = load(who, env["PRONTO_CURSOR"], env)
    else:
        chosen = selected(who, env)
        if chosen is not None:
            spec = load(who, chosen, env)
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
            flags=tuple(flags),
        )
    return Target(
        path=path or paths.default_store_path(who, env),
        user=who,
        meta=the_meta,
        project=project,
        namespace=namespace,
        explicit_path=explicit,
        flags=tuple(flags),
    )


def with_defaults(spec: CursorSpec, **changes: object) -> CursorSpec:
    """A copy of ``spec`` with the given fields changed (None values are ignored)."""
    return replace(spec, **{k: v for k, v in changes.items() if v is not None})
