"""Checking a store: what is wrong with it, and how badly.

:func:`examine` looks at one store without changing its data and returns a :class:`Report`
of :class:`Finding` s, each with a severity:

* ``error`` — the store is damaged or unsafe: the engine's integrity check fails, entries have
  an envelope this ProntoDB cannot read, the format record is wrong, other accounts can write
  the files, or the store cannot be opened at all;
* ``warning`` — it works but needs attention: files readable by other accounts, a large
  backlog of expired entries (``gc`` is not running), and whatever the engine's own
  ``Backend.info()`` lists under ``warnings`` (LMDB: a reader table nearly full, or reader
  slots left by killed processes, cleared as a side effect; Redis: no persistence, an
  evicting memory policy);
* ``info`` — facts: entry counts, the expired backlog, the engine's ``notes`` (LMDB: reader
  slots in use).

A report is healthy when it holds no error: warnings are reported but do not make a store
unhealthy (DESIGN §4: ``doctor`` exits 0 with warnings, 1 with an error). Nothing here writes
an entry; the store is opened without ``create`` and without recording a format (so a store
whose format record is missing is reported, not repaired).
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from prontodb import keyspace, record
from prontodb.clock import system_clock
from prontodb.errors import ProntoError

if TYPE_CHECKING:
    from prontodb.clock import Clock

SEVERITIES = ("info", "warning", "error")
#: Expired entries waiting for ``gc`` become a warning above this many (and half the store).
BACKLOG_WARNING = 10_000
#: Problems of one kind listed by name before the rest are only counted.
SHOWN = 5


@dataclass(frozen=True)
class Finding:
    """One thing the doctor found: ``severity`` (info, warning, error), the ``check`` that
    found it, and a one-line ``message``."""

    severity: str
    check: str
    message: str


@dataclass
class Report:
    """Everything found about the store at ``path`` (``backend`` None when unknown)."""

    path: str
    backend: str | None = None
    findings: list[Finding] = field(default_factory=list)
    entries: int = 0
    expired: int = 0

    @property
    def healthy(self) -> bool:
        """True when no ``error`` was found (warnings do not make a store unhealthy)."""
        return self.count("error") == 0

    def count(self, severity: str) -> int:
        """How many findings have ``severity``."""
        return sum(f.severity == severity for f in self.findings)

    def add(self, severity: str, check: str, message: str) -> None:
        self.findings.append(Finding(severity, check, message))

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (for ``--json``)."""
        data = asdict(self)
        data["healthy"] = self.healthy
        return data


def examine(
    path: str,
    *,
    backend: str | None = None,
    clock: Clock | None = None,
    only: Callable[[str, str | None], bool] | None = None,
) -> Report:
    """Check the store at ``path``: permissions, format, the engine's integrity check, the
    envelope of every entry, the expired-entry backlog and the engine's own warnings and notes
    (``Backend.info()``).

    ``only(user, meta)`` limits what the report tells about the data to the layers it accepts
    (a locked context): counts cover those layers only, and damage elsewhere is reported
    without naming the entry."""
    from prontodb.backends import backend_class, resolve_backend, url_engine

    engine_name = url_engine(path)
    if engine_name is not None:
        return _examine_url(path, engine_name, clock, only)
    path = os.path.realpath(os.path.expanduser(path))
    report = Report(path)
    if not os.path.exists(path):
        report.add("error", "open", f"no store at {path}")
        return report
    _check_permissions(path, report)
    try:
        report.backend = resolve_backend(path, backend)
    except ProntoError as exc:
        report.add("error", "format", str(exc))
        return report
    try:
        engine = backend_class(report.backend)(path, create=False)
    except ProntoError as exc:
        report.add("error", "open", str(exc))
        return report
    try:
        _engine_facts(engine, report, "engine")  # first: LMDB's check clears stale readers
        _check_format(engine, report)
        _check_integrity(engine, report)
        _check_entries(engine, report, (clock or system_clock)(), only)
    finally:
        engine.close()
    return report


def _examine_url(
    url: str, name: str, clock: Clock | None, only: Callable[[str, str | None], bool] | None
) -> Report:
    """A store on a server: reachable, format, index and values agree, every envelope sound,
    and the server's own warnings (no persistence, an evicting memory policy)."""
    from prontodb.backends import backend_class

    try:
        engine = backend_class(name)(url, create=False)
    except ProntoError as exc:
        report = Report(url)
        report.backend = name
        report.add("error", "open", str(exc))
        return report
    report = Report(engine.path)
    report.backend = name
    try:
        _check_format(engine, report)
        _check_integrity(engine, report)
        _check_entries(engine, report, (clock or system_clock)(), only)
        _engine_facts(engine, report, "server")
    finally:
        engine.close()
    return report


def _engine_facts(engine: Any, report: Report, check: str) -> None:
    """What the engine itself says (``Backend.info()``): each of its ``warnings`` is a
    warning, each of its ``notes`` an info line, under ``check``."""
    try:
        facts = engine.info()
    except ProntoError as exc:
        report.add("warning", check, str(exc))
        return
    for severity, key in (("warning", "warnings"), ("info", "notes")):
        lines = facts.get(key, [])
        for line in lines if isinstance(lines, list) else [lines]:
            report.add(severity, check, str(line))


def _check_permissions(path: str, report: Report) -> None:
    """Foreign owner or write bits are errors (the store would be refused); read bits for
    other accounts are a warning (the OS account is the boundary: files 0600, dirs 0700)."""
    me = os.geteuid()
    for name in _store_files(path):
        try:
            st = os.stat(name)
        except OSError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid != me:
            report.add("error", "permissions", f"{name} is owned by uid {st.st_uid}, not by you")
        elif mode & 0o022:
            report.add(
                "error",
                "permissions",
                f"{name} is writable by other accounts (mode {mode:04o}): the store is refused "
                "until you run chmod go-w on it",
            )
        elif mode & 0o044:
            report.add(
                "warning",
                "permissions",
                f"{name} is readable by other accounts (mode {mode:04o}); chmod go-r keeps "
                "the values private",
            )


def _store_files(path: str) -> list[str]:
    from prontodb import backends

    return backends.store_files(path)


def _check_format(engine: Any, report: Report) -> None:
    from prontodb.store import check_store_format

    try:
        check_store_format(engine, writable=False)
    except ProntoError as exc:
        report.add("error", "format", str(exc))
        return
    if engine.get(keyspace.INFO_FORMAT) is None:
        report.add("warning", "format", "the store does not record its format version")


def _check_integrity(engine: Any, report: Report) -> None:
    try:
        problems = engine.check()
    except ProntoError as exc:
        problems = [str(exc)]
    for problem in problems[:SHOWN]:
        report.add("error", "integrity", f"{engine.name} integrity check: {problem}")
    if len(problems) > SHOWN:
        report.add("error", "integrity", f"... and {len(problems) - SHOWN} more problems")
    if not problems:
        report.add("info", "integrity", f"{engine.name} integrity check passed")


def _check_entries(
    engine: Any, report: Report, now: float, only: Callable[[str, str | None], bool] | None
) -> None:
    """Every key: a known family, a readable envelope, a valid TTL definition; count the
    live and expired entries (of the layers ``only`` accepts, when given)."""
    bad: list[str] = []
    versions: Counter[int] = Counter()
    foreign = 0
    layers: set[tuple[str, str | None]] = set()
    try:
        for key, raw in engine.scan(b""):
            family = key[:2]
            if family == keyspace.DATA:
                try:
                    user, meta, _ = keyspace.split_layer(key)
                except ValueError as exc:
                    bad.append(f"{_show_key(key) if only is None else 'key'}: {exc}")
                    continue
                if only is not None and not only(user, meta):
                    try:
                        record.unpack(raw)
                    except ProntoError:
                        bad.append("entry of a layer outside the locked context")
                    continue
                try:
                    gone = record.expired(raw, now)
                except ProntoError as exc:
                    bad.append(f"{_show_key(key)}: {exc}")
                    continue
                versions[raw[0]] += 1
                layers.add((user, meta))
                if gone:
                    report.expired += 1
                else:
                    report.entries += 1
            elif family == keyspace.TTLDEF:
                try:
                    keyspace.split_ttl_key(key)
                    if int(raw) <= 0:
                        raise ValueError("not a positive number of seconds")
                except ValueError as exc:
                    bad.append(f"TTL definition {_show_key(key)}: {exc}")
            elif family != keyspace.INFO:
                foreign += 1
    except ProntoError as exc:
        report.add("error", "envelopes", f"reading the entries failed: {exc}")
        return
    for problem in bad[:SHOWN]:
        report.add("error", "envelopes", f"unreadable entry {problem}")
    if len(bad) > SHOWN:
        report.add("error", "envelopes", f"... and {len(bad) - SHOWN} more unreadable entries")
    if foreign:
        report.add("warning", "envelopes", f"{foreign} keys that ProntoDB did not write")
    shown = ", ".join(f"v{v}: {n}" for v, n in sorted(versions.items()))
    report.add(
        "info",
        "entries",
        f"{report.entries} live entries in {len(layers)} layer{'s' * (len(layers) != 1)}"
        + (f" (envelope versions {shown})" if shown else ""),
    )
    if report.expired:
        severity = "info"
        if report.expired > BACKLOG_WARNING and report.expired > report.entries:
            severity = "warning"
        report.add(
            severity,
            "expired",
            f"{report.expired} expired entries wait for removal (prontodb gc removes them now)",
        )


def _show_key(key: bytes) -> str:
    return repr(key.replace(b"\x00", b"."))[2:-1][:80]
