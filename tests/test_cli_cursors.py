"""Cursors, users, meta layers and the locked context through the real CLI.

Behaviour that is about processes and the environment (locked context, umask, copying a
closed store, the same script on every engine) runs ``python -m prontodb`` in subprocesses
with an isolated HOME/XDG tree; the rest calls the CLI in-process, which is much faster.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from prontodb.cli import cli

BACKENDS = ("sqlite", "lmdb", "diskcache")


@pytest.fixture
def sh(home):
    """Run ``python -m prontodb ARGS`` in a subprocess; returns (code, stdout, stderr)."""

    def run(*args, env=None, input=None, umask=None):
        done = subprocess.run(
            [sys.executable, "-m", "prontodb", *args],
            env={**home, **(env or {})},
            input=input,
            capture_output=True,
            preexec_fn=None if umask is None else (lambda: os.umask(umask)),
        )
        return done.returncode, done.stdout.decode(), done.stderr.decode()

    return run


@pytest.fixture
def run(home, capsysbinary, monkeypatch):
    """Run the CLI in-process; returns (code, stdout, stderr) as text."""

    def invoke(*args, env=None):
        with monkeypatch.context() as m:
            for key, value in (env or {}).items():
                m.setenv(key, value)
            code = cli.main(list(args), standalone_mode=False)
        out, err = capsysbinary.readouterr()
        return code, out.decode(), err.decode()

    return invoke


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _tree(root: str) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        found += [os.path.join(folder, n) for n in dirs + files]
    return found


def _mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- the same script on every engine -----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_script_on_every_backend(sh, home, backend):
    assert sh("cursor", "set", "c", "--backend", backend, "-p", "kb", "-n", "notes")[0] == 0
    assert sh("--cursor", "c", "set", "pasta", "red")[0] == 0  # key: cursor project+namespace
    assert sh("set", "recipes.soup", "hot", "--cursor", "c")[0] == 0  # namespace.key
    assert sh("--cursor", "c", "set", "other.x.y__dev", "1")[0] == 0  # full address
    assert sh("--cursor", "c", "get", "kb.notes.pasta") == (0, "red", "")
    assert _lines(sh("--cursor", "c", "keys", "--all")[1]) == [
        "kb.notes.pasta",
        "kb.recipes.soup",
        "other.x.y__dev",
    ]
    assert _lines(sh("--cursor", "c", "projects")[1]) == ["kb", "other"]
    assert _lines(sh("--cursor", "c", "namespaces")[1]) == ["notes", "recipes"]
    code, out, _ = sh("--cursor", "c", "--json", "info")
    info = json.loads(out)
    assert code == 0 and info["backend"] == backend and info["cursor"] == "c"
    assert info["entries"] == 3
    assert sh("--cursor", "c", "del", "pasta")[0] == 0
    assert sh("--cursor", "c", "get", "pasta")[0] == 2
    # The cursor was never selected: plain commands still reach the default store.
    assert sh("keys") == (0, "", "")
    shown = json.loads(sh("cursor", "show", "c", "--json")[1])
    assert shown["backend"] == backend and shown["selected"] is False
    assert shown["path"].endswith(f"c.{backend}")
    assert not [p for p in _tree(home["XDG_DATA_HOME"]) if p.endswith(("-wal", "-shm"))]


# -- isolation of users and metas inside one file ----------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_users_and_metas_never_see_each_other_in_one_file(run, tmp_path, backend):
    shared = str(tmp_path / f"shared.{backend}")
    assert run("cursor", "set", "mine", shared, "--backend", backend, "-p", "a")[0] == 0
    assert run("--user", "bob", "cursor", "set", "mine", shared, "-p", "a")[0] == 0
    assert run("cursor", "set", "secret", shared, "--meta", "m1", "-p", "a")[0] == 0
    assert run("--cursor", "mine", "set", "a.b.k", "alice")[0] == 0
    assert run("--cursor", "mine", "create-cache", "a.ttl", "60")[0] == 0
    for who in (
        ["--user", "bob", "--cursor", "mine"],
        ["--cursor", "secret"],
        ["--cursor", "mine", "--meta", "m2"],
    ):
        assert run(*who, "keys") == (0, "", "")
        assert run(*who, "projects") == (0, "", "")
        assert run(*who, "namespaces") == (0, "", "")
        assert run(*who, "nss") == (0, "", "")
        assert "a.ttl" not in run(*who, "caches")[1]
        assert run(*who, "get", "a.b.k")[0] == 2
        assert run(*who, "scan") == (0, "", "")
    assert run("--user", "bob", "--cursor", "mine", "set", "b.k", "bob")[0] == 0
    assert run("--cursor", "secret", "set", "b.k", "meta")[0] == 0
    assert run("--cursor", "mine", "get", "a.b.k")[1] == "alice"
    assert run("--user", "bob", "--cursor", "mine", "get", "b.k")[1] == "bob"
    assert run("--cursor", "secret", "get", "b.k")[1] == "meta"
    assert run("--cursor", "mine", "--meta", "m1", "get", "b.k")[1] == "meta"  # flag beats cursor
    assert _lines(run("--cursor", "mine", "keys", "--all")[1]) == ["a.b.k"]
    # Counts are per layer too: the file holds four entries, the default layer one.
    assert json.loads(run("--database", shared, "info", "--json")[1])["entries"] == 1


# -- cursor commands ---------------------------------------------------------------------------


def test_list_show_active_use_delete(run, home):
    assert run("cursor", "list") == (0, "", "")
    assert run("cursor", "active") == (0, "default\n", "")
    for name, backend in (("beta", "lmdb"), ("alpha", "sqlite")):
        assert run("cursor", "set", name, "--backend", backend, "--durability", "full")[0] == 0
    assert run("cursor", "use", "beta") == (0, "", "")
    code, out, _ = run("cursor", "list")
    rows = [line.split() for line in _lines(out)]
    assert code == 0 and [r[:-3] + r[-2:] for r in rows] == [
        ["alpha", "sqlite", "meta=-", "defaults=-"],
        ["*", "beta", "lmdb", "meta=-", "defaults=-"],
    ]
    listed = [json.loads(line) for line in _lines(run("cursor", "list", "--json")[1])]
    assert [(c["name"], c["selected"], c["durability"]) for c in listed] == [
        ("alpha", False, "full"),
        ("beta", True, "full"),
    ]
    shown = dict(line.split(": ", 1) for line in _lines(run("cursor", "show", "beta")[1]))
    assert shown["backend"] == "lmdb" and shown["selected"] == "yes" and shown["meta"] == "-"
    assert run("cursor", "active") == (0, "beta\n", "")
    assert run("--cursor", "alpha", "cursor", "active")[1] == "alpha\n"
    assert run("cursor", "active", env={"PRONTO_CURSOR": "alpha"})[1] == "alpha\n"
    assert run("--cursor", "default", "cursor", "active")[1] == "default\n"
    active = json.loads(run("cursor", "active", "--json")[1])
    assert active["cursor"] == "beta" and active["source"] == "selection"
    code, out, err = run("--database", "/tmp/x.sqlite", "cursor", "active")
    assert (code, out) == (0, "") and "--database" in err
    assert run("cursor", "use", "--clear")[0] == 0
    assert run("cursor", "active")[1] == "default\n"
    assert run("cursor", "use", "alpha")[0] == 0
    code, _, err = run("cursor", "delete", "alpha")
    assert code == 0 and "stays at" in err
    assert run("cursor", "active")[1] == "default\n"  # deleting the selection clears it
    assert _lines(run("cursor", "list")[1])[0].split()[0] == "beta"
    beta = json.loads(run("cursor", "show", "beta", "--json")[1])["path"]
    assert run("cursor", "delete", "beta", "--purge")[0] == 0
    assert not os.path.exists(beta) and not os.path.exists(beta + "-lock")


def test_missing_or_invalid_cursors_exit_1_and_create_nothing(run, home):
    for args in (
        ["cursor", "show", "ghost"],
        ["cursor", "use", "ghost"],
        ["cursor", "delete", "ghost"],
        ["--cursor", "ghost", "set", "a.b.c", "x"],
        ["--cursor", "ghost", "keys"],
        ["cursor", "use"],
        ["cursor", "use", "x", "--clear"],
        ["cursor", "set", "default"],
        ["cursor", "set", "../evil"],
        ["cursor", "set", "a.b"],
        ["cursor", "set", "x" * 33],
        ["cursor", "set", "ok", "--backend", "redis"],
        ["cursor", "set", "ok", "--durability", "sometimes"],
        ["--user", "../root", "cursor", "list"],
        ["--meta", "a/b", "keys"],
    ):
        code, out, err = run(*args)
        assert code == 1 and out == "" and err.startswith("error:"), (args, code, err)
    assert not os.path.exists(home["XDG_DATA_HOME"])
    assert not os.path.exists(os.path.join(home["XDG_CONFIG_HOME"], "prontodb", "users", "root"))


def test_env_cursor_and_flags_never_change_the_selection(run):
    run("cursor", "set", "a", "-p", "p", "-n", "n")
    run("cursor", "set", "b", "-p", "p", "-n", "n")
    assert run("--cursor", "a", "set", "k", "A")[0] == 0
    assert run("set", "k", "B", env={"PRONTO_CURSOR": "b"})[0] == 0
    assert run("cursor", "active")[1] == "default\n"
    assert run("-p", "p", "-n", "n", "get", "k")[0] == 2  # the default store is untouched
    run("cursor", "use", "a")
    assert run("get", "p.n.k")[1] == "A"
    assert run("--cursor", "b", "get", "k")[1] == "B"
    assert run("get", "k", env={"PRONTO_CURSOR": "b"})[1] == "B"
    assert run("--cursor", "default", "get", "p.n.k")[0] == 2
    assert run("cursor", "active")[1] == "a\n"


def test_cursor_defaults_complete_partial_addresses_and_flags_win(run):
    run("cursor", "set", "c", "-p", "kb", "-n", "notes")
    assert run("--cursor", "c", "set", "k", "1")[0] == 0
    assert run("--cursor", "c", "set", "other.k", "2")[0] == 0
    assert run("--cursor", "c", "-n", "third", "set", "k", "3")[0] == 0
    assert _lines(run("--cursor", "c", "keys", "kb")[1]) == ["notes.k", "other.k", "third.k"]
    run("cursor", "set", "c", "-n", "")  # clear the namespace default, keep the project
    assert run("--cursor", "c", "get", "notes.k")[1] == "1"
    code, _, err = run("--cursor", "c", "get", "k")
    assert code == 1 and "incomplete" in err
    shown = json.loads(run("cursor", "show", "c", "--json")[1])
    assert (shown["project"], shown["namespace"]) == ("kb", None)


def test_cursor_set_updates_only_given_fields_and_refuses_backend_mismatch(run, tmp_path):
    assert run("cursor", "set", "c", "--backend", "lmdb", "--meta", "m", "-p", "p")[0] == 0
    assert run("cursor", "set", "c", "--durability", "full")[0] == 0
    shown = json.loads(run("cursor", "show", "c", "--json")[1])
    assert (shown["backend"], shown["meta"], shown["project"], shown["durability"]) == (
        "lmdb",
        "m",
        "p",
        "full",
    )
    code, _, err = run("cursor", "set", "c", "--backend", "sqlite")
    assert code == 1 and "lmdb store, not sqlite" in err
    neutral = tmp_path / "blob"
    assert run("cursor", "set", "d", str(neutral), "--backend", "diskcache")[0] == 0
    assert run("cursor", "set", "e", str(neutral))[0] == 0  # sniffed, not guessed
    assert json.loads(run("cursor", "show", "e", "--json")[1])["backend"] == "diskcache"


def test_vanished_cursor_store_is_not_recreated_by_reads(run):
    run("cursor", "set", "c")
    path = json.loads(run("cursor", "show", "c", "--json")[1])["path"]
    os.unlink(path)
    code, _, err = run("--cursor", "c", "keys")
    assert code == 1 and "no store at" in err and not os.path.exists(path)
    assert run("--cursor", "c", "set", "a.b.c", "x")[0] == 0  # a write recreates it
    assert run("--cursor", "c", "get", "a.b.c")[1] == "x"


# -- locked context ----------------------------------------------------------------------------


def test_forced_user_refuses_other_users_and_writes_nothing(sh, home):
    locked = {"PRONTO_FORCE_USER": "keeper"}
    code, out, err = sh("--user", "prometheus", "set", "a.b.c", "x", env=locked)
    assert (code, out) == (1, "") and "locked to 'keeper'" in err
    assert not os.path.exists(home["XDG_DATA_HOME"])
    assert sh("set", "a.b.c", "x", env={**locked, "PRONTO_USER": "prometheus"})[0] == 1
    assert sh("cursor", "list", "--user", "prometheus", env=locked)[0] == 1
    assert sh("cursor", "set", "c", "--user", "prometheus", env=locked)[0] == 1
    assert not os.path.exists(home["XDG_DATA_HOME"])
    assert not os.path.exists(home["XDG_CONFIG_HOME"])
    # The locked user is the effective user of every command.
    assert sh("set", "a.b.c", "kept", env=locked)[0] == 0
    assert sh("--user", "keeper", "set", "a.b.d", "also", env=locked)[0] == 0
    assert sh("-p", "a", "-n", "b", "keys", "a.b", env=locked)[1].split() == ["c", "d"]
    assert sh("cursor", "set", "k", "-p", "a", "-n", "b", env=locked)[0] == 0
    assert sh("--user", "keeper", "get", "a.b.c") == (0, "kept", "")
    assert sh("get", "a.b.c")[0] == 2  # the default user saw nothing
    assert sh("--user", "keeper", "cursor", "list")[1].split()[0] == "k"


def test_forced_meta_refuses_other_metas_and_fills_cursors_without_meta(sh, home):
    locked = {"PRONTO_FORCE_META": "m1"}
    assert sh("cursor", "set", "plain", "-p", "p", "-n", "n")[0] == 0
    assert sh("cursor", "set", "other", "--meta", "m2", "-p", "p", "-n", "n")[0] == 0
    code, _, err = sh("--cursor", "other", "set", "k", "x", env=locked)
    assert code == 1 and "locked to 'm1'" in err
    assert sh("--cursor", "plain", "--meta", "m2", "set", "k", "x", env=locked)[0] == 1
    assert sh("cursor", "set", "new", "--meta", "m3", env=locked)[0] == 1
    assert sh("--cursor", "plain", "set", "k", "locked", env=locked)[0] == 0
    assert sh("--cursor", "plain", "--meta", "m1", "get", "k") == (0, "locked", "")
    assert sh("--cursor", "plain", "get", "k")[0] == 2
    assert sh("--cursor", "other", "keys") == (0, "", "")
    assert sh("cursor", "list", "--json")[1].count("\n") == 2  # 'new' was never saved


# -- stores as files ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_closed_store_copied_under_neutral_name_opens_with_database(sh, tmp_path, backend):
    assert sh("cursor", "set", "c", "--backend", backend)[0] == 0
    assert sh("--cursor", "c", "set", "kb.recipes.pasta", "red")[0] == 0
    src = json.loads(sh("cursor", "show", "c", "--json")[1])["path"]
    blob = tmp_path / "elsewhere" / "blob"
    blob.parent.mkdir()
    if os.path.isdir(src):
        shutil.copytree(src, blob)
    else:
        shutil.copy(src, blob)  # the data file alone (no -wal, no -lock)
    code, out, _ = sh("--database", str(blob), "--json", "info")
    assert code == 0 and json.loads(out)["backend"] == backend
    assert sh("--database", str(blob), "get", "kb.recipes.pasta") == (0, "red", "")


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_writable_by_others_is_refused(run, backend):
    run("cursor", "set", "c", "--backend", backend)
    run("--cursor", "c", "set", "a.b.c", "x")
    run("--cursor", "c", "set", "a.b.big", "y" * 100_000)  # diskcache: a value file
    path = json.loads(run("cursor", "show", "c", "--json")[1])["path"]
    victims = [path]
    if backend == "lmdb":
        victims.append(path + "-lock")
    if backend == "diskcache":
        inside = _tree(path)
        victims += [os.path.join(path, "cache.db")]
        victims += [next(p for p in inside if p.endswith(".val"))]
        victims += [next(p for p in inside if os.path.isdir(p))]
    for victim in victims:
        before = _mode(victim)
        os.chmod(victim, before | 0o022)
        for args in (["get", "a.b.c"], ["set", "a.b.c", "y"]):
            code, out, err = run("--cursor", "c", *args)
            assert (code, out) == (1, "") and "writable by other accounts" in err, victim
        os.chmod(victim, before)
    assert run("--cursor", "c", "get", "a.b.c") == (0, "x", "")
    os.chmod(path, _mode(path) | 0o020)
    assert run("cursor", "set", "again", path)[0] == 1  # cursor set refuses it too
    assert run("--database", path, "keys")[0] == 1


def test_umask_000_still_gives_private_modes(sh, home, tmp_path):
    for backend in BACKENDS:
        assert sh("cursor", "set", backend, "--backend", backend, umask=0)[0] == 0
        big = "x" * 100_000  # diskcache keeps large values in files of their own
        assert sh("--cursor", backend, "set", "a.b.c", big, umask=0)[0] == 0
    assert sh("set", "a.b.c", "x", umask=0)[0] == 0
    assert sh("cursor", "set", "out", str(tmp_path / "new" / "dir" / "s.lmdb"), umask=0)[0] == 0
    found = _tree(home["XDG_DATA_HOME"]) + _tree(home["XDG_CONFIG_HOME"])
    found += _tree(str(tmp_path / "new")) + [home["XDG_DATA_HOME"], home["XDG_CONFIG_HOME"]]
    assert any(p.endswith(".val") for p in found)
    for path in found:
        want = 0o700 if os.path.isdir(path) else 0o600
        assert _mode(path) == want, f"{path}: {_mode(path):o}"


def test_migrate_back_to_an_engine_used_before(run, home):
    assert run("cursor", "set", "w")[0] == 0
    assert run("--cursor", "w", "set", "a.b.c", "one")[0] == 0
    assert run("cursor", "migrate", "w", "--backend", "lmdb")[0] == 0
    assert run("--cursor", "w", "set", "a.b.c", "two")[0] == 0
    # The old sqlite store was retired under a .migrated-<time> name: going back just works.
    assert run("cursor", "migrate", "w", "--backend", "sqlite")[0] == 0
    assert run("--cursor", "w", "get", "a.b.c")[1] == "two"
    assert json.loads(run("cursor", "show", "w", "--json")[1])["backend"] == "sqlite"
    # A target that already holds a store needs --replace-target.
    target = str(home["HOME"]) + "/elsewhere.lmdb"
    assert run("--database", target, "set", "x.y.z", "other")[0] == 0
    code, _, err = run("cursor", "migrate", "w", "--backend", "lmdb", "--to", target)
    assert code == 1 and "--replace-target" in err
    assert run("--cursor", "w", "get", "a.b.c")[1] == "two"  # refused: nothing changed
    assert (
        run("cursor", "migrate", "w", "--backend", "lmdb", "--to", target, "--replace-target")[0]
        == 0
    )
    assert json.loads(run("cursor", "show", "w", "--json")[1])["path"] == target
    assert run("--cursor", "w", "get", "a.b.c")[1] == "two"
    # A store another cursor uses is never replaced.
    assert run("cursor", "set", "v", "--backend", "sqlite")[0] == 0
    v_path = json.loads(run("cursor", "show", "v", "--json")[1])["path"]
    code, _, err = run(
        "cursor", "migrate", "w", "--backend", "sqlite", "--to", v_path, "--replace-target"
    )
    assert code == 1 and "cursor 'v' uses" in err
