"""DESIGN §4 details of two commands: ``copy``/``move`` under ``--json`` print their result as
one object on stdout and no human status line; ``doctor`` exits 0 with warnings (they are
printed) and 1 only with an error."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

import prontodb
from prontodb.cli import cli


@pytest.fixture
def run(home, tmp_path):
    runner = CliRunner()
    db = str(tmp_path / "s.sqlite")
    prontodb.open(db).close()

    def invoke(*args):
        result = runner.invoke(cli, ["--database", db, *args], env={"PRONTO_DEBUG": None})
        return result.exit_code, result.stdout_bytes.decode(), result.stderr

    invoke.db = db
    return invoke


def test_json_copy_prints_one_object_and_no_status_line(run):
    assert run("set", "a.b.c", "v")[0] == 0
    code, out, err = run("--json", "copy", "a.b.c", "a.b.d")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "source": "a.b.c",
        "destination": "a.b.d",
        "moved": False,
        "removed_source": False,
    }
    assert run("get", "a.b.d")[1] == "v"


def test_json_move_out_of_the_pipe_cache_says_the_source_went(run):
    assert run("set", "pipe.cache.k1", "v")[0] == 0
    code, out, err = run("--json", "copy", "pipe.cache.k1", "a.b.home")
    assert (code, err) == (0, "")
    assert json.loads(out)["removed_source"] is True
    assert "✅" not in out + err and "🗑" not in out + err
    code, out, err = run("--json", "move", "a.b.home", "a.b.moved")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "source": "a.b.home",
        "destination": "a.b.moved",
        "moved": True,
        "removed_source": True,
    }


def test_without_json_the_status_lines_stay(run):
    assert run("set", "pipe.cache.k1", "v")[0] == 0
    code, out, err = run("copy", "pipe.cache.k1", "a.b.home")
    assert (code, out) == (0, "")
    assert err.splitlines() == [
        "✅ Copied: pipe.cache.k1 → a.b.home",
        "🗑️  Removed from cache: pipe.cache.k1",
    ]


def test_json_copy_refusals_are_one_error_object(run):
    assert run("set", "a.b.c", "v")[0] == 0
    assert run("set", "a.b.d", "w")[0] == 0
    code, out, err = run("--json", "copy", "a.b.c", "a.b.d")
    assert (code, out) == (4, "")
    assert json.loads(err)["exit"] == 4 and "❌" not in err
    code, out, err = run("--json", "move", "a.b.nope", "a.b.e")
    assert (code, out) == (2, "")
    assert json.loads(err)["exit"] == 2


def test_doctor_with_only_warnings_exits_0_and_prints_them(run):
    assert run("set", "a.b.c", "v")[0] == 0
    os.chmod(run.db, 0o640)  # readable by the group: a warning, not a refusal
    code, out, _ = run("doctor")
    assert code == 0, out
    assert any(line.startswith("warning") and "readable" in line for line in out.splitlines())
    assert out.splitlines()[-1] == "healthy (1 warning)"
    code, out, _ = run("--json", "doctor")
    report = json.loads(out)
    assert code == 0 and report["healthy"] is True
    assert [f["severity"] for f in report["findings"]].count("warning") == 1


def test_doctor_with_an_error_exits_1(run):
    assert run("set", "a.b.c", "v")[0] == 0
    os.chmod(run.db, 0o666)  # writable by others: the store is refused
    try:
        code, out, err = run("doctor")
        assert code == 1
        assert out.splitlines()[-1] == "1 problem found"
        code, out, err = run("--json", "doctor")
        assert code == 1 and json.loads(out)["healthy"] is False
        assert json.loads(err)["exit"] == 1
    finally:
        os.chmod(run.db, 0o600)
