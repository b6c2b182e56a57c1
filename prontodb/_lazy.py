"""Stand-ins for standard-library helpers that a one-shot command should not import
(docs/performance.md).

A one-shot command (``prontodb get``) costs about as much as the modules it imports, and
:mod:`contextlib` brings :mod:`functools`, :mod:`collections` and :mod:`types` with it (about 11M
instructions where nothing else imports them, as on an LMDB store). Module code that decorates
with ``@contextmanager`` takes it from here: the same protocol as
:func:`contextlib.contextmanager` (CPython's ``_GeneratorContextManager.__enter__``/``__exit__``,
step for step), without importing contextlib. Type checkers see contextlib's own decorator.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import contextmanager as contextmanager
else:

    class _GeneratorContextManager:
        """What a ``@contextmanager`` function returns: enters by running the generator to
        its ``yield``, leaves by running it on (or throwing the block's exception into it),
        exactly as contextlib's class of the same name does for ``with``."""

        __slots__ = ("gen",)

        def __init__(self, gen):
            self.gen = gen

        def __enter__(self):
            try:
                return next(self.gen)
            except StopIteration:
                raise RuntimeError("generator didn't yield") from None

        def __exit__(self, typ, value, traceback):
            if typ is None:
                try:
                    next(self.gen)
                except StopIteration:
                    return False
                raise RuntimeError("generator didn't stop")
            if value is None:
                # Need to force instantiation so we can reliably tell if we get the same
                # exception back (contextlib's own comment).
                value = typ()
            try:
                self.gen.throw(value)
            except StopIteration as exc:
                # Suppress StopIteration unless it is the exception passed to throw().
                return exc is not value
            except RuntimeError as exc:
                if exc is value:
                    exc.__traceback__ = traceback
                    return False
                # A StopIteration raised in the block comes back as the RuntimeError the
                # generator turned it into (PEP 479): re-raise the original.
                if isinstance(value, StopIteration) and exc.__cause__ is value:
                    value.__traceback__ = traceback
                    return False
                raise
            except BaseException as exc:
                # Only re-raise if it is not the exception passed in: the caller's ``with``
                # re-raises that one (a False return), keeping its traceback.
                if exc is not value:
                    raise
                exc.__traceback__ = traceback
                return False
            raise RuntimeError("generator didn't stop after throw()")

    def contextmanager(func):
        """:func:`contextlib.contextmanager` without importing contextlib: calling the
        decorated generator function returns a context manager with the same enter and exit
        behaviour (see :class:`_GeneratorContextManager`); ``__wrapped__``, name and docstring
        are the function's."""

        def helper(*args, **kwargs):
            return _GeneratorContextManager(func(*args, **kwargs))

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
