"""Attack class (unbounded input): ``stream`` from stdin of any size.

Past ``_stdin.SPOOL_AT`` bytes, piped input is spooled to a private 0600 file and planned
from there twice (validated, then planned again inside the one write transaction), so the
process holds a block at a time, never the input: an input larger than
``PRONTO_MAX_VALUE_BYTES`` is imported, not refused. The pipe-cache promise stays: when the
stream fails, all of the piped input is rescued byte-exact (into the pipe cache within the
size limit, else as a rescue file), and after a success or a dry run no file is left.
Peak memory is measured by ``tools/rss_stream_stdin.py`` (figures in docs/reliability.md).
"""

from __future__ import annotations

import os

import pytest

import prontodb
from prontodb import stream
from prontodb.cli import _stdin
from tests._attack import prontodb as run

SIZE = _stdin.SPOOL_AT * 3  # well past the spool threshold


def _tokens(size: int, tail: bytes = b"") -> bytes:
    line = b"k%07d=value-%07d;\n"
    parts, total, i = [b"meta:path=big.ns;\n"], 0, 0
    while total < size:
        part = line % (i, i)
        parts.append(part)
        total += len(part)
        i += 1
    return b"".join(parts) + tail


def _rescue_files(home) -> list[str]:
    where = os.path.join(home["XDG_CACHE_HOME"], "prontodb", "rescue")
    return sorted(os.listdir(where)) if os.path.isdir(where) else []


def test_a_large_piped_stream_is_imported_whole(home):
    data = _tokens(SIZE)
    count = data.count(b";") - 1
    code, _, err = run(home, "stream", stdin=data)
    assert code == 0, err
    assert f"stored {count} entries in 1 namespace" in err
    with prontodb.open() as store:
        assert len(store.keys("big.ns")) == count
        assert store.get(f"big.ns.k{count - 1:07d}") == f"value-{count - 1:07d}".encode()
    assert _rescue_files(home) == []  # the spool file is gone


def test_a_piped_stream_larger_than_the_size_limit_is_imported(home):
    """The limit bounds a value (and a token), not the stream: 3 MiB of small tokens under a
    1 MiB limit import (they were rescued whole as 'too large' before)."""
    env = dict(home, PRONTO_MAX_VALUE_BYTES=str(1 << 20))
    data = _tokens(SIZE)
    code, _, err = run(env, "stream", stdin=data)
    assert code == 0, err
    with prontodb.open() as store:
        assert len(store.keys("big.ns")) == data.count(b";") - 1


def test_a_failing_large_stream_is_rescued_into_the_pipe_cache_byte_exact(home):
    data = _tokens(SIZE, tail=b"bad token;\n")
    code, out, err = run(home, "stream", stdin=data)
    assert code == 3, err
    key = out.decode().strip()
    assert key.startswith("pipe.cache.")
    with prontodb.open() as store:
        assert store.get(key) == data
        assert store.keys("big.ns") == []  # all or nothing
    assert _rescue_files(home) == []


def test_a_failing_stream_over_the_size_limit_is_rescued_as_a_file(home):
    env = dict(home, PRONTO_MAX_VALUE_BYTES=str(1 << 20))
    data = _tokens(SIZE, tail=b"bad token;\n")
    code, out, err = run(env, "stream", stdin=data)
    assert code == 3, err
    path = out.decode().strip()
    assert os.path.dirname(path).endswith(os.path.join("prontodb", "rescue"))
    with open(path, "rb") as fh:
        assert fh.read() == data
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert _rescue_files(home) == [os.path.basename(path)]  # no spool file besides it
    with prontodb.open() as store:
        assert store.keys("big.ns") == []


def test_a_large_dry_run_writes_nothing_and_leaves_nothing(home):
    data = _tokens(SIZE)
    code, out, err = run(home, "stream", "--dry-run", stdin=data)
    assert code == 0, err
    assert out.decode().split() == ["big.ns", str(data.count(b";") - 1)]
    assert _rescue_files(home) == []
    code, _, _ = run(home, "stream", "--dry-run", stdin=_tokens(SIZE, b"bad token;"))
    assert code == 1 and _rescue_files(home) == []


def test_a_large_whitespace_only_stream_is_a_usage_error_with_nothing_left(home):
    code, out, err = run(home, "stream", stdin=b" \n" * SIZE)
    assert (code, out) == (1, b"")
    assert "nothing to import" in err
    assert _rescue_files(home) == []


STREAMS = [
    "meta:path=a.b; k1=v1; k2='quoted value'; c.d:k3=v3; meta:ttl=1h; k4=v4; ns=e; k5=v5;",
    "meta:path=a.b;" + "".join(f"k{i}=v{i};" for i in range(5000)) + "meta:ttl=none; z=1",
]


@pytest.mark.parametrize("text", STREAMS)
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_a_replayable_plan_writes_what_a_held_plan_writes(tmp_path, text, chunk):
    data = text.encode()

    def reopen():
        return (data[i : i + chunk] for i in range(0, len(data), chunk))

    held = stream.plan(data)
    replayable = stream.plan_replayable(reopen)
    assert replayable.batches == []  # nothing of the input is held
    assert (replayable.counts, replayable.tokens) == (held.counts, held.tokens)
    assert list(replayable.items()) == list(held.items())
    results = []
    for planned, name in ((held, "held"), (replayable, "replayed")):
        with prontodb.open(str(tmp_path / f"{name}.sqlite")) as store:
            assert stream.apply(store, planned) == held.entries
            results.append([(e.address, e.value, e.expires_at is None) for e in store.entries()])
    assert results[0] == results[1]


def test_a_replayable_plan_refuses_what_plan_refuses():
    with pytest.raises(prontodb.StreamError):
        stream.plan_replayable(lambda: iter([b"meta:path=a.b; ok=1; bad token;"]))
