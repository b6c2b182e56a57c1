"""Commands on entries: set, get, del, exists, ttl, expire, persist, copy, move."""

from __future__ import annotations

import sys

from prontodb import errors
from prontodb.cli._app import EXIT_MISS, EXIT_NOT_APPLIED, Exit
from prontodb.cli._commands import declared
from prontodb.cli._echo import echo
from prontodb.cli._session import Session, session
from prontodb.errors import ConflictError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    import click

    from prontodb.store import Entry


class NotAppliedError(ConflictError):
    """A conditional ``set`` (--nx, --xx, --if-version) whose condition did not hold: nothing
    was written. Exit 4, or with piped content its rescue (exit 3)."""


def store_value(
    s: Session,
    address: str | None,
    value: bytes,
    ttl: str | None,
    keep_ttl: bool,
    nx: bool = False,
    xx: bool = False,
    if_version: int | None = None,
) -> None:
    """The library call of ``set``; NotAppliedError when its condition did not hold."""
    if address is None:
        raise UsageError("no ADDRESS given (usage: prontodb set ADDRESS [VALUE])")
    if ttl is not None and keep_ttl:
        raise UsageError("--ttl and --keep-ttl cannot be combined")
    if nx + xx + (if_version is not None) > 1:
        raise UsageError("--nx, --xx and --if-version cannot be combined")
    store = s.open(write=True)
    applied = store.set(
        address,
        value,
        ttl=ttl,
        keep_ttl=keep_ttl,
        only_if_absent=nx,
        only_if_present=xx,
        if_version=if_version,
    )
    if not applied:
        why = (
            "exists (--nx)"
            if nx
            else "does not exist (--xx)"
            if xx
            else f"is not a live entry at version {if_version} (--if-version)"
        )
        raise NotAppliedError(f"not applied: {address} {why}")


def _version(text: str | None) -> int | None:
    """``--if-version N``: a whole number, 0 or more."""
    if text is None:
        return None
    if not text.isdigit():
        raise UsageError(f"--if-version needs a whole number (0 or more), not {text!r}")
    return int(text)


@declared("set")
def set_cmd(
    ctx: click.Context,
    address: str | None,
    value: str | None,
    ttl: str | None,
    keep_ttl: bool,
    from_stdin: bool,
    nx: bool,
    xx: bool,
    if_version: str | None,
) -> None:
    """Store VALUE at ADDRESS; without VALUE (or with - / --stdin) store all of stdin.

    Piped content is never lost: when it cannot be stored at ADDRESS it is rescued into the
    pipe cache (exit 3) with the command to copy it home. A plain set clears any TTL unless
    --keep-ttl; in a TTL namespace the entry gets the namespace default. With --nx, --xx or
    --if-version a condition that does not hold writes nothing: exit 4 (piped content: 3).
    """
    s = session(ctx)
    if not (from_stdin or value is None or value == "-"):
        data = value.encode("utf-8", "surrogateescape")
        try:
            store_value(s, address, data, ttl, keep_ttl, nx, xx, _version(if_version))
        except NotAppliedError as exc:
            if not s.json:
                echo(str(exc), err=True)
            raise Exit(EXIT_NOT_APPLIED, str(exc), address) from None
        return
    # Stdin is read before anything else is validated, so that any failure can rescue it;
    # on any exit other than success (a condition that did not hold included) the runner
    # rescues it (prontodb.cli._app.run_call).
    from prontodb.cli import _stdin

    content = _stdin.current().content()
    if from_stdin and value not in (None, "-"):
        raise UsageError("give VALUE or --stdin, not both")
    store_value(s, address, content, ttl, keep_ttl, nx, xx, _version(if_version))


@declared("get")
def get_cmd(ctx: click.Context, addresses: tuple[str, ...], default: str | None, raw: bool) -> None:
    """Write the bytes stored at ADDRESS exactly (exit 2 when missing or expired).

    Several addresses print one ADDRESS=value line each (escaped like scan), in argument
    order; a missing one prints `not found: ADDRESS` on stderr, and then the exit is 2.
    --default V stands in for every missing address. A binary value on a terminal prints a
    placeholder unless --raw.
    """
    s = session(ctx)
    store = s.open(write=False)
    parsed = [store.address(a) for a in addresses]  # validate every address first
    fallback = None if default is None else default.encode("utf-8", "surrogateescape")
    missing: list[str] = []
    for text, address in zip(addresses, parsed, strict=True):
        entry: Entry | None
        try:
            entry = store.entry(address)
        except errors.NotFoundError:
            if fallback is None:
                missing.append(store.format(address))
                if not s.json:
                    echo(f"not found: {store.format(address)}", err=True)
                continue
            entry = None
        if s.json:
            if entry is None:
                s.emit_json(entry_json(store.format(address), fallback or b"", None))
            else:
                s.emit_json(entry_json(store.format(address), entry.value, entry))
            continue
        data = fallback if entry is None else entry.value
        assert data is not None
        if len(addresses) > 1:
            from prontodb.cli.listing import escape_value

            echo(f"{text}={escape_value(data)}")
            continue
        if not raw and sys.stdout.isatty():
            data = for_terminal(data)
        s.out(data)
    if missing:
        raise Exit(EXIT_MISS, f"not found: {', '.join(missing)}", missing[0])


def for_terminal(data: bytes) -> bytes:
    """A value as shown on a terminal: a final newline added when missing; a binary
    (non-UTF-8) value replaced by a one-line placeholder (``--raw`` writes it as is)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        size = len(data)
        return f"<binary value, {size} byte{'s' * (size != 1)}; --raw writes it as is>\n".encode()
    return data if data.endswith(b"\n") else data + b"\n"


def entry_json(address: str, value: bytes, entry: Entry | None) -> dict[str, object]:
    """The lossless JSON form of an entry: UTF-8 text, else base64; its version, write time
    and deadline (epoch seconds, or null) from ``entry`` (all null without one)."""
    try:
        text, encoding = value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        import base64

        text, encoding = base64.b64encode(value).decode("ascii"), "base64"
    return {
        "address": address,
        "value": text,
        "encoding": encoding,
        "version": None if entry is None else entry.version,
        "written_at": None if entry is None else entry.written_at,
        "expires_at": None if entry is None else entry.expires_at,
    }


@declared("exists")
def exists_cmd(ctx: click.Context, addresses: tuple[str, ...]) -> None:
    """Exit 0 when every ADDRESS holds a live entry, 2 otherwise; prints nothing (--json: an
    object mapping each ADDRESS to true or false)."""
    s = session(ctx)
    store = s.open(write=False)
    parsed = [store.address(a) for a in addresses]  # validate every address first
    found = {text: store.exists(a) for text, a in zip(addresses, parsed, strict=True)}
    if s.json:
        s.emit_json(found)
    if not all(found.values()):
        absent = [text for text, there in found.items() if not there]
        raise Exit(EXIT_MISS, f"not found: {', '.join(absent)}", absent[0])


@declared("del")
def del_cmd(
    ctx: click.Context, addresses: tuple[str, ...], scope: str | None, dry_run: bool
) -> None:
    """Delete entries; exit 2 if any named entry did not exist.

    With --scope SCOPE [PATTERN], delete every live entry of a project or namespace (whose
    address below SCOPE matches PATTERN) in one transaction and print how many (0 is a
    success); --dry-run prints the addresses instead and deletes nothing.
    """
    s = session(ctx)
    if scope is not None:
        if len(addresses) > 1:
            raise UsageError("del --scope takes SCOPE and at most one PATTERN")
        pattern = addresses[0] if addresses else None
        store = s.open(write=not dry_run)
        if dry_run:
            for entry in store.entries(scope, pattern):
                name = store.format(entry.address)
                s.emit_json(name) if s.json else echo(name)
            return
        count = store.delete_scope(scope, pattern)
        s.emit_json({"count": count}) if s.json else echo(count)
        return
    if dry_run:
        raise UsageError("--dry-run goes with --scope")
    if not addresses:
        raise UsageError("no ADDRESS given (usage: prontodb del ADDRESS... | --scope SCOPE)")
    store = s.open(write=True)
    parsed = [store.address(a) for a in addresses]  # validate every address first
    missing = [store.format(a) for a in parsed if not store.delete(a)]
    if not s.json:
        for address in missing:
            echo(f"not found: {address}", err=True)
    if missing:
        raise Exit(EXIT_MISS, f"not found: {', '.join(missing)}", missing[0])


@declared("ttl")
def ttl_cmd(ctx: click.Context, address: str) -> None:
    """Print the whole seconds left (rounded up), or -1 for no expiry."""
    s = session(ctx)
    store = s.open(write=False)
    left = store.ttl(address)
    seconds = -1 if left is None else left
    if s.json:
        s.emit_json({"address": store.format(store.address(address)), "value": seconds})
    else:
        echo(seconds)


@declared("expire")
def expire_cmd(ctx: click.Context, address: str, seconds: str) -> None:
    """Give ADDRESS a deadline DURATION from now (90, 15m, 2h, 7d)."""
    from prontodb.duration import parse_duration

    parse_duration(seconds, argument="duration")
    session(ctx).open(write=True).expire(address, seconds)


@declared("persist")
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
    except errors.NotFoundError:
        if not s.json:
            s.status(f"❌ Source key '{src}' not found")
        raise Exit(EXIT_MISS, f"source key '{src}' not found", src) from None
    except DestinationExistsError:
        if not s.json:
            s.status(f"❌ '{dst}' exists; add --replace")
        raise Exit(EXIT_NOT_APPLIED, f"'{dst}' exists; add --replace", dst) from None
    if s.json:
        # The result as data, instead of the human status lines (DESIGN §4: --json).
        s.emit_json(
            {
                "source": src,
                "destination": dst,
                "moved": move,
                "removed_source": result.removed_source,
            }
        )
        return
    s.status(f"✅ {'Moved' if move else 'Copied'}: {src} → {dst}")
    if result.removed_source and not move:
        s.status(f"🗑️  Removed from cache: {src}")


@declared("copy")
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


@declared("move")
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
