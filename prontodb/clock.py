"""The injectable clock. Time is epoch seconds as a float; tests use :class:`FakeClock`."""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # a one-shot command never imports collections.abc for an annotation
    from collections.abc import Callable

    #: A clock: a function giving epoch seconds as a float.
    Clock = Callable[[], float]

system_clock: Clock = time.time


class FakeClock:
    """A clock that only moves when told to: ``clock.advance(seconds)``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds
