"""Using a Store from asyncio: every call of one Store runs on one dedicated worker thread.

A :class:`~prontodb.store.Store` is not safe to use from several threads at once (an engine's
connection and its transaction state belong to one caller at a time), so
``asyncio.to_thread(store.get, ...)`` from concurrent tasks is not safe: the default executor
runs them on several threads. :class:`AsyncStore` gives each Store a single worker thread, so its
calls run one at a time, in the order they were awaited, without blocking the event loop. The
measured cost per call is in docs/python-api.md (tools/bench_async.py).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar, overload

from prontodb.address import Address
from prontodb.duration import TTL
from prontodb.store import _MISSING, Entry, Store, Value

_P = ParamSpec("_P")
_T = TypeVar("_T")
_D = TypeVar("_D")


def _new_worker() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="prontodb")


class AsyncStore:
    """An asyncio face of one Store. Open it with ``await AsyncStore.open(...)`` (the
    arguments of :func:`prontodb.open`) or wrap an open Store that no other thread uses; use
    ``async with`` or ``await close()``. Each method has the contract of the Store method of
    the same name; :meth:`run` runs any other function of the Store on the worker thread."""

    def __init__(self, store: Store, *, worker: ThreadPoolExecutor | None = None) -> None:
        self.store = store
        self._worker = worker or _new_worker()

    @classmethod
    async def open(cls, *args: Any, **kwargs: Any) -> AsyncStore:
        """:func:`prontodb.open` on the new store's worker thread (opening may wait on a busy
        store, and the engine is then used from the thread that opened it)."""
        from prontodb.opener import open as open_store

        worker = _new_worker()
        loop = asyncio.get_running_loop()
        try:
            store = await loop.run_in_executor(
                worker, functools.partial(open_store, *args, **kwargs)
            )
        except BaseException:
            worker.shutdown(wait=False)
            raise
        return cls(store, worker=worker)

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``fn(*args, **kwargs)`` on this store's worker thread; its result or its error."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, functools.partial(fn, *args, **kwargs))

    @overload
    async def get(self, address: str | Address) -> bytes: ...

    @overload
    async def get(self, address: str | Address, default: _D) -> bytes | _D: ...

    async def get(self, address: str | Address, default: object = _MISSING) -> object:
        """:meth:`Store.get`."""
        return await self.run(self.store.get, address, default)

    async def set(
        self,
        address: str | Address,
        value: Value,
        *,
        ttl: TTL | None = None,
        keep_ttl: bool = False,
    ) -> None:
        """:meth:`Store.set`."""
        await self.run(self.store.set, address, value, ttl=ttl, keep_ttl=keep_ttl)

    async def set_many(
        self,
        pairs: Mapping[str, Value] | Iterable[tuple[str | Address, Value]],
        *,
        ttl: TTL | None = None,
    ) -> int:
        """:meth:`Store.set_many` (an iterable is read on the worker thread)."""
        return await self.run(self.store.set_many, pairs, ttl=ttl)

    async def delete(self, address: str | Address) -> bool:
        """:meth:`Store.delete`."""
        return await self.run(self.store.delete, address)

    async def exists(self, address: str | Address) -> bool:
        """:meth:`Store.exists`."""
        return await self.run(self.store.exists, address)

    async def get_entry(self, address: str | Address) -> Entry:
        """:meth:`Store.get_entry`."""
        return await self.run(self.store.get_entry, address)

    async def ttl(self, address: str | Address) -> int | None:
        """:meth:`Store.ttl`."""
        return await self.run(self.store.ttl, address)

    async def expire(self, address: str | Address, seconds: TTL) -> None:
        """:meth:`Store.expire`."""
        await self.run(self.store.expire, address, seconds)

    async def keys(self, scope: str | None = None, pattern: str | None = None) -> list[str]:
        """:meth:`Store.keys`."""
        return await self.run(self.store.keys, scope, pattern)

    async def items(
        self, scope: str | None = None, pattern: str | None = None
    ) -> list[tuple[str, bytes]]:
        """:meth:`Store.scan`, read to the end on the worker thread (mind the size)."""
        return await self.run(lambda: list(self.store.scan(scope, pattern)))

    async def count(self, scope: str | None = None) -> int:
        """:meth:`Store.count`."""
        return await self.run(self.store.count, scope)

    async def close(self) -> None:
        """Close the Store on its worker thread, then stop the thread."""
        try:
            await self.run(self.store.close)
        finally:
            self._worker.shutdown(wait=False)

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncStore {self.store!r}>"
