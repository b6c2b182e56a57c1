"""``cursor migrate``: move a cursor's store onto another engine.

Every layer of the store (raw envelopes: values, deadlines, TTL namespace definitions) is
copied into a new store of the other engine built under a temporary name, re-read to verify
counts and a content checksum, renamed into place, and only then is the cursor repointed.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prontodb import keyspace, paths, record
from prontodb.errors import ConflictError, UsageError, literal
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


def migrate(
    user: str,
    name: str,
    backend: str,
    *,
    path: str | None = None,
    remove_old: bool = False,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    progress: Progress | None = None,
) -> MigrateSummary:
    """Move cursor ``name`` of ``user`` onto a new store of engine ``backend``.

    Everything of every layer (values, deadlines, TTL namespace definitions; not expired
    entries) is copied from a snapshot of the old store into a new one built under a
    temporary name beside ``path`` (default: the old path with the new engine's extension),
    which is then re-read and checked against the copy (counts and a sha256 of every key and
    envelope) and renamed into place. The source is scanned again afterwards: if another
    process wrote to it meanwhile, ConflictError is raised and nothing changes. Only then is
    the cursor repointed (an atomic rewrite of the cursor file). The old store is kept unless
    ``remove_old``. A crash at any point leaves the cursor on the old, intact store."""
    from prontodb import backends, paths
    from prontodb import cursor as cursors
    from prontodb.clock import system_clock
    from prontodb.errors import ConfigError
    from prontodb.opener import open_backend

    if backend not in backends.file_engines():
        raise ConfigError(
            f"unknown backend {backend!r} (choose {', '.join(backends.file_engines())})"
        )
    spec = cursors.load(user, name, env)
    old = spec.path
    new = os.path.abspath(os.path.expanduser(path)) if path else migrate_path(old, backend)
    if os.path.realpath(new) == os.path.realpath(old):
        raise UsageError(
            None,
            argument="path",
            value=path,
            rule="same file",
            template=f"cursor {literal(repr(name))} already uses {literal(old)}; give {{path}} "
            "to migrate to another file",
        )
    if os.path.lexists(new):
        raise ConfigError(
            None,
            argument="path",
            value=new,
            rule="exists",
            template=f"{literal(new)} already exists; choose another {{path}} or remove it (an "
            "interrupted migrate may have left it)",
        )
    if remove_old:
        sharing = [
            c.name
            for c in cursors.list_cursors(user, env)
            if c.name != name and os.path.realpath(c.path) == os.path.realpath(old)
        ]
        if sharing:
            raise ConfigError(
                None,
                argument="remove_old",
                value=True,
                rule="shared",
                template=f"refusing {{remove_old=True}}: cursor {literal(repr(sharing[0]))} also "
                f"uses {literal(old)}",
            )
    folder = paths.make_private_dir(os.path.dirname(new))
    _remove_stale_copies(folder, os.path.basename(new))
    tmp = os.path.join(folder, f".{os.path.basename(new)}.migrating-{os.getpid()}")
    source = open_backend(old, backend=spec.backend, durability=spec.durability, create=False)
    try:
        try:
            stats = _copy_store(
                source, tmp, backend, spec.durability, clock or system_clock, progress
            )
            if _digest_all(source).digest() != stats.everything.digest():
                raise ConflictError(
                    f"{old} changed while it was being copied (another process wrote to it); "
                    f"cursor {name!r} still points at it — run migrate again when it is idle"
                )
        finally:
            source.close()
        _verify_copy(tmp, backend, stats)
        _move_store(tmp, new)
    except BaseException:
        cursors.remove_store(tmp)
        raise
    if cursors.load(user, name, env) != spec:
        raise ConflictError(
            f"cursor {name!r} was changed while migrating; it was left alone and the copy "
            f"stays at {new}"
        )
    cursors.save(user, spec.replace(path=new, backend=backend), env)
    removed = cursors.remove_store(old) if remove_old else False
    return MigrateSummary(
        cursor=name,
        old_path=old,
        old_backend=spec.backend,
        new_path=new,
        new_backend=backend,
        layers=len(stats.layers),
        entries=stats.entries,
        caches=stats.caches,
        removed_old=removed,
    )


def _remove_stale_copies(folder: str, name: str) -> None:
    """Remove what migrations killed midway left (``.NAME.migrating-PID``, PID no longer
    running); a copy still being built by a live process is left alone."""
    from prontodb import cursor as cursors

    pattern = re.compile(rf"\.{re.escape(name)}\.migrating-(\d+)(-lock|-wal|-shm)?")
    done: set[str] = set()
    for entry in os.listdir(folder):
        match = pattern.fullmatch(entry)
        if match is None:
            continue
        # A side file alone (killed while the copy was being removed) goes with its base name.
        entry = entry[: match.start(2)] if match.group(2) else entry
        if entry in done:
            continue
        done.add(entry)
        pid = int(match.group(1))
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
                continue
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        cursors.remove_store(os.path.join(folder, entry))


def _copy_store(
    source: Backend,
    tmp: str,
    backend: str,
    durability: str,
    clock: Clock,
    progress: Progress | None,
) -> _CopyStats:
    import hashlib

    from prontodb.opener import open_backend

    stats = _CopyStats(copied=hashlib.sha256(), everything=hashlib.sha256())
    dest = open_backend(tmp, backend=backend, durability=durability, create=True)
    try:
        with source.snapshot():
            now_ms = clock() * 1000.0
            if progress is not None:
                progress.start("migrating", count_keys(source, b""), "entries")

            def rows() -> Iterator[tuple[bytes, bytes]]:
                for key, raw in source.scan(b""):
                    if key.startswith(keyspace.INFO):
                        if key == keyspace.INFO_REVISION:
                            # entries keep their versions, so the counter must come along:
                            # a restarted revision would hand out versions again
                            yield key, raw
                        continue
                    _feed(stats.everything, key, raw)
                    if key.startswith(keyspace.DATA):
                        deadline = record.deadline_of(raw)
                        if deadline is not None and now_ms >= deadline:
                            stats.expired += 1
                            continue
                        stats.entries += 1
                        stats.layers.add(key[: key.index(b"\x00", key.index(b"\x00", 2) + 1)])
                    elif key.startswith(keyspace.TTLDEF):
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
    """Rename the store built at ``tmp`` (file or directory, plus side files) to ``new``; the
    main file moves last, so ``new`` appears complete or not at all."""
    for suffix in ("-lock", "-wal", "-shm", ""):
        if os.path.lexists(tmp + suffix):
            os.rename(tmp + suffix, new + suffix)
    paths.fsync_dir(os.path.dirname(new))
