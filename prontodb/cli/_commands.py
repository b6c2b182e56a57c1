"""Which function implements each declared command, recorded without importing click.

A command module writes ``@declared("set")`` over its function. The decorator only records
the function here: the click side (:func:`prontodb.cli._build.build_pending`) builds a click
command from the declaration in :mod:`prontodb.cli.spec` and this function when the module is
loaded for click, and the click-free hot path (:mod:`prontodb.cli._hot`) calls the same
function directly. Either way the command's logic exists once.

A command function receives a context first (click's, or the hot path's stand-in: all a
command may ask of it is ``find_root().obj``, the :class:`~prontodb.cli._session.Session`),
then its parameters by their declared names.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Callable
    from typing import Any

    #: A command function: a context first, then its parameters by their declared names.
    Command = Callable[..., Any]

#: Every recorded command function by its path (``("set",)``, ``("cursor", "list")``).
IMPLS: dict[tuple[str, ...], Command] = {}
#: Recorded functions the click group has not built a command for yet, in order.
PENDING: list[tuple[tuple[str, ...], Command]] = []


def declared(*path: str) -> Callable[[Command], Command]:
    """Record the decorated function as the command at ``path``; return it unchanged."""

    def record(fn: Command) -> Command:
        IMPLS[path] = fn
        PENDING.append((path, fn))
        return fn

    return record
