"""Attack class: FIFOs, sockets and devices where ProntoDB expects a regular file.

Paths ProntoDB opens on its own (the cursor file, backup archives) must be regular files: a
FIFO, socket or device there is refused at once, never opened for reading (a FIFO would block
forever). Explicit FILE arguments of ``import``/``stream`` may be pipes and are read as
streams. Every command here runs under a timeout: a regression fails instead of hanging.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading

import pytest

from prontodb import files
from tests._attack import prontodb as run


def _cursor_file(home) -> str:
    folder = os.path.join(home["XDG_CONFIG_HOME"], "prontodb", "users", "default")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return os.path.join(folder, "cursors.json")


def _special(kind: str, path: str) -> None:
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "socket":  # bound at a short path (AF_UNIX limits it), then moved in place
        short = tempfile.mkdtemp(dir="/tmp")
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(os.path.join(short, "s"))
        sock.close()
        os.rename(os.path.join(short, "s"), path)
        os.rmdir(short)
    elif kind == "device":
        os.symlink("/dev/zero", path)
    else:
        raise AssertionError(kind)


KINDS = ["fifo", "socket", "device"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "argv", [["cursor", "list"], ["get", "p.n.k"], ["cursor", "set", "w"], ["keys"]]
)
def test_a_special_cursor_file_is_refused_at_once(home, kind, argv):
    _special(kind, _cursor_file(home))
    code, out, err = run(home, *argv, timeout=30)
    assert code == 1 and out == b""
    assert "cursor file" in err and "not a regular file" in err and "unexpected" not in err


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_archive_is_refused_by_restore(home, tmp_path, kind):
    archive = str(tmp_path / "x.tar.gz")
    _special(kind, archive)
    code, _, err = run(home, "restore", archive, timeout=30)
    assert code == 1 and "not a regular file" in err and "unexpected" not in err


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_file_in_the_backups_directory_does_not_stop_the_listing(home, kind):
    folder = os.path.join(home["XDG_DATA_HOME"], "prontodb", "backups")
    os.makedirs(folder, mode=0o700)
    _special(kind, os.path.join(folder, "trap.tar.gz"))
    code, out, err = run(home, "backup", "--list", timeout=30)
    assert code == 0 and b"trap.tar.gz" in out and "unexpected" not in err


def test_open_regular_refuses_without_blocking(tmp_path):
    fifo = str(tmp_path / "f")
    os.mkfifo(fifo)
    for path in (fifo, "/dev/null", str(tmp_path)):
        with pytest.raises(files.NotRegularFileError):
            files.open_regular(path)


def _feed_fifo(path: str, data: bytes) -> threading.Thread:
    def writer():
        with open(path, "wb") as fh:
            fh.write(data)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    return thread


def test_import_reads_an_explicit_fifo_as_a_stream(home, tmp_path):
    assert run(home, "set", "p.n.k", "v")[0] == 0
    code, exported, _ = run(home, "export")
    assert code == 0
    other = str(tmp_path / "other.sqlite")
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    thread = _feed_fifo(fifo, exported)
    code, _, err = run(home, "--database", other, "import", fifo, timeout=30)
    thread.join(5)
    assert code == 0, err
    assert run(home, "--database", other, "get", "p.n.k")[1] == b"v"


def test_stream_reads_an_explicit_fifo_as_a_stream(home, tmp_path):
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    thread = _feed_fifo(fifo, b"meta:path=p.n; a=1; b=2;")
    code, _, err = run(home, "stream", fifo, timeout=30)
    thread.join(5)
    assert code == 0, err
    assert run(home, "get", "p.n.b")[1] == b"2"


def test_import_of_a_character_device_stops_at_the_bound(home):
    env = dict(home, PRONTO_MAX_VALUE_BYTES="4096")
    code, _, err = run(env, "import", "/dev/zero", timeout=30)
    assert code == 1 and "longer than" in err and "unexpected" not in err


def test_stream_of_a_character_device_stops_at_the_bound(home):
    env = dict(home, PRONTO_MAX_VALUE_BYTES="4096")
    code, _, err = run(env, "stream", "/dev/zero", timeout=30)
    assert code == 1 and "longer than" in err and "unexpected" not in err
