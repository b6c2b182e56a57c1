"""Locks and a condition variable on :mod:`_thread`, without importing :mod:`threading`.

:mod:`threading` brings :mod:`functools`, :mod:`collections`, :mod:`itertools` and
:mod:`_weakrefset` with it: about 15M instructions, 1.4 ms, more than a third of what a one-shot
``prontodb get`` on an LMDB store adds to ``python -c pass`` (docs/performance.md). The LMDB
engine needs only plain locks, the calling thread's identity and one condition variable per
shared environment, which this module gives from the C primitives :mod:`threading` itself is
built on. :class:`Condition` follows CPython's :class:`threading.Condition` (one waiter lock per
waiting thread, released by a notify), restricted to what the engine uses.
"""

from __future__ import annotations

from _thread import allocate_lock, get_ident

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _thread import LockType

__all__ = ["Condition", "Lock", "get_ident"]

#: ``threading.Lock``: a new non-reentrant lock (the same C type).
Lock = allocate_lock


class Condition:
    """A condition variable over its own non-reentrant lock, as ``threading.Condition(Lock())``
    for ``with``, :meth:`wait` and :meth:`notify_all`.

    Contract: ``wait`` and ``notify_all`` must be called with the lock held (``with cond:``),
    otherwise ``RuntimeError``; ``wait`` releases the lock, blocks until a ``notify_all`` or
    the timeout, and holds the lock again when it returns (also when interrupted).
    """

    __slots__ = ("_lock", "_waiters")

    def __init__(self) -> None:
        self._lock: LockType = allocate_lock()
        self._waiters: list[LockType] = []

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def _check_owned(self) -> None:
        # As threading.Condition does for a non-reentrant lock: a lock that can be taken
        # without blocking was not held (by anyone, so not by the caller).
        if self._lock.acquire(False):
            self._lock.release()
            raise RuntimeError("cannot wait on or notify an un-acquired lock")

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock until notified or ``timeout`` seconds passed (``None``: no limit),
        then take it again. True when notified, False on timeout."""
        self._check_owned()
        waiter = allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        self._lock.release()
        notified = False
        try:
            if timeout is None:
                notified = waiter.acquire()
            elif timeout > 0:
                notified = waiter.acquire(True, timeout)
            else:
                notified = waiter.acquire(False)
            return notified
        finally:
            self._lock.acquire()
            if not notified:
                try:
                    self._waiters.remove(waiter)
                except ValueError:  # notified between the timeout and taking the lock back
                    pass

    def notify_all(self) -> None:
        """Wake every thread waiting now (each returns once it has the lock again)."""
        self._check_owned()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.release()
