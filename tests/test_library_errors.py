"""Library errors: importable from ``prontodb``, structured (argument, value, rule), worded for
Python; the CLI rewords them for flags in one place. Duration strings as the CLI takes them."""

from __future__ import annotations

import ast
import inspect
import pathlib

import pytest

import prontodb
from prontodb import errors
from prontodb.cli._app import flag_message, flag_spelling
from prontodb.duration import parse_duration, ttl_seconds, whole_seconds
from prontodb.errors import InvalidDurationError, ProntoError, UsageError
from prontodb.record import DEADLINE_LIMIT_MS

PACKAGE = pathlib.Path(prontodb.__file__).parent


def test_every_error_class_is_importable_from_prontodb():
    defined = {
        name
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, ProntoError | errors.ProntoWarning) and cls.__module__ == errors.__name__
    }
    assert defined <= set(prontodb.__all__)
    for name in defined | {"StreamSyntaxError", "StreamStateError", "TokenError"}:
        assert issubclass(getattr(prontodb, name), ProntoError | errors.ProntoWarning)


def test_all_names_exist():
    for name in prontodb.__all__:
        assert getattr(prontodb, name) is not None
    with pytest.raises(AttributeError):
        prontodb.NoSuchThing  # noqa: B018


def test_no_library_message_names_a_cli_flag():
    """No string literal in a raise statement outside the CLI names a ``--flag``."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            for const in ast.walk(node.exc):
                text = const.value if isinstance(const, ast.Constant) else None
                if isinstance(text, str) and (" --" in text or text.startswith("--")):
                    offenders.append(f"{path.name}:{node.lineno}: {text!r}")
    # effective_user/effective_meta name where a locked value came from, which is a flag
    # only when the CLI passed one (see docs/python-api.md, Errors)
    assert offenders == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        (" 45 ", 45),
        ("15s", 15),
        ("15m", 900),
        ("2h", 7200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1h30m", 5400),
        ("1d12h", 129600),
        ("1w2d3h4m5s", 788645),
        (60, 60),
    ],
)
def test_duration_strings(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("0", "not positive"),
        ("0m", "not positive"),
        ("-5", "not positive"),
        ("-1h", "not positive"),
        (0, "not positive"),
        ("", "malformed"),
        ("m", "malformed"),
        ("1h30", "malformed"),
        ("30m1h", "malformed"),
        ("1m1m", "malformed"),
        ("1.5", "malformed"),
        ("1y", "malformed"),
        ("soon", "malformed"),
        (True, "malformed"),
        ("999999999999999w", "too large"),
        ("300000000000", "too large"),
    ],
)
def test_bad_duration_strings_say_which_rule(text, rule):
    with pytest.raises(InvalidDurationError) as caught:
        parse_duration(text)
    assert caught.value.rule == rule
    assert caught.value.value == text
    assert caught.value.argument == "ttl"
    if rule == "too large":
        assert "too large" in str(caught.value)


def test_too_large_is_the_one_deadline_range():
    now = 1_700_000_000.0
    room_ms = DEADLINE_LIMIT_MS - round(now * 1000)
    assert ttl_seconds((room_ms - 1) / 1000, now=now) == (room_ms - 1) / 1000
    with pytest.raises(InvalidDurationError, match="too large"):
        ttl_seconds(room_ms / 1000, now=now)
    assert parse_duration(f"{room_ms // 1000 - 1}", now=now) == room_ms // 1000 - 1
    with pytest.raises(InvalidDurationError, match="too large"):
        parse_duration(f"{room_ms // 1000 + 1}", now=now)


def test_whole_seconds():
    assert whole_seconds(60.0) == 60
    with pytest.raises(InvalidDurationError) as caught:
        whole_seconds(0.5, argument="seconds")
    assert (caught.value.rule, caught.value.argument) == ("whole seconds", "seconds")


def test_an_error_renders_with_either_spelling():
    err = UsageError(
        None,
        argument=("ttl", "keep_ttl"),
        rule="exclusive",
        template="{ttl} and {keep_ttl} cannot be combined",
    )
    assert str(err) == "ttl and keep_ttl cannot be combined"
    assert flag_message(err) == "--ttl and --keep-ttl cannot be combined"
    assert err.arguments == ("ttl", "keep_ttl")


def test_values_in_a_template_are_never_read_as_arguments():
    err = prontodb.DestinationExistsError("p.n.{ttl}")
    assert str(err) == "'p.n.{ttl}' exists; pass replace=True to overwrite it"
    assert flag_message(err) == "'p.n.{ttl}' exists; pass --replace to overwrite it"
    assert (err.argument, err.value, err.rule) == ("replace", "p.n.{ttl}", "destination exists")


def test_flag_spelling():
    assert flag_spelling("keep_ttl", None) == "--keep-ttl"
    assert flag_spelling("replace", "True") == "--replace"
    assert flag_spelling("on_conflict", "'fail'") == "--on-conflict fail"
    assert flag_spelling("some_argument", None) == "some_argument"
    assert flag_spelling("some_argument", "1") == "some_argument=1"


def test_a_plain_error_is_its_message():
    err = prontodb.ConfigError("no such cursor 'x'")
    assert (err.argument, err.value, err.rule) == (None, None, None)
    assert flag_message(err) == str(err) == "no such cursor 'x'"


def test_subclass_fields_survive_the_base_init():
    from prontodb.streamtokens import StreamSyntaxError

    err = StreamSyntaxError(raw="x", position=1, offset=0, line=1, column=1, rule="missing '='")
    assert err.rule == "missing '='"
    assert flag_message(err) == str(err)


def test_the_cli_rewords_library_errors_for_flags(tmp_path):
    from prontodb import stream

    with pytest.raises(prontodb.StreamStateError) as caught:
        stream.plan("ns=x; a=1;")
    assert "give project or meta:project" in str(caught.value)
    assert "give -p/--project or meta:project" in flag_message(caught.value)
    with (
        prontodb.open(tmp_path / "s.sqlite") as store,
        pytest.raises(prontodb.InvalidAddressError) as missing,
    ):
        store.get("n.k")
    assert "(project or the cursor's project)" in str(missing.value)
    assert "(-p/--project or the cursor's project)" in flag_message(missing.value)


def test_cli_prints_flags(tmp_path, home):
    from click.testing import CliRunner

    from prontodb.cli import cli

    db = str(tmp_path / "s.sqlite")
    result = CliRunner().invoke(cli, ["--database", db, "set", "a.b.c", "v", "--ttl", "1.5"])
    assert result.exit_code == 1
    assert "invalid duration '1.5' for --ttl" in result.output
    result = CliRunner().invoke(cli, ["--database", db, "expire", "a.b.c", "0"])
    assert "invalid duration '0' for DURATION: must be greater than zero" in result.output
