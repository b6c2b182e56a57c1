"""The one error hierarchy of ProntoDB.

Every failure the library reports is a :class:`ProntoError`. The CLI alone maps these classes to
exit codes; the library never exits. Backends translate their engine's native errors into
:class:`BackendError` subclasses and keep the original as ``__cause__``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing or re
    import re
    from collections.abc import Callable

    from prontodb._rare_errors import (
        CounterOverflowError as CounterOverflowError,
    )
    from prontodb._rare_errors import (
        DataFormatError as DataFormatError,
    )
    from prontodb._rare_errors import (
        DestinationExistsError as DestinationExistsError,
    )
    from prontodb._rare_errors import (
        InvalidDurationError as InvalidDurationError,
    )
    from prontodb._rare_errors import (
        NotACounterError as NotACounterError,
    )
    from prontodb._rare_errors import (
        NotFoundError as NotFoundError,
    )
    from prontodb._rare_errors import (
        ProntoWarning as ProntoWarning,
    )
    from prontodb._rare_errors import (
        StoreRetiredError as StoreRetiredError,
    )
    from prontodb._rare_errors import (
        StreamError as StreamError,
    )
    from prontodb._rare_errors import (
        ValueTooLargeError as ValueTooLargeError,
    )

    #: How an argument (and optionally a value for it) is written in a message.
    Spelling = Callable[[str, str | None], str]

#: ``{name}`` or ``{name=value}`` in a message template: an argument, optionally with a value.
#: ``{{`` and ``}}`` stand for literal braces (see :func:`literal`). Compiled on first use.
_PLACEHOLDER = r"\{\{|\}\}|\{([a-z_][a-z0-9_]*)(?:=([^{}]*))?\}"


def python_spelling(argument: str, value: str | None) -> str:
    """How a library message names an argument: as the Python parameter, with its value when
    the template gives one (``keep_ttl``, ``replace=True``, ``on_conflict='fail'``)."""
    return argument if value is None else f"{argument}={value}"


class ProntoError(Exception):
    """Base class of every error ProntoDB raises on purpose.

    Errors about a caller's input carry structured data: ``argument`` (the Python parameter at
    fault, or a tuple of them when they conflict), ``value`` (what was given) and ``rule`` (a
    short name of the rule broken, such as ``"too large"`` or ``"exclusive"``); each is None
    when it does not apply. The message names Python arguments, never CLI flags: a message
    built from a ``template`` writes each argument as ``{name}``, and :meth:`describe` renders
    it with another spelling (the CLI's flags) from the same data.
    """

    argument: str | tuple[str, ...] | None = None
    value: object = None
    rule: str | None = None
    template: str | None = None

    def __init__(
        self,
        message: object = None,
        *args: object,
        argument: str | tuple[str, ...] | None = None,
        value: object = None,
        rule: str | None = None,
        template: str | None = None,
    ) -> None:
        if template is not None and message is None:
            message = render(template, python_spelling)
        if message is None:
            super().__init__(*args)
        else:
            super().__init__(message, *args)
        # Only what is given is set: a subclass may have set its own fields before calling.
        if argument is not None:
            self.argument = argument
        if value is not None:
            self.value = value
        if rule is not None:
            self.rule = rule
        if template is not None:
            self.template = template

    @property
    def arguments(self) -> tuple[str, ...]:
        """The arguments at fault as a tuple (empty when none is named)."""
        if self.argument is None:
            return ()
        return (self.argument,) if isinstance(self.argument, str) else self.argument

    def describe(self, spell: Spelling = python_spelling) -> str:
        """The message with every argument spelled by ``spell`` (``str(exc)`` uses the Python
        names); an error without a template is its plain message."""
        if self.template is None:
            return str(self)
        return render(self.template, spell)


def render(template: str, spell: Spelling) -> str:
    """Fill each ``{name}`` / ``{name=value}`` of ``template`` with ``spell(name, value)``;
    other text is kept as is."""

    import re  # only a message built from a template pays for it (re caches the pattern)

    def fill(match: re.Match[str]) -> str:
        text = match.group(0)
        if text in ("{{", "}}"):
            return text[0]
        return spell(match.group(1), match.group(2))

    return re.sub(_PLACEHOLDER, fill, template)


def literal(text: object) -> str:
    """``text`` made safe to put in a message template (its braces doubled), so a value that
    holds ``{`` is never read as an argument placeholder."""
    return str(text).replace("{", "{{").replace("}", "}}")


class InvalidAddressError(ProntoError, ValueError):
    """An address (or scope) cannot be parsed; the message names the offending part."""


class InvalidNameError(ProntoError, ValueError):
    """A user, meta or cursor name breaks the naming rule."""


class UsageError(ProntoError, ValueError):
    """A request that is malformed as a whole (conflicting options, empty input, ...)."""


class ContextLockedError(ProntoError):
    """A user or meta differs from the one locked by PRONTO_FORCE_USER / PRONTO_FORCE_META."""


class ConfigError(ProntoError):
    """A cursor or configuration problem: unknown cursor, unreadable config, bad setting."""


class ConflictError(ProntoError):
    """Existing data stood in the way and nothing was changed: an import or restore met data
    it was told not to overwrite, a copy/move met a live destination, or an optimistic
    engine's commit found that data the transaction read had changed meanwhile."""


class WriteConflictError(ConflictError):
    """An optimistic engine could not commit a write transaction because data it read was
    changed by another writer; nothing of the transaction was written. ``run_transaction``
    re-runs the unit of work on this error before giving up."""


class BackendError(ProntoError):
    """The storage engine failed. The engine's own exception is kept as ``__cause__``."""


class StoreBusyError(BackendError):
    """The store stayed locked by other processes for longer than the busy timeout."""


class StorageFullError(BackendError):
    """The disk (or the engine's map) is full and could not be grown."""


class StoreNotFoundError(BackendError):
    """There is no store at the given path (reading commands never create one)."""


class CorruptStoreError(BackendError):
    """The store file is damaged or is not a ProntoDB store of the expected kind."""


class InsecureStoreError(BackendError):
    """The store can be written by other accounts (group/other write bits or foreign owner)."""


class ReadOnlyStoreError(BackendError):
    """The store cannot be written (read-only file or file system)."""


#: Classes created on first use (:mod:`prontodb._rare_errors`): a command that succeeds needs
#: none of them, and each costs about 0.13M instructions to create. They are this module's
#: classes all the same: ``prontodb.errors.NotFoundError``, ``from prontodb.errors import
#: NotFoundError``, ``except``, ``isinstance`` and pickling see one class object, whose
#: ``__module__`` is ``prontodb.errors``.
_RARE = frozenset(
    {
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
    }
)


def __getattr__(name: str) -> type:
    """Create the rarely needed classes on first use and keep them as module attributes."""
    if name in _RARE:
        from prontodb._rare_errors import CLASSES

        globals().update(CLASSES)
        return CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_RARE})
