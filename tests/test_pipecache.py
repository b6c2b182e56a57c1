"""The pipe cache library: key naming, reuse and collisions, TTL, where content goes."""

from __future__ import annotations

import hashlib
import os
import re
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

import prontodb
from prontodb import pipecache
from prontodb.address import Address, parse
from prontodb.clock import FakeClock

T0 = 1_725_982_345.25
MD5 = hashlib.md5(b"content", usedforsecurity=False).hexdigest()[:8]


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(tmp_path, fake):
    s = prontodb.open(str(tmp_path / "s.sqlite"), clock=fake)
    yield s
    s.close()


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempted", "part"),
    [
        ("invalid.address", "invalid_address"),
        ("invalid...address", "invalid___address"),
        ("bad.address", "bad_address"),
        ("a.b.c__ctx", "a_b_c__ctx"),
        ("proj:ns/key|x", "proj_ns_key_x"),
        ("with space", "with_space"),
        ("dash-ed", "dash_ed"),
        ("é.k", "__k"),  # one _ per character, not per byte
        ("...lead", "___lead"),
        ("trail...", "trail"),
        ("x" * 64, "x" * 64),
        ("x" * 80, "x" * 64),
        ("x" * 63 + ".yyyy", "x" * 63),  # cut to 64, then the trailing _ goes
        ("x" * 62 + "..yy", "x" * 62),
        (None, "noaddr"),
        ("", "noaddr"),
        ("...", "noaddr"),
        ("__", "noaddr"),
    ],
)
def test_attempted_part(attempted, part):
    assert pipecache.attempted_part(attempted) == part


def test_cache_name_is_seconds_md5_attempted():
    assert pipecache.cache_name(b"content", "invalid.address", T0) == (
        f"1725982345_{MD5}_invalid_address"
    )
    assert pipecache.cache_name(b"content", None, T0) == f"1725982345_{MD5}_noaddr"


@given(st.text(max_size=200), st.binary(max_size=64))
def test_every_cache_key_is_a_valid_address(attempted, content):
    name = pipecache.cache_name(content, attempted, T0)
    address = pipecache.cache_address(name)
    assert address.name == name
    assert parse(address.format()) == address
    assert re.fullmatch(r"\d+_[0-9a-f]{8}_[A-Za-z0-9_]{1,64}", name)
    assert not name.endswith("_")


# -- put -----------------------------------------------------------------------------------------


def test_put_stores_under_the_key_with_the_default_ttl(store):
    address, reused = pipecache.put(store, b"content", "invalid.address")
    assert address == Address("pipe", "cache", f"1725982345_{MD5}_invalid_address")
    assert reused is False
    assert store.get(address) == b"content"
    assert store.ttl(address) == 900


def test_a_name_with_double_underscore_is_found_again_as_printed(store):
    address, _ = pipecache.put(store, b"content", "a..b")
    printed = store.format(address)
    assert printed == f"pipe.cache.1725982345_{MD5}_a__b"
    assert store.get(printed) == b"content"
    assert store.keys("pipe.cache") == [f"1725982345_{MD5}_a__b"]


def test_put_reuses_a_live_entry_with_the_same_bytes(store):
    first, _ = pipecache.put(store, b"content", "a.b")
    again, reused = pipecache.put(store, b"content", "a.b")
    assert again == first and reused is True
    assert store.keys("pipe.cache") == [first.name]


def test_put_numbers_a_collision_with_other_bytes(store):
    name = pipecache.cache_name(b"content", "a.b", T0)
    store.set(f"pipe.cache.{name}", b"other bytes")
    store.set(f"pipe.cache.{name}_2", b"yet other bytes")
    address, reused = pipecache.put(store, b"content", "a.b")
    assert address.key == f"{name}_3" and reused is False
    assert store.get(f"pipe.cache.{name}") == b"other bytes"
    assert pipecache.put(store, b"content", "a.b") == (address, True)


def test_an_expired_entry_under_the_key_is_replaced_not_numbered(store, fake):
    name = pipecache.cache_name(b"content", "a.b", T0)
    addr = Address("pipe", "cache", name)
    store.write_entries([(addr, b"stale", T0 + 0.5)], absolute=True)
    fake.advance(0.6)  # same whole second, entry expired
    assert pipecache.put(store, b"content", "a.b") == (addr, False)
    assert store.get(addr) == b"content"


def test_ttl_follows_create_cache_of_that_layer(store, fake):
    store.create_cache("pipe.cache", 60)
    address, _ = pipecache.put(store, b"content", "x")
    assert store.ttl(address) == 60
    other = store.layer(user="keeper")
    assert other.ttl(pipecache.put(other, b"content", "x")[0]) == 900
    fake.advance(60)
    assert store.keys("pipe.cache") == []
    assert other.keys("pipe.cache") != []


def test_put_uses_the_stores_layer(store):
    keeper = store.layer(user="keeper", meta="m")
    address, _ = pipecache.put(keeper, b"content", "x")
    assert keeper.get(address) == b"content"
    assert not store.exists(address)
    assert not store.layer(user="keeper").exists(address)


# -- files ---------------------------------------------------------------------------------------


def test_write_file_is_private_byte_exact_and_idempotent(tmp_path):
    directory = tmp_path / "cache" / "rescue"
    data = os.urandom(4096)
    path = pipecache.write_file(str(directory), data, "a.b", T0)
    assert os.path.isabs(path) and os.path.dirname(path) == str(directory)
    assert os.path.basename(path) == pipecache.cache_name(data, "a.b", T0)
    with open(path, "rb") as fh:
        assert fh.read() == data
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert pipecache.write_file(str(directory), data, "a.b", T0) == path
    assert os.listdir(directory) == [os.path.basename(path)]  # no temp files left


def test_write_file_numbers_a_collision(tmp_path):
    name = pipecache.cache_name(b"content", "a.b", T0)
    (tmp_path / name).write_bytes(b"other")
    path = pipecache.write_file(str(tmp_path), b"content", "a.b", T0)
    assert path.endswith(f"{name}_2")
    assert (tmp_path / name).read_bytes() == b"other"


# -- rescue: where -------------------------------------------------------------------------------


def test_rescue_goes_to_the_first_usable_place(tmp_path, home, fake):
    broken = tmp_path / "broken.sqlite"
    broken.mkdir()  # a directory where the store file should be
    good = str(tmp_path / "good.sqlite")
    places = [
        pipecache.Place(str(broken), "default", flags=("--database", str(broken))),
        pipecache.Place(good, "keeper", "m", flags=("--user", "keeper")),
    ]
    result = pipecache.rescue(b"content", "a.b", places, clock=fake)
    assert result.address == f"pipe.cache.1725982345_{MD5}_a_b"
    assert result.flags == ("--user", "keeper") and result.file is None
    assert len(result.passed_over) == 1 and str(broken) in result.passed_over[0]
    with prontodb.open(good, user="keeper", meta="m", clock=fake) as s:
        assert s.get(result.address) == b"content"


def test_rescue_falls_back_to_a_file_when_no_store_works(tmp_path, home, fake):
    broken = tmp_path / "broken.sqlite"
    broken.mkdir()
    result = pipecache.rescue(
        b"content", None, [pipecache.Place(str(broken), "default")], clock=fake
    )
    assert result.address is None
    assert result.file == os.path.join(
        home["XDG_CACHE_HOME"], "prontodb", "rescue", f"1725982345_{MD5}_noaddr"
    )
    assert result.location == result.file


def test_rescue_over_the_limit_goes_to_a_file_untruncated(tmp_path, home, fake):
    good = str(tmp_path / "good.sqlite")
    data = os.urandom(10_000)
    result = pipecache.rescue(
        data, "a.b", [pipecache.Place(good, "default")], clock=fake, max_value_bytes=1000
    )
    assert result.file is not None and result.address is None
    with open(result.file, "rb") as fh:
        assert fh.read() == data
    assert not os.path.exists(good)  # the store was not even opened


def test_rescue_uses_the_temp_dir_when_the_cache_home_is_unwritable(tmp_path, monkeypatch, fake):
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    result = pipecache.rescue(b"content", "a", [], clock=fake)
    expected = tmp_path / "tmp" / f"prontodb-{os.geteuid()}" / "rescue"
    assert result.file == str(expected / f"1725982345_{MD5}_a")
    assert stat.S_IMODE(os.stat(expected).st_mode) == 0o700


def test_rescue_formats_the_address_with_the_delimiter(tmp_path, fake):
    place = pipecache.Place(str(tmp_path / "s.sqlite"), "default")
    result = pipecache.rescue(b"content", "a", [place], clock=fake, delim=":")
    assert result.address == f"pipe:cache:1725982345_{MD5}_a"


# -- stream detection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"meta:path=proj.ns; key=value;", True),
        (b"meta:ttl=5m;", True),
        (b"a=1; b=2", True),
        (b"  a=1;\n b='x y';", True),
        (b"proj.ns:k=1; other:k=2", True),
        (b"a=1;", False),  # one data token is not enough
        (b"a=1 and b=2", False),  # no ';'
        (b"meta:path=p.n", False),  # no ';'
        (b"int x = 1; int y = 2;", False),  # C, not tokens
        (b"sec:user=a; sec:pass=b;", False),
        (b"# notes\nsome text; more text; k = v;", False),
        (b"\xff\xfe a=1; b=2", False),  # not UTF-8
    ],
)
def test_looks_like_stream(content, expected):
    assert pipecache.looks_like_stream(content) is expected
