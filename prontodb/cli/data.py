"""Commands on single entries: set, get, del, ttl, expire, persist, copy, move."""

from __future__ import annotations

import sys

import click

from prontodb.cli import cli
from prontodb.cli._app import EXIT_MISS, EXIT_NOT_APPLIED, Exit
from prontodb.cli._complete import complete_address, complete_cursor
from prontodb.cli._session import Session, session
from prontodb.errors import NotFoundError, UsageError


def read_stdin() -> bytes:
    """All of stdin, byte-exact. A terminal or empty stdin is a usage error (never a hang)."""
    if sys.stdin is None or sys.stdin.closed:
        raise UsageError("no VALUE given and stdin is closed: nothing to store")
    stream = sys.stdin.buffer
    if stream.isatty():
        raise UsageError("no VALUE given and stdin is a terminal (pipe content in, or give VALUE)")
    data = stream.read()
    if not data:
        raise UsageError("no VALUE given and stdin is empty: nothing to store")
    return data


def store_value(
    s: Session, address: str | None, value: bytes, ttl: str | None, keep_ttl: bool
) -> None:
    """The library call of ``set``."""
    if address is None:
        raise UsageError("no ADDRESS given (usage: prontodb set ADDRESS [VALUE])")
    if ttl is not None and keep_ttl:
        raise UsageError("--ttl and --keep-ttl cannot be combined")
    store = s.open(write=True)
    store.set(address, value, ttl=ttl, keep_ttl=keep_ttl)


@cli.command("set")
@click.argument("address", required=False, shell_complete=complete_address)
@click.argument("value", required=False)
@click.option("--ttl", metavar="DURATION", help="Expire after DURATION (90, 15m, 2h, 7d).")
@click.option("--keep-ttl", is_flag=True, help="Keep the entry's current deadline.")
@click.option(
    "--stdin", "from_stdin", is_flag=True, help="Read the value from stdin (same as VALUE '-')."
)
@click.pass_context
def set_cmd(
    ctx: click.Context,
    address: str | None,
    value: str | None,
    ttl: str | None,
    keep_ttl: bool,
    from_stdin: bool,
) -> None:
    """Store VALUE at ADDRESS; without VALUE (or with - / --stdin) store all of stdin.

    Piped content is never lost: when it cannot be stored at ADDRESS it is rescued into the
    pipe cache (exit 3) with the command to copy it home. A plain set clears any TTL unless
    --keep-ttl; in a TTL namespace the entry gets the namespace default.
    """
    s = session(ctx)
    if not (from_stdin or value is None or value == "-"):
        store_value(s, address, value.encode("utf-8", "surrogateescape"), ttl, keep_ttl)
        return
    content = read_stdin()
    try:
        if from_stdin and value not in (None, "-"):
            raise UsageError("give VALUE or --stdin, not both")
        store_value(s, address, content, ttl, keep_ttl)
    except BaseException as exc:  # noqa: BLE001 - piped content must never be lost
        from prontodb.cli.rescue import rescue_piped

        rescue_piped(s, content, address, exc)


@cli.command("get")
@click.argument("address", shell_complete=complete_address)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object with value and expiry.")
@click.pass_context
def get_cmd(ctx: click.Context, address: str, as_json: bool) -> None:
    """Write the bytes stored at ADDRESS exactly (exit 2 when missing or expired)."""
    s = session(ctx)
    store = s.open(write=False)
    entry = store.get_entry(address)
    if as_json or s.json:
        s.emit_json(entry_json(store.format(entry.address), entry.value, entry.expires_at))
        return
    data = entry.value
    if sys.stdout.isatty() and not data.endswith(b"\n"):
        data += b"\n"
    s.out(data)


def entry_json(address: str, value: bytes, expires_at: float | None) -> dict[str, object]:
    """The lossless JSON form of an entry: UTF-8 text, else base64."""
    try:
        text, encoding = value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        import base64

        text, encoding = base64.b64encode(value).decode("ascii"), "base64"
    return {"address": address, "value": text, "encoding": encoding, "expires_at": expires_at}


@cli.command("del")
@click.argument(
    "addresses", nargs=-1, required=True, metavar="ADDRESS...", shell_complete=complete_address
)
@click.pass_context
def del_cmd(ctx: click.Context, addresses: tuple[str, ...]) -> None:
    """Delete entries; exit 2 if any named entry did not exist."""
    s = session(ctx)
    store = s.open(write=True)
    parsed = [store.address(a) for a in addresses]  # validate every address first
    missing = [store.format(a) for a in parsed if not store.delete(a)]
    for address in missing:
        click.echo(f"not found: {address}", err=True)
    if missing:
        raise Exit(EXIT_MISS)


@cli.command("ttl")
@click.argument("address", shell_complete=complete_address)
@click.pass_context
def ttl_cmd(ctx: click.Context, address: str) -> None:
    """Print the whole seconds left (rounded up), or -1 for no expiry."""
    left = session(ctx).open(write=False).ttl(address)
    click.echo(-1 if left is None else left)


@cli.command("expire")
@click.argument("address", shell_complete=complete_address)
@click.argument("seconds", metavar="DURATION")
@click.pass_context
def expire_cmd(ctx: click.Context, address: str, seconds: str) -> None:
    """Give ADDRESS a deadline DURATION from now (90, 15m, 2h, 7d)."""
    from prontodb.duration import parse_duration

    parse_duration(seconds, argument="duration")
    session(ctx).open(write=True).expire(address, seconds)


@cli.command("persist")
@click.argument("address", shell_complete=complete_address)
@click.pass_context
def persist_cmd(ctx: click.Context, address: str) -> None:
    """Clear the deadline of ADDRESS (until its next plain set)."""
    session(ctx).open(write=True).persist(address)


def _copy(
    ctx: click.Context,
    src: str,
    dst: str,
    *,
    keep_ttl: bool,
    keep: bool,
    move: bool,
    replace: bool,
    from_cursor: str | None,
    to_cursor: str | None,
) -> None:
    from prontodb.address import parse
    from prontodb.errors import DestinationExistsError

    s = session(ctx)
    for text, via in ((src, from_cursor), (dst, to_cursor)):
        # An invalid address changes nothing, not even by creating a store to copy into.
        t = s.target_for(via)
        parse(text, project=t.project, namespace=t.namespace, delim=s.delim)
    source, target = s.open_pair(from_cursor, to_cursor)
    try:
        result = source.copy(
            src, dst, keep_ttl=keep_ttl, keep=keep, target=target, move=move, replace=replace
        )
    except NotFoundError:
        s.status(f"❌ Source key '{src}' not found")
        raise Exit(EXIT_MISS) from None
    except DestinationExistsError:
        s.status(f"❌ '{dst}' exists; add --replace")
        raise Exit(EXIT_NOT_APPLIED) from None
    s.status(f"✅ {'Moved' if move else 'Copied'}: {src} → {dst}")
    if result.removed_source and not move:
        s.status(f"🗑️  Removed from cache: {src}")


@cli.command("copy")
@click.argument("src", shell_complete=complete_address)
@click.argument("dst")
@click.option("--keep-ttl", is_flag=True, help="Give DST the source's remaining TTL.")
@click.option("--keep", is_flag=True, help="Keep a pipe.cache source instead of removing it.")
@click.option("--replace", is_flag=True, help="Overwrite a live DST (otherwise exit 4).")
@click.option(
    "--from-cursor", metavar="C", shell_complete=complete_cursor, help="Read SRC through cursor C."
)
@click.option(
    "--to-cursor", metavar="C", shell_complete=complete_cursor, help="Write DST through cursor C."
)
@click.pass_context
def copy_cmd(
    ctx: click.Context,
    src: str,
    dst: str,
    keep_ttl: bool,
    keep: bool,
    replace: bool,
    from_cursor: str | None,
    to_cursor: str | None,
) -> None:
    """Copy SRC to DST. A pipe.cache source is removed afterwards unless --keep.

    DST gets its namespace's default TTL, or the source's remaining TTL with --keep-ttl.
    """
    _copy(
        ctx,
        src,
        dst,
        keep_ttl=keep_ttl,
        keep=keep,
        move=False,
        replace=replace,
        from_cursor=from_cursor,
        to_cursor=to_cursor,
    )


@cli.command("move")
@click.argument("src", shell_complete=complete_address)
@click.argument("dst")
@click.option("--keep-ttl", is_flag=True, help="Give DST the source's remaining TTL.")
@click.option("--replace", is_flag=True, help="Overwrite a live DST (otherwise exit 4).")
@click.option(
    "--from-cursor", metavar="C", shell_complete=complete_cursor, help="Read SRC through cursor C."
)
@click.option(
    "--to-cursor", metavar="C", shell_complete=complete_cursor, help="Write DST through cursor C."
)
@click.pass_context
def move_cmd(
    ctx: click.Context,
    src: str,
    dst: str,
    keep_ttl: bool,
    replace: bool,
    from_cursor: str | None,
    to_cursor: str | None,
) -> None:
    """Move SRC to DST (copy then delete, atomically within one store).

    DST gets its namespace's default TTL, or the source's remaining TTL with --keep-ttl.
    """
    _copy(
        ctx,
        src,
        dst,
        keep_ttl=keep_ttl,
        keep=False,
        move=True,
        replace=replace,
        from_cursor=from_cursor,
        to_cursor=to_cursor,
    )
