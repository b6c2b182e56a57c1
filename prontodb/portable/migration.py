"""``cursor migrate``: move a cursor's store onto another engine.

Every layer of the store (raw envelopes: values, deadlines, TTL namespace definitions) is
copied into a new store of the other engine built under a temporary name, re-read to verify
counts and a content checksum, renamed into place, and only then is the cursor repointed.

Stores on a server (url engines, docs/redis.md) take part both ways: a url target is built in
place (a URL has no temporary name to rename from; the target must be free, or is emptied first
with ``replace_target``), and a url source is retired in place by :meth:`Backend.retire` — a
marker committed atomically only if nothing was written since the final check, which every
later commit and open of that store refuses — instead of being renamed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prontodb import cursorfile, files, keyspace, paths, record
from prontodb.cursorfile import CursorSpec
from prontodb.errors import (
    ConflictError,
    ProntoError,
    StoreNotFoundError,
    StoreRetiredError,
    UsageError,
    WriteConflictError,
    literal,
)
from prontodb.opener import open_backend
from prontodb.portable.jsonl import count_keys
from prontodb.portable.report import MigrateSummary, Progress, counted

if TYPE_CHECKING:
    from prontodb.backends.base import Backend
    from prontodb.clock import Clock


@dataclass
class _CopyStats:
    rows: int = 0
    entries: int = 0
    caches: int = 0
    expired: int = 0
    layers: set[bytes] = field(default_factory=set)
    copied: Any = None  # sha256 of the copied rows
    everything: Any = None  # sha256 of every row of the source (expired ones too)


_LENGTHS = struct.Struct(">IQ")


def _feed(digest: Any, key: bytes, value: bytes) -> None:
    digest.update(_LENGTHS.pack(len(key), len(value)))
    digest.update(key)
    digest.update(value)


def migrate_path(old: str, backend: str) -> str:
    """The default new path of a migrated store: the old one with ``backend``'s extension."""
    from prontodb import backends

    old = old.rstrip(os.sep)
    base = os.path.splitext(old)[0] if backends.from_extension(old) else old
    return base + backends.default_extension(backend)


#: Store fact written into a migrated copy: which user's cursor it was made for (JSON).
_ORIGIN = keyspace.INFO + b"migrated_for"
#: How often the final check of a url source is redone when writes keep landing (each round
#: recopies what changed); then the migrate is refused and nothing changes.
URL_SOURCE_ATTEMPTS = 5


def migrate(
    user: str,
    name: str,
    backend: str,
    *,
    path: str | None = None,
    remove_old: bool = False,
    replace_target: bool = False,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    progress: Progress | None = None,
) -> MigrateSummary:
    """Move cursor ``name`` of ``user`` (``"default"``: the user's default store) onto a new
    store of engine ``backend`` at ``path`` (default: the old path with the new engine's
    extension; for a store on a server, the cursor's default file; a url engine needs
    ``path``, its URL — without an inline password, use ``?password_env=VAR``).

    Everything of every layer (values, deadlines, TTL namespace definitions; not expired
    entries) is copied from a snapshot of the old store into a new one built under a
    temporary name beside ``path``, re-read and checked against the copy (counts and a sha256
    of every key and envelope). Then, holding the old store's write lock (writers wait), the
    old store is checked against the copy once more — its last committed state; if a write
    landed meanwhile, the copy is redone under the lock — the copy is renamed into place, the
    cursor repointed, and the old store retired: renamed to ``<stem>.migrated-<time><ext>``
    (or removed with ``remove_old``), so a process that still holds it open cannot write into
    it unseen (its write is refused as "deleted or replaced while open"). So no acknowledged
    write is lost: it is in the copy, or it was refused.

    One migrate per user runs at a time (a lock on the user's data directory; a second one
    waits, then works from the cursor as the first left it). A target that already holds
    something is refused with ConfigError unless ``replace_target`` (the message says when it
    is a copy an earlier migrate of this cursor left). Under a locked context neither the old
    store (``remove_old``) nor a replaced target may hold another user's data. A crash at any
    point leaves the cursor on the old, intact store.

    Stores on a server: a url target is built in place (``replace_target`` empties an
    occupied one first). A url source cannot be write-locked against blind writers, so its
    final check runs in a transaction whose commit retires the store atomically only if
    nothing landed since that check (:meth:`Backend.retire`); otherwise the check and copy are
    redone, up to ``URL_SOURCE_ATTEMPTS`` times, then ConflictError and nothing changes.
    Writes after the retirement are refused (StoreRetiredError names the new location), so
    none is lost. The retired store keeps its keys unless ``remove_old``; a crash between
    retiring and repointing leaves the cursor on the retired store, whose error names where
    the data went."""
    from prontodb import backends, guard
    from prontodb.errors import ConfigError

    env = os.environ if env is None else env
    engines = backends.engine_names(selectable_only=True)
    if backend not in engines:
        raise ConfigError(f"unknown backend {backend!r} (choose {', '.join(engines)})")
    with files.locked_dir(paths.user_data_dir(user, env)):
        spec = _cursor(user, name, env)
        old = spec.path
        new = _target(user, name, spec, backend, path, env)
        old_url, new_url = backends.is_url(old), backends.is_url(new)
        if _same_store(new, old):
            raise UsageError(
                None,
                argument="path",
                value=path,
                rule="same file",
                template=f"cursor {literal(repr(name))} already uses {literal(old)}; give "
                "{path} to migrate to another file",
            )
        if remove_old:
            _check_unshared(user, name, old, env, "remove_old")
            guard.check_destroy(old, env)
        if _exists(new):
            if not replace_target:
                raise _occupied(new, user, name)
            _check_unshared(user, name, new, env, "replace_target")
            guard.check_destroy(new, env)  # a url target is emptied by build_in_place below
        if new_url:
            tmp = new
        else:
            folder = paths.make_private_dir(os.path.dirname(new))
            files.remove_stale_temps(folder, ("migrate",))
            tmp = files.temp_name(folder, "migrate")
        origin = json.dumps({"user": user, "cursor": name}).encode()
        with contextlib.ExitStack() as building:
            open_up = None
            if new_url:
                # Built in place (a URL has no temporary name): retired for every other client
                # until the cursor names it, so nobody elsewhere writes into the copy.
                where = backends.without_password(old) if old_url else old
                open_up = building.enter_context(
                    backends.backend_class(backend).build_in_place(new, where)
                )
            summary = _migrate_locked(
                user, name, spec, old, new, backend, tmp, origin, old_url, new_url,
                remove_old, replace_target, progress, clock, env,
            )  # fmt: skip
            if open_up is not None:
                open_up()
    return summary


def _migrate_locked(
    user: str,
    name: str,
    spec: CursorSpec,
    old: str,
    new: str,
    backend: str,
    tmp: str,
    origin: bytes,
    old_url: bool,
    new_url: bool,
    remove_old: bool,
    replace_target: bool,
    progress: Progress | None,
    clock: Clock | None,
    env: Mapping[str, str],
) -> MigrateSummary:
    """The copy, its checks, the repoint and the retirement of ``old`` (see :func:`migrate`),
    under the user's migrate lock; a failure removes the copy and leaves the cursor alone."""
    from prontodb import guard
    from prontodb.clock import system_clock

    source = open_backend(old, backend=spec.backend, durability=spec.durability, create=False)
    copy = functools.partial(
        _copy_store, source, tmp, backend, spec.durability, clock or system_clock, origin
    )
    placed = False  # a file copy renamed to ``new``: a failure now removes it there
    try:
        stats = copy(progress, consistent=False)
        _verify_copy(tmp, backend, stats)
        if old_url:
            stats = _retire_url_source(
                source, tmp, new, backend, stats, copy, user, name, spec, env
            )
            try:
                if not new_url:
                    if os.path.lexists(new):
                        if not replace_target:
                            raise _occupied(new, user, name)
                        guard.remove_store(new, env)
                    _move_store(tmp, new)
                    placed = True
                _repoint(user, name, spec, new, backend, env)
            except BaseException:
                source.unretire()
                raise
            retired: str | None = old
            if remove_old:
                files.remove_store(old)  # checked above, before it was retired
                retired = None
        else:
            stats, retired = _finish_file_source(
                source, tmp, new, backend, stats, copy, user, name, spec, env, remove_old,
                replace_target,
            )  # fmt: skip
    except BaseException:
        _remove_copy(new if placed else tmp)
        raise
    finally:
        source.close()
    return MigrateSummary(
        cursor=name,
        old_path=retired or old,
        old_backend=spec.backend,
        new_path=new,
        new_backend=backend,
        layers=len(stats.layers),
        entries=stats.entries,
        caches=stats.caches,
        removed_old=retired is None,
    )


def _finish_file_source(
    source: Backend,
    tmp: str,
    new: str,
    backend: str,
    stats: _CopyStats,
    copy: Callable[..., _CopyStats],
    user: str,
    name: str,
    spec: CursorSpec,
    env: Mapping[str, str],
    remove_old: bool,
    replace_target: bool,
) -> tuple[_CopyStats, str | None]:
    """The end of a migrate from a file store: under its write lock (writers wait), recopy
    if writes landed, put the copy in place, repoint the cursor and retire the old files.
    Returns the final stats and where the old store went (None: removed)."""
    from prontodb import backends, guard

    new_url = backends.is_url(new)
    old = source.path
    with source.transaction():  # writers wait from here until the old store is retired
        if _digest_all(source).digest() != stats.everything.digest():
            _remove_copy(tmp)
            stats = copy(None, consistent=True)
            _verify_copy(tmp, backend, stats)
        if _cursor(user, name, env) != spec:
            raise ConflictError(f"cursor {name!r} was changed while migrating; it was left alone")
        if not new_url:
            if os.path.lexists(new):
                if not replace_target:
                    raise _occupied(new, user, name)
                guard.remove_store(new, env)
            _move_store(tmp, new)
        _repoint(user, name, spec, new, backend, env)
        retired = _retire(source, old, remove_old, env)
    return stats, retired


def _retire_url_source(
    source: Backend,
    tmp: str,
    new: str,
    backend: str,
    stats: _CopyStats,
    copy: Callable[..., _CopyStats],
    user: str,
    name: str,
    spec: CursorSpec,
    env: Mapping[str, str],
) -> _CopyStats:
    """The end of a migrate from a store on a server: in one transaction, check the store
    against the copy (recopying when writes landed) and retire it — atomically, only if
    nothing was committed since that check. A write that races it makes the retirement fail
    (WriteConflictError) and the round is redone; after ``URL_SOURCE_ATTEMPTS`` rounds the
    migrate is refused with ConflictError. Returns the stats of the copy that was checked."""
    from prontodb import backends

    successor = backends.without_password(new)
    for attempt in range(1, URL_SOURCE_ATTEMPTS + 1):
        try:
            with source.transaction():  # writers that read wait on the store's lock
                if _digest_all(source).digest() != stats.everything.digest():
                    _remove_copy(tmp)
                    stats = copy(None, consistent=True)
                    _verify_copy(tmp, backend, stats)
                if _cursor(user, name, env) != spec:
                    raise ConflictError(
                        f"cursor {name!r} was changed while migrating; it was left alone"
                    )
                source.retire(successor)
            return stats
        except WriteConflictError:
            if attempt == URL_SOURCE_ATTEMPTS:
                raise ConflictError(
                    f"writes kept landing on {source.path} while cursor {name!r} was being "
                    f"migrated ({attempt} rounds); nothing was changed, try again"
                ) from None
    raise AssertionError("unreachable")


def _target(
    user: str,
    name: str,
    spec: CursorSpec,
    backend: str,
    path: str | None,
    env: Mapping[str, str],
) -> str:
    """Where the migrated store goes: ``path`` (a URL for a url engine, which needs one), or
    the default: the old path with the new engine's extension, or — the old store being on a
    server — the cursor's default file."""
    from prontodb import backends
    from prontodb.errors import ConfigError

    url_engine = backends.kind(backend) == "url"
    if path is None:
        if url_engine:
            raise UsageError(
                None,
                argument="path",
                value=None,
                rule="url engine",
                template=f"a {backend} store is addressed by URL: give {{path}} (its URL)",
            )
        if backends.is_url(spec.path):
            return cursorfile.default_path(user, name, backend, env)
        return migrate_path(spec.path, backend)
    if backends.is_url(path):
        if backends.url_engine(path) != backend:
            raise ConfigError(
                f"{backends.without_password(path)} is not a {backend} location "
                f"(it is {backends.url_engine(path) or 'unknown'})"
            )
        if backends.without_password(path) != path:
            raise ConfigError(
                f"{backends.without_password(path)}: a password in the URL would be saved in "
                "the cursor file; put it in an environment variable and add ?password_env=VAR"
            )
        if name == cursorfile.DEFAULT_CURSOR:
            raise ConfigError(
                "the default store stays on this machine; give a shared store its own cursor "
                "(prontodb cursor set NAME URL) and copy into it with export/import"
            )
        return path
    if url_engine:
        raise ConfigError(f"{path} is not a URL; a {backend} store is addressed by URL")
    return os.path.abspath(os.path.expanduser(path))


def _same_store(new: str, old: str) -> bool:
    from prontodb import backends

    if backends.is_url(new) or backends.is_url(old):
        return backends.without_password(new) == backends.without_password(old)
    return os.path.realpath(new) == os.path.realpath(old)


def _exists(where: str) -> bool:
    """Something is at ``where``: a file, or a store on a server (a retired one too)."""
    from prontodb import backends

    if not backends.is_url(where):
        return os.path.lexists(where)
    try:
        open_backend(where, create=False).close()
    except StoreRetiredError:
        return True
    except StoreNotFoundError:
        return False
    return True


def _cursor(user: str, name: str, env: Mapping[str, str]) -> CursorSpec:
    """The cursor to migrate; for ``default``, the user's default store as a cursor."""
    if name != cursorfile.DEFAULT_CURSOR:
        return cursorfile.load(user, name, env)
    where, engine = cursorfile.default_store(user, env)
    from prontodb import backends

    if not backends.is_url(where) and not os.path.exists(where):
        from prontodb.errors import StoreNotFoundError

        raise StoreNotFoundError(f"user {user!r} has no default store yet (no store at {where})")
    return CursorSpec(name=name, path=where, backend=engine or backends.resolve_backend(where))


def _repoint(
    user: str, name: str, spec: CursorSpec, new: str, backend: str, env: Mapping[str, str]
) -> None:
    if name == cursorfile.DEFAULT_CURSOR:
        cursorfile.set_default_store(user, new, backend, env)
    else:
        cursorfile.save(user, spec.replace(path=new, backend=backend), env)


def _check_unshared(
    user: str, name: str, where: str, env: Mapping[str, str], argument: str
) -> None:
    """Refuse (ConfigError naming ``argument``) when another cursor of ``user`` (or the
    default store) uses the store at ``where``."""
    from prontodb.errors import ConfigError

    real = _identity(where)
    user_of = None
    for other in cursorfile.list_cursors(user, env):
        if other.name != name and _identity(other.path) == real:
            user_of = f"cursor {literal(repr(other.name))} uses {literal(where)}"
            break
    if user_of is None and name != cursorfile.DEFAULT_CURSOR:
        default, _ = cursorfile.default_store(user, env)
        if _identity(default) == real:
            user_of = f"{literal(where)} is user {literal(repr(user))}'s default store"
    if user_of is not None:
        raise ConfigError(
            None,
            argument=argument,
            value=True,
            rule="shared",
            template=f"refusing {{{argument}=True}}: {user_of}",
        )


def _identity(where: str) -> str:
    """What names one store: a file's real path, a URL without its password."""
    from prontodb import backends

    return backends.without_password(where) if backends.is_url(where) else os.path.realpath(where)


def _occupied(new: str, user: str, name: str) -> ProntoError:
    """The refusal of a target that holds something, saying when it is an earlier migrate's
    copy of this cursor."""
    from prontodb import backends
    from prontodb.errors import ConfigError

    shown = backends.without_password(new)
    retired = _retired_to(new)
    if retired is not None:
        template = (
            f"{literal(shown)} holds a store an earlier migrate retired (its data moved to "
            f"{literal(retired)}); pass {{replace_target=True}} to replace it, or choose "
            "another {path}"
        )
        rule = "retired store"
    elif _origin_of(new) == {"user": user, "cursor": name}:
        template = (
            f"{literal(shown)} holds a copy an earlier migrate of cursor {literal(repr(name))} "
            "left behind (the cursor does not use it); pass {replace_target=True} to replace "
            "it, or choose another {path}"
        )
        rule = "leftover copy"
    else:
        template = (
            f"{literal(shown)} already exists; choose another {{path}}, or pass "
            "{replace_target=True} to replace it"
        )
        rule = "exists"
    return ConfigError(
        None, argument=("path", "replace_target"), value=new, rule=rule, template=template
    )


def _retired_to(where: str) -> str | None:
    """Where the data of the retired store at ``where`` went; None when it is not one."""
    try:
        open_backend(where, create=False).close()
    except StoreRetiredError as exc:
        return exc.successor or "?"
    except Exception:  # noqa: BLE001 - not a retired store, whatever else it is
        return None
    return None


def _origin_of(where: str) -> Any:
    """The migrate mark of the store at ``where``, or None (no store, no mark, unreadable)."""
    try:
        engine = open_backend(where, create=False)
    except Exception:  # noqa: BLE001 - whatever it is, it is not a copy we can name
        return None
    try:
        raw = engine.get(_ORIGIN)
        return None if raw is None else json.loads(raw)
    except Exception:  # noqa: BLE001
        return None
    finally:
        engine.close()


def _retire(source: Backend, old: str, remove: bool, env: Mapping[str, str]) -> str | None:
    """Take the old store out of use while its write lock is held: remove its files
    (``remove``; returns None) or rename them to ``<stem>.migrated-<UTC time><ext>`` (returns
    that path). Either way a process holding it open finds its path changed at its next write
    and refuses it."""
    from prontodb import guard

    folder = os.path.dirname(old)
    sides = _side_suffixes(source, old)
    if remove:
        guard.check_destroy(old, env)
        for suffix in sides:
            _remove_path(old + suffix)
        _remove_path(old)
        files.fsync_dir(folder)
        return None
    stem, ext = os.path.splitext(old)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    retired, n = f"{stem}.migrated-{stamp}{ext}", 1
    while os.path.lexists(retired):
        n += 1
        retired = f"{stem}.migrated-{stamp}-{n}{ext}"
    os.rename(old, retired)  # first: what a writer holding the old store checks
    for suffix in sides:
        if os.path.lexists(old + suffix):
            os.rename(old + suffix, retired + suffix)
    files.fsync_dir(folder)
    return retired


def _side_suffixes(engine: Backend, path: str) -> list[str]:
    """The suffixes of the store's side files beside ``path`` (``-wal``, ``-lock`` ...), as
    the engine itself lists its files."""
    folder = os.path.dirname(path)
    return [
        f[len(path) :]
        for f in engine.files()
        if f != path and f.startswith(path) and os.path.dirname(f) == folder
    ]


def _remove_path(path: str) -> None:
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _remove_copy(tmp: str) -> None:
    """Remove the temporary copy and whatever side files it has (a copy on a server: its
    keys)."""
    from prontodb import backends

    if backends.is_url(tmp):
        try:
            files.remove_store(tmp)
        except ProntoError:
            pass  # unreachable now: the copy is not referenced by any cursor
        return
    folder, base = os.path.split(tmp)
    try:
        names = [n for n in os.listdir(folder) if n.startswith(base)]
    except OSError:
        return
    for entry in names:
        try:
            _remove_path(os.path.join(folder, entry))
        except OSError:
            pass


def _copy_store(
    source: Backend,
    tmp: str,
    backend: str,
    durability: str,
    clock: Clock,
    origin: bytes,
    progress: Progress | None,
    *,
    consistent: bool,
) -> _CopyStats:
    """Copy every row of ``source`` (not expired entries) into a new store at ``tmp``, marked
    with ``origin``. Reads inside a snapshot unless ``consistent`` (the caller holds the
    source's write transaction already)."""
    import contextlib
    import hashlib

    stats = _CopyStats(copied=hashlib.sha256(), everything=hashlib.sha256())
    dest = open_backend(tmp, backend=backend, durability=durability, create=True)
    try:
        dest.put(_ORIGIN, origin)
        with contextlib.nullcontext() if consistent else source.snapshot():
            now = clock()
            if progress is not None:
                progress.start("migrating", count_keys(source, b""), "entries")

            def rows() -> Iterator[tuple[bytes, bytes]]:
                previous = b""
                for key, raw in source.scan(b""):
                    if key <= previous:  # a flipped byte can leave a key out of place
                        raise keyspace.damaged_key(key, "out of order in the store's index")
                    previous = key
                    if key.startswith(keyspace.INFO):
                        if key == keyspace.INFO_REVISION:
                            # entries keep their versions, so the counter must come along:
                            # a restarted revision would hand out versions again
                            yield key, raw
                        continue
                    _feed(stats.everything, key, raw)
                    if key.startswith(keyspace.DATA):
                        keyspace.split_layer(key)  # a damaged key: CorruptStoreError, no copy
                        if record.expired(raw, now):
                            stats.expired += 1
                            continue
                        stats.entries += 1
                        stats.layers.add(key[: key.index(b"\x00", key.index(b"\x00", 2) + 1)])
                    elif key.startswith(keyspace.TTLDEF):
                        keyspace.split_ttl_key(key)
                        keyspace.stored_ttl_seconds(key, raw)
                        stats.caches += 1
                        stats.layers.add(
                            b"D" + key[1 : key.index(b"\x00", key.index(b"\x00", 2) + 1)]
                        )
                    _feed(stats.copied, key, raw)
                    stats.rows += 1
                    yield key, raw

            dest.put_many(counted(rows(), progress))
            if progress is not None:
                progress.finish()
    finally:
        dest.close()
    return stats


def _digest_all(backend: Backend) -> Any:
    import hashlib

    digest = hashlib.sha256()
    for key, raw in backend.scan(b""):
        if not key.startswith(keyspace.INFO):
            _feed(digest, key, raw)
    return digest


def _verify_copy(tmp: str, backend: str, stats: _CopyStats) -> None:
    import hashlib

    from prontodb.errors import CorruptStoreError
    from prontodb.opener import open_backend

    digest = hashlib.sha256()
    rows = 0
    dest = open_backend(tmp, backend=backend, create=False)
    try:
        for key, raw in dest.scan(b""):
            if not key.startswith(keyspace.INFO):
                _feed(digest, key, raw)
                rows += 1
    finally:
        dest.close()
    if rows != stats.rows or digest.digest() != stats.copied.digest():
        raise CorruptStoreError(
            f"the new {backend} store at {tmp} does not read back what was written ({rows} of "
            f"{stats.rows} rows, or a checksum mismatch); the cursor was left alone"
        )


def _move_store(tmp: str, new: str) -> None:
    """Rename the store built at ``tmp`` (file or directory, plus any side files) to ``new``;
    the main file moves last, so ``new`` appears complete or not at all."""
    folder, base = os.path.split(tmp)
    for entry in sorted(os.listdir(folder)):
        if entry.startswith(base) and entry != base:
            os.rename(os.path.join(folder, entry), new + entry[len(base) :])
    os.rename(tmp, new)
    files.fsync_dir(os.path.dirname(new))
