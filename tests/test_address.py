"""Address parsing: canonical and partial forms, delimiters, error messages, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prontodb.address import Address, parse, parse_namespace, parse_scope
from prontodb.duration import parse_duration
from prontodb.errors import InvalidAddressError, InvalidDurationError, InvalidNameError
from prontodb.names import check_name

SEGMENT = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,20}", fullmatch=True)
KEY = SEGMENT.filter(lambda s: "__" not in s and not s.endswith("_"))
CONTEXT = SEGMENT.filter(lambda s: not s.startswith("_") and "__" not in s)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p.n.k", Address("p", "n", "k")),
        ("p.n.k__dev", Address("p", "n", "k", "dev")),
        ("p.n.a__b__c", Address("p", "n", "a__b", "c")),
        ("p.n.a___b", Address("p", "n", "a_", "b")),
        ("P-1.n_2.K", Address("P-1", "n_2", "K")),
    ],
)
def test_parse_full(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty address"),
        ("a..b", "empty namespace"),
        (".n.k", "empty project"),
        ("p.n.", "empty key"),
        ("a.b.c.d", "too many parts"),
        ("p.n.k k", "bad character ' ' in key"),
        ("p.n/x.k", "bad character '/' in namespace"),
        ("-p.n.k", "starts with '-'"),
        ("p.n.__ctx", "empty key before '__'"),
        ("p.n.k__", "empty context after '__'"),
        ("p.n." + "k" * 129, "129 characters long"),
        ("n.k", "incomplete"),
        ("k", "incomplete"),
        ("p.n.é", "bad character 'é'"),
        ("p" * 128 + "." + "n" * 128 + "." + "k" * 128 + "__" + "c" * 128, "too long"),
    ],
)
def test_invalid_addresses_name_the_part(text, fragment):
    with pytest.raises(InvalidAddressError) as info:
        parse(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_partial_forms_use_defaults():
    assert parse("n.k", project="p") == Address("p", "n", "k")
    assert parse("k", project="p", namespace="n") == Address("p", "n", "k")
    with pytest.raises(InvalidAddressError, match="incomplete"):
        parse("k", project="p")


@pytest.mark.parametrize("delim", [".", ":", "/", "|"])
def test_delimiters_change_parsing_not_identity(delim):
    assert parse(f"kb{delim}recipes{delim}pasta", delim=delim) == parse("kb.recipes.pasta")
    assert parse("kb.recipes.pasta").format(delim) == f"kb{delim}recipes{delim}pasta"


def test_scope_and_namespace():
    assert parse_scope(None) == ()
    assert parse_scope("p") == ("p",)
    assert parse_scope("p.n") == ("p", "n")
    with pytest.raises(InvalidAddressError):
        parse_scope("p.n.k")
    assert parse_namespace("p.n") == ("p", "n")
    assert parse_namespace("n", project="p") == ("p", "n")
    with pytest.raises(InvalidAddressError):
        parse_namespace("n")


@given(SEGMENT, SEGMENT, KEY, st.none() | CONTEXT, st.sampled_from([".", ":", "/", "|"]))
def test_round_trip(project, namespace, key, context, delim):
    addr = Address(project, namespace, key, context)
    assert parse(addr.format(delim), delim=delim) == addr


@given(st.text(max_size=40))
def test_parser_never_crashes(text):
    try:
        parse(text)
    except InvalidAddressError:
        pass


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("15m", 900), ("2h", 7200), ("7d", 604800), (5, 5)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["0", "-5", "", "x", "5y", "1.5", "15 m", 0, -1, True])
def test_bad_durations(bad):
    with pytest.raises(InvalidDurationError):
        parse_duration(bad)


@given(st.text(max_size=12))
def test_duration_parser_never_crashes(text):
    try:
        assert parse_duration(text) > 0
    except InvalidDurationError:
        pass


@pytest.mark.parametrize("good", ["keeper", "a", "K-9_x", "a" * 32])
def test_good_names(good):
    assert check_name("user", good) == good


@pytest.mark.parametrize("bad", ["", "..", "a/b", "a.b", "1abc", "_a", "a" * 33, "ké"])
def test_bad_names(bad):
    with pytest.raises(InvalidNameError):
        check_name("user", bad)
