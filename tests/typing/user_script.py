"""A user's script: the documented API, checked with ``mypy --strict`` against the installed
package (tests/test_library_typing.py). It is type-checked, never run."""

from __future__ import annotations

import asyncio
import pathlib
from datetime import timedelta

import prontodb
from prontodb import (
    AsyncStore,
    ConflictError,
    CorruptStoreError,
    DataFormatError,
    DestinationExistsError,
    Entry,
    InsecureStoreError,
    InvalidDurationError,
    JsonStore,
    NotFoundError,
    ReadOnlyStoreError,
    Store,
    WriteConflictError,
)


def use(path: pathlib.Path) -> list[str]:
    store: Store = prontodb.open(path / "app.sqlite", project="app")
    with store:
        store["app.users.alice"] = b"admin"
        store["app.users.bob"] = "user"
        store.set("app.sessions.s1", bytearray(b"x"), ttl=1.5)
        store.set("app.sessions.s2", memoryview(b"y"), ttl=timedelta(minutes=5))
        store.expire("app.sessions.s2", 2)
        store.set_many({"app.users.carol": b"guest"}, ttl=timedelta(hours=1))
        store.set_many([("app.users.dave", b"guest")])
        store.create_cache("app.sessions", timedelta(minutes=30))
        value: bytes = store["app.users.alice"]
        maybe: bytes | None = store.get("app.users.nobody", None)
        fallback: bytes | str = store.get("app.users.nobody", "none")
        entry: Entry = store.get_entry("app.users.alice")
        left: int | None = store.ttl("app.sessions.s1")
        present: bool = "app.users.bob" in store
        del store["app.users.bob"]
        count: int = len(store)
        addresses: list[str] = list(store)
        pairs: dict[str, bytes] = dict(store.items())
        where: str = store.location
        engine: str = store.engine
        print(value, maybe, fallback, entry.expires_at, left, present, count, pairs, where, engine)
        try:
            store.get("app.users.nobody")
        except NotFoundError as miss:
            print(miss.address)
        except (InvalidDurationError, DataFormatError, ConflictError) as err:
            print(err.argument, err.value, err.rule)
        except (CorruptStoreError, InsecureStoreError, ReadOnlyStoreError) as err:
            print(err)
        except (DestinationExistsError, WriteConflictError) as err:
            print(err.describe())
    with JsonStore(prontodb.open(path / "docs.sqlite")) as docs:
        docs["app.profiles.alice"] = {"roles": ["admin"]}
        profile = docs.get("app.profiles.alice", {})
        print(profile)
    return addresses


async def use_async(path: pathlib.Path) -> bytes | None:
    async with await AsyncStore.open(path / "async.sqlite") as astore:
        await astore.set("app.jobs.j1", b"queued", ttl=timedelta(seconds=30))
        found: bytes | None = await astore.get("app.jobs.j1", None)
        keys: list[str] = await astore.run(astore.store.keys, "app.jobs")
        print(keys)
        return found


if __name__ == "__main__":
    print(use(pathlib.Path("data")), asyncio.run(use_async(pathlib.Path("data"))))
