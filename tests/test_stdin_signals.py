"""A signal while stdin is read stops the read between reads, never inside one.

A handler that raises can run as a read returns, before its bytes are kept: what that read
took from the pipe would be lost to the rescue. ``cli._stdin`` notes the signal instead
(``_Waiter``), keeps every chunk read, and stops at the next wait (marked partial)."""

from __future__ import annotations

import os
import signal

from prontodb.cli import _stdin


class _RacyPipe:
    """A stdin whose every read is followed, before it returns, by a SIGTERM to this process:
    the signal arrives exactly while the read's bytes are in flight."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def read1(self, size: int) -> bytes:
        data = os.read(self._fd, size)
        if data:
            os.kill(os.getpid(), signal.SIGTERM)
        return data

    read = read1


def test_a_signal_as_a_read_returns_keeps_its_bytes_and_marks_the_content_partial():
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"line one\nline two\n")
        piped = _stdin.Piped(1 << 20, None, os.environ)
        chunks, sink = piped._drain(_RacyPipe(read_end), 1 << 20)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert sink is None
    assert b"".join(chunks) == b"line one\nline two\n"
    assert piped.partial is not None and piped.partial.name == "SIGTERM"


def test_the_handlers_and_the_wakeup_fd_are_put_back():
    before = {sig: signal.getsignal(sig) for sig in _stdin.SIGNALS}
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"x")
        os.close(write_end)
        write_end = -1
        with open(read_end, "rb", closefd=False) as stream:
            chunks, _ = _stdin.Piped(1 << 20, None, os.environ)._drain(stream, 1 << 20)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    assert chunks == [b"x"]
    assert {sig: signal.getsignal(sig) for sig in _stdin.SIGNALS} == before
    assert signal.set_wakeup_fd(-1) == -1  # none was left installed
