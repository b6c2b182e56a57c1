"""Progress reporting and the summaries portability operations return (as plain data for
``--json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    pass


class Progress(Protocol):
    """Receives progress of long operations (the CLI draws a bar on a terminal).

    ``start`` opens a phase of ``total`` units (``"entries"`` or ``"bytes"``); ``advance``
    reports units done since the last call; ``finish`` closes the phase."""

    def start(self, label: str, total: int, unit: str) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


@dataclass(frozen=True)
class _Summary:
    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data (for ``--json``)."""
        return asdict(self)


@dataclass(frozen=True)
class ExportSummary(_Summary):
    """What an export wrote: live entries, TTL namespace definitions, the scope and format."""

    entries: int
    caches: int
    scope: str | None
    format: str


@dataclass(frozen=True)
class ImportSummary(_Summary):
    """What an import did. ``entries`` were read; ``imported`` written; ``expired`` skipped
    because their deadline had passed; ``existing`` skipped (``--on-conflict skip``) because
    a live entry was already there; ``caches`` TTL namespace definitions written."""

    entries: int
    imported: int
    expired: int
    existing: int
    caches: int


@dataclass(frozen=True)
class BackupSummary(_Summary):
    """A backup written: where, its size, and what it holds."""

    path: str
    size: int
    layers: int
    entries: int
    caches: int


@dataclass(frozen=True)
class RestoreSummary(_Summary):
    """A restore: the archive, the layers and entries written, entries skipped because they
    had expired since the backup, TTL definitions written, and how many entries and
    definitions ``replace`` cleared from the target first."""

    archive: str
    layers: int
    entries: int
    expired: int
    caches: int
    cleared: int


@dataclass(frozen=True)
class MigrateSummary(_Summary):
    """A cursor moved to a new store. ``old_path`` is kept unless ``removed_old``."""

    cursor: str
    old_path: str
    old_backend: str
    new_path: str
    new_backend: str
    layers: int
    entries: int
    caches: int
    removed_old: bool


def counted(rows: Iterable[Any], progress: Progress | None) -> Iterator[Any]:
    if progress is None:
        yield from rows
        return
    done = 0
    for row in rows:
        yield row
        done += 1
        if done == _PROGRESS_EVERY:
            progress.advance(done)
            done = 0
    progress.advance(done)


_PROGRESS_EVERY = 4096
