"""Backup archives at the tar/gzip level: writing one, reading its manifest, and the guards
every read of an untrusted archive goes through.

An archive is untrusted input. Before any byte reaches :mod:`tarfile`, :func:`open_tar` checks
it is a regular file (a FIFO or device is refused at once), caps how much it may decompress to
(a decompression bomb), and passes the decompressed stream through :class:`TarGate`, which
validates every tar header block and every PAX extended header itself: only regular members
and PAX headers of bounded size (4 KiB, no run of more than 64 digits) made of well-formed
records get through. That bounds the work
``tarfile`` can be made to do whatever the Python (CPython's PAX parsing backtracks on
crafted headers — CVE-2024-6232 — in the 3.11.7 this project runs on).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

from prontodb import files
from prontodb.errors import DataFormatError
from prontodb.portable.report import Progress
from prontodb.portable.spool import CHUNK

MANIFEST = "manifest.json"
#: A manifest larger than this is not a manifest.
MAX_MANIFEST_BYTES = 16 << 20
#: Restore refuses archives that decompress to more than max(this, RATIO x archive size).
MIN_UNCOMPRESSED_CAP = 1 << 30
UNCOMPRESSED_RATIO = 200
#: gzip level of backups. Measured on exported JSON Lines: level 3 takes 0.65x the time of the
#: default 6 for archives ~4% larger (level 9: 1.8x the time, 0.3% smaller). Compression runs
#: after the snapshot has ended, so it never holds up writers.
GZIP_LEVEL = 3
#: The largest PAX extended header accepted (ProntoDB writes a few dozen bytes, if any;
#: tarfile a few hundred for a long or non-ASCII member name).
MAX_PAX_BYTES = 4 << 10
#: The longest run of ASCII digits a PAX header may hold (a record length, a size or a time
#: needs at most about 30). CPython's ``\d+ hdrcharset=`` search is quadratic in such a run
#: (CVE-2024-6232): unchecked, one 60,000-digit value in a well-formed record costs ~4 s of
#: CPU from a 242-byte archive (tools/cve_2024_6232.py measures the raw cases).
MAX_PAX_DIGITS = 64
_DIGIT_RUN = re.compile(rb"[0-9]{%d}" % (MAX_PAX_DIGITS + 1))
_BLOCK = 512
#: Member types an archive may hold: regular files and PAX extended headers for them.
_REGULAR = (b"0", b"\x00")
_PAX = b"x"


def write_archive(
    target: str,
    manifest: bytes,
    members: dict[str, tuple[str, int, str]],
    created: float,
    *,
    replace: bool,
    env: Mapping[str, str] | None = None,
) -> str:
    """Write the archive to a new, exclusively created temporary file beside ``target``, fsync
    it, then move it to ``target`` — replacing it when ``replace`` (through
    :func:`prontodb.guard.replacing`: a symlink is replaced, never written through, and a
    locked context may not replace another user's data), else under a free name (never
    replacing anything). Returns the final path."""
    from prontodb import guard

    if replace:
        with guard.replacing(target, env) as raw:
            _write_tar(raw, manifest, members, created)
        return target
    folder = os.path.dirname(target)
    files.remove_stale_temps(folder, ("tmp",))
    tmp = files.temp_name(folder, "tmp")
    fd = files.create_exclusive(tmp)
    try:
        with os.fdopen(fd, "wb") as raw:
            _write_tar(raw, manifest, members, created)
            raw.flush()
            os.fsync(raw.fileno())
        final = _link_free_name(tmp, target)
        os.unlink(tmp)
        files.fsync_dir(folder)
        return final
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_tar(
    raw: IO[bytes], manifest: bytes, members: dict[str, tuple[str, int, str]], created: float
) -> None:
    import gzip
    import io
    import tarfile

    with (
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=int(created)
        ) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):

        def info(name: str, size: int) -> tarfile.TarInfo:
            item = tarfile.TarInfo(name)
            item.size, item.mode, item.mtime = size, 0o600, int(created)
            return item

        tar.addfile(info(MANIFEST, len(manifest)), io.BytesIO(manifest))
        for name, (file, size, _) in sorted(members.items()):
            with open(file, "rb") as fh:
                tar.addfile(info(name, size), fh)


def _link_free_name(tmp: str, target: str) -> str:
    """Hard-link ``tmp`` to ``target`` or ``<target stem>-2.tar.gz``...: never replaces."""
    stem = target[: -len(".tar.gz")] if target.endswith(".tar.gz") else target
    candidate, n = target, 1
    while True:
        try:
            os.link(tmp, candidate)
            return candidate
        except FileExistsError:
            n += 1
            candidate = f"{stem}-{n}.tar.gz"


# -- reading an untrusted archive ---------------------------------------------------------------


def open_archive(archive: str) -> IO[bytes]:
    """The archive file opened for reading; DataFormatError when it cannot be read or is not
    a regular file (a FIFO, socket or device is refused without blocking)."""
    try:
        return files.open_regular(archive)
    except OSError as exc:
        raise DataFormatError(f"cannot read {archive}: {exc.strerror or exc}") from None


@contextmanager
def open_tar(
    raw: IO[bytes], archive: str, cap: int, progress: Progress | None = None
) -> Iterator[tuple[Any, Capped]]:
    """A streaming :class:`tarfile.TarFile` over the gzip archive ``raw`` behind every guard
    (decompression capped at ``cap`` bytes, headers validated by :class:`TarGate`), and the
    capped stream (read it to the end to make gzip check its CRC). Tar-level damage raises
    DataFormatError."""
    import gzip
    import tarfile

    counting: Any = CountingFile(raw, progress)
    stream = Capped(gzip.GzipFile(fileobj=counting, mode="rb"), cap, archive)
    gate: Any = TarGate(stream, archive)
    try:
        with tarfile.open(fileobj=gate, mode="r|") as tar:
            yield tar, stream
    except tarfile.TarError as exc:
        raise DataFormatError(
            f"{archive}: not a valid backup archive ({exc}); nothing was changed"
        ) from None


def parse_json(data: bytes, where: str) -> Any:
    """JSON from untrusted bytes: invalid UTF-8, invalid JSON, NaN/Infinity and nesting too
    deep for the parser are all DataFormatError naming ``where``."""
    try:
        return json.loads(data.decode(), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise DataFormatError(f"{where} is not valid UTF-8") from None
    except RecursionError:
        raise DataFormatError(f"{where} is nested too deeply to be ProntoDB's") from None
    except ValueError as exc:
        raise DataFormatError(f"{where} is not valid JSON ({exc})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def read_manifest(archive: str) -> dict[str, Any]:
    """The manifest of a backup (read from its first member only; nothing else is verified).
    Any archive that is not a readable backup raises DataFormatError, in bounded work."""
    import zlib

    with open_archive(archive) as raw:
        cap = max(MIN_UNCOMPRESSED_CAP, UNCOMPRESSED_RATIO * os.fstat(raw.fileno()).st_size)
        try:
            with open_tar(raw, archive, cap) as (tar, _):
                first = next(iter(tar), None)
                if first is None or first.name != MANIFEST or not first.isreg():
                    raise DataFormatError(f"{archive}: not a ProntoDB backup (no manifest first)")
                if first.size > MAX_MANIFEST_BYTES:
                    raise DataFormatError(f"{archive}: manifest is too large")
                fh = tar.extractfile(first)
                assert fh is not None
                data = parse_json(fh.read(MAX_MANIFEST_BYTES + 1), f"{archive}: {MANIFEST}")
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(f"{archive}: not a readable backup ({exc})") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{archive}: manifest is not a JSON object")
    return data


class TarGate:
    """A read-only stream over a decompressed tar stream that hands bytes on only once they
    are validated: each 512-byte header block (checksum, a regular-file or PAX type, a plain
    size field) and each PAX extended header (at most :data:`MAX_PAX_BYTES`, exactly tiled by
    well-formed ``LENGTH KEY=VALUE\n`` records, zero padding). Member data passes through
    unexamined; after the end-of-archive block everything does. Memory: one chunk plus one
    PAX header."""

    def __init__(self, inner: Any, archive: str) -> None:
        self.inner = inner
        self.archive = archive
        self.buf = bytearray()
        self.start = 0  # stream offset of buf[0]
        self.checked = 0  # stream offset up to which bytes may be handed on
        self.next_header = 0
        self.ended = False  # past the end-of-archive block
        self.eof = False

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = CHUNK
        while self.checked - self.start < size and self._advance():
            pass
        ready = self.checked - self.start
        if ready <= 0 and self.eof:
            ready = len(self.buf)  # a truncated tail: tarfile reports it, nothing to parse
        n = min(size, ready, len(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.start += n
        return out

    def _fill(self, upto: int) -> bool:
        """Buffer the stream up to offset ``upto``; False when it ends first."""
        while self.start + len(self.buf) < upto:
            if self.eof:
                return False
            chunk = self.inner.read(CHUNK)
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
        return True

    def _advance(self) -> bool:
        """Validate the next piece of the stream; False when nothing more can be released."""
        end = self.start + len(self.buf)
        if self.ended or self.checked < self.next_header:
            if end <= self.checked and not self._fill(self.checked + 1):
                return False
            end = self.start + len(self.buf)
            self.checked = end if self.ended else min(self.next_header, end)
            return True
        at = self.next_header
        if not self._fill(at + _BLOCK):
            return False
        block = bytes(self.buf[at - self.start : at + _BLOCK - self.start])
        if block == bytes(_BLOCK):
            self.ended = True
            self.checked = at + _BLOCK
            return True
        size, kind = self._header(block)
        data_end = at + _BLOCK + -(-size // _BLOCK) * _BLOCK
        if kind == _PAX:
            if not self._fill(data_end):
                raise self._bad("truncated inside a PAX header")
            data = bytes(self.buf[at + _BLOCK - self.start : data_end - self.start])
            self._check_pax(data[:size], data[size:])
            self.checked = data_end
        else:
            self.checked = at + _BLOCK
        self.next_header = data_end
        return True

    def _bad(self, problem: str) -> DataFormatError:
        return DataFormatError(
            f"{self.archive}: not a valid backup archive ({problem}); refused, nothing was changed"
        )

    def _header(self, block: bytes) -> tuple[int, bytes]:
        stored = block[148:156].rstrip(b"\x00 ")
        if not stored or not all(48 <= c <= 55 for c in stored):
            raise self._bad("a header block with a bad checksum field")
        if int(stored, 8) != sum(block[:148]) + 256 + sum(block[156:]):
            raise self._bad("a header block fails its checksum")
        kind = block[156:157]
        if kind not in _REGULAR and kind != _PAX:
            raise self._bad(f"member type {kind!r} (only regular files are allowed)")
        field = block[124:136]
        if field[:1] in (b"\x80", b"\xff"):
            size = int.from_bytes(field[1:], "big")
            if field[:1] == b"\xff":
                raise self._bad("a negative member size")
        else:
            digits = field.strip(b"\x00 ")
            if not all(48 <= c <= 55 for c in digits):
                raise self._bad("a header with a bad size field")
            size = int(digits, 8) if digits else 0
        if kind == _PAX and size > MAX_PAX_BYTES:
            raise self._bad(f"a PAX header of {size} bytes (at most {MAX_PAX_BYTES})")
        return size, kind

    def _check_pax(self, data: bytes, padding: bytes) -> None:
        if padding.strip(b"\x00"):
            raise self._bad("a PAX header with data in its padding")
        if _DIGIT_RUN.search(data):
            raise self._bad(f"a PAX header with a run of more than {MAX_PAX_DIGITS} digits")
        pos = 0
        while pos < len(data):
            space = data.find(b" ", pos, pos + 8)
            digits = data[pos:space] if space > pos else b""
            if not digits or not digits.isdigit() or digits.startswith(b"0"):
                raise self._bad("a malformed PAX record length")
            length = int(digits)
            record = data[pos : pos + length]
            key, eq, _ = record[space - pos + 1 :].partition(b"=")
            if (
                length < len(digits) + 4
                or len(record) != length
                or not record.endswith(b"\n")
                or not eq
                or not key
                or not re.fullmatch(rb"[A-Za-z0-9_.]+", key)
            ):
                raise self._bad("a malformed PAX record")
            pos += length


class Capped:
    """A read-only stream over the decompressed archive that refuses to yield more than
    ``cap`` bytes (a decompression bomb) and reports damage as DataFormatError."""

    def __init__(self, inner: Any, cap: int, archive: str) -> None:
        self.inner = inner
        self.cap = cap
        self.archive = archive
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        import zlib

        try:
            data = self.inner.read(size if size >= 0 else CHUNK)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(
                f"{self.archive}: archive is damaged or truncated ({exc}); nothing was changed"
            ) from None
        self.total += len(data)
        if self.total > self.cap:
            raise DataFormatError(
                f"{self.archive}: archive decompresses to more than {self.cap} bytes "
                "(a decompression bomb?); nothing was changed"
            )
        return data


class CountingFile:
    """The compressed archive file, reporting bytes read to a Progress."""

    def __init__(self, inner: IO[bytes], progress: Progress | None) -> None:
        self.inner = inner
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        if self.progress is not None:
            self.progress.advance(len(data))
        return data


def check_member(archive: str, member: Any) -> None:
    """Refuse a member that is not a plain regular file with a relative path inside the
    archive (absolute, ``..``, backslashes, links and special files are all refused)."""
    import tarfile
    from pathlib import PurePosixPath

    name = member.name
    if name.startswith("/") or PurePosixPath(name).is_absolute() or re.match(r"[A-Za-z]:", name):
        raise DataFormatError(f"{archive}: member {name!r} has an absolute path; refused")
    if ".." in PurePosixPath(name).parts or "\\" in name:
        raise DataFormatError(f"{archive}: member {name!r} escapes the archive; refused")
    if member.issym() or member.islnk():
        raise DataFormatError(f"{archive}: member {name!r} is a link; refused")
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        raise DataFormatError(f"{archive}: member {name!r} is not a regular file; refused")
