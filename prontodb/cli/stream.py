"""``prontodb stream [FILE] [--dry-run]``: import a token stream atomically (docs/stream.md).

The command reads the input, plans it with :func:`prontodb.stream.plan` and writes it with
:func:`prontodb.stream.apply` in one transaction. Input piped on stdin is never lost: on any
error it is rescued into the pipe cache (exit 3). A FILE is not copied anywhere (exit 1).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from prontodb.cli._build import declared
from prontodb.cli._session import Session, session
from prontodb.cli._stdin import NothingPiped, Piped, current
from prontodb.errors import UsageError

if TYPE_CHECKING:
    from prontodb.stream import Plan


class EmptyStreamError(NothingPiped):
    """The input holds no token: a usage error, with nothing worth rescuing."""


@declared("stream")
def stream_cmd(ctx: click.Context, file: str | None, dry_run: bool) -> None:
    """Import a token stream from FILE or stdin, all entries or none.

    Tokens are [prefix:]key=value separated by ';'. meta:path=PROJECT.NAMESPACE (or -p/-n)
    sets the target namespace, ns=NAMESPACE switches it, PROJECT.NAMESPACE:key=value writes
    elsewhere, meta:ttl=DURATION gives the following entries a TTL (meta:ttl=none clears it).
    On any error nothing is written; piped input is rescued into the pipe cache (exit 3).
    Prints 'stored N entries in M namespaces' on stderr (--json: a summary on stdout).
    """
    s = session(ctx)
    if file is not None and file != "-":
        run(s, None, dry_run=dry_run, path=file)
        return
    # On any exit other than success the runner rescues piped content (not on a dry run).
    piped = current()
    try:
        content = _read_stdin(piped)
        if isinstance(content, bytes):
            run(s, content, dry_run=dry_run)
        else:  # spooled to a file: planned from it, then planned again while written
            run(s, None, dry_run=dry_run, path=content)
    except BaseException as exc:
        if dry_run or isinstance(exc, NothingPiped):
            piped.release()  # a dry run never rescues; neither does an empty stream
        raise
    piped.release()


def run(s: Session, source: bytes | None, *, dry_run: bool, path: str | None = None) -> None:
    """Plan ``source``, or the file at ``path`` (read once, its validated batches kept in a
    temporary file until they are written: memory stays flat whatever its size), against the
    session's defaults; print the plan, or write it."""
    from prontodb import stream

    target = s.target()
    progress = _Progress() if _stderr_is_terminal() else None
    options: dict[str, Any] = dict(
        project=target.project,
        namespace=target.namespace,
        user=target.user,
        user_locked=bool(s.env.get("PRONTO_FORCE_USER")),
        delim=s.delim,
        max_value_bytes=s.max_value_bytes(),
        progress=progress.reading if progress else None,
    )
    if path is not None:
        try:
            planned = stream.plan_file(path, **options)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    else:
        assert source is not None
        planned = stream.plan(source, **options)
    if planned.tokens == 0:
        if progress:
            progress.clear()
        raise EmptyStreamError("the stream is empty (no tokens): nothing to import")
    if dry_run:
        if progress:
            progress.clear()
        _report(s, planned, dry_run=True)
        return
    store = s.open(write=True)
    try:
        stream.apply(store, planned, progress=progress.writing if progress else None)
    finally:
        if progress:
            progress.clear()
    _report(s, planned, dry_run=False)


def _report(s: Session, planned: Plan, *, dry_run: bool) -> None:
    namespaces = planned.namespaces(s.delim)
    if s.json:
        s.emit_json(
            {
                "dry_run": dry_run,
                "entries": planned.entries,
                "namespaces": namespaces,
                "tokens": planned.tokens,
            }
        )
    elif dry_run:
        for name, count in namespaces.items():
            s.line(f"{name}\t{count}")
    summary = (
        f"{_count(planned.entries, 'entry', 'entries')} in {_count(len(namespaces), 'namespace')}"
    )
    if dry_run:
        s.status(f"dry run: would store {summary} (nothing written)")
    else:
        s.status(f"stored {summary}")


def _read_stdin(piped: Piped) -> bytes | str:
    """All of stdin: its bytes, or (input too large to hold) the path of the private file it
    was spooled to. A terminal, or input that is empty or only whitespace, is a usage error
    (there is nothing to rescue)."""
    try:
        content = piped.stream_input()
    except NothingPiped:
        raise EmptyStreamError(
            "no FILE given and stdin is a terminal or empty: nothing to import"
            " (pipe a stream in, or give FILE)"
        ) from None
    if isinstance(content, bytes) and not content.strip():
        raise EmptyStreamError("stdin is empty or only whitespace: nothing to import")
    return content


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Progress:
    """A one-line progress display on a terminal's stderr, redrawn at most ten times a second."""

    def __init__(self) -> None:
        self._last = 0.0
        self._shown = False

    def _show(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        self._shown = True
        click.echo(f"\r\x1b[K{text}", err=True, nl=False)

    def reading(self, tokens: int) -> None:
        self._show(f"reading: {tokens:,} tokens")

    def writing(self, done: int, total: int) -> None:
        self._show(f"writing: {done:,}/{total:,} entries ({100 * done // max(total, 1)}%)")

    def clear(self) -> None:
        if self._shown:
            click.echo("\r\x1b[K", err=True, nl=False)
            self._shown = False


def _count(n: int, one: str, many: str | None = None) -> str:
    """``1 entry``, ``2 entries``: singular and plural as English needs."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
