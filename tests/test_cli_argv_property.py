"""No argv shape loses piped content (a hypothesis property, run in-process for speed).

Shapes: global flags with and without values (a missing value, an empty string, a command
word as the value), before and after the command, ``--``, empty strings and command words as
keys, a mistyped or missing command word, ``-h/--help``. With content piped in, the outcome
is exit 0 and the content stored at the address typed, or exit 3 and the content rescued
byte-exact (read back through the printed hint); help or a usage error only when nothing was
piped or help was asked for.
"""

from __future__ import annotations

import json
import shlex

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._inprocess import run_cli

VALUES = st.sampled_from(["kb", "notes", "work", "alice", "", "set", "get", "help", "-x"])
GLOBALS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["--cursor", "--user", "-p", "-n", "--project"]), VALUES),
        st.tuples(st.sampled_from(["--cursor", "--user", "-p", "-n", "--meta"])),  # no value
        st.tuples(st.sampled_from(["--json", "--cursor=work", "-pkb", "--namespace=notes"])),
    ),
    max_size=3,
)
KEYS = st.sampled_from(
    ["kb.notes.k", "notes.k", "k", "a..b", "", "set", "get", "help", "stream", "x.y.z__ctx"]
)
COMMANDS = st.sampled_from(["set", "set", "set", None, "sett", "put", "cursor bogus"])


@st.composite
def shapes(draw):
    before = [w for pair in draw(GLOBALS) for w in pair]
    after = [w for pair in draw(GLOBALS) for w in pair]
    command = draw(COMMANDS)
    words = draw(st.lists(KEYS, max_size=1))
    if command is None and words and words[0] in ("set", "get", "help", "stream"):
        # With no command word, a key that is a command name IS the command: `prontodb get`
        # reads no stdin (§6), a different property.
        words = ["--", *words]
    if draw(st.booleans()) and words and words[0] != "--":
        words = ["--", *words]
    if draw(st.booleans()):
        words.append("-")  # VALUE '-' still means stdin
    help_flag = draw(st.sampled_from([[], [], [], ["-h"], ["--help"]]))
    cmd = command.split() if command else []
    argv = [*before, *cmd, *after, *words, *help_flag]
    if words and words[0] == "--":  # after `--` nothing is an option: keep flags before it
        argv = [*before, *cmd, *after, *help_flag, *words]
    return argv, bool(help_flag)


CONTENT = st.one_of(st.just(b""), st.binary(min_size=1, max_size=64))


def _rescued_bytes(out: bytes, err: str) -> bytes:
    """Read a rescue back the way its hint says."""
    text = out.decode()
    if text.startswith("{"):
        obj = json.loads(text)
        hint, key, file = obj["hint"], obj["key"], obj["file"]
    else:
        location = text.strip()
        (hint,) = [ln for ln in err.splitlines() if ln.startswith("💡 Use: ")]
        hint = hint.removeprefix("💡 Use: ")
        key, file = (None, location) if location.startswith("/") else (location, None)
    if file is not None:
        with open(file, "rb") as fh:
            return fh.read()
    words = shlex.split(hint)
    flags = words[1 : words.index("copy")]
    code, data, _ = run_cli([*flags, "get", key])
    assert code == 0
    return data


@pytest.fixture
def prepared(home):
    assert run_cli(["cursor", "set", "work", "-p", "kb", "-n", "notes"])[0] == 0
    return home


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(shape=shapes(), content=CONTENT)
def test_no_argv_shape_loses_piped_content(prepared, shape, content):
    argv, asked_help = shape
    code, out, err = run_cli(argv, stdin=content)
    assert "Traceback" not in err
    if asked_help:
        assert code == 0 and b"Usage:" in out, (argv, code, err)
        return
    if not content:
        assert code in (0, 1, 2), (argv, code, err)  # help, usage or miss: nothing to keep
        return
    assert code in (0, 3), (argv, code, err)
    if code == 3:
        assert _rescued_bytes(out, err) == content, (argv, err)
        return
    # Stored: the same line with `get` for `set` (and no VALUE '-') reads it back.
    command = argv.index("set")
    again = [*argv[:command], "get", *argv[command + 1 :]]
    if again[-1] == "-":
        again.pop()
    again = [word for word in again if word != "--json"]  # `get --json` prints the entry object
    got = run_cli(again)
    assert got[:2] == (0, content), (argv, again, got)
