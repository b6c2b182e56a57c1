"""The one argv parser (prontodb.cli.argv) and the CLI edge it decides: help, suggestions,
``--json`` errors, closed pipes, completion. In-process unless the behaviour is about a
process (a closed stdout, completion's environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from prontodb.cli import cli, spec
from prontodb.cli.argv import classify
from tests._inprocess import run_cli

# (argv, command path, globals, positionals, problem fragment or None, rescues)
TABLE = [
    (["set", "a.b.c"], ["set"], {}, ["a.b.c"], None, True),
    (["set", "a.b.c", "v"], ["set"], {}, ["a.b.c", "v"], None, False),
    (["set", "a.b.c", "-"], ["set"], {}, ["a.b.c", "-"], None, True),
    (["set", "a.b.c", "v", "--stdin"], ["set"], {}, ["a.b.c", "v"], None, True),
    (["set", "a.b.c", "--", "-5"], ["set"], {}, ["a.b.c", "-5"], None, False),
    (["set", "a", "-5"], ["set"], {}, ["a"], "go after --: prontodb set ADDRESS -- -5", True),
    (["set", "p.w", "-pa55word"], ["set"], {}, ["p.w"], "go after --", True),
    (["-pkb", "-nx", "get", "k"], ["get"], {"project": "kb", "namespace": "x"}, ["k"], None, False),
    (["get", "k", "-p", "kb"], ["get"], {"project": "kb"}, ["k"], None, False),
    (["get", "k", "--project=kb"], ["get"], {"project": "kb"}, ["k"], None, False),
    (["--cursor", "set", "a.b.c"], ["set"], {}, ["a.b.c"], "--cursor needs a value", True),
    (["--cursor=set", "get", "k"], ["get"], {"cursor": "set"}, ["k"], None, False),
    (["--cursor", "get", "k"], ["get"], {}, ["k"], "--cursor needs a value", True),
    (["get", "k", "--cursor"], ["get"], {}, ["k"], "--cursor needs a value", True),
    (["--user", "--json", "get", "k"], ["get"], {"as_json": True}, ["k"], "--user needs", True),
    (["--cursor", "", "get", "k"], ["get"], {"cursor": ""}, ["k"], None, False),
    (["get", "--json", "k"], ["get"], {"as_json": True}, ["k"], None, False),
    (["--json=1", "get", "k"], ["get"], {}, ["k"], "takes no value", False),
    (["sett", "a.b.c"], [], {}, ["a.b.c"], "did you mean 'set'", True),
    ([], [], {}, [], None, True),
    (["cursor"], ["cursor"], {}, [], None, False),
    (["cursor", "list", "--user", "u"], ["cursor", "list"], {"user": "u"}, [], None, False),
    (["cursor", "zap"], ["cursor"], {}, [], "no such command 'zap'", True),
    (["stream"], ["stream"], {}, [], None, True),
    (["stream", "--dry-run"], ["stream"], {}, [], None, False),
    (["stream", "f.txt"], ["stream"], {}, ["f.txt"], None, False),
    (["get"], ["get"], {}, [], "missing argument ADDRESS", False),
    (["ttl", "a", "b"], ["ttl"], {}, ["a", "b"], "extra argument 'b'", False),
    (["del", "a", "b", "c"], ["del"], {}, ["a", "b", "c"], None, False),
    (["ls", "kb"], ["keys"], {}, ["kb"], None, False),
    (["export", "-o", "f"], ["export"], {}, [], None, False),
    (["export", "--format", "xml"], ["export"], {}, [], "not one of jsonl, stream", False),
    (["-p", "kb", "--", "set", "x"], [], {"project": "kb"}, ["set", "x"], "extra argument", True),
]


@pytest.mark.parametrize(("argv", "path", "globals_", "positionals", "problem", "rescues"), TABLE)
def test_classify(argv, path, globals_, positionals, problem, rescues):
    call = classify(argv)
    assert call.path == path
    assert call.globals == globals_
    assert call.positionals == positionals
    if problem is None:
        assert call.problem is None
    else:
        assert call.problem is not None and problem in call.problem
    assert call.rescues is rescues


def test_help_and_version_stop_everything():
    for argv in (["-h"], ["set", "--help"], ["--help", "sett"], ["get", "k", "-h"]):
        call = classify(argv)
        assert call.help and call.stops and not call.rescues and not call.reads_stdin
    assert classify(["set", "x", "--version"]).version


def test_click_args_leave_click_nothing_to_reinterpret():
    call = classify(["get", "-p", "kb", "--", "-odd", "--cursor=x"])
    assert call.click_args() == ["--project=kb", "get", "--", "-odd", "--cursor=x"]


def test_declarations_and_click_commands_agree():
    """Every declared command exists in click with exactly the declared parameters."""
    import click

    ctx = click.Context(cli)
    for table, group in ((spec.COMMANDS, cli), (spec.CURSOR_COMMANDS, None)):
        for name, cmd in table.items():
            parent = group or cli.get_command(ctx, "cursor")
            made = parent.get_command(ctx, name)
            assert made is not None, name
            declared = {a.dest for a in cmd.args} | {o.dest for o in cmd.opts}
            assert {p.name for p in made.params} - {"help"} == declared, name
            for alias in cmd.aliases:
                assert parent.get_command(ctx, alias) is made
            assert made.help, f"{name} has no help"


def test_spec_imports_nothing():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, prontodb; before = set(sys.modules);"
            " import prontodb.cli.spec, prontodb.cli.argv;"
            " print(sorted(set(sys.modules) - before))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    # Beyond what `import prontodb` costs anyway: only the declarations and the classifier.
    assert done.stdout.split() == [
        "['prontodb.cli',",
        "'prontodb.cli.argv',",
        "'prontodb.cli.spec']",
    ]


# -- help ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [[], ["-h"], ["--help"], ["help"], ["cursor"], ["cursor", "help"], ["get", "help"]]
)
def test_help_goes_to_stdout_exit_0(home, argv):
    code, out, err = run_cli(argv)
    assert (code, err) == (0, "") and out.startswith(b"Usage: prontodb")


def test_help_is_a_key_where_defaults_make_it_an_address(home):
    assert run_cli(["set", "kb.x.help", "stored"])[0] == 0
    assert run_cli(["-p", "kb", "-n", "x", "get", "help"])[:2] == (0, b"stored")
    assert run_cli(["cursor", "set", "c", "-p", "kb", "-n", "x"])[0] == 0
    assert run_cli(["--cursor", "c", "set", "kb.x.help", "cursor's"])[0] == 0
    assert run_cli(["--cursor", "c", "get", "help"])[:2] == (0, b"cursor's")
    # With piped content `set help` never prints help: it stores (here) or rescues.
    assert run_cli(["--cursor", "c", "set", "help"], stdin=b"new")[0] == 0
    assert run_cli(["--cursor", "c", "get", "kb.x.help"])[:2] == (0, b"new")
    assert run_cli(["set", "help"])[1].startswith(b"Usage: prontodb set")  # nothing piped


def test_help_after_double_dash_is_a_word(home):
    assert run_cli(["set", "help.x.k", "v"])[0] == 0
    assert run_cli(["keys", "--", "help"])[:2] == (0, b"x.k\n")
    assert run_cli(["keys", "help"])[1].startswith(b"Usage: prontodb keys")


def test_help_flag_leaves_stdin_unread(home):
    code, out, _ = run_cli(["set", "a.b.c", "--help"], stdin=b"content")
    assert code == 0 and out.startswith(b"Usage:")
    assert run_cli(["get", "a.b.c"])[0] == 2


# -- suggestions, errors, json -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "meant"),
    [("list", "keys"), ("rm", "del"), ("delete", "del"), ("rename", "move"), ("gett", "get")],
)
def test_unknown_commands_get_suggestions(home, word, meant):
    code, _, err = run_cli([word, "x"])
    assert code == 1 and f"'{meant}'" in err


def test_json_errors_are_one_object_on_stderr(home):
    code, out, err = run_cli(["--json", "get", "a.b.c"])
    assert (code, out) == (2, b"")
    assert json.loads(err) == {"error": "not found: a.b.c", "exit": 2, "address": "a.b.c"}
    code, _, err = run_cli(["get", "a..b", "--json"])
    assert code == 1 and json.loads(err)["exit"] == 1
    code, _, err = run_cli(["--json", "bogus"])
    assert code == 1 and "no such command" in json.loads(err)["error"]


@pytest.mark.parametrize(
    ("argv", "shape"),
    [
        (["projects"], "kb"),
        (["nss"], "kb.x"),
        (["-p", "kb", "namespaces"], "x"),
        (["version"], {"version"}),
        (["--version"], {"version"}),
        (["gc"], {"count"}),
        (["ttl", "kb.x.k"], {"address", "value"}),
        (["info"], {"path", "backend"}),
        (["caches"], {"namespace", "seconds"}),
        (["cursor", "active"], {"cursor"}),
        (["keys", "--all"], "kb.x.k"),
        (["scan", "kb.x"], {"address", "value", "encoding"}),
        (["get", "kb.x.k"], {"address", "value", "encoding"}),
        (["doctor"], {"healthy"}),
    ],
)
def test_json_on_every_command_that_prints(home, argv, shape):
    assert run_cli(["set", "kb.x.k", "v"])[0] == 0
    code, out, _ = run_cli(["--json", *argv])
    assert code == 0, out
    first = json.loads(out.splitlines()[0])
    if isinstance(shape, str):
        assert first == shape
    else:
        assert shape <= set(first)


# -- listings ------------------------------------------------------------------------------------


def test_listing_scope_from_defaults_all_full_and_glob(home):
    for address in ("kb.x.a1", "kb.x.b", "kb.y.a2", "other.z.a3"):
        assert run_cli(["set", address, "v"])[0] == 0
    lines = lambda argv: run_cli(argv)[1].decode().splitlines()  # noqa: E731
    assert lines(["keys"]) == ["kb.x.a1", "kb.x.b", "kb.y.a2", "other.z.a3"]
    assert lines(["-p", "kb", "keys"]) == ["x.a1", "x.b", "y.a2"]
    assert lines(["-p", "kb", "-n", "x", "keys"]) == ["a1", "b"]
    assert lines(["-p", "kb", "-n", "x", "keys", "--full"]) == ["kb.x.a1", "kb.x.b"]
    assert lines(["-p", "kb", "-n", "x", "keys", "--all"]) == lines(["keys"])
    assert lines(["-p", "kb", "-n", "x", "keys", "a*"]) == ["a1"]
    assert lines(["keys", "*.z.*"]) == ["other.z.a3"]
    assert lines(["keys", "kb.*.a*"]) == ["kb.x.a1", "kb.y.a2"]
    assert lines(["-p", "kb", "-n", "x", "scan"]) == ["a1=v", "b=v"]
    assert lines(["scan", "kb.x", "--full"]) == ["kb.x.a1=v", "kb.x.b=v"]


def test_scan_escapes_every_control_byte(home):
    value = bytes(range(0, 32)) + b"\\\x7f\xff\xc3\xa9"
    assert run_cli(["set", "a.b.c"], stdin=value)[0] == 0
    (line,) = run_cli(["scan", "a.b"])[1].decode().splitlines()
    assert line.isprintable()
    expected = (
        "".join({9: "\\t", 10: "\\n", 13: "\\r"}.get(b, f"\\x{b:02x}") for b in range(32))
        + "\\\\\\x7f\\xffé"
    )
    assert line == f"c={expected}"


# -- unix manners (processes) --------------------------------------------------------------------


def test_a_closed_stdout_ends_quietly(home):
    assert (
        run_cli(
            ["stream"], stdin=b"meta:path=a.b;" + b";".join(b"k%d=v" % i for i in range(20000))
        )[0]
        == 0
    )
    done = subprocess.run(
        f"{sys.executable} -m prontodb keys --all | head -1",
        shell=True,
        capture_output=True,
        env=home,
        timeout=60,
    )
    assert done.stdout == b"a.b.k0\n" and done.stderr == b""


def test_completion_with_a_malformed_cword_prints_no_traceback(home):
    env = {**home, "_PRONTODB_COMPLETE": "bash_complete", "COMP_WORDS": "prontodb ge"}
    done = subprocess.run(
        [sys.executable, "-m", "prontodb"],
        env={**env, "COMP_CWORD": "abc"},
        capture_output=True,
        timeout=30,
    )
    assert b"Traceback" not in done.stderr and done.stderr == b""
    done = subprocess.run(
        [sys.executable, "-m", "prontodb"],
        env={**env, "COMP_CWORD": "1"},
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0 and b"get" in done.stdout


def test_binary_values_on_a_terminal_get_a_placeholder(home):
    import pty

    assert run_cli(["set", "a.b.bin"], stdin=b"\xff\xfe\x00")[0] == 0
    for extra, expected in (([], b"<binary value, 3 bytes; --raw"), (["--raw"], b"\xff\xfe\x00")):
        leader, follower = pty.openpty()
        done = subprocess.run(
            [sys.executable, "-m", "prontodb", "get", "a.b.bin", *extra],
            stdout=follower,
            env=home,
            timeout=30,
        )
        os.close(follower)
        shown = os.read(leader, 4096)
        os.close(leader)
        assert done.returncode == 0 and expected in shown


def test_doctor_on_a_fresh_install_is_healthy(home):
    code, out, _ = run_cli(["doctor"])
    assert code == 0 and b"no store yet" in out and out.rstrip().endswith(b"healthy")


def test_drop_cache_of_an_ordinary_namespace_is_a_miss(home):
    assert run_cli(["drop-cache", "a.b"])[0] == 2
    assert run_cli(["create-cache", "a.b", "60"])[0] == 0
    assert run_cli(["drop-cache", "a.b"])[0] == 0
