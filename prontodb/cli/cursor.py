"""The ``cursor`` commands: named, per-user pointers to stores (docs/cursors.md).

Global flags are hoisted to the root group, so ``cursor set NAME --meta M -p P -n N`` reads
meta, project and namespace from the session. Library modules are imported inside the
commands to keep start-up cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from prontodb.cli._build import declared
from prontodb.cli._session import Session, session

if TYPE_CHECKING:
    from prontodb.cursor import CursorSpec


def _user(s: Session) -> str:
    from prontodb import cursor

    return cursor.effective_user(s.user_flag, s.env)


def _facts(spec: CursorSpec, selected: str | None) -> dict[str, object]:
    return {
        "name": spec.name,
        "path": spec.path,
        "backend": spec.backend,
        "meta": spec.meta,
        "project": spec.project,
        "namespace": spec.namespace,
        "durability": spec.durability,
        "selected": spec.name == selected,
    }


@declared("cursor")
def cursor_group(ctx: click.Context) -> None:
    """Named, per-user pointers to stores: path, backend, meta, default project/namespace and
    durability. Choose one per command with --cursor C (or PRONTO_CURSOR), or persistently
    with 'cursor use C'."""


@declared("cursor", "set")
def set_cmd(
    ctx: click.Context, name: str, path: str | None, backend: str | None, durability: str | None
) -> None:
    """Create cursor NAME (and its store) or update the fields given on an existing one.

    PATH defaults to NAME.sqlite (or .lmdb, .diskcache) in the user's data directory. The
    global --meta M, -p/--project P and -n/--namespace N set the cursor's meta layer and
    default project/namespace; an empty value ('') clears one. Silent on success.
    """
    from prontodb import cursor

    s = session(ctx)
    cursor.define(
        _user(s),
        name,
        path,
        backend=backend,
        meta=s.meta_flag,
        project=s.project,
        namespace=s.namespace,
        durability=durability,
        env=s.env,
    )


@declared("cursor", "list")
def list_cmd(ctx: click.Context) -> None:
    """The user's cursors, ordered by name: name, engine, location, meta and default
    project.namespace; '*' marks the one selected by 'cursor use'. --json prints one object
    per line."""
    from prontodb import cursor

    s = session(ctx)
    user = _user(s)
    chosen = cursor.selected(user, s.env)
    specs = cursor.list_cursors(user, s.env)
    if s.json:
        for spec in specs:
            s.emit_json(_facts(spec, chosen))
        return
    rows = [
        (
            "*" if spec.name == chosen else " ",
            spec.name,
            spec.backend,
            spec.path,
            f"meta={spec.meta or '-'}",
            f"defaults={_defaults(spec, s.delim)}",
        )
        for spec in specs
    ]
    widths = (
        [max((len(row[i]) for row in rows), default=0) for i in range(len(rows[0]))] if rows else []
    )
    for row in rows:
        mark, *cells = row
        line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths[1:], strict=True))
        click.echo(f"{mark} {line}".rstrip())


def _defaults(spec: CursorSpec, delim: str) -> str:
    """``kb.notes``, ``kb`` or ``-``: the cursor's default project and namespace."""
    if spec.project is None:
        return "-"
    return spec.project if spec.namespace is None else f"{spec.project}{delim}{spec.namespace}"


@declared("cursor", "show")
def show_cmd(ctx: click.Context, name: str) -> None:
    """Everything cursor NAME holds: path, backend, meta, project, namespace, durability."""
    from prontodb import cursor

    s = session(ctx)
    user = _user(s)
    facts = _facts(cursor.load(user, name, s.env), cursor.selected(user, s.env))
    if s.json:
        s.emit_json(facts)
        return
    for key, value in facts.items():
        if isinstance(value, bool):
            value = "yes" if value else "no"
        click.echo(f"{key}: {'-' if value is None else value}")


@declared("cursor", "active")
def active_cmd(ctx: click.Context) -> None:
    """The cursor commands use now (after --cursor, PRONTO_CURSOR and 'cursor use'):
    its name, or 'default' for the default store. Prints nothing when --database or
    PRONTO_DB chooses the store."""
    s = session(ctx)
    t = s.target()
    name = t.cursor or (None if t.explicit_path else "default")
    if s.json:
        s.emit_json({"cursor": name, "source": t.source, "path": t.path, "backend": t.backend})
    elif name is not None:
        click.echo(name)
    else:
        s.status(f"no cursor: {t.source} chooses the store {t.path}")


@declared("cursor", "use")
def use_cmd(ctx: click.Context, name: str | None, clear: bool) -> None:
    """Select cursor NAME for later commands of this user (persistent until changed);
    --clear (or NAME 'default') goes back to the default store. Only this command changes
    the selection."""
    from prontodb import cursor
    from prontodb.errors import UsageError

    if clear == (name is not None):
        raise UsageError("give a cursor NAME or --clear (not both)")
    s = session(ctx)
    cursor.use(_user(s), name, s.env)


@declared("cursor", "delete")
def delete_cmd(ctx: click.Context, name: str, purge: bool) -> None:
    """Delete cursor NAME. Its data is kept unless --purge; deleting the selected cursor
    clears the selection."""
    import os

    from prontodb import cursor
    from prontodb.errors import ConfigError

    s = session(ctx)
    user = _user(s)
    try:
        before: cursor.CursorSpec | None = cursor.load(user, name, s.env)
    except ConfigError:
        before = None  # unknown (delete says so) or damaged (delete removes the entry)
    had_store = before is not None and os.path.exists(before.path)
    spec = cursor.delete(user, name, purge=purge, env=s.env)
    if spec is None:
        s.status(f"deleted damaged cursor {name!r}; no store was touched")
    elif purge and had_store:
        s.status(f"deleted cursor {name!r} and its store {spec.path}")
    elif purge:
        s.status(f"deleted cursor {name!r}; there was no store at {spec.path}")
    else:
        s.status(f"deleted cursor {name!r}; its data stays at {spec.path} (--purge removes it)")
