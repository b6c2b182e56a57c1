"""Portability: export/import of one layer, whole-store backup/restore, cursor migration.

Everything here works through the :class:`~prontodb.backends.base.Backend` interface and the
Store's bulk path, so it moves data between any two engines. One module per concern:

* :mod:`~prontodb.portable.jsonl` — the export format (writing and validating lines);
* :mod:`~prontodb.portable.spool` — validated rows on disk until the write transaction;
* :mod:`~prontodb.portable.transfer` — ``export`` and ``import`` of one layer;
* :mod:`~prontodb.portable.archive` — ``.tar.gz`` archives and their guards;
* :mod:`~prontodb.portable.backups` — ``backup`` and ``restore`` of every layer;
* :mod:`~prontodb.portable.migration` — ``cursor migrate``;
* :mod:`~prontodb.portable.report` — progress and the summaries the operations return.

The public names are re-exported here: ``from prontodb import portable`` is the API.
"""

from __future__ import annotations

from prontodb.portable.archive import MANIFEST, read_manifest
from prontodb.portable.backups import (
    BACKUP_FORMAT,
    BACKUP_VERSION,
    backup,
    backup_dir,
    list_backups,
    member_name,
    restore,
)
from prontodb.portable.jsonl import EXPORT_FORMAT, EXPORT_VERSION
from prontodb.portable.migration import migrate, migrate_path
from prontodb.portable.report import (
    BackupSummary,
    ExportSummary,
    ImportSummary,
    MigrateSummary,
    Progress,
    RestoreSummary,
)
from prontodb.portable.transfer import FORMATS, ON_CONFLICT, export_file, export_layer, import_layer

__all__ = [
    "BACKUP_FORMAT",
    "BACKUP_VERSION",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "FORMATS",
    "MANIFEST",
    "ON_CONFLICT",
    "BackupSummary",
    "ExportSummary",
    "ImportSummary",
    "MigrateSummary",
    "Progress",
    "RestoreSummary",
    "backup",
    "backup_dir",
    "export_file",
    "export_layer",
    "import_layer",
    "list_backups",
    "member_name",
    "migrate",
    "migrate_path",
    "read_manifest",
    "restore",
]
