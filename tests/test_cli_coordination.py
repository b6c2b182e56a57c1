"""The CLI of the coordination primitives: exit codes, stdout and stderr (docs/coordination.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import prontodb
from prontodb.cli import cli


@pytest.fixture
def db(home, tmp_path):
    path = str(tmp_path / "coord.sqlite")
    prontodb.open(path).close()
    return path


@pytest.fixture
def run(db):
    runner = CliRunner()

    def invoke(*args, input=None):
        result = runner.invoke(cli, ["--database", db, *args], input=input)
        return result.exit_code, result.stdout_bytes, result.stderr

    return invoke


def test_set_conditions_exit_4_and_change_nothing(run):
    assert run("set", "p.n.k", "one", "--nx")[0] == 0
    assert run("set", "p.n.k", "two", "--nx") == (4, b"", "not applied: p.n.k exists (--nx)\n")
    code, _, err = run("set", "p.n.new", "x", "--xx")
    assert (code, err) == (4, "not applied: p.n.new does not exist (--xx)\n")
    version = json.loads(run("get", "--json", "p.n.k")[1])["version"]
    assert run("set", "p.n.k", "three", "--if-version", str(version + 1))[0] == 4
    assert run("set", "p.n.k", "three", "--if-version", str(version))[0] == 0
    assert run("get", "p.n.k")[1] == b"three"
    assert run("exists", "p.n.new")[0] == 2


def test_conditions_are_exclusive_and_versions_non_negative(run):
    assert run("set", "p.n.k", "v", "--nx", "--xx")[0] == 1
    assert run("set", "p.n.k", "v", "--if-version", "-- -1")[0] == 1
    assert run("set", "p.n.k", "v", "--if-version", "x")[0] == 1
    assert run("exists", "p.n.k")[0] == 2


def test_a_piped_conditional_set_that_does_not_apply_is_rescued(run, db):
    run("set", "p.n.lock", "holder")
    code, out, err = run("set", "p.n.lock", "--nx", input=b"my content")
    assert code == 3
    assert "Not applied: p.n.lock exists (--nx)" in err
    key = out.decode().strip()
    assert key.startswith("pipe.cache.")
    with prontodb.open(db) as store:
        assert store.get(key) == b"my content"
        assert store.get("p.n.lock") == b"holder"


def test_multi_get_default_and_json(run):
    run("set", "p.n.a", "line1\nline2")
    run("set", "p.n.b", "2")
    code, out, err = run("get", "p.n.a", "p.n.missing", "p.n.b")
    assert (code, out, err) == (2, b"p.n.a=line1\\nline2\np.n.b=2\n", "not found: p.n.missing\n")
    assert run("get", "p.n.missing", "--default", "d") == (0, b"d", "")
    assert run("get", "p.n.b", "p.n.x", "--default", "0")[:2] == (0, b"p.n.b=2\np.n.x=0\n")
    code, out, _ = run("--json", "get", "p.n.a", "p.n.b")
    objs = [json.loads(line) for line in out.splitlines()]
    assert [o["address"] for o in objs] == ["p.n.a", "p.n.b"]
    assert objs[1]["version"] == 2 and isinstance(objs[1]["written_at"], float)
    assert set(objs[0]) == {"address", "value", "encoding", "version", "written_at", "expires_at"}


def test_exists(run):
    run("set", "p.n.a", "1")
    assert run("exists", "p.n.a") == (0, b"", "")
    assert run("exists", "p.n.a", "p.n.b") == (2, b"", "")
    code, out, _ = run("--json", "exists", "p.n.a", "p.n.b")
    assert (code, json.loads(out)) == (2, {"p.n.a": True, "p.n.b": False})
    assert run("exists", "bad address")[0] == 1


def test_incr_decr(run):
    assert run("incr", "p.n.c") == (0, b"1\n", "")
    assert run("incr", "p.n.c", "10")[1] == b"11\n"
    assert run("decr", "p.n.c", "--", "-4")[1] == b"15\n"
    code, out, _ = run("--json", "decr", "p.n.c")
    assert (code, json.loads(out)) == (0, {"address": "p.n.c", "value": 14})
    run("set", "p.n.t", "text")
    code, out, err = run("incr", "p.n.t")
    assert (code, out) == (1, b"") and "not an integer" in err
    run("set", "p.n.max", str(2**63 - 1))
    code, _, err = run("incr", "p.n.max")
    assert code == 1 and "64-bit" in err
    assert run("get", "p.n.max")[1] == str(2**63 - 1).encode()
    assert run("incr", "p.n.c", "1.5")[0] == 1


def test_del_scope(run):
    for address in ("p.a.x", "p.a.y", "p.b.x", "q.a.x"):
        run("set", address, "v")
    assert run("del", "--scope", "p.a", "--dry-run") == (0, b"p.a.x\np.a.y\n", "")
    assert run("del", "--scope", "p", "z*")[1] == b"0\n"
    assert run("del", "--scope", "p.a", "y")[1] == b"1\n"
    code, out, _ = run("--json", "del", "--scope", "p")
    assert (code, json.loads(out)) == (0, {"count": 2})
    assert run("exists", "q.a.x")[0] == 0
    assert run("del", "--dry-run", "q.a.x")[0] == 1
    assert run("del", "--scope", "p", "a", "b")[0] == 1
    assert run("del")[0] == 1


def test_info_shows_the_revision(run):
    run("set", "p.n.a", "1")
    run("incr", "p.n.c")
    assert b"revision: 2\n" in run("info")[1]


def test_watch_timeout_and_expiry(run):
    run("set", "p.n.k", "v")
    code, out, err = run("watch", "p.n.k", "--timeout", "1")
    assert (code, out) == (2, b"") and err.startswith("timeout: no change to p.n.k")
    run("set", "p.n.t", "v", "--ttl", "1")
    assert run("watch", "p.n.t", "--timeout", "30") == (0, b"", "expired\n")


def test_watch_prints_a_new_value_from_another_process(db):
    watcher = subprocess.Popen(
        [sys.executable, "-m", "prontodb", "--database", db, "watch", "p.n.k", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with prontodb.open(db) as store:
        i = 0
        while watcher.poll() is None and i < 600:  # until the watcher has seen one write
            store.set("p.n.k", f"value-{i}")
            i += 1
            time.sleep(0.1)
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert out.startswith(b"value-") and err == b""
