"""Attack class: hostile backup archives.

An archive is untrusted input. Before a byte reaches ``tarfile``, ProntoDB validates every
header block and PAX extended header itself (prontodb.portable.archive.TarGate): only regular
members and small, well-formed PAX headers get through, whatever the Python (CPython's PAX
parser backtracks on crafted headers, CVE-2024-6232). Every hostile archive below is refused
with DataFormatError — no spin, no "unexpected" error, nothing changed.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

import prontodb
from prontodb import portable
from prontodb.errors import DataFormatError
from tests._attack import prontodb as run


def _header(name: str, kind: bytes, size: int, *, size_field: bytes | None = None) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    block = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    if size_field is not None:
        block[124:136] = size_field.ljust(12, b"\0")
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % (sum(block) & 0o777777)
    return bytes(block)


def _member(name: str, data: bytes, kind: bytes = tarfile.REGTYPE, **kw) -> bytes:
    pad = -len(data) % 512
    return _header(name, kind, len(data), **kw) + data + b"\0" * pad


def _archive(tmp_path, *members: bytes, name: str = "evil.tar.gz") -> str:
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"".join(members) + b"\0" * 1024))
    return str(path)


def _manifest_member(manifest) -> bytes:
    return _member("manifest.json", json.dumps(manifest).encode())


def _record(key: bytes, value: bytes) -> bytes:
    """One well-formed PAX record ``LEN key=value\n``."""
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return b"%d%s" % (length, body)


PAX_BOMBS = {
    # ~1 MiB of digits and spaces without '=': a few hundred bytes once compressed
    "digits-and-spaces": b"1 " * (1 << 19),
    # The CVE-2024-6232 case proper: only digits. CPython 3.11.7's ``\d+ hdrcharset=``
    # search is quadratic in the run (tools/cve_2024_6232.py: 40,000 digits ~15 s, 400,000
    # digits -- 555 bytes gzipped -- still running after 30 s).
    "digits-only": b"1" * 400_000,
    # Well-formed records whose value is a long run of digits: the same search, quadratic.
    "record-of-60000-digits": _record(b"comment", b"1" * 60_000),
    "record-of-3000-digits": _record(b"comment", b"1" * 3_000),
    "no-equals": b"9" * 60000 + b" " + b"a" * 4000,
    "long-length": b"99999999999999999999 path=x\n",
    "zero-padded-length": b"0012 path=x\n",
    "length-past-end": b"50 path=x\n",
    "bad-key": b"13 pa th=xx\n\n",
    "no-newline": b"11 path=abc",
}


@pytest.mark.parametrize("payload", PAX_BOMBS.values(), ids=PAX_BOMBS.keys())
def test_crafted_pax_headers_are_refused_before_tarfile_parses_them(home, tmp_path, payload):
    archive = _archive(
        tmp_path,
        _member("PaxHeaders/manifest.json", payload, tarfile.XHDTYPE),
        _manifest_member({"format": "prontodb-backup"}),
    )
    with prontodb.open() as store, pytest.raises(DataFormatError, match="PAX|not a valid"):
        portable.restore(store, archive)
    with pytest.raises(DataFormatError):
        portable.read_manifest(archive)


def test_the_pax_bomb_through_the_cli_ends_quickly_with_exit_1(home, tmp_path):
    archive = _archive(
        tmp_path, _member("PaxHeaders/m", b"1 " * (1 << 19), tarfile.XHDTYPE), name="p.tar.gz"
    )
    assert len(open(archive, "rb").read()) < 4096  # small archive, huge header
    code, _, err = run(home, "restore", archive, timeout=30)
    assert code == 1 and "PAX" in err and "unexpected" not in err


def test_the_cve_2024_6232_archive_is_refused_by_restore_and_listed_by_backup_list(home, tmp_path):
    """The archive of tools/cve_2024_6232.py (a PAX header of 400,000 digits, 555 bytes
    gzipped) that keeps CPython 3.11.7's own tarfile busy for many minutes."""
    import os

    archive = _archive(
        tmp_path, _member("PaxHeaders/manifest.json", b"1" * 400_000, tarfile.XHDTYPE)
    )
    assert len(open(archive, "rb").read()) < 1024
    code, _, err = run(home, "restore", archive, timeout=30)
    assert code == 1 and "PAX header" in err and "unexpected" not in err
    folder = os.path.join(home["XDG_DATA_HOME"], "prontodb", "backups")
    os.makedirs(folder, mode=0o700)
    os.rename(archive, os.path.join(folder, "cve.tar.gz"))
    code, out, err = run(home, "backup", "--list", timeout=30)
    assert code == 0 and b"cve.tar.gz" in out and "unexpected" not in err


def test_backup_list_survives_a_pax_bomb_in_the_backups_directory(home, tmp_path):
    import os

    folder = os.path.join(home["XDG_DATA_HOME"], "prontodb", "backups")
    os.makedirs(folder, mode=0o700)
    _archive(
        __import__("pathlib").Path(folder),
        _member("PaxHeaders/m", b"1 " * (1 << 19), tarfile.XHDTYPE),
        name="bomb.tar.gz",
    )
    code, out, err = run(home, "backup", "--list", timeout=30)
    assert code == 0 and b"bomb.tar.gz" in out and "unexpected" not in err


MEMBER_TYPES = {
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char-device": tarfile.CHRTYPE,
    "directory": tarfile.DIRTYPE,
    "fifo": tarfile.FIFOTYPE,
    "gnu-longname": tarfile.GNUTYPE_LONGNAME,
    "global-pax": tarfile.XGLTYPE,
    "gnu-sparse": tarfile.GNUTYPE_SPARSE,
}


@pytest.mark.parametrize("kind", MEMBER_TYPES.values(), ids=MEMBER_TYPES.keys())
def test_members_that_are_not_regular_files_are_refused(home, tmp_path, kind):
    archive = _archive(tmp_path, _member("manifest.json", b"x" * 10, kind))
    with prontodb.open() as store, pytest.raises(DataFormatError, match="only regular"):
        portable.restore(store, archive)


@pytest.mark.parametrize("name", ["/etc/passwd", "../../escape", "a/../../b", "c:\\x"])
def test_members_escaping_the_archive_are_refused(home, tmp_path, name):
    archive = _archive(tmp_path, _manifest_member({}), _member(name, b"x"))
    with prontodb.open() as store, pytest.raises(DataFormatError):
        portable.restore(store, archive)


@pytest.mark.parametrize(
    "field",
    [b"77777777777x", b"\xff" + b"\xff" * 11, b"-1"],
    ids=["non-octal", "negative", "minus"],
)
def test_headers_with_a_bad_size_field_are_refused(home, tmp_path, field):
    archive = _archive(tmp_path, _member("manifest.json", b"{}", size_field=field))
    with prontodb.open() as store, pytest.raises(DataFormatError):
        portable.restore(store, archive)


def test_a_header_with_a_bad_checksum_is_refused(home, tmp_path):
    block = bytearray(_member("manifest.json", b"{}"))
    block[0:1] = b"X"  # the name changes, the checksum does not
    archive = _archive(tmp_path, bytes(block))
    with prontodb.open() as store, pytest.raises(DataFormatError, match="checksum"):
        portable.restore(store, archive)


MANIFESTS = {
    "a-list": [],
    "layers-a-string": {"format": "prontodb-backup", "version": 1, "layers": "x", "members": {}},
    "user-a-number": {
        "format": "prontodb-backup",
        "version": 1,
        "layers": [{"user": 5, "meta": None, "member": "x", "entries": 0, "caches": 0}],
        "members": {},
    },
    "meta-an-object": {
        "format": "prontodb-backup",
        "version": 1,
        "layers": [{"user": "u", "meta": {}, "member": "x", "entries": 0, "caches": 0}],
        "members": {},
    },
    "entries-a-bool": {
        "format": "prontodb-backup",
        "version": 1,
        "layers": [{"user": "u", "meta": None, "member": "layers/u.jsonl", "entries": True}],
        "members": {"layers/u.jsonl": {"size": 0, "sha256": "0" * 64}},
    },
    "version-a-float": {"format": "prontodb-backup", "version": 1.5},
}


@pytest.mark.parametrize("manifest", MANIFESTS.values(), ids=MANIFESTS.keys())
def test_manifests_of_the_wrong_shape_are_refused(home, tmp_path, manifest):
    archive = _archive(tmp_path, _manifest_member(manifest))
    with prontodb.open() as store, pytest.raises(DataFormatError):
        portable.restore(store, archive)
    code, _, err = run(home, "restore", archive)
    assert code == 1 and "unexpected" not in err
    code, _, err = run(home, "backup", "--list")
    assert code == 0 and "unexpected" not in err


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 100_000, b"NaN", b"\xff\xfe"])
def test_manifests_that_are_not_plain_json_are_refused(home, tmp_path, raw):
    archive = _archive(tmp_path, _member("manifest.json", raw))
    with prontodb.open() as store, pytest.raises(DataFormatError):
        portable.restore(store, archive)
    with pytest.raises(DataFormatError):
        portable.read_manifest(archive)


def _real_backup(tmp_path) -> bytes:
    with prontodb.open(str(tmp_path / "src.sqlite")) as store:
        store.set_many((f"p.n.k{i}", "x" * 100) for i in range(200))
        return open(portable.backup(store, str(tmp_path / "real.tar.gz")).path, "rb").read()


def test_a_decompression_bomb_is_refused_at_the_cap(home, tmp_path):
    data = _real_backup(tmp_path)
    with prontodb.open() as store, pytest.raises(DataFormatError, match="decompresses to more"):
        portable.restore(store, str(tmp_path / "real.tar.gz"), max_uncompressed=4096)
    assert len(data) > 0


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_a_truncated_archive_is_refused_and_changes_nothing(home, tmp_path, keep):
    data = _real_backup(tmp_path)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: int(len(data) * keep)])
    with prontodb.open() as store:
        store.set("mine.n.k", "kept")
        with pytest.raises(DataFormatError):
            portable.restore(store, str(cut), replace=True)
        assert store.get("mine.n.k") == b"kept"


def test_a_genuine_archive_still_restores_through_the_gate(home, tmp_path):
    _real_backup(tmp_path)
    with prontodb.open() as store:
        summary = portable.restore(store, str(tmp_path / "real.tar.gz"))
        assert summary.entries == 200 and store.get("p.n.k7") == b"x" * 100


def test_pax_headers_tarfile_itself_writes_pass_the_gate(home, tmp_path):
    """A long member name makes tarfile write a PAX header: well-formed ones pass."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 2
        info.pax_headers = {"comment": "é" * 300}
        tar.addfile(info, io.BytesIO(b"{}"))
    path = tmp_path / "pax.tar.gz"
    path.write_bytes(gzip.compress(buf.getvalue()))
    with (
        pytest.raises(DataFormatError, match="not a ProntoDB backup manifest"),
        prontodb.open() as store,
    ):
        portable.restore(store, str(path))
