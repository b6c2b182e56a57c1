"""Whole-store backup and restore (``prontodb backup`` / ``prontodb restore``).

A backup (``.tar.gz``) holds ``manifest.json`` first, then one member per (user, meta) layer of
the store, ``layers/<user>.jsonl`` or ``layers/<user>.<meta>.jsonl``, each an export file of
that whole layer (so a member can also be fed to ``import``). The manifest names the format,
the ProntoDB version, the creation time (UTC), the source engine and path, each layer's member
and counts, and the size and sha256 of every member. The data is read inside one
``backend.snapshot()``, so the archive is one point in time while other processes write.

Restore reads and verifies the whole archive, spooling validated rows, before it changes
anything; then it writes them in one transaction.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from prontodb import files, keyspace, paths, record
from prontodb.errors import ConflictError, DataFormatError, UsageError, literal
from prontodb.portable.archive import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MIN_UNCOMPRESSED_CAP,
    UNCOMPRESSED_RATIO,
    check_member,
    open_archive,
    open_tar,
    parse_json,
    read_manifest,
    write_archive,
)
from prontodb.portable.jsonl import (
    Reader,
    Sink,
    count_keys,
    entry_lines,
    header,
    json_string,
    live_rows,
    writable_ttl,
)
from prontodb.portable.report import BackupSummary, Progress, RestoreSummary, counted
from prontodb.portable.spool import CHUNK, spool_file, spool_row, spooled

if TYPE_CHECKING:
    from prontodb.backends.base import Backend
    from prontodb.store import Store


BACKUP_FORMAT = "prontodb-backup"


BACKUP_VERSION = 1


_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class _Layer:
    """One (user, meta) layer as found in an archive or a store."""

    user: str
    meta: str | None
    caches: dict[tuple[str, str], int] = field(default_factory=dict)
    entries: int = 0
    #: the number of TTL definitions a manifest announces for the layer
    announced_caches: int = 0

    @property
    def member(self) -> str:
        return member_name(self.user, self.meta)


def member_name(user: str, meta: str | None) -> str:
    """The archive member holding the layer (user, meta)."""
    return f"layers/{user}.jsonl" if meta is None else f"layers/{user}.{meta}.jsonl"


def backup_dir(env: Mapping[str, str] | None = None) -> str:
    """``$XDG_DATA_HOME/prontodb/backups``: where backups go when no path is given."""

    return os.path.join(paths.data_home(env), "backups")


def _store_name(backend: Backend) -> str:
    from prontodb import backends

    base = os.path.basename(backend.path.rstrip(os.sep)) or "store"
    if backends.from_extension(base) is not None:
        base = os.path.splitext(base)[0]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base).lstrip(".") or "store"


def backup(
    store: Store,
    path: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    only: Callable[[str, str | None], bool] | None = None,
) -> BackupSummary:
    """Write a ``.tar.gz`` backup of EVERY user and meta layer of ``store``'s backend (live
    entries and TTL namespace definitions), read inside one snapshot while other processes
    keep writing. ``only(user, meta)`` narrows it to the layers it accepts (a locked context
    backs up only what it may reach). Without ``path`` it goes to
    ``backup_dir()/<store name>-<UTC time>.tar.gz`` (directory 0700); the archive is 0600
    and appears only once complete (an existing ``path`` is replaced; a symlink there is
    replaced, never written through; under a locked context a ``path`` holding another user's
    data is refused with ContextLockedError). Work files live in a private
    ``.prontodb-backup-*`` directory beside the archive, removed at the end; ones a killed
    run left are removed by the next backup into that directory."""
    import json
    import shutil
    import time

    from prontodb import __version__

    backend = store.backend
    created = time.time()
    if path is None:
        folder = paths.make_private_dir(backup_dir(env))
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
        target = os.path.join(folder, f"{_store_name(backend)}-{stamp}.tar.gz")
    else:
        target = os.path.abspath(os.path.expanduser(path))
        folder = os.path.dirname(target)
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write {target}: directory {folder} does not exist")
    if path is not None:
        from prontodb import guard

        guard.check_destroy(target, env)
    files.remove_stale_temps(folder, ("tmp", "backup"))
    with files.disk_errors("writing the backup"):
        work = files.temp_name(folder, "backup")
        os.mkdir(work, 0o700)
        try:
            layers, members = _dump_layers(store, work, progress, only)
            entries = sum(layer.entries for layer in layers)
            caches = sum(len(layer.caches) for layer in layers)
            manifest = {
                "format": BACKUP_FORMAT,
                "version": BACKUP_VERSION,
                "prontodb": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
                "source": {"backend": backend.name, "path": backend.path},
                "entries": entries,
                "caches": caches,
                "layers": [
                    {
                        "user": layer.user,
                        "meta": layer.meta,
                        "member": layer.member,
                        "entries": layer.entries,
                        "caches": len(layer.caches),
                    }
                    for layer in layers
                ],
                "members": {name: {"size": s, "sha256": h} for name, (_, s, h) in members.items()},
            }
            blob = (json.dumps(manifest, indent=1) + "\n").encode()
            final = write_archive(target, blob, members, created, replace=path is not None, env=env)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return BackupSummary(
        path=final,
        size=os.path.getsize(final),
        layers=len(layers),
        entries=entries,
        caches=caches,
    )


def _dump_layers(
    store: Store,
    work: str,
    progress: Progress | None,
    only: Callable[[str, str | None], bool] | None = None,
) -> tuple[list[_Layer], dict[str, tuple[str, int, str]]]:
    """Write one export file per layer into ``work`` (inside one snapshot). Returns the layers
    and, per member name, (file, size, sha256)."""
    import hashlib

    from prontodb.backends.base import prefix_successor
    from prontodb.errors import InvalidNameError
    from prontodb.names import check_name

    backend = store.backend
    found: dict[tuple[str, str | None], _Layer] = {}
    members: dict[str, tuple[str, int, str]] = {}

    def layer_of(user: str, meta: str, raw_key: bytes) -> _Layer:
        try:
            key = (check_name("user", user), check_name("meta", meta) if meta else None)
        except InvalidNameError as exc:  # only a damaged key holds such a name
            raise keyspace.damaged_key(raw_key, str(exc)) from None
        if key not in found:
            found[key] = _Layer(*key)
        return found[key]

    with backend.snapshot():
        now_ms = store.clock() * 1000.0
        for key, raw in backend.scan(keyspace.TTLDEF):
            user, meta, project, namespace = keyspace.split_ttl_key(key)
            if only is None or only(user, meta):
                seconds = writable_ttl(keyspace.stored_ttl_seconds(key, raw), now_ms)
                layer_of(user, meta or "", key).caches[(project, namespace)] = seconds
        if progress is not None:
            progress.start("backing up", count_keys(backend, keyspace.DATA), "entries")
        start: bytes | None = keyspace.DATA
        quote = json_string()
        while start is not None:
            first = next(iter(backend.scan(keyspace.DATA, start=start)), None)
            if first is None:
                break
            user, meta, _ = keyspace.split_layer(first[0])
            if only is not None and not only(user, meta):
                start = prefix_successor(keyspace.layer_prefix(user, meta))
                continue
            layer = layer_of(user, meta or "", first[0])
            prefix = keyspace.layer_prefix(layer.user, layer.meta)
            file = os.path.join(work, f"{len(members)}.jsonl")
            with open(file, "wb") as fh:
                sink = Sink(fh, digest=hashlib.sha256())
                sink.write(header(backend.name, None, layer.caches))
                rows = counted(live_rows(backend, prefix, len(prefix), now_ms), progress)
                for line in entry_lines(rows, quote):
                    sink.write(line)
                    layer.entries += 1
                sink.flush()
            members[layer.member] = (file, sink.size, sink.digest.hexdigest())
            start = prefix_successor(prefix)
        if progress is not None:
            progress.finish()
    for layer in found.values():  # layers that hold only TTL namespace definitions
        if layer.member not in members:
            file = os.path.join(work, f"{len(members)}.jsonl")
            data = header(backend.name, None, layer.caches).encode()
            with open(file, "wb") as fh:
                fh.write(data)
            members[layer.member] = (file, len(data), hashlib.sha256(data).hexdigest())
    layers = sorted(found.values(), key=lambda la: (la.user.encode(), (la.meta or "").encode()))
    return layers, members


def list_backups(env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The archives in :func:`backup_dir`, oldest name first: path, size and the manifest's
    creation time, source and counts (``error`` instead when the manifest is unreadable)."""
    folder = backup_dir(env)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".tar.gz"))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        file = os.path.join(folder, name)
        facts: dict[str, Any] = {"path": file, "size": os.path.getsize(file)}
        try:
            manifest = read_manifest(file)
            source = manifest.get("source")
            source = source if isinstance(source, dict) else {}
            layers = manifest.get("layers")
            facts.update(
                created=_scalar(manifest.get("created")),
                backend=_scalar(source.get("backend")),
                source=_scalar(source.get("path")),
                layers=len(layers) if isinstance(layers, list) else None,
                entries=_scalar(manifest.get("entries")),
            )
        except DataFormatError as exc:
            facts["error"] = str(exc)
        found.append(facts)
    return found


def restore(
    store: Store,
    archive: str,
    *,
    replace: bool = False,
    max_uncompressed: int | None = None,
    progress: Progress | None = None,
) -> RestoreSummary:
    """Restore a backup into ``store``'s backend (any engine): every layer of the archive.

    The whole archive is read and verified first — the manifest, every member's size, sha256
    and entry count, every line — and refused with DataFormatError (nothing changed) when it
    is damaged, truncated, incomplete, holds unexpected, absolute, ``..``, link or special
    members, or decompresses to more than ``max_uncompressed`` bytes (default: max(1 GiB,
    200 x the archive's size)). A target holding any live entry or TTL definition needs
    ``replace``, which clears every layer of it in the same transaction that writes the
    backup; without it ConflictError is raised. Entries that expired since the backup are
    skipped and counted."""
    import itertools

    backend = store.backend
    if not replace and _holds_data(backend, store.clock()):
        raise ConflictError(
            None,
            argument="replace",
            value=False,
            rule="not empty",
            template=f"{literal(backend.path)} is not empty; restore into an empty store, or "
            "pass {replace=True} to clear it (every user and meta layer) first",
        )
    with files.disk_errors("restoring"), spool_file(backend) as spool:
        layers, expired = _verify_archive(archive, spool, store, max_uncompressed, progress)
        spool.flush()
        rows = sum(layer.entries for layer in layers) - expired
        with backend.transaction():
            cleared = 0
            if replace:
                cleared = _clear(backend)
            elif _holds_data(backend, store.clock()):
                raise ConflictError(f"{backend.path} stopped being empty; nothing was changed")
            caches = 0
            for layer in layers:
                prefix = keyspace.ttl_prefix(layer.user, layer.meta)
                for (project, namespace), seconds in layer.caches.items():
                    backend.put(keyspace.ttl_key(prefix, project, namespace), str(seconds).encode())
                    caches += 1
            if progress is not None:
                progress.start("restoring", rows, "entries")
            written = 0
            rows_in = counted(spooled(spool), progress)
            for index, group in itertools.groupby(rows_in, key=lambda row: row[0]):
                target = store.layer(user=layers[index].user, meta=layers[index].meta)
                written += target.write_entries(
                    (
                        (address, value, _seconds(deadline), _seconds(written_ms))
                        for _, address, value, deadline, written_ms in group
                    ),
                    validated=True,
                    absolute=True,
                )
            if progress is not None:
                progress.finish()
    return RestoreSummary(
        archive=os.path.abspath(archive),
        layers=len(layers),
        entries=written,
        expired=expired,
        caches=caches,
        cleared=cleared,
    )


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _scalar(value: Any) -> str | int | None:
    """A manifest field for listing: a string or a whole number, else None (a hostile or
    damaged manifest must not break ``backup --list``)."""
    if isinstance(value, str):
        return value[:200]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _holds_data(backend: Backend, now: float) -> bool:
    """True when any layer of the store has a live entry or a TTL namespace definition."""
    for _ in _first(backend.scan(keyspace.TTLDEF), 1):
        return True
    expired = record.expired
    scan = backend.scan(keyspace.DATA)
    try:
        return any(not expired(raw, now) for _, raw in scan)
    finally:
        getattr(scan, "close", lambda: None)()  # so that writes may follow


def _first(items: Iterator[Any], n: int) -> list[Any]:
    """The first ``n`` items of a scan, closing the scan afterwards (so writes may follow)."""
    import itertools

    try:
        return list(itertools.islice(items, n))
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _clear(backend: Backend) -> int:
    """Delete every entry and TTL namespace definition of every layer (inside the caller's
    transaction). Returns how many keys were removed."""
    removed = 0
    for family in (keyspace.DATA, keyspace.TTLDEF):
        while True:
            batch = [key for key, _ in _first(backend.scan(family), 10_000)]
            if not batch:
                break
            for key in batch:
                backend.delete(key)
            removed += len(batch)
    return removed


def _verify_archive(
    archive: str,
    spool: IO[bytes],
    store: Store,
    max_uncompressed: int | None,
    progress: Progress | None,
) -> tuple[list[_Layer], int]:
    """Read and check the whole archive, spooling validated rows. Returns the layers (with
    their TTL definitions) and the number of entries skipped as expired."""
    with open_archive(archive) as raw:
        compressed = os.fstat(raw.fileno()).st_size
        cap = max_uncompressed or max(MIN_UNCOMPRESSED_CAP, UNCOMPRESSED_RATIO * compressed)
        if progress is not None:
            progress.start("verifying", compressed, "bytes")
        with open_tar(raw, archive, cap, progress) as (tar, stream):
            result = _verify_members(archive, tar, spool, store, cap)
            while stream.read(CHUNK):  # to the end: gzip checks its CRC and length there
                pass
        if progress is not None:
            progress.finish()
    return result


def _verify_members(
    archive: str, tar: Any, spool: IO[bytes], store: Store, cap: int
) -> tuple[list[_Layer], int]:
    import hashlib

    members = iter(tar)
    first = next(members, None)
    if first is None:
        raise DataFormatError(f"{archive}: empty archive, not a ProntoDB backup")
    check_member(archive, first)
    if first.name != MANIFEST:
        raise DataFormatError(
            f"{archive}: first member is {first.name!r}, not {MANIFEST}: not a ProntoDB backup"
        )
    if first.size > MAX_MANIFEST_BYTES:
        raise DataFormatError(f"{archive}: {MANIFEST} is {first.size} bytes, too large")
    manifest = parse_json(
        tar.extractfile(first).read(MAX_MANIFEST_BYTES + 1), f"{archive}: {MANIFEST}"
    )
    layers, expected = _check_manifest(archive, manifest, cap)
    now_ms = store.clock() * 1000.0
    seen: set[str] = set()
    expired = 0
    for member in members:
        check_member(archive, member)
        name = member.name
        if name not in expected:
            raise DataFormatError(f"{archive}: unexpected member {name!r} (not in the manifest)")
        if name in seen:
            raise DataFormatError(f"{archive}: member {name!r} appears twice")
        seen.add(name)
        index, size, checksum = expected[name]
        if member.size != size:
            raise DataFormatError(
                f"{archive}: member {name!r} is {member.size} bytes, the manifest says {size}"
            )
        layer = layers[index]
        digest = hashlib.sha256()
        fh = tar.extractfile(member)

        def chunks(fh: Any = fh, digest: Any = digest) -> Iterator[bytes]:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                yield chunk

        reader = Reader(f"{archive}:{name}", store.max_value_bytes, now_ms=now_ms)
        lines = reader.lines(chunks())
        caches = reader.header(next(lines, None))
        count = 0
        for line in lines:
            if not line.strip():
                continue
            row = reader.row(line)
            count += 1
            if row.deadline_ms is not None and now_ms >= row.deadline_ms:
                expired += 1
                continue
            spool_row(spool, index, row)
        if digest.hexdigest() != checksum:
            raise DataFormatError(
                f"{archive}: member {name!r} fails its sha256 checksum (damaged); nothing was "
                "changed"
            )
        if count != layer.entries or len(caches) != layer.announced_caches:
            raise DataFormatError(
                f"{archive}: member {name!r} holds {count} entries and {len(caches)} TTL "
                f"definitions, the manifest says {layer.entries} and {layer.announced_caches}"
            )
        layer.caches = caches
    missing = sorted(set(expected) - seen)
    if missing:
        raise DataFormatError(
            f"{archive}: member {missing[0]!r} is missing (truncated or incomplete archive); "
            "nothing was changed"
        )
    return layers, expired


def _check_manifest(
    archive: str, manifest: Any, cap: int
) -> tuple[list[_Layer], dict[str, tuple[int, int, str]]]:
    from prontodb.names import check_name

    def bad(problem: str) -> DataFormatError:
        return DataFormatError(f"{archive}: {MANIFEST}: {problem}; nothing was changed")

    def count(value: Any, what: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise bad(f"{what} must be a whole number >= 0")
        return value

    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise bad(f'not a ProntoDB backup manifest (no "format":"{BACKUP_FORMAT}")')
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"bad backup format version {version!r}")
    if version > BACKUP_VERSION:
        raise bad(
            f"backup format version {version} was written by a newer ProntoDB (this one reads "
            f"version {BACKUP_VERSION})"
        )
    raw_layers, raw_members = manifest.get("layers"), manifest.get("members")
    if not isinstance(raw_layers, list) or not isinstance(raw_members, dict):
        raise bad("'layers' must be a list and 'members' an object")
    layers: list[_Layer] = []
    expected: dict[str, tuple[int, int, str]] = {}
    total = 0
    for item in raw_layers:
        if not isinstance(item, dict):
            raise bad("each layer must be an object")
        try:
            user, meta = item.get("user"), item.get("meta")
            if not isinstance(user, str) or not (meta is None or isinstance(meta, str)):
                raise bad("a layer's user must be a string and its meta a string or null")
            user = check_name("user", user)
            meta = None if meta is None else check_name("meta", meta)
        except ValueError as exc:
            raise bad(str(exc)) from None
        layer = _Layer(user, meta, entries=count(item.get("entries"), "entries"))
        layer.announced_caches = count(item.get("caches"), "caches")
        name = layer.member
        if item.get("member") != name or name in expected:
            raise bad(f"layer ({user}, {meta}) names member {item.get('member')!r}")
        facts = raw_members.get(name)
        if not isinstance(facts, dict):
            raise bad(f"no size and checksum for member {name!r}")
        size = count(facts.get("size"), f"size of {name}")
        checksum = facts.get("sha256")
        if not isinstance(checksum, str) or not _SHA256.fullmatch(checksum):
            raise bad(f"bad sha256 for member {name!r}")
        total += size
        expected[name] = (len(layers), size, checksum)
        layers.append(layer)
    if set(raw_members) != set(expected):
        extra = sorted(set(raw_members) - set(expected))
        raise bad(f"member {extra[0]!r} belongs to no layer")
    if total > cap:
        raise bad(
            f"members add up to {total} bytes, over the limit of {cap} bytes for this archive"
        )
    return layers, expected
