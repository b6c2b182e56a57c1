"""Names of users, metas and cursors: 1–32 characters ``A–Z a–z 0–9 _ -``, starting with a letter.

The rule forbids dots, slashes and empty names, so a name can never traverse a path.
"""

from __future__ import annotations

import re

from prontodb.errors import InvalidNameError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
DEFAULT_USER = "default"


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a valid ``kind`` name (user, meta, cursor); raise otherwise."""
    if isinstance(name, str) and _NAME.fullmatch(name):
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
