"""Names of users, metas and cursors: 1–32 characters ``A–Z a–z 0–9 _ -``, starting with a letter.

The rule forbids dots, slashes and empty names, so a name can never traverse a path.
"""

from __future__ import annotations

from prontodb.errors import InvalidNameError

#: The characters of a name; the first must be an ASCII letter (the rule
#: ``[A-Za-z][A-Za-z0-9_-]{0,31}``, checked without importing :mod:`re`).
NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
DEFAULT_USER = "default"


def _valid(name: str) -> bool:
    return (
        0 < len(name) <= 32
        and name.isascii()
        and name[0].isalpha()
        and not name.strip(NAME_CHARS)  # every character is allowed
    )


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a valid ``kind`` name (user, meta, cursor); raise otherwise."""
    if isinstance(name, str) and _valid(name):
        return name
    if not name:
        reason = "empty"
    elif len(name) > 32:
        reason = f"{len(name)} characters long (at most 32)"
    elif not name[0].isascii() or not name[0].isalpha():
        reason = "must start with a letter"
    else:
        reason = "allowed characters are A-Z a-z 0-9 _ -"
    raise InvalidNameError(f"invalid {kind} name {name!r}: {reason}")
