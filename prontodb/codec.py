"""JSON values over a Store: a view that encodes on write and decodes on read.

Stores hold bytes; that stays the default, and nothing in ProntoDB ever pickles (a pickle is
code run at load time, so a store any other account or tool can feed would be a way in). For
callers who want structured values, :class:`JsonStore` is a view over a Store that writes
compact UTF-8 JSON and reads it back. The bytes it writes are ordinary values: the CLI, exports
and other languages read them as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prontodb.address import Address
from prontodb.duration import TTL
from prontodb.errors import DataFormatError, NotFoundError, UsageError
from prontodb.store import _MISSING, Store

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def encode(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON. What JSON cannot hold (sets, bytes, NaN, objects)
    raises UsageError naming the ``value`` argument; nothing is written."""
    try:
        return _encoder.encode(value).encode()
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"value cannot be stored as JSON: {exc}",
            argument="value",
            value=value,
            rule="json",
        ) from None


def decode(data: bytes, address: str) -> Any:
    """The JSON value in ``data``; a value that is not JSON raises DataFormatError naming
    ``address``."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"{address}: the stored value is not JSON ({exc})") from None


class JsonStore:
    """A JSON view of a Store: ``JsonStore(store)``. The same addresses, TTLs and errors as the
    Store; values are any JSON value (dict, list, str, int, float, bool, None). Closing the
    view closes the Store. ``store`` is the underlying Store (bytes in, bytes out)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def set(
        self, address: str | Address, value: Any, *, ttl: TTL | None = None, keep_ttl: bool = False
    ) -> None:
        """:meth:`Store.set` of ``value`` as JSON."""
        self.store.set(address, encode(value), ttl=ttl, keep_ttl=keep_ttl)

    def get(self, address: str | Address, default: Any = _MISSING) -> Any:
        """The decoded value; ``default`` on a miss when given, else NotFoundError."""
        data = self.store.get(address, None)
        if data is None:
            if default is not _MISSING:
                return default
            raise NotFoundError(self.store.format(self.store.address(address)))
        return decode(data, str(address))

    def set_many(
        self,
        pairs: Mapping[str, Any] | Iterable[tuple[str | Address, Any]],
        *,
        ttl: TTL | None = None,
    ) -> int:
        """:meth:`Store.set_many` with every value encoded first (all or nothing)."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        return self.store.set_many([(a, encode(v)) for a, v in items], ttl=ttl)

    def delete(self, address: str | Address) -> bool:
        """:meth:`Store.delete`."""
        return self.store.delete(address)

    def items(self, scope: str | None = None) -> Iterator[tuple[str, Any]]:
        """(address relative to ``scope``, decoded value), ascending, streamed."""
        for address, data in self.store.scan(scope):
            yield address, decode(data, address)

    def __getitem__(self, address: str | Address) -> Any:
        return self.get(address)

    def __setitem__(self, address: str | Address, value: Any) -> None:
        self.set(address, value)

    def __delitem__(self, address: str | Address) -> None:
        del self.store[address]

    def __contains__(self, address: object) -> bool:
        return address in self.store

    def __iter__(self) -> Iterator[str]:
        return iter(self.store)

    def __len__(self) -> int:
        return len(self.store)

    def __bool__(self) -> bool:
        return True

    def close(self) -> None:
        """Close the underlying Store."""
        self.store.close()

    def __enter__(self) -> JsonStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<JsonStore {self.store!r}>"
