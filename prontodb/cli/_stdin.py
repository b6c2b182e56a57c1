"""Piped content: read stdin once, with a bound, and survive signals while reading.

The runner creates one :class:`Piped` per invocation whose command takes content from stdin
(or that resolves to no command). The command asks :meth:`Piped.content` for the bytes; on any
exit other than success the runner asks the same object for whatever was read (reading it then
if the command never got that far) and rescues it.

Reading keeps at most the size limit (``PRONTO_MAX_VALUE_BYTES``) in memory. Past it, what
was read and everything after it streams to a 0600 rescue file, so content of any size is
never held whole and never truncated. SIGINT, SIGTERM and SIGHUP while reading stop the read
and keep what arrived so far, marked partial.

A command that consumes stdin as a stream (``stream``) asks :meth:`Piped.stream_input`
instead: past :data:`SPOOL_AT` bytes the input goes to the same kind of 0600 file (a rescue
file not yet named) and the command reads it back from there, so memory stays flat whatever
the input size. If the command then fails, that file becomes the rescue (or, within the size
limit, its bytes are rescued into the pipe cache as usual); after a success it is removed.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

from prontodb.errors import UsageError

#: stdin is read in blocks of this many bytes.
CHUNK = 1 << 16
#: :meth:`Piped.stream_input` holds at most this much of stdin in memory, then spools to a file.
SPOOL_AT = 1 << 20
#: Signals that stop a read (and any later step of a rescuing command) and trigger a rescue.
SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Callable, Iterator
    from typing import Any


class Interrupted(BaseException):
    """A signal arrived while a rescuing command ran (a BaseException, like Ctrl-C)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        """The signal's name (``SIGTERM``)."""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


class NothingPiped(UsageError):
    """No content arrived (a terminal, closed or empty stdin): a usage error with nothing to
    rescue."""


class TooLarge(Exception):
    """The piped content is over the size limit; it was streamed to ``path`` whole."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(path)
        self.path, self.size, self.limit = path, size, limit


class Piped:
    """The stdin of one invocation. ``state`` is ``"unread"``, ``"none"`` (a terminal, closed
    or missing stdin), ``"read"`` (``data`` holds it), ``"spilled"`` (``spill`` holds the
    file), ``"spooled"`` (:meth:`stream_input` put it in a file the command reads) or
    ``"released"`` (the command consumed it and succeeded). ``partial`` is the signal that
    stopped the read, if one did."""

    def __init__(self, limit: int, attempted: str | None, env: Any) -> None:
        self.limit = limit
        self.attempted = attempted
        self.env = env
        self.state = "unread"
        self.data = b""
        self.spill: TooLarge | None = None
        self.partial: Interrupted | None = None
        self._spool: Any = None  # the FileSink of state "spooled"

    def has_content(self) -> bool:
        """Read stdin if not yet done; True when it held any byte."""
        self.read()
        return self.state == "spilled" or bool(self.data)

    def content(self) -> bytes:
        """The piped bytes for the command. A terminal, closed or empty stdin is a usage error
        (nothing to rescue); content over the limit raises :class:`TooLarge`."""
        self.read()
        if self.partial is not None:
            raise self.partial  # what was read is not all of it: rescue, never store
        if self.spill is not None:
            raise self.spill
        if self.state == "none":
            raise NothingPiped("no VALUE given and stdin is a terminal or closed: nothing to store")
        if not self.data:
            raise NothingPiped(
                "no VALUE given and stdin is empty: nothing to store"
                " (to store an empty value: prontodb set ADDRESS '')"
            )
        return self.data

    def stream_input(self, spool_at: int = SPOOL_AT) -> bytes | str:
        """All of stdin for a command that consumes it as a stream: the bytes when there are
        at most ``spool_at`` of them, else the path of a private 0600 file holding them (read
        into it as they arrive: memory stays flat whatever the size). A terminal, closed or
        empty stdin raises :class:`NothingPiped`; a signal while reading raises
        :class:`Interrupted` (what arrived is rescued). Call :meth:`release` after the
        command succeeded; after a failure the runner rescues all of the input as usual."""
        if self.state != "unread":
            return self.content()
        stream = _stdin()
        if stream is None:
            self.state = "none"
            return self.content()
        chunks, sink = self._drain(stream, spool_at)
        if sink is None:
            self.data = b"".join(chunks)
            self.state = "read"
            return self.content()
        sink.flush()
        self._spool = sink
        self.state = "spooled"
        if self.partial is not None:
            raise self.partial
        return str(sink.tmp)

    def release(self) -> None:
        """The command consumed its spooled input and succeeded: remove the file."""
        if self.state == "spooled":
            self._spool.discard()
            self._spool = None
            self.state = "released"

    def _settle(self) -> None:
        """Spooled input, now to be rescued: its bytes when within the size limit (rescued
        into the pipe cache like any content), else the file itself, named as a rescue."""
        sink, self._spool = self._spool, None
        if sink.size <= self.limit:
            with open(sink.tmp, "rb") as fh:
                self.data = fh.read()
            sink.discard()
            self.state = "read"
            return
        path = sink.finish(self.attempted)
        self.spill = TooLarge(path, sink.size, self.limit)
        self.state = "spilled"

    def read(self) -> None:
        """Read all of stdin once (a no-op afterwards)."""
        if self.state == "spooled":
            self._settle()
            return
        if self.state != "unread":
            return
        stream = _stdin()
        if stream is None:
            self.state = "none"
            return
        chunks, sink = self._drain(stream, self.limit)
        if sink is not None:
            path = sink.finish(self.attempted)
            self.spill = TooLarge(path, sink.size, self.limit)
            self.state = "spilled"
            return
        self.data = b"".join(chunks)
        self.state = "read"

    def _drain(self, stream: Any, keep: int) -> tuple[list[bytes], Any]:
        """Read ``stream`` to its end: its chunks while they total at most ``keep`` bytes,
        else a :class:`~prontodb.pipecache.FileSink` holding all of it (chunks empty). A
        broken stdin ends the content where it broke; a signal ends it too and sets
        ``partial``. When no file can be made for content past ``keep``, the content cannot
        be kept whole: BackendError, and nothing is left to rescue (never a truncated
        value taken for the whole)."""
        chunks: list[bytes] = []
        held = 0
        sink = None
        reader = getattr(stream, "read1", stream.read)
        waiter = _Waiter.of(stream)
        try:
            with waiter if waiter is not None else stop_on_signals():
                while True:
                    if waiter is not None and not waiter.ready():
                        raise Interrupted(waiter.signum or signal.SIGTERM)
                    try:
                        chunk = reader(CHUNK)
                    except OSError:
                        break  # a broken stdin ends the content where it broke
                    if not chunk:
                        break
                    if sink is not None:
                        sink.write(chunk)
                        continue
                    chunks.append(chunk)
                    held += len(chunk)
                    if held > keep:
                        sink = self._sink_for(held)
                        for part in chunks:
                            sink.write(part)
                        chunks = []
        except Interrupted as stop:
            self.partial = stop
        except BaseException as exc:
            if sink is not None:
                sink.discard()
            self.state = "none"
            if isinstance(exc, OSError):  # writing the file (reads are handled above)
                from prontodb.errors import BackendError

                raise BackendError(
                    f"stdin could not be kept whole in a file ({exc.strerror or exc}); "
                    "nothing was stored"
                ) from exc
            raise
        return chunks, sink

    def _sink_for(self, held: int) -> Any:
        try:
            return self._open_sink()
        except OSError as exc:
            from prontodb.errors import BackendError

            raise BackendError(
                f"stdin holds more than {held} bytes and no file could be made to keep it "
                f"({exc.strerror or exc}); nothing was stored"
            ) from exc

    def _open_sink(self) -> Any:
        from prontodb import pipecache

        return pipecache.FileSink(self.env)


#: The piped stdin of the running invocation (set by the runner for a rescuing command).
CURRENT: Piped | None = None


def current() -> Piped:
    """The piped stdin of the running command; when the runner set none (a command that does
    not rescue, such as ``stream --dry-run``), a fresh reader that is not kept, so nothing
    read by one in-process invocation is seen by the next."""
    if CURRENT is not None:
        return CURRENT
    import os

    from prontodb.store import DEFAULT_MAX_VALUE_BYTES

    return Piped(DEFAULT_MAX_VALUE_BYTES, None, os.environ)


def _stdin() -> Any:
    """The binary stdin, or None when it is missing, closed or a terminal."""
    stdin = sys.stdin
    if stdin is None:
        return None
    try:
        if stdin.closed or stdin.isatty():
            return None
        return getattr(stdin, "buffer", stdin)
    except (OSError, ValueError, AttributeError):
        return None


def stdin_is_terminal() -> bool:
    """True when stdin is an interactive terminal (or missing)."""
    return _stdin() is None


def _raise(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextmanager
def stop_on_signals(handler: Callable[[int, object], None] = _raise) -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into :class:`Interrupted` meanwhile (main thread only:
    elsewhere signals cannot be caught, and nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in SIGNALS:
        try:
            previous[sig] = signal.signal(sig, handler)
        except (OSError, ValueError):
            continue
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Waiter:
    """Waits until stdin can be read without blocking, or until SIGINT, SIGTERM or SIGHUP
    arrives, with a handler that only notes the signal (and wakes the wait through
    ``signal.set_wakeup_fd``) instead of raising. A handler that raises can run between a
    read's return and the next statement, dropping the bytes that read took from the pipe;
    with this one the reader stops only between reads, after every chunk was kept. Main
    thread only, and only for a stream with a file descriptor (:meth:`of` says None else)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.signum: int | None = None
        self._wake: tuple[int, int] = (-1, -1)
        self._previous: dict[int, Any] = {}
        self._old_wakeup = -1

    @classmethod
    def of(cls, stream: Any) -> _Waiter | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        try:
            return cls(stream.fileno())
        except (AttributeError, OSError, ValueError):
            return None

    def _note(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> _Waiter:
        import os

        self._wake = os.pipe()
        for fd in self._wake:
            os.set_blocking(fd, False)
        self._old_wakeup = signal.set_wakeup_fd(self._wake[1], warn_on_full_buffer=False)
        for sig in SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._note)
            except (OSError, ValueError):
                continue
        return self

    def __exit__(self, *exc: object) -> None:
        import os

        for sig, old in self._previous.items():
            signal.signal(sig, old)
        signal.set_wakeup_fd(self._old_wakeup)
        for fd in self._wake:
            os.close(fd)
        # A signal noted after the last wait (while the last chunk was read) still stops
        # the command, as the raising handler would have, once every byte read is kept.
        if self.signum is not None and exc[0] is None:
            raise Interrupted(self.signum)

    def ready(self) -> bool:
        """Block until stdin has bytes (or its end, or an error) to read without blocking:
        True; or until a signal arrived: False."""
        import os
        import select

        while self.signum is None:
            try:
                readable, _, _ = select.select([self.fd, self._wake[0]], [], [])
            except (OSError, ValueError):
                return True  # the read reports it (a broken stdin ends the content)
            if self._wake[0] in readable:
                try:
                    os.read(self._wake[0], 512)
                except OSError:
                    pass
            if self.fd in readable:
                return self.signum is None
        return False


@contextmanager
def ignoring_signals() -> Iterator[None]:
    """Ignore SIGINT, SIGTERM and SIGHUP meanwhile: a rescue in progress must finish."""
    with stop_on_signals(signal.SIG_IGN):  # type: ignore[arg-type]
        yield
