"""Listing commands: keys, scan, projects, namespaces, nss, caches."""

from __future__ import annotations

import re

import click

from prontodb.cli._build import declared
from prontodb.cli._session import session
from prontodb.errors import InvalidAddressError

_SURROGATE = re.compile("[\udc80-\udcff]")
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n"})


def escape_value(data: bytes) -> str:
    """A value on one line: UTF-8 text with newline, backslash and undecodable bytes escaped
    as ``\\n``, ``\\\\`` and ``\\xNN``."""
    text = data.decode("utf-8", "surrogateescape").translate(_ESCAPES)
    return _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)


@declared("keys")
def keys_cmd(ctx: click.Context, scope: str | None, pattern: str | None) -> None:
    """List addresses under SCOPE (project or project.namespace; nothing = everything),
    ascending, relative to the scope. PATTERN is a glob on that relative address."""
    s = session(ctx)
    store = s.open(write=False)
    if s.json:
        for key in store.keys(scope, pattern):
            s.emit_json(key)
        return
    for key in store.keys(scope, pattern):
        click.echo(key)


@declared("scan")
def scan_cmd(ctx: click.Context, scope: str | None, pattern: str | None) -> None:
    """Print key=value pairs under SCOPE, ascending (values escaped onto one line);
    --json prints one lossless object per line."""
    from prontodb.address import parse_scope
    from prontodb.cli.data import entry_json

    s = session(ctx)
    store = s.open(write=False)
    depth = len(parse_scope(scope, delim=store.delim))
    for entry in store.entries(scope, pattern):
        name = entry.address.relative(depth, store.delim)
        if s.json:
            s.emit_json(entry_json(name, entry.value, entry))
        else:
            click.echo(f"{name}={escape_value(entry.value)}")


@declared("projects")
def projects_cmd(ctx: click.Context) -> None:
    """Projects with at least one live entry, one per line."""
    for name in session(ctx).open(write=False).projects():
        click.echo(name)


@declared("namespaces")
def namespaces_cmd(ctx: click.Context, project: str | None) -> None:
    """Namespaces of PROJECT (default: the default project) with a live entry."""
    store = session(ctx).open(write=False)
    if project is None and store.project is None:
        raise InvalidAddressError(
            "no PROJECT given and no default project (-p/--project or a cursor's)"
        )
    for name in store.namespaces(project):
        click.echo(name)


@declared("nss")
def nss_cmd(ctx: click.Context) -> None:
    """Every project.namespace with a live entry."""
    for name in session(ctx).open(write=False).all_namespaces():
        click.echo(name)


@declared("caches")
def caches_cmd(ctx: click.Context) -> None:
    """TTL namespaces as project.namespace<TAB>seconds, with or without entries."""
    s = session(ctx)
    for name, seconds in s.open(write=False).caches().items():
        if s.json:
            s.emit_json({"namespace": name, "seconds": seconds})
        else:
            click.echo(f"{name}\t{seconds}")
