"""``prontodb doctor``: check the current store and say what was found (one library call)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from prontodb.cli._app import EXIT_ERROR, Exit
from prontodb.cli._build import declared
from prontodb.cli._session import session

if TYPE_CHECKING:
    from prontodb import doctor


@declared("doctor")
def doctor_cmd(ctx: click.Context) -> None:
    """Check the store (the current one, or --database/--cursor's): the engine's integrity
    check, the envelope of every entry, the expired-entry backlog, file permissions and the
    LMDB reader table. Prints one line per finding (severity, check, message); exit 0 when
    healthy (warnings are printed but do not fail), 1 when an error was found. Changes no
    entry; stale LMDB reader slots of dead processes are cleared, as every open does."""
    from prontodb import doctor
    from prontodb.context import reachable_layers

    s = session(ctx)
    target = s.target()
    if not target.explicit_path and not os.path.lexists(target.path):
        # A fresh install: the default store is created by the first write (docs/cli.md)
        report = doctor.Report(target.path, target.backend)
        report.add("info", "open", "no store yet (the first write creates it)")
    else:
        report = doctor.examine(target.path, backend=target.backend, only=reachable_layers(s.env))
    if s.json:
        s.emit_json(report.as_dict())
    else:
        click.echo(f"store: {report.path} ({report.backend or 'unknown engine'})")
        for finding in report.findings:
            click.echo(f"{finding.severity:<7} {finding.check:<11} {finding.message}")
        click.echo(summary_line(report))
    if not report.healthy:
        raise Exit(EXIT_ERROR, f"{problems_of(report)} found in {report.path}")


def summary_line(report: doctor.Report) -> str:
    """``healthy``, ``healthy (1 warning)``, ``2 problems found`` or ``1 problem found (3
    warnings)``: errors are problems, warnings are counted beside them."""
    warnings = report.count("warning")
    said = f" ({warnings} warning{'s' * (warnings != 1)})" if warnings else ""
    return ("healthy" if report.healthy else f"{problems_of(report)} found") + said


def problems_of(report: doctor.Report) -> str:
    """``1 problem`` / ``3 problems``: the findings that make the store unhealthy (errors)."""
    count = report.count("error")
    return f"{count} problem{'s' * (count != 1)}"
