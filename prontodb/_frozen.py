"""Immutable value objects with slots, for the types every command builds at start-up.

``@dataclass(frozen=True, slots=True)`` generates its methods with ``exec`` when the class is
created, which costs 0.5-1 ms per class in every process (a one-shot ``prontodb get`` pays it
before doing anything). :class:`Frozen` gives the same behaviour from ``__slots__``: fields set
once in ``__init__``, assignment and deletion refused with ``dataclasses.FrozenInstanceError``,
equality and hash over the fields (only between instances of the same class), a dataclass-style
``repr``, ``__match_args__`` and pickling.
"""

from __future__ import annotations

from _operator import attrgetter

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from typing import Any, ClassVar


def slot_setters(cls: type) -> tuple[Any, ...]:
    """The ``__set__`` of each slot of ``cls``: the fastest way for ``__init__`` to set a field
    (about twice as fast as ``object.__setattr__``)."""
    return tuple(cls.__dict__[name].__set__ for name in cls.__dict__["__slots__"])


def _frozen_error(message: str) -> AttributeError:
    from dataclasses import FrozenInstanceError  # only on the error path

    return FrozenInstanceError(message)


class Frozen:
    """Base of a frozen value class whose ``__slots__`` (two or more) are its fields, in order.

    Its ``__init__`` sets each field once through :func:`slot_setters` (the frozen
    ``__setattr__`` refuses every assignment)."""

    __slots__ = ()
    _fields: ClassVar[Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        slots = cls.__dict__.get("__slots__", ())
        if slots:  # a subclass of a value class (adding no fields) keeps its parent's
            first, *rest = slots  # two or more, so that _fields gives a tuple
            cls._fields = attrgetter(first, *rest)
            setattr(cls, "__match_args__", (first, *rest))  # noqa: B010 - mypy: a class var

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._fields(self) == self._fields(other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields(self))

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__  # type: ignore[assignment]
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({values})"

    def __setattr__(self, name: str, value: object) -> None:
        raise _frozen_error(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise _frozen_error(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), self._fields(self)
