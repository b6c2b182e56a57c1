"""Portability commands: export, import, backup, restore and ``cursor migrate``
(docs/portability.md).

Each command makes one call into :mod:`prontodb.portable`. Summaries go to stderr; with the
global ``--json`` a machine summary goes to stdout instead (to stderr for an export written to
stdout, where the data is). Progress bars are drawn on stderr only when it is a terminal and
the work is large.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from prontodb.cli._build import declared
from prontodb.cli._session import Session, session

if TYPE_CHECKING:
    from prontodb.portable import Progress

#: A phase is "large" (worth a progress bar) from this many entries or bytes.
LARGE_ENTRIES = 50_000
LARGE_BYTES = 32 << 20


class _Bar:
    """A click progress bar on stderr, opened only for a large phase."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, label: str, total: int, unit: str) -> None:
        if total >= (LARGE_BYTES if unit == "bytes" else LARGE_ENTRIES):
            self._bar = click.progressbar(length=total, label=label, file=sys.stderr)
            self._bar.__enter__()

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _progress(store_path: str | None = None) -> Progress | None:
    """A progress reporter when stderr is a terminal. With ``store_path``, only when that store
    is large on disk (exporting it then counts its entries first, to size the bar)."""
    if not sys.stderr.isatty():
        return None
    if store_path is not None and _disk_size(store_path) < LARGE_BYTES:
        return None
    return _Bar()


def _disk_size(path: str) -> int:
    from prontodb import backends

    return sum(_size(name) for name in backends.store_files(path) if not os.path.isdir(name))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _report(s: Session, summary: Any, message: str, *, stdout_busy: bool = False) -> None:
    """The human summary on stderr, or with --json the machine summary on stdout."""
    if not s.json:
        s.status(message)
    elif stdout_busy:
        import json

        click.echo(json.dumps(summary.as_dict(), separators=(",", ":")), err=True)
    else:
        s.emit_json(summary.as_dict())


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"


def _refuse_locked(s: Session, command: str) -> None:
    from prontodb.errors import ContextLockedError

    if s.env.get("PRONTO_FORCE_USER") or s.env.get("PRONTO_FORCE_META"):
        raise ContextLockedError(
            f"{command} writes every user and meta layer of a store; refused while the context "
            "is locked (PRONTO_FORCE_USER / PRONTO_FORCE_META)"
        )


@declared("export")
def export_cmd(ctx: click.Context, scope: str | None, output: str | None, fmt: str) -> None:
    """Export the live entries under SCOPE (project or project.namespace; nothing = the whole
    layer) with their absolute expiries and the TTL namespace definitions.

    jsonl (default) is a header line then one object per entry (address, value as utf-8 text
    or base64, expires_at in epoch seconds or null), ascending; 'prontodb import' reads it
    back byte-exact on any backend. --format stream writes meta:path=P.N; key="value"; tokens
    (remaining TTLs as meta:ttl) and refuses values with ';' or invalid UTF-8.
    """
    from prontodb import portable

    s = session(ctx)
    store = s.open(write=False)
    if output is not None:
        summary = portable.export_file(
            store,
            output,
            scope=scope,
            format=fmt,
            progress=_progress(store.backend.path),
            env=s.env,
        )
        where = os.path.abspath(output)
    else:
        stdout = sys.stdout.buffer
        bar = None if sys.stdout.isatty() else _progress(store.backend.path)
        summary = portable.export_layer(store, stdout, scope=scope, format=fmt, progress=bar)
        where = "stdout"
    message = (
        f"exported {_plural(summary.entries, 'entry', 'entries')}"
        f" and {_plural(summary.caches, 'TTL namespace')} to {where}"
    )
    _report(s, summary, message, stdout_busy=output is None)


@declared("import")
def import_cmd(ctx: click.Context, file: str, on_conflict: str) -> None:
    """Import an export file (or stdin) into the current layer.

    Every line is validated before anything is written; then the TTL namespace definitions
    and all entries are written in one transaction, keeping absolute expiries (null stays
    null). Entries that have already expired are skipped and counted.
    """
    from prontodb import portable
    from prontodb.errors import UsageError

    s = session(ctx)
    if file == "-":
        source = sys.stdin.buffer
        if source.isatty():
            raise UsageError("no FILE given and stdin is a terminal (give FILE, or pipe one in)")
        name, size = "<stdin>", None
    else:
        try:
            source = open(file, "rb")  # noqa: SIM115 - closed by the click context
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror}") from None
        ctx.call_on_close(source.close)
        name, size = file, os.fstat(source.fileno()).st_size
    store = s.open(write=True)
    summary = portable.import_layer(
        store, source, on_conflict=on_conflict, name=name, size=size, progress=_progress()
    )
    details = []
    if summary.expired:
        details.append(f"{summary.expired} expired")
    if summary.existing:
        details.append(f"{summary.existing} existing")
    skipped = f" (skipped {', '.join(details)})" if details else ""
    message = (
        f"imported {summary.imported} of {summary.entries} entries{skipped} and "
        f"{_plural(summary.caches, 'TTL namespace')}"
    )
    _report(s, summary, message)


@declared("backup")
def backup_cmd(ctx: click.Context, output: str | None, list_only: bool) -> None:
    """Back up every user and meta layer of the store (live entries and TTL namespace
    definitions) as one .tar.gz with a checksummed manifest, taken as a consistent snapshot
    while other processes keep writing. It restores onto any backend.

    Without -o the archive goes to $XDG_DATA_HOME/prontodb/backups/<store>-<UTC time>.tar.gz.
    Prints the archive's path on stdout. --list prints path, creation time (UTC), entries and
    size of each archive there.
    """
    from prontodb import portable
    from prontodb.context import reachable_layers
    from prontodb.errors import UsageError

    s = session(ctx)
    if list_only:
        if output is not None:
            raise UsageError("--list takes no -o/--output")
        for item in portable.list_backups(s.env):
            if s.json:
                s.emit_json(item)
            else:
                created = item.get("created") or "damaged"
                entries = item.get("entries")
                click.echo(
                    f"{item['path']}\t{created}\t{'-' if entries is None else entries}"
                    f"\t{item['size']}"
                )
        return
    store = s.open(write=False)
    summary = portable.backup(
        store,
        output,
        env=s.env,
        progress=_progress(store.backend.path),
        only=reachable_layers(s.env),
    )
    if s.json:
        s.emit_json(summary.as_dict())
        return
    click.echo(summary.path)
    s.status(
        f"backed up {_plural(summary.entries, 'entry', 'entries')} and "
        f"{_plural(summary.caches, 'TTL namespace')} of {_plural(summary.layers, 'layer')} "
        f"({summary.size} bytes)"
    )


@declared("restore")
def restore_cmd(ctx: click.Context, file: str, into: str | None, replace: bool) -> None:
    """Restore a backup archive into the current store (or CURSOR's), on any backend.

    The whole archive is read and every checksum verified before anything changes; a damaged,
    truncated or unsafe archive is refused and the target left untouched. A target that holds
    data needs --replace, which clears all of its layers in the same transaction.
    """
    from prontodb import portable
    from prontodb.errors import UsageError

    s = session(ctx)
    _refuse_locked(s, "restore")
    if not os.path.lexists(file):
        raise UsageError(f"no backup archive at {file}")
    store = s.open(write=True, target=s.target_for(into))
    summary = portable.restore(store, file, replace=replace, progress=_progress())
    details = f", {summary.expired} expired since the backup skipped" if summary.expired else ""
    cleared = f"; cleared {summary.cleared} old keys first" if summary.cleared else ""
    message = (
        f"restored {_plural(summary.entries, 'entry', 'entries')} and "
        f"{_plural(summary.caches, 'TTL namespace')} in {_plural(summary.layers, 'layer')} "
        f"into {store.backend.path}{details}{cleared}"
    )
    _report(s, summary, message)


@declared("cursor", "migrate")
def migrate_cmd(
    ctx: click.Context,
    name: str,
    backend: str | None,
    path: str | None,
    remove_old: bool,
    replace_target: bool,
) -> None:
    """Move cursor NAME's store (NAME 'default': the default store) to another backend: copy
    everything (every user and meta layer, values, expiries, TTL namespace definitions),
    verify counts and a checksum by reading the copy back, check the old store once more
    while holding its write lock, then repoint the cursor. The old store is renamed to
    <name>.migrated-<time> and kept (its path is reported) unless --remove-old. --to PATH
    chooses the new location; a location that already holds a store (such as the copy an
    earlier migrate kept, when a cursor goes back to an engine it used before) is replaced
    only with --replace-target. A store on a server (redis) needs --to URL (the scheme
    implies --backend); as the old store it is retired in place — every later write to it is
    refused, naming the new location — and its keys are kept unless --remove-old."""
    from prontodb import backends, cursor, portable
    from prontodb.errors import UsageError

    if backend is None and path is not None:
        backend = backends.url_engine(path)
    if backend is None:
        raise UsageError("cursor migrate needs --backend B")
    s = session(ctx)
    user = cursor.effective_user(s.user_flag, s.env)
    summary = portable.migrate(
        user,
        name,
        backend,
        path=path,
        remove_old=remove_old,
        replace_target=replace_target,
        env=s.env,
        progress=_progress(),
    )
    old = (
        f"removed the old store {summary.old_path}"
        if summary.removed_old
        else f"the old {summary.old_backend} store stays at {summary.old_path}"
    )
    message = (
        f"migrated cursor {name!r} to {backend} at {summary.new_path} ("
        f"{_plural(summary.entries, 'entry', 'entries')}, "
        f"{_plural(summary.caches, 'TTL namespace')}, {_plural(summary.layers, 'layer')}); {old}"
    )
    _report(s, summary, message)
