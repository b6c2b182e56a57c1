"""The start-up stand-ins for standard-library helpers behave as the helpers they replace.

``prontodb._lazy.contextmanager`` is compared with :func:`contextlib.contextmanager` over
generator shapes x what the ``with`` block does; ``prontodb._threadsync.Condition`` is driven
by real threads (docs/performance.md, start-up).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from prontodb._lazy import contextmanager
from prontodb._threadsync import Condition, Lock, get_ident


class Boom(Exception):
    pass


def _plain() -> Iterator[str]:
    yield "x"


def _suppresses() -> Iterator[str]:
    try:
        yield "x"
    except Boom:
        pass


def _reraises() -> Iterator[str]:
    try:
        yield "x"
    except BaseException:
        raise


def _replaces() -> Iterator[str]:
    try:
        yield "x"
    except Boom as exc:
        raise ValueError("replaced") from exc


def _cleans_up(log: list[str]) -> Callable[[], Iterator[str]]:
    def gen() -> Iterator[str]:
        try:
            yield "x"
        finally:
            log.append("cleaned")

    return gen


def _no_yield() -> Iterator[str]:
    if False:  # pragma: no cover
        yield "never"


def _yields_twice() -> Iterator[str]:
    yield "x"
    yield "y"


def _yields_after_throw() -> Iterator[str]:
    try:
        yield "x"
    except Boom:
        yield "again"


def _stopiteration_passthrough() -> Iterator[str]:
    yield "x"


SHAPES: dict[str, Callable[[], Iterator[str]]] = {
    "plain": _plain,
    "suppresses": _suppresses,
    "reraises": _reraises,
    "replaces": _replaces,
    "no_yield": _no_yield,
    "yields_twice": _yields_twice,
    "yields_after_throw": _yields_after_throw,
    "stopiteration": _stopiteration_passthrough,
}


def _raises(make: Callable[[], BaseException]) -> Callable[[], None]:
    def block() -> None:
        raise make()  # a new exception each run: both sides start alike

    return block


BLOCKS: dict[str, Callable[[], None]] = {
    "nothing": lambda: None,
    "boom": _raises(lambda: Boom("b")),
    "runtime": _raises(lambda: RuntimeError("r")),
    "stop": _raises(lambda: StopIteration("s")),
    "keyboard": _raises(lambda: KeyboardInterrupt()),
}


def _outcome(decorate: Callable[..., Any], shape: str, block: str) -> tuple[Any, ...]:
    """What happens: the value bound by ``as``, and the exception that leaves the ``with``
    (type, message, whether it is the block's own, and the type of its cause)."""
    manager = decorate(SHAPES[shape])
    bound: list[str] = []
    raised: list[BaseException] = []
    try:
        with manager() as value:
            bound.append(value)
            try:
                BLOCKS[block]()
            except BaseException as exc:
                raised.append(exc)
                raise
    except BaseException as exc:
        own = bool(raised) and exc is raised[0]
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else None
        return tuple(bound), type(exc).__name__, str(exc), own, cause
    return tuple(bound), None, None, None, None


@pytest.mark.parametrize("block", sorted(BLOCKS))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_contextmanager_behaves_as_contextlibs(shape: str, block: str) -> None:
    assert _outcome(contextmanager, shape, block) == _outcome(
        contextlib.contextmanager, shape, block
    )


def test_contextmanager_runs_cleanup_and_keeps_the_functions_identity() -> None:
    log: list[str] = []
    gen = _cleans_up(log)
    managed = contextmanager(gen)
    with pytest.raises(Boom), managed():
        raise Boom("b")
    assert log == ["cleaned"]
    assert managed.__wrapped__ is gen  # type: ignore[attr-defined]
    assert managed.__name__ == gen.__name__
    assert isinstance(managed(), contextlib.AbstractContextManager)


def test_contextmanager_never_imports_contextlib() -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from prontodb._lazy import contextmanager\n"
        "@contextmanager\n"
        "def cm():\n"
        "    yield 1\n"
        "with cm() as one:\n"
        "    pass\n"
        "print('contextlib' in sys.modules, one)\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parent.parent)},
    )
    assert done.stdout.split() == ["False", "1"]


def test_condition_refuses_wait_and_notify_without_its_lock() -> None:
    cond = Condition()
    with pytest.raises(RuntimeError):
        cond.wait(0)
    with pytest.raises(RuntimeError):
        cond.notify_all()


def test_condition_wait_without_a_notify_times_out_holding_the_lock() -> None:
    cond = Condition()
    with cond:
        assert cond.wait(0) is False
        assert cond.wait(0.001) is False
        assert cond._lock.locked()  # held again on return
        assert cond._waiters == []  # a timed-out waiter is forgotten
    assert not cond._lock.locked()


def test_condition_notify_all_wakes_every_waiter() -> None:
    cond = Condition()
    state = {"go": False, "waiting": 0, "woken": 0}
    idents: list[int] = []

    def waiter() -> None:
        idents.append(get_ident())
        with cond:
            state["waiting"] += 1
            cond.notify_all()  # tell the main thread one more is waiting
            while not state["go"]:
                cond.wait()
            state["woken"] += 1

    threads = [threading.Thread(target=waiter) for _ in range(4)]
    for thread in threads:
        thread.start()
    with cond:
        while state["waiting"] < len(threads):
            assert cond.wait(30), "the waiters never started"
        state["go"] = True
        cond.notify_all()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    assert state["woken"] == len(threads)
    assert len(set(idents)) == len(threads)  # get_ident tells threads apart
    assert get_ident() == threading.get_ident()


def test_lock_is_the_threading_lock_type() -> None:
    assert type(Lock()) is type(threading.Lock())


#: The classes prontodb.errors creates on first use (prontodb._rare_errors).
_RARE_ERRORS = (
    "ProntoWarning",
    "NotFoundError",
    "InvalidDurationError",
    "ValueTooLargeError",
    "StreamError",
    "DestinationExistsError",
    "NotACounterError",
    "CounterOverflowError",
    "DataFormatError",
    "StoreRetiredError",
)


def test_rare_errors_are_created_on_first_use_only() -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "import prontodb.errors as e\n"
        "before = '_rare_errors' in str(sorted(sys.modules))\n"
        "cls = e.NotFoundError\n"
        "print(before, cls.__module__, cls.__qualname__, 'prontodb._rare_errors' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parent.parent)},
    )
    assert done.stdout.split() == ["False", "prontodb.errors", "NotFoundError", "True"]


@pytest.mark.parametrize("name", _RARE_ERRORS)
def test_a_rare_error_is_one_class_under_every_name_and_pickles(name: str) -> None:
    import pickle

    import prontodb
    import prontodb.errors as errors
    from prontodb import _rare_errors

    cls = getattr(errors, name)
    assert cls is _rare_errors.CLASSES[name] is getattr(prontodb, name)
    globals_: dict[str, object] = {}
    exec(f"from prontodb.errors import {name} as imported", globals_)
    assert globals_["imported"] is cls
    assert cls.__module__ == "prontodb.errors"
    assert name in dir(errors)
    assert pickle.loads(pickle.dumps(cls)) is cls
    # Instances: those whose __init__ takes the message only (the others do not pickle on
    # main either: their __init__ takes other arguments than BaseException.args holds).
    if name in ("NotFoundError", "InvalidDurationError", "StreamError", "DataFormatError"):
        exc = cls("a.b.c")
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is cls and str(again) == str(exc)
        with pytest.raises(errors.ProntoError):
            raise exc


def test_an_unknown_errors_attribute_is_still_an_attribute_error() -> None:
    import prontodb.errors as errors

    with pytest.raises(AttributeError, match="NoSuchError"):
        errors.NoSuchError  # noqa: B018
    assert issubclass(errors.StoreRetiredError, errors.StoreNotFoundError)
    assert issubclass(errors.NotFoundError, KeyError)
    assert issubclass(errors.DestinationExistsError, errors.ConflictError)
