"""Listing commands: keys, scan, projects, namespaces, nss, caches."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from prontodb.cli._build import declared
from prontodb.cli._session import Session, session
from prontodb.errors import InvalidAddressError

if TYPE_CHECKING:
    from prontodb.store import Store

_GLOB = frozenset("*?[")


def _escape_char(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or f"\\x{code:02x}"


_NEEDS_ESCAPE = re.compile("[\\\\\x00-\x1f\x7f\udc80-\udcff]")


def escape_value(data: bytes) -> str:
    """A value on one line, nothing dropped: UTF-8 text with backslash, newline, carriage
    return and tab escaped as ``\\\\``, ``\\n``, ``\\r``, ``\\t``, and every other control
    byte and every undecodable byte as ``\\xNN``."""
    text = data.decode("utf-8", "surrogateescape")
    return _NEEDS_ESCAPE.sub(lambda m: _escape_char(m.group()), text)


class Listing:
    """What a listing shows: the scope (None: everything), the glob below it, how deep the
    scope is (for relative addresses) and whether to print full addresses."""

    __slots__ = ("scope", "pattern", "depth", "full")

    def __init__(self, scope: str | None, pattern: str | None, depth: int, full: bool) -> None:
        self.scope, self.pattern, self.depth, self.full = scope, pattern, depth, full


def listing(
    store: Store, scope: str | None, pattern: str | None, *, all_scopes: bool, full: bool
) -> Listing:
    """Decide a listing's scope (docs/cli.md): SCOPE as given; without one, ``-p/-n`` or the
    cursor's defaults, unless ``--all``. A first word with ``* ? [`` is a PATTERN: within the
    default scope when there is one, else over full addresses (printed in full)."""
    from prontodb.address import parse_scope
    from prontodb.errors import UsageError

    if scope is not None and _GLOB & set(scope):
        if pattern is not None:
            raise UsageError(f"SCOPE {scope!r} holds glob characters; give one PATTERN only")
        scope, pattern = None, scope
        if not all_scopes and store.project is not None:
            scope = _default_scope(store)
        else:
            full = True
    elif scope is None and not all_scopes and store.project is not None:
        scope = _default_scope(store)
    elif scope is not None and all_scopes:
        raise UsageError("give a SCOPE or --all, not both")
    depth = len(parse_scope(scope, delim=store.delim))
    return Listing(scope, pattern, depth, full)


def _default_scope(store: Store) -> str:
    assert store.project is not None
    if store.namespace is None:
        return store.project
    return f"{store.project}{store.delim}{store.namespace}"


@declared("keys")
def keys_cmd(
    ctx: click.Context, scope: str | None, pattern: str | None, all_scopes: bool, full: bool
) -> None:
    """List addresses under SCOPE (project or project.namespace), ascending, relative to the
    scope; without SCOPE, -p/-n or the cursor's defaults give it, and with none of them (or
    --all) everything is listed. PATTERN is a glob on the relative address; a SCOPE with glob
    characters is a PATTERN (over full addresses when there is no default scope). --full
    prints full addresses."""
    s = session(ctx)
    store = s.open(write=False)
    view = listing(store, scope, pattern, all_scopes=all_scopes, full=full)
    names: Iterable[str]
    if view.full:
        from fnmatch import fnmatchcase

        depth, delim, glob = view.depth, store.delim, view.pattern
        names = (
            store.format(e.address)
            for e in store.entries(view.scope, None)
            if glob is None or fnmatchcase(e.address.relative(depth, delim), glob)
        )
    else:
        names = store.keys(view.scope, view.pattern)
    for name in names:
        if s.json:
            s.emit_json(name)
        else:
            click.echo(name)


@declared("scan")
def scan_cmd(
    ctx: click.Context, scope: str | None, pattern: str | None, all_scopes: bool, full: bool
) -> None:
    """Print key=value pairs under SCOPE (chosen as for keys), ascending, each value on one
    line with every control byte, backslash and undecodable byte escaped (\\n \\r \\t \\\\
    \\xNN); --json prints one lossless object per line."""
    from prontodb.cli.data import entry_json

    s = session(ctx)
    store = s.open(write=False)
    view = listing(store, scope, pattern, all_scopes=all_scopes, full=full)
    for entry in store.entries(view.scope, view.pattern):
        if view.full:
            name = store.format(entry.address)
        else:
            name = entry.address.relative(view.depth, store.delim)
        if s.json:
            s.emit_json(entry_json(name, entry.value, entry))
        else:
            click.echo(f"{name}={escape_value(entry.value)}")


def _print_names(s: Session, names: Iterable[str]) -> None:
    """One name per line (``--json``: one JSON string per line)."""
    for name in names:
        if s.json:
            s.emit_json(name)
        else:
            click.echo(name)


@declared("projects")
def projects_cmd(ctx: click.Context) -> None:
    """Projects with at least one live entry, one per line."""
    s = session(ctx)
    _print_names(s, s.open(write=False).projects())


@declared("namespaces")
def namespaces_cmd(ctx: click.Context, project: str | None) -> None:
    """Namespaces of PROJECT (default: the default project) with a live entry."""
    s = session(ctx)
    store = s.open(write=False)
    if project is None and store.project is None:
        raise InvalidAddressError(
            "no PROJECT given and no default project (-p/--project or a cursor's)"
        )
    _print_names(s, store.namespaces(project))


@declared("nss")
def nss_cmd(ctx: click.Context) -> None:
    """Every project.namespace with a live entry."""
    s = session(ctx)
    _print_names(s, s.open(write=False).all_namespaces())


@declared("caches")
def caches_cmd(ctx: click.Context) -> None:
    """TTL namespaces as project.namespace<TAB>seconds, with or without entries."""
    s = session(ctx)
    for name, seconds in s.open(write=False).caches().items():
        if s.json:
            s.emit_json({"namespace": name, "seconds": seconds})
        else:
            click.echo(f"{name}\t{seconds}")
