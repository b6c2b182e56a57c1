"""Dynamic shell completion: cursor names and stored addresses.

Completion runs without invoking the root callback, so the session is rebuilt from the root
context's parsed parameters. Any failure completes nothing rather than printing an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # imported when completing, not on every start-up
    from click.shell_completion import CompletionItem


def _session_from(ctx: click.Context):  # type: ignore[no-untyped-def]
    from prontodb.cli._session import Session

    return Session.from_flags(ctx.find_root().params)


def complete_address(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Stored addresses (full form) that start with what has been typed."""
    try:
        from click.shell_completion import CompletionItem

        session = _session_from(ctx)
        store = session.open(write=False)
        try:
            found = []
            for entry in store.entries():
                text = store.format(entry.address)
                if text.startswith(incomplete):
                    found.append(CompletionItem(text))
                    if len(found) >= 500:
                        break
            return found
        finally:
            session.close()
    except Exception:  # noqa: BLE001 - completion must never print errors
        return []


def complete_cursor(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Cursor names of the selected user that start with what has been typed."""
    try:
        from click.shell_completion import CompletionItem

        from prontodb import cursor

        session = _session_from(ctx)
        user = cursor.effective_user(session.user_flag, session.env)
        return [
            CompletionItem(c.name)
            for c in cursor.list_cursors(user)
            if c.name.startswith(incomplete)
        ]
    except Exception:  # noqa: BLE001
        return []
