"""Attack class: symlinks and predictable names on every output path.

Every file ProntoDB writes (``export -o``, ``backup -o``, a backup's default name, the cursor
file) goes through one safe write: an unpredictable temporary file created exclusively
(``O_EXCL|O_NOFOLLOW``) beside the target, synced, renamed over it. A symlink planted at the
target is replaced, never written through; a file planted at a temporary name is never opened;
what killed runs left behind is cleaned by the next run without following links.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from prontodb import files
from tests._attack import prontodb as run


@pytest.fixture
def victim(tmp_path):
    """A file another account would like us to overwrite (here: our own, so we can check)."""
    path = tmp_path / "victim.txt"
    path.write_bytes(b"precious")
    os.chmod(path, 0o644)
    return path


def _planted_link(tmp_path, victim, name):
    link = tmp_path / "shared" / name
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(victim)
    return link


@pytest.mark.parametrize(
    "command",
    [["export", "-o"], ["export", "--format", "stream", "-o"], ["backup", "-o"]],
    ids=["export", "export-stream", "backup"],
)
def test_a_symlink_at_the_output_is_replaced_not_followed(home, tmp_path, victim, command):
    assert run(home, "set", "p.n.k", "v")[0] == 0
    link = _planted_link(tmp_path, victim, "out")
    code, _, err = run(home, *command, str(link))
    assert code == 0, err
    assert victim.read_bytes() == b"precious"
    assert oct(victim.stat().st_mode & 0o777) == oct(0o644)  # not chmod'ed either
    assert not link.is_symlink() and link.is_file()
    assert oct(link.stat().st_mode & 0o777) == oct(0o600)


def test_a_symlinked_cursor_file_is_replaced_not_written_through(home, victim):
    folder = os.path.join(home["XDG_CONFIG_HOME"], "prontodb", "users", "default")
    os.makedirs(folder, mode=0o700)
    os.symlink(victim, os.path.join(folder, "cursors.json"))
    # the planted link is not a valid cursor file: reading refuses it, nothing is written
    code, _, err = run(home, "cursor", "set", "w")
    assert code == 1 and "unexpected" not in err
    assert victim.read_bytes() == b"precious"


def test_the_cursor_file_is_rewritten_through_a_fresh_file(home):
    assert run(home, "cursor", "set", "a")[0] == 0
    path = os.path.join(home["XDG_CONFIG_HOME"], "prontodb", "users", "default", "cursors.json")
    inode = os.stat(path).st_ino
    assert run(home, "cursor", "set", "b")[0] == 0
    assert os.stat(path).st_ino != inode  # replaced by rename, never rewritten in place
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".prontodb-")]


def test_a_default_backup_name_taken_by_a_symlink_gets_a_free_name(home, tmp_path, victim):
    from prontodb import portable

    assert run(home, "set", "p.n.k", "v")[0] == 0
    code, out, _ = run(home, "backup")
    first = out.decode().strip()
    os.unlink(first)
    os.symlink(victim, first)  # the next backup in the same second would pick this name
    import prontodb

    with prontodb.open() as store:
        summary = portable.backup(store)
    assert victim.read_bytes() == b"precious"
    assert os.path.islink(first) or summary.path != first


def test_temporary_names_are_unpredictable_and_exclusive(tmp_path, victim):
    names = {files.temp_name(str(tmp_path), "tmp") for _ in range(50)}
    assert len(names) == 50
    planted = tmp_path / "planted"
    planted.symlink_to(victim)
    for target in (planted, victim):
        with pytest.raises(FileExistsError):
            files.create_exclusive(str(target))
    assert victim.read_bytes() == b"precious"


def test_a_failed_write_leaves_neither_temp_file_nor_partial_target(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), files.replacing(str(target)) as fh:
        fh.write(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_leftovers_of_killed_runs_are_removed_without_following_links(home, tmp_path, victim):
    folder = tmp_path / "outdir"
    folder.mkdir()
    dead = _dead_pid()
    stale_file = folder / f".prontodb-tmp-{dead}-{'a' * 16}"
    stale_file.write_bytes(b"half an export")
    stale_dir = folder / f".prontodb-backup-{dead}-{'b' * 16}"
    stale_dir.mkdir()
    (stale_dir / "0.jsonl").write_bytes(b"x" * 1000)
    trap_target = tmp_path / "keep"
    trap_target.mkdir()
    (trap_target / "data").write_bytes(b"keep me")
    trap = folder / f".prontodb-backup-{dead}-{'c' * 16}"
    trap.symlink_to(trap_target)
    alive = folder / f".prontodb-tmp-{os.getpid()}-{'d' * 16}"
    alive.write_bytes(b"a run still going")
    assert run(home, "set", "p.n.k", "v")[0] == 0
    assert run(home, "backup", "-o", str(folder / "b.tar.gz"))[0] == 0
    left = sorted(os.listdir(folder))
    assert left == sorted(["b.tar.gz", alive.name])
    assert (trap_target / "data").read_bytes() == b"keep me"
    assert victim.read_bytes() == b"precious"


def test_export_to_a_missing_directory_is_a_clear_error(home, tmp_path):
    code, _, err = run(home, "export", "-o", str(tmp_path / "no" / "such" / "out.jsonl"))
    assert code == 1 and "cannot write" in err and "unexpected" not in err
