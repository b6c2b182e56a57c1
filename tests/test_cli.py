"""The CLI contract: exit codes, stdout data only, stderr messages, global flags anywhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from prontodb.cli import cli


@pytest.fixture
def run(home, tmp_path):
    """Run the CLI in-process against a fresh store; returns (code, stdout bytes, stderr)."""
    runner = CliRunner()
    db = str(tmp_path / "cli.sqlite")
    import prontodb

    prontodb.open(db).close()

    def invoke(*args, input=None, database=True):
        argv = (["--database", db] if database else []) + list(args)
        result = runner.invoke(cli, argv, input=input, env={"PRONTO_DEBUG": None})
        return result.exit_code, result.stdout_bytes, result.stderr

    return invoke


def test_set_get_round_trip(run):
    assert run("set", "p.n.k", "hello")[0] == 0
    code, out, err = run("get", "p.n.k")
    assert (code, out, err) == (0, b"hello", "")


def test_set_is_silent_and_get_exact_bytes(run):
    code, out, err = run("set", "p.n.k", input=b"a\nb\n\x00")
    assert (code, out, err) == (0, b"", "")
    assert run("get", "p.n.k")[1] == b"a\nb\n\x00"


def test_empty_value_argument(run):
    assert run("set", "p.n.k", "")[0] == 0
    assert run("get", "p.n.k")[:2] == (0, b"")


def test_miss_is_exit_2_with_stderr_only(run):
    code, out, err = run("get", "p.n.nope")
    assert (code, out) == (2, b"")
    assert err.strip() == "not found: p.n.nope"


@pytest.mark.parametrize(
    "args",
    [
        ("get", "a..b"),
        ("bogus",),
        ("get", "--bogus", "x"),
        ("set", "p.n.k", "v", "--ttl", "0"),
        ("set", "p.n.k", "v", "--ttl", "soon"),
        ("set", "p.n.k", "v", "--ttl", "5", "--keep-ttl"),
        ("expire", "p.n.k", "-5"),
        ("keys", "a.b.c"),
        ("--ns-delim", "x", "keys"),
        ("--user", "../evil", "keys"),
        ("get",),
        ("namespaces",),
        ("create-cache", "p.c", "0"),
    ],
)
def test_errors_exit_1_with_one_line(run, args):
    code, out, err = run(*args)
    assert code == 1
    assert out == b""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_bad_ttl_writes_nothing(run):
    run("set", "p.n.k", "old")
    assert run("set", "p.n.k", "new", "--ttl", "-1")[0] == 1
    assert run("get", "p.n.k")[1] == b"old"


def test_global_flags_before_or_after(run):
    assert run("set", "k", "v", "-p", "proj", "-n", "ns")[0] == 0
    assert run("-p", "proj", "get", "ns.k")[1] == b"v"
    assert run("get", "proj.ns.k", "--json")[1].startswith(b'{"address":"proj.ns.k"')


def test_double_dash_for_dash_values(run):
    assert run("set", "p.n.k", "--", "-p")[0] == 0
    assert run("get", "p.n.k")[1] == b"-p"


def test_ns_delim(run):
    run("set", "kb.recipes.pasta", "red")
    assert run("--ns-delim", "|", "get", "kb|recipes|pasta")[1] == b"red"
    assert run("--ns-delim", ":", "keys")[1] == b"kb:recipes:pasta\n"


def test_keys_scan_listing(run):
    for addr, val in [("a.x.k1", "1"), ("a.x.k2", "two\nlines\\"), ("a.y.k1", "3"), ("b.z.k", "4")]:
        run("set", addr, val)
    run("set", "a.x.bin", input=b"\xff\x00")
    assert run("keys")[1] == b"a.x.bin\na.x.k1\na.x.k2\na.y.k1\nb.z.k\n"
    assert run("ls", "a")[1] == b"x.bin\nx.k1\nx.k2\ny.k1\n"
    assert run("list-keys", "a.x", "k*")[1] == b"k1\nk2\n"
    assert run("scan", "a.x")[1] == b"bin=\\xff\\x00\nk1=1\nk2=two\\nlines\\\\\n"
    lines = run("scan-pairs", "a.x", "*", "--json")[1].decode().splitlines()
    objs = [json.loads(line) for line in lines]
    written_at = objs[0].pop("written_at")
    assert isinstance(written_at, float)
    assert objs[0] == {
        "address": "bin",
        "value": "/wA=",
        "encoding": "base64",
        "version": 5,
        "expires_at": None,
    }
    assert objs[2]["value"] == "two\nlines\\"
    assert run("projects")[1] == b"a\nb\n"
    assert run("namespaces", "a")[1] == b"x\ny\n"
    assert run("-p", "a", "namespaces")[1] == b"x\ny\n"
    assert run("nss")[1] == b"a.x\na.y\nb.z\n"


def test_ttl_commands(run):
    run("set", "p.n.k", "v")
    assert run("ttl", "p.n.k")[1] == b"-1\n"
    assert run("expire", "p.n.k", "15m")[0] == 0
    assert run("ttl", "p.n.k")[1] == b"900\n"
    assert run("persist", "p.n.k")[0] == 0
    assert run("ttl", "p.n.k")[1] == b"-1\n"
    for cmd in (("ttl", "p.n.x"), ("expire", "p.n.x", "5"), ("persist", "p.n.x")):
        assert run(*cmd)[0] == 2


def test_caches(run):
    assert run("create-cache", "p.c", "timeout=60")[0] == 0
    assert run("create-cache", "p.d", "2h")[0] == 0
    assert run("caches")[1] == b"p.c\t60\np.d\t7200\npipe.cache\t900\n"
    run("set", "p.c.k", "v")
    assert run("ttl", "p.c.k")[1] == b"60\n"
    assert run("drop-cache", "p.c")[0] == 0
    assert b"p.c\t" not in run("caches")[1]


def test_del(run):
    run("set", "p.n.a", "1")
    run("set", "p.n.b", "1")
    assert run("del", "p.n.a", "p.n.b")[0] == 0
    code, out, err = run("del", "p.n.a", "p.n.c")
    assert code == 2 and "not found: p.n.a" in err


def test_gc_prints_bare_integer(run):
    assert run("gc")[1] == b"0\n"


def test_info_and_version(run):
    run("set", "p.n.k", "v")
    out = run("info")[1].decode()
    assert "backend: sqlite" in out and "entries: 1" in out and "format: 1" in out
    assert run("version")[1] == b"prontodb 0.1.0\n"
    assert run("--version")[1] == b"prontodb 0.1.0\n"


def test_reading_missing_database_is_error(run, tmp_path):
    missing = str(tmp_path / "none.sqlite")
    code, _, err = run("--database", missing, "get", "p.n.k", database=False)
    assert code == 1 and "no store at" in err
    assert not os.path.exists(missing)
    assert run("--database", missing, "set", "p.n.k", "v", database=False)[0] == 0


def _all_commands(group: click.Group, prefix: str = ""):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield prefix + name, cmd
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, prefix + name + " ")


def test_every_command_has_help_three_ways_and_is_documented(run):
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "cli.md")).read()
    for name, cmd in _all_commands(cli):
        assert cmd.help, f"{name} has no help text"
        assert re.search(rf"^#+ .*`{re.escape(name)}\b", doc, re.M), (
            f"{name} missing in docs/cli.md"
        )
        words = name.split()
        a = run(*words, "--help", database=False)
        b = run("help", *words, database=False)
        assert a[0] == 0 and b[0] == 0
        assert a[1].decode().split("\n", 1)[1] == b[1].decode().split("\n", 1)[1]
        if not isinstance(cmd, click.Group):
            c = run(*words, "help", database=False)
            assert c[0] == 0 and c[1] == a[1]


def test_completion_scripts(run):
    for shell in ("bash", "zsh", "fish"):
        code, out, _ = run("completion", shell, database=False)
        assert code == 0 and b"_PRONTODB_COMPLETE" in out


def _venv_cli():
    return [sys.executable, "-m", "prontodb"]


def test_real_pipe_is_byte_exact(home, tmp_path):
    db = str(tmp_path / "p.sqlite")
    payload = b"a\nb\n\x00" + os.urandom(1000)
    done = subprocess.run(_venv_cli() + ["--database", db, "set", "p.n.k"], input=payload, env=home)
    assert done.returncode == 0
    got = subprocess.run(
        _venv_cli() + ["--database", db, "get", "p.n.k"], capture_output=True, env=home
    )
    assert got.stdout == payload
    assert not os.path.exists(db + "-wal")


def test_dynamic_completion_of_addresses(home, tmp_path):
    db = str(tmp_path / "c.sqlite")
    subprocess.run(
        _venv_cli() + ["--database", db, "set", "kb.recipes.pasta", "x"], env=home, check=True
    )
    env = dict(
        home,
        _PRONTODB_COMPLETE="bash_complete",
        COMP_WORDS=f"prontodb --database {db} get kb.r",
        COMP_CWORD="4",
    )
    out = subprocess.run(_venv_cli(), env=env, capture_output=True, text=True).stdout
    assert "kb.recipes.pasta" in out


def test_help_does_not_import_engines(home):
    code = (
        "import sys; from prontodb.cli import cli; cli.main(['--help'], standalone_mode=False); "
        "assert 'lmdb' not in sys.modules and 'diskcache' not in sys.modules, sorted(sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=home, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_dynamic_completion_of_cursor_names(home, tmp_path):
    subprocess.run(
        _venv_cli() + ["cursor", "set", "work-lm", "--backend", "lmdb"], env=home, check=True
    )
    env = dict(
        home, _PRONTODB_COMPLETE="bash_complete", COMP_WORDS="prontodb --cursor wo", COMP_CWORD="2"
    )
    out = subprocess.run(_venv_cli(), env=env, capture_output=True, text=True).stdout
    assert "work-lm" in out
