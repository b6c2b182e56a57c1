"""Writing one line of text to stdout or stderr without importing click.

:func:`echo` is what every command and the runner print through. For the common case (a
message without ANSI codes, on a UTF-8 stream) it writes the text and a newline and flushes,
which is exactly what ``click.echo`` does there; anything else (ANSI codes to strip, a
misconfigured or non-UTF-8 stream, Windows consoles) is handed to ``click.echo`` itself, so
the output never depends on which path printed it.
"""

from __future__ import annotations

import sys

_UTF8 = frozenset({"utf-8", "utf8", "UTF-8", "UTF8"})


def echo(message: object = None, *, err: bool = False) -> None:
    """Print ``message`` (converted to text) and a newline to stdout, or stderr with ``err``;
    flush. Same output as ``click.echo(message, err=err)``."""
    file = sys.stderr if err else sys.stdout
    text: str | None
    if message is None:
        text = ""
    elif isinstance(message, bytes | bytearray):
        text = None  # click writes bytes to the binary stream
    else:
        text = str(message)
    if (
        text is None
        or file is None
        or "\x1b" in text
        or getattr(file, "encoding", None) not in _UTF8
        or sys.platform == "win32"
    ):
        import click

        click.echo(message, err=err)
        return
    file.write(text + "\n")
    file.flush()
