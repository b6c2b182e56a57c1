"""``prontodb doctor``: check the current store and say what was found (one library call)."""

from __future__ import annotations

import click

from prontodb.cli import cli
from prontodb.cli._app import EXIT_ERROR, Exit
from prontodb.cli._session import session


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
def doctor_cmd(ctx: click.Context, as_json: bool) -> None:
    """Check the store (the current one, or --database/--cursor's): the engine's integrity
    check, the envelope of every entry, the expired-entry backlog, file permissions and the
    LMDB reader table. Prints one line per finding (severity, check, message); exit 0 when
    healthy, 1 when a warning or an error was found. Changes no entry; stale LMDB reader
    slots of dead processes are cleared, as every open does."""
    from prontodb import doctor
    from prontodb.context import reachable_layers

    s = session(ctx)
    target = s.target()
    report = doctor.examine(target.path, backend=target.backend, only=reachable_layers(s.env))
    if as_json or s.json:
        s.emit_json(report.as_dict())
    else:
        click.echo(f"store: {report.path} ({report.backend or 'unknown engine'})")
        for finding in report.findings:
            click.echo(f"{finding.severity:<7} {finding.check:<11} {finding.message}")
        problems = sum(f.severity != "info" for f in report.findings)
        click.echo(
            "healthy" if report.healthy else f"{problems} problem{'s' * (problems != 1)} found"
        )
    if not report.healthy:
        raise Exit(EXIT_ERROR)
