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

    #: How an argument (and optionally a value for it) is written in a message.
    Spelling = Callable[[str, str | None], str]

#: ``{name}`` or ``{name=value}`` in a message template: an argument, optionally with a value.
#: ``{{`` and ``}}`` stand for literal braces (see :func:`literal`). Compiled on first use.
_PLACEHOLDER = r"\{\{|\}\}|\{([a-z_][a-z0-9_]*)(?:=([^{}]*))?\}"


def python_spelling(argument: str, value: str | None) -> str:
    """How a library message names an argument: as the Python parameter, with its value when
    the template gives one (``keep_ttl``, ``replace=True``, ``on_conflict='fail'``)."""
    return argument if value is None else f"{argument}={value}"


class ProntoWarning(UserWarning):
    """A warning issued by ProntoDB itself (tests turn these into errors)."""


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


class NotFoundError(ProntoError, KeyError):
    """The named entry does not exist or has expired."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.address = address

    def __str__(self) -> str:
        return f"not found: {self.address}"


class InvalidAddressError(ProntoError, ValueError):
    """An address (or scope) cannot be parsed; the message names the offending part."""


class InvalidNameError(ProntoError, ValueError):
    """A user, meta or cursor name breaks the naming rule."""


class InvalidDurationError(ProntoError, ValueError):
    """A duration (a TTL) is malformed, not positive, or too large: ``rule`` is one of
    ``"malformed"``, ``"not positive"``, ``"too large"`` (its deadline would fall in or after
    the year 10000) or ``"whole seconds"`` (where only whole seconds are kept); ``argument``
    names the parameter and ``value`` holds what was given."""


class UsageError(ProntoError, ValueError):
    """A request that is malformed as a whole (conflicting options, empty input, ...)."""


class ValueTooLargeError(ProntoError, ValueError):
    """A value is over the configured maximum size."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"value is {size} bytes, over the limit of {limit} bytes",
            argument="value",
            value=size,
            rule="too large",
        )
        self.size = size
        self.limit = limit


class ContextLockedError(ProntoError):
    """A user or meta differs from the one locked by PRONTO_FORCE_USER / PRONTO_FORCE_META."""


class ConfigError(ProntoError):
    """A cursor or configuration problem: unknown cursor, unreadable config, bad setting."""


class StreamError(ProntoError, ValueError):
    """A token stream breaks the grammar or the state rules; nothing was written."""


class ConflictError(ProntoError):
    """Existing data stood in the way and nothing was changed: an import or restore met data
    it was told not to overwrite, a copy/move met a live destination, or an optimistic
    engine's commit found that data the transaction read had changed meanwhile."""


class DestinationExistsError(ConflictError):
    """A copy or move found a live entry at its destination and was not told to replace it;
    nothing changed. ``address`` is the destination as written."""

    def __init__(self, address: str) -> None:
        super().__init__(
            None,
            argument="replace",
            value=address,
            rule="destination exists",
            template=f"{literal(repr(address))} exists; pass {{replace=True}} to overwrite it",
        )
        self.address = address


class WriteConflictError(ConflictError):
    """An optimistic engine could not commit a write transaction because data it read was
    changed by another writer; nothing of the transaction was written. ``run_transaction``
    re-runs the unit of work on this error before giving up."""


class NotACounterError(ProntoError, ValueError):
    """``incr``/``decr`` found a value that is not an integer counter (ASCII decimal, optionally
    signed, surrounding ASCII whitespace allowed); nothing changed. ``address`` is the entry as
    written, ``value`` its stored bytes (the first 64)."""

    def __init__(self, address: str, value: bytes) -> None:
        super().__init__(f"{address!r} does not hold an integer: {value[:64]!r}")
        self.address = address
        self.value = value[:64]


class CounterOverflowError(ProntoError, ValueError):
    """``incr``/``decr`` would take a counter outside the 64-bit signed range (or was given a
    step outside it); nothing changed. ``address``, ``value`` (the current count) and ``by``
    (the requested change) say which."""

    def __init__(self, address: str, value: int, by: int) -> None:
        super().__init__(
            f"{address!r}: {value} {'+' if by >= 0 else '-'} {abs(by)} is outside the 64-bit "
            "signed range"
        )
        self.address = address
        self.value = value
        self.by = by


class DataFormatError(ProntoError, ValueError):
    """An export file or backup archive is malformed, damaged or unsafe (or data cannot be
    written in the requested format); nothing was written."""


class BackendError(ProntoError):
    """The storage engine failed. The engine's own exception is kept as ``__cause__``."""


class StoreBusyError(BackendError):
    """The store stayed locked by other processes for longer than the busy timeout."""


class StorageFullError(BackendError):
    """The disk (or the engine's map) is full and could not be grown."""


class StoreNotFoundError(BackendError):
    """There is no store at the given path (reading commands never create one)."""


class StoreRetiredError(StoreNotFoundError):
    """The store was taken out of use by ``cursor migrate`` (its data now lives at
    ``successor``); nothing was read or written. Raised by engines whose stores outlive a
    migrate (a store on a server), where a file store would be gone from its path instead."""

    def __init__(self, message: str, *, successor: str | None = None) -> None:
        super().__init__(message)
        self.successor = successor


class CorruptStoreError(BackendError):
    """The store file is damaged or is not a ProntoDB store of the expected kind."""


class InsecureStoreError(BackendError):
    """The store can be written by other accounts (group/other write bits or foreign owner)."""


class ReadOnlyStoreError(BackendError):
    """The store cannot be written (read-only file or file system)."""
