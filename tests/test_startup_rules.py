"""Rules the start-up path checks without :mod:`re` or :mod:`urllib` (docs/performance.md,
start-up): each is compared here with the regex or library function that states it."""

from __future__ import annotations

import re
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prontodb.address import DELIMITERS, is_plain, parse, valid_segment
from prontodb.duration import parse_duration
from prontodb.errors import InvalidDurationError, InvalidNameError
from prontodb.files import uri_path
from prontodb.names import check_name

_RULE_TEXT = st.text(alphabet=st.sampled_from("aZ09_-.:/|é _\u0130"), max_size=12) | st.text(
    max_size=140
)


@given(text=_RULE_TEXT)
def test_segment_check_is_the_regex_rule(text):
    assert valid_segment(text) == bool(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}", text))


@given(text=_RULE_TEXT, delim=st.sampled_from(DELIMITERS))
def test_plain_check_agrees_with_the_parser(text, delim):
    seg = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}"
    d = re.escape(delim)
    rule = bool(re.fullmatch(f"{seg}{d}{seg}{d}{seg}", text)) and "__" not in text
    if is_plain(text, delim):  # "plain" is always right; not plain means "ask the parser"
        assert rule
    if rule and text.replace(delim, "").strip("_-"):
        assert is_plain(text, delim)
    if rule:
        assert parse(text, delim=delim).format(delim) == text


@given(text=_RULE_TEXT)
def test_name_check_is_the_regex_rule(text):
    expected = bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", text))
    try:
        check_name("user", text)
    except InvalidNameError:
        assert not expected
    else:
        assert expected


@given(path=st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b"/" + b))
def test_uri_path_is_urllib_quote(path):
    try:
        expected = urllib.parse.quote(path)
    except UnicodeEncodeError:  # a lone surrogate: refused by both
        with pytest.raises(UnicodeEncodeError):
            uri_path(path)
    else:
        assert uri_path(path) == expected


@given(text=_RULE_TEXT | st.from_regex(r"-?[0-9\u0660-\u0669]{1,17}", fullmatch=True))
def test_bare_duration_check_is_the_regex_rule(text):
    """A bare number of seconds: ``\\d{1,15}`` (any decimal digits), positive, in range."""
    bare = re.fullmatch(r"\d{1,15}", text.strip())
    try:
        seconds = parse_duration(text, now=0)
    except InvalidDurationError:
        assert not bare or int(bare.group()) == 0 or int(bare.group()) > 10**11
    else:
        assert bare is None or seconds == int(bare.group())


@given(value=st.binary(max_size=30) | st.from_regex(rb"[ \t\n\r\f\v]*[+-]?[0-9]{1,22}[ \t]*"))
def test_counter_check_is_the_regex_rule(value):
    from prontodb.store import _COUNTER, _counter

    found = re.fullmatch(_COUNTER, value)
    assert _counter(value) == (None if found is None else int(found.group(1)))
