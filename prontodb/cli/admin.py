"""Store-level commands: create-cache, drop-cache, gc, info, version, help, completion."""

from __future__ import annotations

import os

import click

from prontodb.cli._build import declared
from prontodb.cli._session import session


@declared("create-cache")
def create_cache_cmd(ctx: click.Context, namespace: str, seconds: str) -> None:
    """Make a TTL namespace: later writes expire after SECONDS (or timeout=SECONDS; 15m, 2h
    also work). Re-running changes the default."""
    from prontodb.address import parse_namespace
    from prontodb.duration import parse_duration

    s = session(ctx)
    if seconds.startswith("timeout="):
        seconds = seconds[len("timeout=") :]
    parse_namespace(namespace, project=s.project, delim=s.delim)
    parse_duration(seconds, argument="duration")
    s.open(write=True).create_cache(namespace, seconds)


@declared("drop-cache")
def drop_cache_cmd(ctx: click.Context, namespace: str) -> None:
    """Make a TTL namespace ordinary again (affects later writes only); exit 2 when it is
    not a TTL namespace."""
    from prontodb.cli._app import EXIT_MISS, Exit

    if not session(ctx).open(write=True).drop_cache(namespace):
        message = f"not a TTL namespace: {namespace}"
        if not session(ctx).json:
            click.echo(message, err=True)
        raise Exit(EXIT_MISS, message, namespace)


@declared("gc")
def gc_cmd(ctx: click.Context) -> None:
    """Physically remove expired entries now; print how many."""
    s = session(ctx)
    count = s.open(write=True).gc()
    if s.json:
        s.emit_json({"count": count})
    else:
        click.echo(count)


def _size(paths: list[str]) -> int:
    total = 0
    for path in paths:
        try:
            if not os.path.isdir(path):
                total += os.path.getsize(path)
        except OSError:
            pass
    return total


@declared("info")
def info_cmd(ctx: click.Context) -> None:
    """Store path, backend, format version, entry counts and size."""
    from prontodb import keyspace

    s = session(ctx)
    store = s.open(write=False)
    t = s.target()
    backend = store.backend
    fmt = backend.get(keyspace.INFO_FORMAT)
    facts = {
        "path": backend.path,
        "backend": backend.name,
        "format": int(fmt) if fmt else None,
        "durability": backend.durability,
        "revision": store.revision(),
        "cursor": t.cursor,
        "user": store.user,
        "meta": store.meta,
        "entries": store.count(),
        "namespaces": len(store.all_namespaces()),
        "size_bytes": _size(backend.files()),
    }
    engine = store.engine_info()
    if s.json:
        s.emit_json({**facts, "engine": engine} if engine else facts)
        return
    for key, value in facts.items():
        click.echo(f"{key}: {'-' if value is None else value}")
    # The engine's own facts, named after it (redis.server_version: 7.0.15), warnings last.
    warnings = engine.pop("warnings", [])
    engine.pop("notes", None)  # doctor's wording of the facts printed here
    for name, fact in engine.items():
        click.echo(f"{backend.name}.{name}: {'-' if fact is None else fact}")
    for warning in warnings if isinstance(warnings, list) else [warnings]:
        click.echo(f"warning: {warning}")


@declared("version")
def version_cmd(ctx: click.Context) -> None:
    """Print the ProntoDB version."""
    from prontodb import __version__

    s = session(ctx)
    if s.json:
        s.emit_json({"version": __version__})
    else:
        click.echo(f"prontodb {__version__}")


@declared("help")
def help_cmd(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Show help for COMMAND (or for prontodb)."""
    root = ctx.find_root()
    target: click.Command = root.command
    info_name = root.info_name or "prontodb"
    current = click.Context(target, info_name=info_name, parent=None)
    for name in command:
        if not isinstance(target, click.Group):
            raise click.UsageError(f"{current.command_path} has no subcommand {name!r}")
        sub = target.get_command(current, name)
        if sub is None:
            raise click.UsageError(f"no such command: {' '.join(command)}")
        target = sub
        current = click.Context(target, info_name=sub.name, parent=current)
    click.echo(target.get_help(current))


@declared("completion")
def completion_cmd(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (completes commands, cursor names and stored
    addresses). Example: eval "$(prontodb completion bash)"."""
    from click.shell_completion import get_completion_class

    from prontodb.errors import UsageError

    cls = get_completion_class(shell) if shell in ("bash", "zsh", "fish") else None
    if cls is None:
        raise UsageError(f"unknown shell {shell!r} (choose bash, zsh or fish)")
    click.echo(cls(ctx.find_root().command, {}, "prontodb", "_PRONTODB_COMPLETE").source())
