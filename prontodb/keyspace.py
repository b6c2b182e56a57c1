"""How addresses, layers and store metadata map onto backend byte keys.

All keys are UTF-8 segments joined by NUL (segments never contain NUL), so ascending byte
order of keys is ascending (project, namespace, key, context) order, and an entry without
context sorts before its contexts. Three families share one keyspace:

* ``D\\0user\\0meta\\0project\\0namespace\\0key\\0context`` — entries (context empty if none);
* ``T\\0user\\0meta\\0project\\0namespace`` — TTL namespace definitions (ASCII seconds);
* ``S\\0name`` — facts about the store itself (format version, backend, revision).

``meta`` is empty when no meta layer is selected.
"""

from __future__ import annotations

from _operator import itemgetter

from prontodb.address import Address
from prontodb.backends.base import parse_counter
from prontodb.errors import CorruptStoreError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Sequence

SEP = b"\x00"
DATA = b"D\x00"
TTLDEF = b"T\x00"
INFO = b"S\x00"

INFO_FORMAT = INFO + b"format"
INFO_BACKEND = INFO + b"backend"
#: The store revision: ASCII decimal, raised by every committed write transaction (absent: 0).
INFO_REVISION = INFO + b"revision"
#: The keyspace layout version. Envelope formats are per entry (see prontodb.record), so a
#: store of an earlier release with envelope format 1 keeps keyspace format 1.
STORE_FORMAT = b"1"


def revision_of(raw: bytes | None) -> int:
    """The revision stored under :data:`INFO_REVISION` (``raw`` None: a store never written
    by a release that counts revisions, revision 0); a damaged one raises CorruptStoreError."""
    return parse_counter(raw, INFO_REVISION)


def layer_prefix(user: str, meta: str | None) -> bytes:
    """The key prefix of every entry in one (user, meta) layer."""
    return DATA + user.encode() + SEP + (meta or "").encode() + SEP


def ttl_prefix(user: str, meta: str | None) -> bytes:
    """The key prefix of the TTL namespace definitions of one layer."""
    return TTLDEF + user.encode() + SEP + (meta or "").encode() + SEP


def scope_prefix(layer: bytes, scope: tuple[str, ...]) -> bytes:
    """The prefix of every entry under a scope of 0, 1 or 2 segments."""
    return layer + b"".join(part.encode() + SEP for part in scope)


def entry_name(key: str, context: str | None) -> bytes:
    """The part of an entry's backend key after its namespace: ``key\\0context``."""
    return f"{key}\x00{context or ''}".encode()


def entry_key(layer: bytes, address: Address) -> bytes:
    """The backend key of ``address`` inside ``layer`` (the one place it is built)."""
    a = address
    return layer + f"{a.project}\x00{a.namespace}\x00{a.key}\x00{a.context or ''}".encode()


def plain_key(layer: bytes, text: str, delim: str) -> bytes:
    """The backend key of the address ``text`` that :func:`prontodb.address.is_plain` accepted
    (``project.namespace.key`` printed with ``delim``): the same bytes as :func:`entry_key`,
    without building an Address."""
    return layer + (text.replace(delim, "\x00") + "\x00").encode()


def plain_keys(layer: bytes, texts: Sequence[str], delim: str) -> list[bytes]:
    """:func:`plain_key` of every address in ``texts`` (all accepted by ``is_plain``), built in
    bulk: one joined string is rewritten, encoded and split again, a few C-level passes instead
    of a Python step per address. Neither addresses nor layers can contain a newline."""
    if not texts:
        return []
    prefix = layer.decode()
    joined = "\n".join(texts).replace(delim, "\x00").replace("\n", "\x00\n" + prefix)
    return (prefix + joined + "\x00").encode().split(b"\n")


def relative_names(keys: list[bytes], cut: int, depth: int, delim: str) -> list[str] | None:
    """The addresses printed with ``delim``, relative to a scope of ``depth`` segments whose key
    prefix is ``cut`` bytes long, of entry keys, decoded in bulk (one join, decode, a few
    replaces and a split). None unless every key is well formed and has no context (the common
    case): then decode each with :func:`decode_entry`."""
    try:
        text = b"\n".join(map(itemgetter(slice(cut, None)), keys)).decode()
    except UnicodeDecodeError:
        return None
    separators = len(keys) - 1
    if text.count("\n") != separators or text.count("\x00") != len(keys) * (3 - depth):
        return None  # segments that are not what the Store writes
    # No key holds a newline (counted above), so each key ends with SEP (no context) when every
    # newline follows a NUL and the text ends with one.
    if text.count("\x00\n") != separators or not text.endswith("\x00"):
        return None  # a context
    return text.replace("\x00\n", "\n")[:-1].replace("\x00", delim).split("\n")


def damaged_key(key: bytes, why: str) -> CorruptStoreError:
    """The error for a backend key that ProntoDB cannot have written (a flipped byte, say)."""
    shown = key[:80].decode("utf-8", "backslashreplace").replace("\x00", "\\0")
    return CorruptStoreError(f"damaged key {shown!r}: {why}")


def segments(key: bytes, start: int, count: int, required: int) -> list[str]:
    """The ``count`` NUL-separated UTF-8 segments of ``key`` after ``start`` bytes, of which
    the first ``required`` must not be empty; anything else raises CorruptStoreError."""
    try:
        parts = key[start:].decode().split("\x00")
    except UnicodeDecodeError:
        raise damaged_key(key, "not UTF-8") from None
    if len(parts) != count:
        raise damaged_key(key, f"{len(parts)} segments where {count} belong")
    if not all(parts[:required]):
        raise damaged_key(key, "an empty name")
    return parts


def decode_entry(layer_len: int, key: bytes) -> Address:
    """The address of a backend key that starts with a layer prefix of ``layer_len`` bytes; a
    key that is not UTF-8 or not four segments (project, namespace and key not empty) raises
    CorruptStoreError."""
    project, namespace, name, context = segments(key, layer_len, 4, 3)
    return Address(project, namespace, name, context or None)


def split_layer(key: bytes) -> tuple[str, str | None, Address]:
    """(user, meta, address) of any entry key (CorruptStoreError when damaged, as
    :func:`decode_entry`)."""
    parts = segments(key, len(DATA), 6, 1)
    if not all(parts[2:5]):
        raise damaged_key(key, "an empty name")
    user, meta, project, namespace, name, context = parts
    return user, meta or None, Address(project, namespace, name, context or None)


def ttl_key(prefix: bytes, project: str, namespace: str) -> bytes:
    """The definition key of the TTL namespace ``project.namespace`` in a layer."""
    return prefix + f"{project}\x00{namespace}".encode()


def split_ttl_key(key: bytes) -> tuple[str, str | None, str, str]:
    """(user, meta, project, namespace) of a TTL definition key (CorruptStoreError when
    damaged)."""
    parts = segments(key, len(TTLDEF), 4, 1)
    if not all(parts[2:]):
        raise damaged_key(key, "an empty name")
    user, meta, project, namespace = parts
    return user, meta or None, project, namespace


def ttl_def_seconds(key: bytes, raw: bytes) -> int:
    """The seconds of the TTL namespace definition ``key`` = ``raw`` (CorruptStoreError when
    damaged: not 1 to 12 ASCII digits, or zero)."""
    if raw.isdigit() and 0 < len(raw) <= 12 and int(raw) > 0:
        return int(raw)
    raise damaged_key(key, f"TTL definition {bytes(raw[:20])!r} is not whole seconds")


def stored_ttl_seconds(key: bytes, raw: bytes) -> int:
    """The seconds a TTL namespace definition holds as written, for the readers that carry
    it elsewhere (export, backup) and clamp it into the one range themselves: an earlier
    release may have written more than :func:`ttl_def_seconds` accepts. Anything but 1 to 30
    ASCII digits, or zero, is CorruptStoreError (damage, never a ValueError)."""
    if raw.isdigit() and 0 < len(raw) <= 30 and int(raw) > 0:
        return int(raw)
    raise damaged_key(key, f"TTL definition {bytes(raw[:20])!r} is not whole seconds")
