"""Dot addresses: ``project.namespace.key__context``, their partial forms, delimiters, scopes.

An :class:`Address` is the typed identity of an entry inside one user/meta layer. Parsing
validates every segment and names the offending part in :class:`InvalidAddressError`.
"""

from __future__ import annotations

from _operator import contains
from itertools import repeat

from prontodb._frozen import Frozen, slot_setters
from prontodb.errors import InvalidAddressError, literal

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    import re
    from collections.abc import Sequence

#: Delimiters a user may choose with ``--ns-delim``; ``.`` is the default.
DELIMITERS = (".", ":", "/", "|")
DEFAULT_DELIM = "."
MAX_SEGMENT = 128
#: Longest project+namespace+key(+__context) in characters: with a 32-character user and meta,
#: the backend key then stays within 511 bytes, LMDB's key limit, so every engine accepts it.
MAX_ADDRESS = 440
CONTEXT_SEP = "__"

#: The characters of a segment: ``A-Z a-z 0-9 _ -``, not starting with ``-`` (the rule
#: ``[A-Za-z0-9_][A-Za-z0-9_-]{0,127}``). Checked with string methods, not a regex: importing
#: :mod:`re` costs a one-shot command more than the rest of the address module.
SEGMENT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
#: A whole ``project.namespace.name`` for :func:`all_plain` (the bulk path), compiled on
#: first use per delimiter.
_PLAIN: dict[str, re.Pattern[str]] = {}


def valid_segment(segment: str) -> bool:
    """True when ``segment`` is a valid project, namespace, key or context: 1-128 characters
    of ``A-Z a-z 0-9 _ -``, not starting with ``-``."""
    return (
        0 < len(segment) <= MAX_SEGMENT
        and segment[0] != "-"
        and not segment.strip(SEGMENT_CHARS)  # every character is allowed
    )


def _plain_parts(text: str, delim: str) -> list[str] | None:
    """The three segments of ``text`` when it is ``project.namespace.name`` of valid segments
    printed with ``delim`` (one of DELIMITERS), else None. None means "not certainly": a
    segment of only ``_`` and ``-`` is valid but not recognized here (the parser checks it)."""
    parts = text.split(delim)
    if len(parts) == 3 and delim in DELIMITERS:
        p, n, k = parts
        if (
            p
            and n
            and k
            and p[0] != "-"
            and n[0] != "-"
            and k[0] != "-"
            and len(p) <= MAX_SEGMENT
            and len(n) <= MAX_SEGMENT
            and len(k) <= MAX_SEGMENT
            and text.isascii()
            and text.replace(delim, "").replace("-", "").replace("_", "").isalnum()
        ):
            return parts
    return None


def is_plain(text: str, delim: str = DEFAULT_DELIM) -> bool:
    """True when ``text`` is a valid full address without a context (``p.n.k``): the common
    case, whose backend key needs no :class:`Address`. False means "not certainly": use
    :func:`parse`, which validates and explains."""
    return CONTEXT_SEP not in text and _plain_parts(text, delim) is not None


def _plain_pattern(delim: str) -> re.Pattern[str] | None:
    """The regex of ``project.namespace.name`` printed with ``delim`` (compiled on first use;
    None for a delimiter that is not one of DELIMITERS)."""
    pattern = _PLAIN.get(delim)
    if pattern is None and delim in DELIMITERS:
        import re  # the bulk path only: checking many addresses at once is faster in re

        segment = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}"
        d = re.escape(delim)
        pattern = _PLAIN[delim] = re.compile(f"({segment}){d}({segment}){d}({segment})")
    return pattern


def all_plain(texts: Sequence[object], delim: str = DEFAULT_DELIM) -> bool:
    """True when ``texts`` is not empty and every item is a ``str`` that :func:`is_plain`
    accepts; checked in bulk, without a Python-level step per item (the bulk write path)."""
    pattern = _PLAIN.get(delim) or _plain_pattern(delim)
    if pattern is None or not texts or set(map(type, texts)) != {str}:
        return False
    strings: Sequence[str] = texts  # type: ignore[assignment]  # all str, checked above
    return all(map(pattern.fullmatch, strings)) and not any(
        map(contains, strings, repeat(CONTEXT_SEP))
    )


class Address(Frozen):
    """A full address. ``context`` is None for an entry without a ``__context`` suffix.

    Immutable and hashable; ordered like the tuple (project, namespace, key, context)."""

    __slots__ = ("project", "namespace", "key", "context")
    project: str
    namespace: str
    key: str
    context: str | None

    def __init__(self, project: str, namespace: str, key: str, context: str | None = None) -> None:
        _set_project(self, project)
        _set_namespace(self, namespace)
        _set_key(self, key)
        _set_context(self, context)

    def __lt__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._fields(self) < self._fields(other))
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._fields(self) <= self._fields(other))
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._fields(self) > self._fields(other))
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(self._fields(self) >= self._fields(other))
        return NotImplemented

    @property
    def name(self) -> str:
        """The key as typed: ``key`` or ``key__context``."""
        return self.key if self.context is None else f"{self.key}{CONTEXT_SEP}{self.context}"

    @property
    def scope(self) -> str:
        """``project.namespace`` with the default delimiter."""
        return f"{self.project}.{self.namespace}"

    def format(self, delim: str = DEFAULT_DELIM) -> str:
        """The full address printed with ``delim``."""
        return f"{self.project}{delim}{self.namespace}{delim}{self.name}"

    def relative(self, depth: int, delim: str = DEFAULT_DELIM) -> str:
        """The address relative to a scope of ``depth`` segments (0 all, 1 project, 2 namespace)."""
        parts = (self.project, self.namespace, self.name)[depth:]
        return delim.join(parts)

    def __str__(self) -> str:
        return self.format()


_set_project, _set_namespace, _set_key, _set_context = slot_setters(Address)


def check_delim(delim: str) -> str:
    """Return ``delim`` when it is one of ``. : / |``; raise InvalidAddressError otherwise."""
    if delim not in DELIMITERS:
        raise InvalidAddressError(
            f"invalid delimiter {delim!r}: choose one of {' '.join(DELIMITERS)}"
        )
    return delim


def check_segment(segment: str, part: str, text: str) -> str:
    """Validate one segment (project, namespace, key or context) of the address ``text``."""
    if valid_segment(segment):
        return segment
    where = f"invalid address {text!r}"
    if segment == "":
        raise InvalidAddressError(f"{where}: empty {part}")
    if len(segment) > MAX_SEGMENT:
        raise InvalidAddressError(
            f"{where}: {part} is {len(segment)} characters long (at most {MAX_SEGMENT})"
        )
    if segment.startswith("-"):
        raise InvalidAddressError(f"{where}: {part} {segment!r} starts with '-'")
    char = next((c for c in segment if c not in SEGMENT_CHARS), "?")
    raise InvalidAddressError(
        f"{where}: bad character {char!r} in {part} {segment!r} (allowed: A-Z a-z 0-9 _ -)"
    )


def split_key(name: str, text: str) -> tuple[str, str | None]:
    """Split ``key__context`` at the last ``__``; validate both halves."""
    key, sep, context = name.rpartition(CONTEXT_SEP)
    if not sep:
        return check_segment(name, "key", text), None
    if key == "":
        raise InvalidAddressError(f"invalid address {text!r}: empty key before '__'")
    if context == "":
        raise InvalidAddressError(f"invalid address {text!r}: empty context after '__'")
    return check_segment(key, "key", text), check_segment(context, "context", text)


def parse(
    text: str,
    *,
    project: str | None = None,
    namespace: str | None = None,
    delim: str = DEFAULT_DELIM,
) -> Address:
    """Parse a full or partial address.

    ``namespace.key`` needs a default ``project``; ``key`` needs a default project and
    namespace. Missing defaults make the address incomplete, which is an InvalidAddressError.
    """
    # Fast path: the common full address without context (segments of at most 128
    # characters cannot exceed MAX_ADDRESS together).
    if CONTEXT_SEP not in text:
        plain = _plain_parts(text, delim)
        if plain is not None:
            return Address(*plain)
    if text == "":
        raise InvalidAddressError("invalid address '': empty address")
    parts = text.split(delim)
    if len(parts) > 3:
        raise InvalidAddressError(
            f"invalid address {text!r}: too many parts ({len(parts)}; at most 3: "
            f"project{delim}namespace{delim}key)"
        )
    if len(parts) == 3:
        proj, ns, name = parts
    elif len(parts) == 2:
        if project is None:
            raise InvalidAddressError(
                None,
                argument="project",
                value=text,
                rule="incomplete",
                template=f"invalid address {literal(repr(text))}: incomplete, "
                f"namespace{literal(delim)}key needs a default project ({{project}} or the "
                "cursor's project)",
            )
        proj, (ns, name) = project, parts
    else:
        if project is None or namespace is None:
            raise InvalidAddressError(
                None,
                argument=("project", "namespace"),
                value=text,
                rule="incomplete",
                template=f"invalid address {literal(repr(text))}: incomplete, a bare key needs a "
                "default project and namespace ({project} and {namespace}, or the cursor's "
                "defaults)",
            )
        proj, ns, name = project, namespace, parts[0]
    check_segment(proj, "project", text)
    check_segment(ns, "namespace", text)
    key, context = split_key(name, text)
    check_length(proj, ns, name, text)
    return Address(proj, ns, key, context)


def check_length(project: str, namespace: str, name: str, text: str) -> None:
    """Refuse an address whose segments together exceed MAX_ADDRESS characters."""
    total = len(project) + len(namespace) + len(name)
    if total > MAX_ADDRESS:
        raise InvalidAddressError(
            f"invalid address {text[:60]!r}...: too long ({total} characters in project, "
            f"namespace and key; at most {MAX_ADDRESS})"
        )


def parse_scope(text: str | None, *, delim: str = DEFAULT_DELIM) -> tuple[str, ...]:
    """Parse a listing scope: nothing (everything), ``project`` or ``project.namespace``."""
    if text is None or text == "":
        return ()
    parts = text.split(delim)
    if len(parts) > 2:
        raise InvalidAddressError(
            f"invalid scope {text!r}: a scope is project or project{delim}namespace"
        )
    for part, label in zip(parts, ("project", "namespace"), strict=False):
        check_segment(part, label, text)
    return tuple(parts)


def parse_namespace(
    text: str, *, project: str | None = None, delim: str = DEFAULT_DELIM
) -> tuple[str, str]:
    """Parse ``project.namespace`` (or a bare namespace with a default ``project``)."""
    parts = text.split(delim) if text else [""]
    if len(parts) == 1 and project is not None:
        parts = [project, parts[0]]
    if len(parts) != 2:
        raise InvalidAddressError(f"invalid namespace {text!r}: expected project{delim}namespace")
    check_segment(parts[0], "project", text)
    check_segment(parts[1], "namespace", text)
    return parts[0], parts[1]
