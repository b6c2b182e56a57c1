"""Attack class (unbounded input): ``stream FILE`` of any size, and a FILE that changes.

``stream FILE`` never holds the input: the file (or pipe, FIFO, ``/dev/stdin``) is read once,
validated block by block, and each validated batch goes to an anonymous 0600 temporary file that
the one write transaction reads back (``stream.plan_file``). What is written is exactly what
was validated, whatever happens to the file afterwards. Peak memory is measured by
``tools/rss_bulk.py --modes stream`` (figures in docs/backends.md).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading

import pytest

import prontodb
from prontodb import stream
from tests._attack import HANG, ROOT
from tests._attack import prontodb as run

TEXT = b"meta:path=big.ns;\n" + b"".join(b"k%06d=value-%06d;\n" % (i, i) for i in range(20_000))
COUNT = 20_000


def _entries(path: str) -> list[tuple[str, bytes]]:
    with prontodb.open(path) as store:
        return [(str(e.address), e.value) for e in store.entries()]


def test_a_planned_file_holds_nothing_of_its_input_and_writes_all_of_it(tmp_path):
    src = tmp_path / "in.stream"
    src.write_bytes(TEXT)
    planned = stream.plan_file(str(src))
    assert planned.batches == []  # nothing of the input is held: batches wait on disk
    assert planned.entries == COUNT
    held = stream.plan(TEXT)
    assert list(planned.items()) == list(held.items())
    with prontodb.open(str(tmp_path / "s.sqlite")) as store:
        assert stream.apply(store, planned) == COUNT
        assert store.get("big.ns.k019999") == b"value-019999"


def _changes():
    """Ways a file can change between its validation and its write."""

    def same_size(path):  # one byte of one value, same length
        data = bytearray(path.read_bytes())
        data[-3] = ord("X")
        path.write_bytes(bytes(data))

    def appended(path):
        with open(path, "ab") as fh:
            fh.write(b"extra=1;")

    def truncated(path):
        with open(path, "r+b") as fh:
            fh.truncate(len(TEXT) // 2)

    def replaced(path):  # a new file under the name, valid and longer
        tmp = path.with_suffix(".new")
        tmp.write_bytes(TEXT + b"more=2;")
        os.replace(tmp, path)

    def removed(path):
        path.unlink()

    return [same_size, appended, truncated, replaced, removed]


@pytest.mark.parametrize("change", _changes(), ids=lambda f: f.__name__)
def test_a_file_that_changes_after_validation_writes_what_was_validated(tmp_path, change):
    src = tmp_path / "in.stream"
    src.write_bytes(TEXT)
    target = str(tmp_path / "s.sqlite")
    with prontodb.open(target) as store:
        planned = stream.plan_file(str(src))
        change(src)
        assert stream.apply(store, planned) == COUNT
    with prontodb.open(str(tmp_path / "want.sqlite")) as want:
        stream.load(want, TEXT)
        assert _entries(target) == [(str(e.address), e.value) for e in want.entries()]


def test_a_plan_is_written_again_whole_when_its_transaction_is_retried(tmp_path):
    """The batches are read back from the start of their file on every replay."""
    src = tmp_path / "in.stream"
    src.write_bytes(TEXT)
    planned = stream.plan_file(str(src))
    first, second = list(planned.items()), list(planned.items())
    assert first == second == list(stream.plan(TEXT).items())


def test_a_fifo_is_read_once_into_a_private_spool(tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(TEXT))
    writer.start()
    planned = stream.plan_file(str(fifo))
    writer.join()
    assert planned.batches == [] and planned.entries == COUNT
    with prontodb.open(str(tmp_path / "s.sqlite")) as store:
        assert stream.apply(store, planned) == COUNT
        assert list(planned.items()) == list(stream.plan(TEXT).items())


def test_the_cli_streams_a_file(home, tmp_path):
    src = tmp_path / "in.stream"
    src.write_bytes(TEXT)
    code, _, err = run(home, "stream", str(src))
    assert code == 0, err
    assert f"stored {COUNT} entries in 1 namespace" in err
    with prontodb.open() as store:
        assert store.get("big.ns.k000000") == b"value-000000"


def test_the_cli_streams_a_process_substitution(home):
    """``stream <(cmd)`` names a pipe (/dev/fd/N), which can be read only once."""
    script = (
        f"{shlex.quote(sys.executable)} -m prontodb stream <(printf 'meta:path=a.b; x=1; y=2;')"
    )
    done = subprocess.run(
        ["bash", "-c", script], env=home, cwd=ROOT, capture_output=True, timeout=HANG
    )
    assert done.returncode == 0, done.stderr
    assert b"stored 2 entries in 1 namespace" in done.stderr
    with prontodb.open() as store:
        assert store.get("a.b.y") == b"2"


def test_the_cli_refuses_an_unreadable_file_and_a_directory(home, tmp_path):
    code, _, err = run(home, "stream", str(tmp_path / "missing"))
    assert code == 1 and "cannot read" in err and "Traceback" not in err
    code, _, err = run(home, "stream", str(tmp_path))
    assert code == 1 and "cannot read" in err and "Traceback" not in err


def test_an_invalid_file_writes_nothing_and_names_the_token(home, tmp_path):
    src = tmp_path / "in.stream"
    src.write_bytes(TEXT + b"bad token;")
    code, _, err = run(home, "stream", str(src))
    assert code == 1
    assert "bad token" in err or "token" in err
    with prontodb.open() as store:
        assert store.keys("big.ns") == []
