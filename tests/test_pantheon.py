"""tools/pantheon, the reference integration: driven only through real subprocesses, in isolated
homes, with the prontodb installed next to this interpreter (the same venv) first on PATH."""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "pantheon"
BIN = os.path.dirname(sys.executable)
SESSION = b"# Session 65\r\n\nnotes; with meta:ttl=1; a=b\n\xff\x00 binary tail"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PRONTO", "PANTH"))}
    for var, sub in (
        ("HOME", "home"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
        ("PANTH_HOME", "panth"),
    ):
        e[var] = str(tmp_path / sub)
    e["PATH"] = BIN + os.pathsep + e.get("PATH", "")
    return e


def pantheon(env, *args, stdin=b"", direct=False, **extra) -> subprocess.CompletedProcess:
    argv = [str(SCRIPT)] if direct else [sys.executable, str(SCRIPT)]
    return subprocess.run(
        [*argv, *args], env={**env, **extra}, input=stdin, capture_output=True, timeout=60
    )


def prontodb(env, kin, *args) -> subprocess.CompletedProcess:
    """prontodb as the kin would run it (for checking what pantheon did)."""
    e = {**env, "PRONTO_FORCE_USER": kin, "PRONTO_FORCE_META": kin}
    return subprocess.run(["prontodb", *args], env=e, capture_output=True, timeout=60)


def stored(env, kin) -> dict[str, bytes]:
    """Everything under the project 'iterations' of the kin's store, read by prontodb."""
    r = prontodb(env, kin, "--json", "--cursor", f"pantheon_{kin}", "scan", "iterations")
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.decode().splitlines():
        obj = json.loads(line)
        raw = obj["value"]
        out[obj["address"]] = (
            base64.b64decode(raw) if obj["encoding"] == "base64" else raw.encode("utf-8")
        )
    return out


def spy(tmp_path: Path) -> tuple[str, Path]:
    """A PRONTODB that only records that it was called."""
    marker = tmp_path / "prontodb-was-called"
    code = f"open({str(marker)!r}, 'w').close()"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}", marker


def save(env, kin, n, content: bytes, **extra):
    return pantheon(env, "iter", "save", f"--name={kin}", f"--session={n}", stdin=content, **extra)


def lines(result) -> list[str]:
    return result.stdout.decode().split()


def test_help_and_usage_errors(env):
    r = pantheon(env, "--help", direct=True)
    assert r.returncode == 0 and b"iter save --name=K --session=N" in r.stdout
    assert b"PANTHEON_ACTIVE_KIN" in r.stdout and b"PANTH_HOME" in r.stdout
    for args in (["iter", "save", "--help"], ["migrate", "init", "--help"]):
        r = pantheon(env, *args)
        assert r.returncode == 0 and r.stdout.startswith(b"usage:")
    for args in (
        [],  # no command
        ["iter", "save", "--name=keeper"],  # no --session
        ["iter", "show", "--name=keeper", "--session=6x"],
        ["iter", "--name=keeper", "--bogus"],
        ["iter"],  # no --name and no PANTHEON_ACTIVE_KIN
    ):
        r = pantheon(env, *args)
        assert r.returncode == 1, args  # usage errors are 1 (2 means "not found")


def test_done_when_save_show_byte_exact_and_foreign_kin_refused(env, tmp_path):
    r = save(env, "keeper", 65, SESSION, direct=True)
    assert r.returncode == 0, r.stderr
    assert b"initialised keeper" in r.stderr  # the first write creates the kin's store
    r = pantheon(env, "iter", "show", "--name=keeper", "--session=65", direct=True)
    assert r.returncode == 0 and r.stdout == SESSION
    fake, marker = spy(tmp_path)
    r = pantheon(
        env,
        "iter",
        "show",
        "--name=prometheus",
        "--session=65",
        PANTHEON_ACTIVE_KIN="keeper",
        PRONTODB=fake,
        direct=True,
    )
    assert r.returncode == 1 and r.stdout == b""
    assert b"Permission denied - cannot access prometheus context" in r.stderr
    assert not marker.exists()  # refused before prontodb was called
    # the active kin itself is allowed, and --name may then be left out
    r = pantheon(env, "iter", "show", "--session=65", PANTHEON_ACTIVE_KIN="keeper")
    assert r.returncode == 0 and r.stdout == SESSION


def test_inherited_force_user_is_never_widened(env, tmp_path):
    fake, marker = spy(tmp_path)
    for lock in ("PRONTO_FORCE_USER", "PRONTO_FORCE_META"):
        r = pantheon(env, "iter", "--name=prometheus", PRONTODB=fake, **{lock: "keeper"})
        assert r.returncode == 1 and b"cannot access prometheus context" in r.stderr
    assert not marker.exists()


def test_kin_names_are_validated_before_prontodb(env, tmp_path):
    fake, marker = spy(tmp_path)
    for bad in ("../keeper", "keeper.x", "1keeper", "", "-k", "k" * 24, "kéeper"):
        r = pantheon(env, "iter", "list", f"--name={bad}", PRONTODB=fake)
        assert r.returncode == 1 and b"invalid kin name" in r.stderr, bad
    assert not marker.exists()
    # 23 characters is the longest: pantheon_<kin> must be a valid 32-character cursor name
    longest = "K" + "-" * 21 + "_"
    assert save(env, longest, 1, b"x").returncode == 0
    assert lines(pantheon(env, "iter", f"--name={longest}")) == ["1"]


def test_counter_list_show_missing(env):
    for n in (3, 1, 10):
        assert save(env, "keeper", n, f"session {n}\n".encode()).returncode == 0
    assert lines(pantheon(env, "iter", "--name=keeper")) == ["10"]  # max, not the last save
    assert lines(pantheon(env, "iter", "list", "--name=keeper")) == ["1", "3", "10"]
    r = pantheon(env, "iter", "show", "--name=keeper", "--session=4")
    assert r.returncode == 2 and r.stdout == b"" and b"no session 4" in r.stderr
    r = pantheon(env, "iter", "save", "--name=keeper", "--session=5", stdin=b"")
    assert r.returncode == 1  # empty stdin: prontodb's usage error, passed through
    r = pantheon(env, "iter", "list", "--name=nobody")
    assert r.returncode == 1 and b"migrate init --name=nobody" in r.stderr


def test_iter_falls_back_to_the_iter_file(env, tmp_path):
    kin_dir = Path(env["PANTH_HOME"]) / "keeper"
    kin_dir.mkdir(parents=True)
    (kin_dir / "keeper.iter").write_text("42\n")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    r = pantheon(env, "iter", "--name=keeper", PATH=str(empty))  # prontodb not installed
    assert r.returncode == 0 and lines(r) == ["42"] and b"prontodb not found" in r.stderr
    r = pantheon(env, "iter", "--name=keeper", PATH=str(empty), PRONTODB="/nonexistent/pdb")
    assert lines(r) == ["42"]
    r = pantheon(env, "iter", "--name=nobody", PATH=str(empty))
    assert r.returncode == 0 and lines(r) == ["0"]
    r = pantheon(env, "iter", "save", "--name=keeper", "--session=1", stdin=b"x", PATH=str(empty))
    assert r.returncode == 1 and b"prontodb not found" in r.stderr
    # installed but the kin not initialised: the file is still the truth
    assert lines(pantheon(env, "iter", "--name=keeper")) == ["42"]
    # $PRONTODB names the binary when it is not on PATH
    pdb = shlex.quote(shutil.which("prontodb", path=env["PATH"]) or "prontodb-missing")
    assert save(env, "keeper", 50, b"x", PATH=str(empty), PRONTODB=pdb).returncode == 0
    assert lines(pantheon(env, "iter", "--name=keeper", PATH=str(empty), PRONTODB=pdb)) == ["50"]


def test_archive_keeps_the_last_sessions(env):
    kin_dir = Path(env["PANTH_HOME"]) / "keeper"
    kin_dir.mkdir(parents=True)
    for n in (1, 2, 9, 10):
        (kin_dir / f"iter-{n}.md").write_bytes(f"s{n}".encode())
    assert pantheon(env, "migrate", "import", "--name=keeper").returncode == 0
    r = pantheon(env, "iter", "archive", "2", "--name=keeper")
    assert r.returncode == 0 and b"archived 2, kept 2" in r.stdout
    assert lines(pantheon(env, "iter", "list", "--name=keeper")) == ["9", "10"]
    assert lines(pantheon(env, "iter", "list", "--archived", "--name=keeper")) == ["1", "2"]
    assert pantheon(env, "iter", "show", "--name=keeper", "--session=2").stdout == b"s2"
    r = pantheon(env, "iter", "archive", "5", "--name=keeper")
    assert r.returncode == 0 and b"archived 0, kept 2" in r.stdout
    assert pantheon(env, "iter", "archive", "-1", "--name=keeper").returncode == 1


def test_migrate_init_one_private_store_and_layer_per_kin(env):
    r = pantheon(env, "migrate", "init", "--name=keeper")
    assert r.returncode == 0 and b"initialised: cursor pantheon_keeper" in r.stdout
    r = pantheon(env, "migrate", "init", "--name=keeper")
    assert r.returncode == 0 and b"already initialised" in r.stdout
    r = pantheon(env, "migrate", "init", "--name=keeper", "--backend=lmdb")
    assert r.returncode == 1 and b"cursor migrate" in r.stderr  # never silently repointed
    r = pantheon(env, "migrate", "init", "--name=prometheus", "--backend=lmdb")
    assert r.returncode == 0 and b"prometheus.lmdb (lmdb, meta prometheus)" in r.stdout
    assert save(env, "prometheus", 1, b"on lmdb").returncode == 0
    assert save(env, "keeper", 1, b"keeper's").returncode == 0
    assert pantheon(env, "iter", "show", "--name=prometheus", "--session=1").stdout == b"on lmdb"

    facts = prontodb(
        env, "keeper", "--json", "--user", "keeper", "cursor", "show", "pantheon_keeper"
    )
    facts = json.loads(facts.stdout)
    assert facts["meta"] == "keeper" and facts["backend"] == "sqlite"
    path = facts["path"]
    assert path == os.path.join(env["PANTH_HOME"], "databases", "keeper.sqlite")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(env["PANTH_HOME"]).st_mode) == 0o700
    # the entry lives in user keeper, meta keeper: another layer of the same file sees nothing
    r = subprocess.run(
        ["prontodb", "--database", path, "get", "iterations.sessions.iter1"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 2


def test_migrate_import_is_idempotent_and_status_counts(env):
    kin_dir = Path(env["PANTH_HOME"]) / "keeper"
    kin_dir.mkdir(parents=True)
    files = {1: b"one\n", 2: b"two\r\n", 10: b"\xff\xfe ten", 11: b""}
    for n, content in files.items():
        (kin_dir / f"iter-{n}.md").write_bytes(content)
    (kin_dir / "iter-notes.md").write_text("not a session")
    (kin_dir / "keeper.iter").write_text("12\n")
    r = pantheon(env, "migrate", "status", "--name=keeper")
    assert b"4 session files, counter 12, 1 ignored" in r.stdout
    assert b"not initialised" in r.stdout

    r = pantheon(env, "migrate", "import", "--name=keeper")
    assert r.returncode == 0, r.stderr
    assert b"4 added, 0 updated, 0 skipped" in r.stdout and b"iter-notes.md" in r.stderr
    assert stored(env, "keeper") == {f"sessions.iter{n}": v for n, v in files.items()} | {
        "counter.current": b"12"
    }
    assert lines(pantheon(env, "iter", "--name=keeper")) == ["12"]  # from keeper.iter

    r = pantheon(env, "migrate", "import", "--name=keeper")
    assert b"0 added, 0 updated, 4 skipped" in r.stdout
    (kin_dir / "iter-2.md").write_bytes(b"two, edited\n")
    assert pantheon(env, "iter", "archive", "2", "--name=keeper").returncode == 0  # 1, 2 out
    r = pantheon(env, "migrate", "status", "--name=keeper")
    assert b"2 sessions, 2 archived, counter 12" in r.stdout
    assert b"3 identical, 1 different, 0 not imported" in r.stdout
    r = pantheon(env, "migrate", "import", "--name=keeper")
    assert b"0 added, 1 updated, 3 skipped" in r.stdout
    # archived sessions stay archived (and are updated there)
    assert lines(pantheon(env, "iter", "list", "--name=keeper")) == ["10", "11"]
    assert pantheon(env, "iter", "show", "--name=keeper", "--session=2").stdout == (
        b"two, edited\n"
    )
    r = pantheon(env, "migrate", "status", "--name=keeper")
    assert b"4 identical, 0 different, 0 not imported" in r.stdout


def test_status_without_prontodb(env, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    r = pantheon(env, "migrate", "status", "--name=keeper", PATH=str(empty))
    assert r.returncode == 0 and b"prontodb: not installed" in r.stdout


def fix_command(result) -> list[str]:
    """The 'pantheon iter fix ...' line a rescued save printed, ready to run."""
    words = shlex.split(result.stdout.decode())
    assert words[:3] == ["pantheon", "iter", "fix"], result.stdout
    return words[1:]


def test_rescue_into_the_pipe_cache_then_fix(env):
    assert pantheon(env, "migrate", "init", "--name=keeper").returncode == 0
    store = Path(env["PANTH_HOME"]) / "databases" / "keeper.sqlite"
    store.chmod(0o666)  # ProntoDB refuses a store other accounts can write...
    r = save(env, "keeper", 65, SESSION)
    store.chmod(0o600)
    assert r.returncode == 3, r.stderr  # ...and rescues the piped content (exit 3)
    args = fix_command(r)
    key = args[2]
    assert key.startswith("pipe.cache.") and args[3:] == ["--session=65", "--name=keeper"]
    r = pantheon(env, *args)
    assert r.returncode == 0, r.stderr
    assert pantheon(env, "iter", "show", "--name=keeper", "--session=65").stdout == SESSION
    assert lines(pantheon(env, "iter", "--name=keeper")) == ["65"]
    r = pantheon(env, *args)  # the cache entry was consumed
    assert r.returncode == 2 and b"not in keeper's store" in r.stderr
    r = pantheon(env, "iter", "fix", "iterations.sessions.iter1", "--session=1", "--name=keeper")
    assert r.returncode == 1


def test_rescue_to_a_file_then_fix(env):
    r = save(env, "keeper", 66, SESSION, PRONTO_MAX_VALUE_BYTES="8")
    assert r.returncode == 3, r.stderr
    args = fix_command(r)
    rescue_file = args[2]
    assert os.path.isabs(rescue_file) and Path(rescue_file).read_bytes() == SESSION
    r = pantheon(env, *args)
    assert r.returncode == 0, r.stderr
    assert pantheon(env, "iter", "show", "--name=keeper", "--session=66").stdout == SESSION


def test_migrate_backup(env, tmp_path):
    r = pantheon(env, "migrate", "backup", "--name=keeper")
    assert r.returncode == 1 and b"migrate init" in r.stderr
    assert save(env, "keeper", 1, b"backed up").returncode == 0
    r = pantheon(env, "migrate", "backup", "--name=keeper")
    assert r.returncode == 0, r.stderr
    archive = r.stdout.decode().strip()
    assert archive.startswith(os.path.join(env["PANTH_HOME"], "backups", "keeper-"))
    assert tarfile.is_tarfile(archive)
    target = tmp_path / "k.tar.gz"
    r = pantheon(env, "migrate", "backup", "--name=keeper", "-o", str(target))
    assert r.returncode == 0 and r.stdout.decode().strip() == str(target)
    assert tarfile.is_tarfile(target)
