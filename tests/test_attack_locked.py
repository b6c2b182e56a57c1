"""Attack class: destroying another user's data from inside a locked context.

Under ``PRONTO_FORCE_USER=alice`` (or ``PRONTO_FORCE_META``) no command may delete, replace or
overwrite a file that holds someone else's data: the lock is enforced where files are destroyed
(prontodb.guard), so every path that reaches a removal or replacement is refused, whatever the
command. Each instance below is a way to aim such a command at bob's data.
"""

from __future__ import annotations

import os

import pytest

import prontodb
from tests._attack import locked
from tests._attack import prontodb as run


@pytest.fixture
def bob(home):
    """Bob's default store with two entries (written without any lock); returns its path."""
    assert run(home, "--user", "bob", "set", "b.n.one", "1")[0] == 0
    assert run(home, "--user", "bob", "set", "b.n.two", "2")[0] == 0
    path = os.path.join(home["XDG_DATA_HOME"], "prontodb", "users", "bob", "default.sqlite")
    assert os.path.isfile(path)
    return path


def bob_intact(path: str) -> bool:
    with prontodb.open(path, user="bob", create=False) as store:
        return store.get("b.n.one") == b"1" and store.get("b.n.two") == b"2"


def refused(result) -> bool:
    code, _, err = result
    return code == 1 and "locked" in err and "unexpected" not in err


def test_purge_of_a_cursor_pointing_at_bobs_store_is_refused(home, bob):
    alice = locked(home)
    assert run(alice, "cursor", "set", "x", bob)[0] == 0  # pointing is not destroying
    assert refused(run(alice, "cursor", "delete", "x", "--purge"))
    assert bob_intact(bob)
    assert run(alice, "cursor", "show", "x")[0] == 0  # refused means nothing changed


def test_migrate_remove_old_of_bobs_store_is_refused(home, bob):
    alice = locked(home)
    assert run(alice, "cursor", "set", "x", bob)[0] == 0
    assert refused(run(alice, "cursor", "migrate", "x", "--backend", "lmdb", "--remove-old"))
    assert bob_intact(bob)
    assert not os.path.exists(bob[: -len(".sqlite")] + ".lmdb")


def test_migrate_replace_target_onto_bobs_store_is_refused(home, bob, tmp_path):
    alice = locked(home)
    mine = str(tmp_path / "mine.lmdb")
    assert run(alice, "cursor", "set", "x", mine)[0] == 0
    assert run(alice, "--cursor", "x", "set", "a.n.k", "v")[0] == 0
    result = run(alice, "cursor", "migrate", "x", "--backend", "sqlite", "--to", bob)
    assert result[0] == 1 and "--replace-target" in result[2]
    result = run(
        alice, "cursor", "migrate", "x", "--backend", "sqlite", "--to", bob, "--replace-target"
    )
    assert refused(result)
    assert bob_intact(bob)


@pytest.mark.parametrize("command", [["export", "-o"], ["backup", "-o"]])
def test_writing_an_output_file_over_bobs_store_is_refused(home, bob, command):
    alice = locked(home)
    assert refused(run(alice, "--database", bob, *command, bob))
    assert bob_intact(bob)


@pytest.mark.parametrize("command", [["export", "-o"], ["backup", "-o"]])
def test_writing_over_bobs_cursor_file_or_side_files_is_refused(home, bob, command):
    assert run(home, "--user", "bob", "cursor", "set", "w")[0] == 0
    cursors = os.path.join(home["XDG_CONFIG_HOME"], "prontodb", "users", "bob", "cursors.json")
    before = open(cursors, "rb").read()
    alice = locked(home)
    assert refused(run(alice, *command, cursors))
    assert open(cursors, "rb").read() == before
    lock_file = os.path.join(os.path.dirname(bob), "anything-bob-keeps")
    assert refused(run(alice, *command, lock_file))
    assert not os.path.exists(lock_file)


def test_a_shared_store_holding_another_layer_is_not_replaced(home, tmp_path):
    shared = str(tmp_path / "shared.sqlite")
    assert run(home, "--database", shared, "--user", "alice", "set", "a.n.k", "mine")[0] == 0
    assert run(home, "--database", shared, "--user", "bob", "set", "b.n.k", "his")[0] == 0
    alice = locked(home)
    assert refused(run(alice, "--database", shared, "export", "-o", shared))
    assert refused(run(alice, "--database", shared, "backup", "-o", shared))
    with prontodb.open(shared, user="bob") as store:
        assert store.get("b.n.k") == b"his"


def test_a_locked_meta_may_not_replace_a_store_holding_another_meta(home, tmp_path):
    shared = str(tmp_path / "metas.sqlite")
    assert run(home, "--database", shared, "--meta", "m1", "set", "a.n.k", "one")[0] == 0
    assert run(home, "--database", shared, "--meta", "m2", "set", "a.n.k", "two")[0] == 0
    only_m1 = locked(home, user=None, meta="m1")
    assert refused(run(only_m1, "--database", shared, "export", "-o", shared))
    with prontodb.open(shared, meta="m2") as store:
        assert store.get("a.n.k") == b"two"


def test_the_locked_users_own_files_stay_fully_usable(home, tmp_path):
    alice = locked(home)
    mine = str(tmp_path / "own.sqlite")
    assert run(alice, "cursor", "set", "x", mine)[0] == 0
    assert run(alice, "--cursor", "x", "set", "a.n.k", "v")[0] == 0
    out = str(tmp_path / "out.jsonl")
    assert run(alice, "--cursor", "x", "export", "-o", out)[0] == 0
    assert run(alice, "--cursor", "x", "export", "-o", out)[0] == 0  # replacing own output
    assert run(alice, "cursor", "delete", "x", "--purge")[0] == 0
    assert not os.path.exists(mine)


def test_library_guard_refuses_every_destroying_call(home, bob, tmp_path):
    from prontodb import cursor, guard, portable
    from prontodb.errors import ContextLockedError

    env = locked(home)
    with pytest.raises(ContextLockedError):
        guard.remove_store(bob, env)
    with pytest.raises(ContextLockedError), guard.replacing(bob, env) as fh:
        fh.write(b"x")
    cursor.define("alice", "x", bob, env=env)
    with pytest.raises(ContextLockedError):
        cursor.delete("alice", "x", purge=True, env=env)
    with pytest.raises(ContextLockedError):
        portable.migrate("alice", "x", "lmdb", remove_old=True, env=env)
    assert bob_intact(bob)


def test_doctor_under_the_lock_counts_only_the_locked_layers(home, tmp_path):
    shared = str(tmp_path / "counted.sqlite")
    for user, n in (("alice", 2), ("bob", 5)):
        for i in range(n):
            assert run(home, "--database", shared, "--user", user, "set", f"p.n.k{i}", "v")[0] == 0
    code, out, _ = run(home, "--database", shared, "doctor")
    assert code == 0 and b"7 live entries in 2 layers" in out
    code, out, _ = run(locked(home), "--database", shared, "doctor")
    assert code == 0 and b"2 live entries in 1 layer" in out and b"7 live" not in out
