"""The locked context: ``PRONTO_FORCE_USER`` / ``PRONTO_FORCE_META``.

A forced user or meta is the effective value for every command: any different value from a
flag, the environment, a cursor or a stream token is refused with
:class:`~prontodb.errors.ContextLockedError`; a cursor without meta takes the forced meta.
"""

from __future__ import annotations

from prontodb.errors import ContextLockedError
from prontodb.names import DEFAULT_USER, check_name

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Callable, Mapping


def effective_user(user_flag: str | None, env: Mapping[str, str]) -> str:
    """The user a command runs as: ``--user`` beats ``PRONTO_USER``, default ``default``.

    A user locked by ``PRONTO_FORCE_USER`` wins and refuses any different value, from the flag
    or from the environment."""
    forced = env.get("PRONTO_FORCE_USER") or None
    from_env = env.get("PRONTO_USER") or None
    if forced is not None:
        check_name("user", forced)
        for source, value in (("--user", user_flag), ("PRONTO_USER", from_env)):
            if value is not None and value != forced:
                raise ContextLockedError(
                    f"user is locked to {forced!r} (PRONTO_FORCE_USER); refusing {source} {value!r}"
                )
        return forced
    asked = user_flag if user_flag is not None else from_env
    return DEFAULT_USER if asked is None else check_name("user", asked)


def effective_meta(
    meta_flag: str | None, cursor_meta: str | None, env: Mapping[str, str]
) -> str | None:
    """The meta layer: ``--meta`` beats the cursor's meta. A meta locked by
    ``PRONTO_FORCE_META`` wins, refuses any different flag or cursor meta, and is given to a
    cursor without meta."""
    forced = env.get("PRONTO_FORCE_META") or None
    if forced is not None:
        check_name("meta", forced)
        for source, value in (("--meta", meta_flag), ("the cursor's meta", cursor_meta)):
            if value is not None and value != forced:
                raise ContextLockedError(
                    f"meta is locked to {forced!r} (PRONTO_FORCE_META); refusing {source} {value!r}"
                )
        return forced
    meta = meta_flag if meta_flag is not None else cursor_meta
    return None if meta is None else check_name("meta", meta)


def reachable_layers(env: Mapping[str, str]) -> Callable[[str, str | None], bool] | None:
    """Under ``PRONTO_FORCE_USER`` / ``PRONTO_FORCE_META``, the test of which (user, meta)
    layers reading commands may see (backup, doctor): the locked user's, and of those the
    locked meta's. None when nothing is locked (every layer)."""
    user = env.get("PRONTO_FORCE_USER") or None
    meta = env.get("PRONTO_FORCE_META") or None
    if user is None and meta is None:
        return None
    return lambda u, m: (user is None or u == user) and (meta is None or m == meta)
