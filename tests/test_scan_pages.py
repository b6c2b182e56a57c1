"""Prefix scans against an oracle (sorted, filtered keys) across page and chunk boundaries on
every engine: prefixes whose successor carries, 0xff prefixes, starts inside, before and past
the prefix."""

from __future__ import annotations

import random

import pytest

PREFIXES = [b"", b"a", b"a\xff", b"b", b"\xff", b"\xff\xff", b"a\x00", b"zz"]


@pytest.fixture
def filled(open_backend):
    rng = random.Random(18)
    keys = {
        b"a" + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 4))) for _ in range(2600)
    }
    keys |= {b"a\xff" * n for n in range(1, 5)} | {b"b", b"\xff", b"\xff\xff\x00", b"a\x00"}
    keys |= {b"a" + bytes([0xFF] * 3) + bytes([i]) for i in range(200)}
    b = open_backend()
    b.put_many((k, k[::-1]) for k in keys)
    return b, sorted(keys)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_scan_matches_oracle(filled, prefix):
    b, keys = filled
    expected = [(k, k[::-1]) for k in keys if k.startswith(prefix)]
    assert list(b.scan(prefix)) == expected
    for start in (b"", prefix, prefix + b"\x80", b"a\x7f", b"\xff\xff\xff"):
        want = [(k, v) for k, v in expected if k >= start]
        assert list(b.scan(prefix, start=start)) == want
    with b.snapshot():
        assert list(b.scan(prefix)) == expected
