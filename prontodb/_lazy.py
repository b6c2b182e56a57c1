"""Stand-ins that put off a standard-library import until first use (docs/performance.md).

A one-shot command (``prontodb get``) costs about as much as the modules it imports, and
:mod:`contextlib` brings :mod:`functools`, :mod:`collections` and :mod:`types` with it. Module
code that decorates with ``@contextmanager`` at import time takes it from here: the function
is wrapped by :func:`contextlib.contextmanager` on its first call, so a command that never
enters such a block never imports contextlib. Type checkers see contextlib's own decorator.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import contextmanager as contextmanager
else:

    def contextmanager(func):
        """:func:`contextlib.contextmanager`, applied when the decorated generator function
        is first called: same context manager, same behaviour; ``__wrapped__``, name and
        docstring are the function's."""
        made = None

        def helper(*args, **kwargs):
            nonlocal made
            if made is None:
                from contextlib import contextmanager as make

                made = make(func)
            return made(*args, **kwargs)

        helper.__module__ = func.__module__
        helper.__name__ = func.__name__
        helper.__qualname__ = func.__qualname__
        helper.__doc__ = func.__doc__
        helper.__wrapped__ = func
        return helper


class NullContext:
    """``contextlib.nullcontext()`` without importing contextlib: a block guarded by nothing."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
