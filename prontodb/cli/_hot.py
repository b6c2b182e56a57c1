"""The click-free hot path: one-shot ``get``, ``set``, ``del``, ``exists``, ``incr`` and
``decr`` without importing click (docs/cli.md, the hot path; docs/performance.md, start-up).

It is not a second parser and not a second implementation: the command line is classified by
:mod:`prontodb.cli.argv` (from the declarations in :mod:`prontodb.cli.spec`), the command's
own function (recorded by ``@declared``, :mod:`prontodb.cli._commands`) is called with the
parameters click would have passed, and the outcome goes through the same runner
(:func:`prontodb.cli._app.run`) as the click path: same messages, exit codes and rescue.

A call is served here only when nothing in it needs click: a hot command, no usage problem,
no help or version, not the lone word ``help``, no ``--ns-delim`` (checked by the root group).
Everything else falls back to click. ``PRONTO_NO_FAST=1`` forces the click path for every
call (a debugging aid; the differential test runs both paths with it).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from typing import Any

    from prontodb.cli._session import Session
    from prontodb.cli._stdin import Piped
    from prontodb.cli.argv import Call

#: The commands this path serves.
HOT = frozenset({"get", "set", "del", "exists", "incr", "decr"})
#: Environment variable that forces the click path.
NO_FAST_ENV = "PRONTO_NO_FAST"


class _Context:
    """The stand-in for click's context handed to a command function: all a command asks of
    its context is ``find_root().obj``, the session."""

    __slots__ = ("obj",)

    def __init__(self, obj: Session) -> None:
        self.obj = obj

    def find_root(self) -> _Context:
        return self


def serves(call: Call) -> bool:
    """True when ``call`` runs on the hot path (see the module docstring)."""
    cmd = call.cmd
    return (
        cmd is not None
        and cmd.name in HOT
        and len(call.path) == 1
        and call.problem is None
        and call.unknown is None
        and not call.stops
        and not call.help_word
        and "ns_delim" not in call.globals
    )


def arguments(call: Call) -> dict[str, Any]:
    """The keyword arguments click passes the command function for ``call``: positionals by
    their declared names (a ``many`` argument as a tuple), options by ``dest``, and the
    declared defaults for what is absent."""
    cmd = call.cmd
    assert cmd is not None
    kwargs: dict[str, Any] = {}
    rest = list(call.positionals)
    for arg in cmd.args:
        if arg.many:
            kwargs[arg.dest], rest = tuple(rest), []
        else:
            kwargs[arg.dest] = rest.pop(0) if rest else arg.default
    for opt in cmd.opts:
        kwargs[opt.dest] = call.options.get(opt.dest, opt.default if opt.value else False)
    return kwargs


def run(argv: list[str]) -> int | None:
    """Run ``argv`` on the hot path and return its exit code; None (nothing done, stdin
    untouched) when the call is not one this path serves or ``PRONTO_NO_FAST`` is set."""
    if os.environ.get(NO_FAST_ENV) or os.environ.get("_PRONTODB_COMPLETE"):
        return None
    from prontodb.cli.argv import classify

    call = classify(argv)
    if not serves(call):
        return None
    assert call.cmd is not None
    __import__(call.cmd.module)  # importlib.import_module, without importing importlib
    from prontodb.cli import _app
    from prontodb.cli._commands import IMPLS
    from prontodb.cli._session import Session

    fn = IMPLS[(call.cmd.name,)]
    kwargs = arguments(call)

    def invoke(piped: Piped | None) -> None:
        session = Session.from_flags(call.globals)
        try:
            fn(_Context(session), **kwargs)
        finally:
            session.close()

    return _app.run(call, invoke)
