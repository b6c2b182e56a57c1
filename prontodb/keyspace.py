"""How addresses, layers and store metadata map onto backend byte keys.

All keys are UTF-8 segments joined by NUL (segments never contain NUL), so ascending byte
order of keys is ascending (project, namespace, key, context) order, and an entry without
context sorts before its contexts. Three families share one keyspace:

* ``D\\0user\\0meta\\0project\\0namespace\\0key\\0context`` — entries (context empty if none);
* ``T\\0user\\0meta\\0project\\0namespace`` — TTL namespace definitions (ASCII seconds);
* ``S\\0name`` — facts about the store itself (format version, backend).

``meta`` is empty when no meta layer is selected.
"""

from __future__ import annotations

from prontodb.address import Address

SEP = b"\x00"
DATA = b"D\x00"
TTLDEF = b"T\x00"
INFO = b"S\x00"

INFO_FORMAT = INFO + b"format"
INFO_BACKEND = INFO + b"backend"
STORE_FORMAT = b"1"


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
    """The backend key of ``address`` inside ``layer``."""
    a = address
    return layer + f"{a.project}\x00{a.namespace}\x00{a.key}\x00{a.context or ''}".encode()


def decode_entry(layer_len: int, key: bytes) -> Address:
    """The address of a backend key that starts with a layer prefix of ``layer_len`` bytes."""
    project, namespace, name, context = key[layer_len:].decode().split("\x00")
    return Address(project, namespace, name, context or None)


def split_layer(key: bytes) -> tuple[str, str | None, Address]:
    """(user, meta, address) of any entry key."""
    user, meta, project, namespace, name, context = key[len(DATA) :].decode().split("\x00")
    return user, meta or None, Address(project, namespace, name, context or None)


def ttl_key(prefix: bytes, project: str, namespace: str) -> bytes:
    """The definition key of the TTL namespace ``project.namespace`` in a layer."""
    return prefix + f"{project}\x00{namespace}".encode()


def split_ttl_key(key: bytes) -> tuple[str, str | None, str, str]:
    """(user, meta, project, namespace) of a TTL definition key."""
    user, meta, project, namespace = key[len(TTLDEF) :].decode().split("\x00")
    return user, meta or None, project, namespace
