"""Store selection: which store, user and meta layer one command uses.

Precedence: ``--database`` > ``--cursor`` > ``PRONTO_DB`` > ``PRONTO_CURSOR`` > the user's
selection > the user's default store. The reserved cursor name ``default`` means the user's
default store (``--cursor default`` reaches it past a selection).
"""

from __future__ import annotations

import os

from prontodb._frozen import Frozen, slot_setters
from prontodb.context import effective_meta, effective_user
from prontodb.cursorfile import DEFAULT_CURSOR, default_store, file_path, load, read
from prontodb.errors import UsageError
from prontodb.names import DEFAULT_USER

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Mapping

#: Where a Target's store came from (``Target.source``).
SOURCES = ("--database", "--cursor", "PRONTO_DB", "PRONTO_CURSOR", "selection", "default")


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


_TARGET_SETTERS = slot_setters(Target)


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
    default_path, default_backend = "", None
    if database:
        path, source = database, "--database"
        from prontodb import backends

        where = (
            database if backends.is_url(database) else os.path.abspath(os.path.expanduser(database))
        )
        # The flags are printed in hints: never with a password.
        flags += ["--database", backends.without_password(where)]
    elif cursor:
        name, source = cursor, "--cursor"
        flags += ["--cursor", cursor]
    elif env.get("PRONTO_DB"):
        path, source = env["PRONTO_DB"], "PRONTO_DB"
    elif env.get("PRONTO_CURSOR"):
        name, source = env["PRONTO_CURSOR"], "PRONTO_CURSOR"
    else:
        data = read(who, env) if os.path.exists(file_path(who, env)) else None
        chosen = data.get("selected") if data is not None else None
        name, source = (chosen if isinstance(chosen, str) else None), "selection"
        if name is None:
            source = "default"
            default_path, default_backend = default_store(who, env, data or {})
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
    if path is None and source != "default":  # --cursor default or PRONTO_CURSOR=default
        default_path, default_backend = default_store(who, env)
    return Target(
        path=path or default_path,
        user=who,
        backend=None if path else default_backend,
        meta=the_meta,
        project=project,
        namespace=namespace,
        explicit_path=path is not None,
        flags=tuple(flags),
        source=source,
    )
