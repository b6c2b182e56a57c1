"""Piped content is never lost: every failure path of ``set`` through the real CLI.

Most tests run ``python -m prontodb`` in a subprocess with the content on a real pipe and an
isolated HOME/XDG tree. Failures that cannot be provoked from outside (a backend failing in
the middle of a write, an unexpected exception, Ctrl-C) are injected by a test-only wrapper
script that patches the library and then runs the real CLI in the child process.
"""

from __future__ import annotations

import hashlib
import os
import pty
import re
import shlex
import stat
import subprocess
import sys
import textwrap

import pytest

import prontodb
from prontodb import paths
from prontodb.cli import cli

SEED = textwrap.dedent(
    """\
    # Session iter65

    - reproduced the pipe cache from the seed design
    - no content lost; ; = and : are just text here
    """
).encode()
KEY = re.compile(r"pipe\.cache\.(\d+)_([0-9a-f]{8})_([A-Za-z0-9_]+)")


def md5_8(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()[:8]


class Result:
    def __init__(self, code: int, out: bytes, err: bytes) -> None:
        self.code, self.out, self.err = code, out, err.decode()

    @property
    def key(self) -> str:
        """The cache address printed on stdout (alone, one line)."""
        text = self.out.decode()
        assert text.endswith("\n") and text.count("\n") == 1, text
        return text[:-1]

    @property
    def lines(self) -> list[str]:
        return self.err.splitlines()

    def hint(self) -> list[str]:
        """The suggested command line, split like a shell would."""
        (line,) = [ln for ln in self.lines if ln.startswith("💡 Use: ")]
        return shlex.split(line.removeprefix("💡 Use: "))

    def __repr__(self) -> str:
        return f"Result({self.code}, {self.out[:200]!r}, {self.err!r})"


@pytest.fixture
def sh(home, monkeypatch, capsysbinary):
    """Run ``python -m prontodb ARGS`` (or a wrapper script) with ``input`` on a real pipe.

    Commands that read no stdin (``input`` None: copy, get, ttl, ...) run in-process, which
    is much faster; the pipe-cache behaviour under test always runs in a child process."""

    def run(*args, input=None, env=None, inject=None, timeout=30) -> Result:
        if input is None and inject is None:
            with monkeypatch.context() as m:
                for key, value in (env or {}).items():
                    m.setenv(key, value)
                code = cli.main(list(args), standalone_mode=False)
            out, err = capsysbinary.readouterr()
            return Result(code, out, err)
        head = [sys.executable, "-m", "prontodb"]
        if inject is not None:
            head = [sys.executable, "-c", INJECT.format(patch=textwrap.dedent(inject))]
        done = subprocess.run(
            [*head, *args],
            input=input,
            env={**home, **(env or {})},
            capture_output=True,
            timeout=timeout,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    return run


# A test-only wrapper: apply a patch to the library, then run the real CLI.
INJECT = """
import sys
{patch}
sys.argv[0] = "prontodb"
from prontodb.cli import main
main()
"""

FAIL_UNLESS_PIPE_CACHE = """
from prontodb.store import Store
_set = Store.set
def _failing(self, address, value, **kw):
    if self.address(address).project != "pipe":
        raise {exc}
    return _set(self, address, value, **kw)
Store.set = _failing
"""


def follow(sh, result: Result, destination: str, env=None) -> Result:
    """Run the suggested ``copy`` command verbatim, with DESTINATION filled in."""
    argv = result.hint()
    assert argv[0] == "prontodb" and "<proper.address>" in argv
    argv = [destination if a == "<proper.address>" else a for a in argv[1:]]
    return sh(*argv, env=env)


def default_store(user: str = "default") -> str:
    return paths.default_store_path(user)


def cached(path: str, user: str = "default", meta: str | None = None) -> dict[str, bytes]:
    if not os.path.exists(path):
        return {}
    with prontodb.open(path, user=user, meta=meta, create=False) as s:
        return dict(s.scan("pipe.cache"))


def assert_rescued(
    result: Result, content: bytes, attempted: str, reason: str, *, reason_starts: bool = False
) -> str:
    """Exit 3, the key alone on stdout, the exact two stderr lines (the reason may be given by
    its start only). Returns the key."""
    assert result.code == 3, result
    key = result.key
    match = KEY.fullmatch(key)
    assert match, key
    assert match.group(2) == md5_8(content)
    assert match.group(3) == attempted
    if reason_starts:
        assert result.lines[0].startswith(f"⚠️  {reason}")
        assert result.lines[0].endswith(f" - content cached as: {key}")
    else:
        assert result.lines[0] == f"⚠️  {reason} - content cached as: {key}"
    assert re.match(r"💡 Use: (PRONTO_MAX_VALUE_BYTES= )?prontodb ", result.lines[1])
    assert re.search(
        rf"copy {re.escape(key)} <proper\.address>( --to-cursor \S+)?$", result.lines[1]
    )
    return key


# -- the seed session ----------------------------------------------------------------------------


def test_the_seed_session_end_to_end(sh):
    r = sh("set", "invalid.address", input=SEED)
    key = assert_rescued(r, SEED, "invalid_address", "Invalid address 'invalid.address'")
    assert r.lines[:2] == [
        f"⚠️  Invalid address 'invalid.address' - content cached as: {key}",
        f"💡 Use: prontodb copy {key} <proper.address>",
    ]
    assert re.fullmatch(
        rf"⏳ Kept for 15m, until \d\d:\d\d \(local time\); prontodb ttl {re.escape(key)}",
        r.lines[2],
    )
    assert len(r.lines) == 3
    assert sh("list-keys", "pipe.cache").out.decode() == key.removeprefix("pipe.cache.") + "\n"
    scan = sh("scan-pairs", "pipe.cache", "*")
    assert scan.code == 0 and scan.out.decode().startswith(key.removeprefix("pipe.cache.") + "=")
    assert 800 < int(sh("ttl", key).out) <= 900

    c = sh("copy", key, "iterations.sessions.iter65")
    assert c.code == 0 and c.out == b""
    assert c.lines == [
        f"✅ Copied: {key} → iterations.sessions.iter65",
        f"🗑️  Removed from cache: {key}",
    ]
    assert sh("get", "iterations.sessions.iter65").out == SEED
    assert sh("ttl", "iterations.sessions.iter65").out == b"-1\n"
    assert sh("get", key).code == 2
    assert sh("list-keys", "pipe.cache").out == b""

    assert sh("--user", "keeper", "cursor", "set", "pantheon").code == 0
    d = sh(
        "--user", "keeper", "--cursor", "pantheon", "set", "iterations.sessions.iter65", input=SEED
    )
    assert (d.code, d.out, d.err) == (0, b"", "")
    got = sh("--user", "keeper", "--cursor", "pantheon", "get", "iterations.sessions.iter65")
    assert got.out == SEED
    assert sh("--user", "keeper", "--cursor", "pantheon", "list-keys", "pipe.cache").out == b""
    assert cached(default_store("keeper"), "keeper") == {}


# -- every reason set can fail -------------------------------------------------------------------


def test_invalid_address_with_repeated_dots(sh):
    r = sh("set", "invalid...address", input=b"x")
    assert_rescued(r, b"x", "invalid___address", "Invalid address 'invalid...address'")
    assert follow(sh, r, "p.n.k").code == 0
    assert sh("get", "p.n.k").out == b"x"


def test_incomplete_address(sh):
    r = sh("set", "lonely", input=b"x")
    assert_rescued(r, b"x", "lonely", "Invalid address 'lonely'")
    r = sh("-p", "proj", "set", "ns.k__dev", input=b"ok")  # complete with -p: stored
    assert (r.code, r.out) == (0, b"")


def test_an_address_that_becomes_a_context_in_the_key_is_found_again(sh):
    r = sh("set", "a..b", input=b"x")
    key = assert_rescued(r, b"x", "a__b", "Invalid address 'a..b'")
    assert sh("get", key).out == b"x"
    assert follow(sh, r, "p.n.k").code == 0


def test_no_address(sh):
    r = sh("set", input=b"x")
    assert_rescued(r, b"x", "noaddr", "No address given")
    r = sh("set", "-", input=b"x")  # '-' is VALUE: still no usable address
    assert r.code == 3


def test_unknown_cursor(sh):
    r = sh("--user", "keeper", "--cursor", "nope", "set", "a.b.c", input=b"x")
    key = assert_rescued(r, b"x", "a_b_c", "Unknown cursor 'nope' for user 'keeper'")
    assert r.hint() == ["prontodb", "--user", "keeper", "copy", key, "<proper.address>"]
    assert cached(default_store("keeper"), "keeper") == {key.removeprefix("pipe.cache."): b"x"}
    assert follow(sh, r, "a.b.c").code == 0


def test_unknown_cursor_from_the_environment_names_the_store(sh):
    env = {"PRONTO_CURSOR": "nope"}
    r = sh("set", "a.b.c", input=b"x", env=env)
    key = assert_rescued(r, b"x", "a_b_c", "Unknown cursor 'nope' for user 'default'")
    assert r.hint() == [
        "prontodb", "--database", default_store(), "copy", key, "<proper.address>"
    ]  # fmt: skip
    assert follow(sh, r, "a.b.c", env=env).code == 0


def test_rescue_into_the_addressed_cursor_store_names_its_flags(sh, home):
    assert sh("--user", "keeper", "cursor", "set", "pantheon", "--backend", "lmdb").code == 0
    r = sh("--user", "keeper", "--cursor", "pantheon", "set", "bad/addr", input=b"x")
    key = assert_rescued(r, b"x", "bad_addr", "Invalid address 'bad/addr'")
    assert r.hint() == [
        "prontodb", "--user", "keeper", "--cursor", "pantheon", "copy", key, "<proper.address>"
    ]  # fmt: skip
    assert cached(default_store("keeper"), "keeper") == {}
    assert follow(sh, r, "a.b.c").code == 0
    assert sh("--user", "keeper", "--cursor", "pantheon", "get", "a.b.c").out == b"x"


def test_forced_user_conflict_rescues_into_the_keepers_cache(sh):
    env = {"PRONTO_FORCE_USER": "keeper"}
    r = sh("--user", "other", "set", "a.b.c", input=b"x", env=env)
    key = assert_rescued(
        r,
        b"x",
        "a_b_c",
        "Locked context: user is locked to 'keeper' (PRONTO_FORCE_USER); refusing --user 'other'",
    )
    # The hint names the locked user instead of relying on the environment.
    assert r.hint() == ["prontodb", "--user", "keeper", "copy", key, "<proper.address>"]
    assert cached(default_store("keeper"), "keeper") == {key.removeprefix("pipe.cache."): b"x"}
    assert cached(default_store("other"), "other") == {}
    assert cached(default_store(), "default") == {}
    assert follow(sh, r, "a.b.c", env=env).code == 0
    assert sh("get", "a.b.c", env=env).out == b"x"


def test_forced_meta_conflict_rescues_into_the_locked_meta(sh):
    env = {"PRONTO_FORCE_META": "m"}
    r = sh("--meta", "x", "set", "a.b.c", input=b"x", env=env)
    key = assert_rescued(
        r,
        b"x",
        "a_b_c",
        "Locked context: meta is locked to 'm' (PRONTO_FORCE_META); refusing --meta 'x'",
    )
    assert r.hint() == ["prontodb", "copy", key, "<proper.address>"]
    assert cached(default_store(), meta="m") == {key.removeprefix("pipe.cache."): b"x"}
    assert cached(default_store(), meta=None) == {}
    assert follow(sh, r, "a.b.c", env=env).code == 0
    assert sh("get", "a.b.c", env=env).out == b"x"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--ttl", "0"], "Invalid duration '0' for --ttl: must be greater than zero"),
        (["--ttl", "soon"], "Invalid duration 'soon' for --ttl: use seconds or numbers with units"),
        (["--ttl", "5", "--keep-ttl"], "--ttl and --keep-ttl cannot be combined"),
    ],
)
def test_ttl_errors(sh, args, reason):
    r = sh("set", "a.b.c", *args, input=b"x")
    assert r.code == 3, r
    assert r.lines[0].startswith(f"⚠️  {reason}")
    assert sh("get", "a.b.c").code == 2


@pytest.mark.parametrize(
    ("args", "env", "reason"),
    [
        (["set", "a.b.c", "v", "--stdin"], {}, "Give VALUE or --stdin, not both"),
        (["--user", "../x", "set", "a.b.c"], {}, "Invalid user name '../x'"),
        (["--meta", "a/b", "set", "a.b.c"], {}, "Invalid meta name 'a/b'"),
        (["set", "a.b.c"], {"PRONTO_MAX_VALUE_BYTES": "lots"}, "PRONTO_MAX_VALUE_BYTES must be"),
    ],
)
def test_other_refusals_are_rescued_into_the_default_store(sh, args, env, reason):
    r = sh(*args, input=b"x", env=env)
    key = assert_rescued(r, b"x", "a_b_c", reason, reason_starts=True)
    # An invalid limit in the environment would stop the hint too: it clears it.
    lead = ["PRONTO_MAX_VALUE_BYTES="] if "PRONTO_MAX_VALUE_BYTES" in env else []
    assert r.hint() == [*lead, "prontodb", "copy", key, "<proper.address>"]
    assert cached(default_store()) == {key.removeprefix("pipe.cache."): b"x"}


def test_an_insecure_store_is_refused_and_not_used_for_the_rescue(sh, tmp_path):
    shared = tmp_path / "shared.sqlite"
    assert sh("--database", str(shared), "set", "a.b.c", "v").code == 0
    os.chmod(shared, 0o666)
    r = sh("--database", str(shared), "set", "a.b.c", input=b"x")
    key = assert_rescued(
        r, b"x", "a_b_c", "Storage failure: refusing store file", reason_starts=True
    )
    assert cached(default_store()) == {key.removeprefix("pipe.cache."): b"x"}


def test_over_the_size_limit_goes_to_a_private_file_byte_exact(sh, home):
    data = os.urandom(5000)
    r = sh("set", "a.b.c", input=data, env={"PRONTO_MAX_VALUE_BYTES": "1000"})
    assert r.code == 3, r
    path = r.out.decode().rstrip("\n")
    rescue_dir = os.path.join(home["XDG_CACHE_HOME"], "prontodb", "rescue")
    assert path == os.path.join(rescue_dir, f"{os.path.basename(path)}")
    assert re.fullmatch(rf"\d+_{md5_8(data)}_a_b_c", os.path.basename(path))
    with open(path, "rb") as fh:
        assert fh.read() == data
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(rescue_dir).st_mode) == 0o700
    assert r.lines == [
        "⚠️  Value too large: 5000 bytes, over the limit of 1000 bytes (PRONTO_MAX_VALUE_BYTES)"
        f" - content saved to file: {path}",
        f"💡 Use: PRONTO_MAX_VALUE_BYTES=5000 prontodb set a.b.c < {path}",
        "⏳ Kept as a file until you delete it (it does not expire)",
    ]
    assert cached(default_store()) == {}
    with open(path, "rb") as fh:
        home_again = subprocess.run(
            [sys.executable, "-m", "prontodb", "set", "a.b.c"], stdin=fh, env=home
        )
    assert home_again.returncode == 0
    assert sh("get", "a.b.c").out == data


def test_a_store_that_cannot_be_opened_falls_back_to_the_default_store(sh, tmp_path):
    broken = tmp_path / "work.sqlite"
    broken.mkdir()  # a directory where the store file should be
    r = sh("--database", str(broken), "set", "a.b.c", input=b"x")
    key = assert_rescued(
        r, b"x", "a_b_c", f"Storage failure: {broken}: cannot open store", reason_starts=True
    )
    assert r.hint() == ["prontodb", "copy", key, "<proper.address>"]
    assert follow(sh, r, "a.b.c").code == 0


def test_backend_failing_mid_write_falls_back_to_the_default_store(sh, tmp_path):
    patch = """
        from prontodb.backends.sqlite import SqliteBackend
        from prontodb.errors import StorageFullError
        _put = SqliteBackend.put
        _put_counted = SqliteBackend.put_counted
        def put(self, key, value):
            if self.path.endswith("work.sqlite"):
                raise StorageFullError(f"{self.path}: disk full")
            return _put(self, key, value)
        def put_counted(self, *args):
            if self.path.endswith("work.sqlite"):
                raise StorageFullError(f"{self.path}: disk full")
            return _put_counted(self, *args)
        SqliteBackend.put = put
        SqliteBackend.put_counted = put_counted
    """
    work = str(tmp_path / "work.sqlite")
    assert sh("cursor", "set", "work", work).code == 0
    r = sh("--cursor", "work", "set", "a.b.c", input=b"x", inject=patch)
    key = assert_rescued(r, b"x", "a_b_c", f"Storage failure: {work}: disk full")
    # the content is in the default store; the hint copies it into the cursor's store
    assert r.hint() == ["prontodb", "copy", key, "<proper.address>", "--to-cursor", "work"]
    assert cached(work) == {}
    assert cached(default_store()) == {key.removeprefix("pipe.cache."): b"x"}
    assert follow(sh, r, "a.b.c").code == 0  # the hint works once the disk has room
    assert sh("--cursor", "work", "get", "a.b.c").out == b"x"


def test_no_usable_store_at_all_goes_to_a_file(sh):
    os.makedirs(default_store())  # the default store is a directory too
    r = sh("set", "a.b.c", input=b"x")
    assert r.code == 3, r
    path = r.out.decode().rstrip("\n")
    assert r.lines[0] == (
        f"⚠️  Storage failure: {default_store()}: cannot open store (unable to open database "
        f"file) - content saved to file: {path}"
    )
    with open(path, "rb") as fh:
        assert fh.read() == b"x"


def test_unexpected_exception_is_logged_and_rescued(sh, home):
    patch = FAIL_UNLESS_PIPE_CACHE.format(exc='RuntimeError("boom")')
    r = sh("set", "a.b.c", input=b"x", inject=patch)
    log = os.path.join(home["XDG_CACHE_HOME"], "prontodb", "errors.log")
    key = assert_rescued(
        r, b"x", "a_b_c", f"Unexpected RuntimeError: boom (details logged to {log})"
    )
    with open(log) as fh:
        assert "RuntimeError: boom" in fh.read()
    assert "Traceback" not in r.err
    assert cached(default_store()) == {key.removeprefix("pipe.cache."): b"x"}


def test_unexpected_exception_everywhere_still_leaves_a_file(sh):
    patch = """
        from prontodb.store import Store
        def broken(self, *a, **kw):
            raise RuntimeError("boom")
        Store.set = broken
    """
    r = sh("set", "a.b.c", input=b"x", inject=patch)
    assert r.code == 3, r
    assert "content saved to file" in r.lines[0]
    with open(r.out.decode().rstrip("\n"), "rb") as fh:
        assert fh.read() == b"x"


def test_interrupt_while_storing_still_rescues(sh):
    patch = FAIL_UNLESS_PIPE_CACHE.format(exc="KeyboardInterrupt")
    r = sh("set", "a.b.c", input=b"x", inject=patch)
    assert_rescued(r, b"x", "a_b_c", "Interrupted")


@pytest.mark.parametrize(
    "args",
    [
        ["set", "--bogus", "a.b.c"],
        ["--bogus", "set", "a.b.c"],
        ["set", "a.b.c", "-", "--bogus"],
        ["set", "a.b.c", "--ttl"],
    ],
)
def test_unknown_option_with_piped_input(sh, args):
    r = sh(*args, input=b"x")
    assert r.code == 3, r
    assert r.lines[0].startswith("⚠️  Usage error: ")
    assert "a_b_c" in r.key
    assert sh("get", r.key).out == b"x"


def test_unknown_option_of_stream_with_piped_input(sh):
    data = b"meta:path=a.b; k=1;"
    r = sh("stream", "--bogus", input=data)
    key = assert_rescued(
        r, data, "noaddr", "Usage error: no such option: --bogus", reason_starts=True
    )
    assert sh("get", key).out == data
    assert sh("stream", "--dry-run", "--bogus", input=data).code == 1  # dry runs never rescue
    assert sh("stream", "--bogus", input=b"  \n").code == 1  # nothing worth rescuing


def test_bad_global_flag_with_piped_input(sh):
    r = sh("--ns-delim", "x", "set", "a.b.c", input=b"x")
    assert_rescued(r, b"x", "a_b_c", "Invalid delimiter 'x': choose one of . : / |")


def test_delimiter_is_kept_in_the_key_and_the_hint(sh):
    r = sh("--ns-delim", ":", "set", "bad", input=b"x")
    assert r.code == 3, r
    assert r.key.startswith("pipe:cache:")
    assert r.hint()[1:3] == ["--ns-delim", ":"]
    assert follow(sh, r, "a:b:c").code == 0
    assert sh("get", "a.b.c").out == b"x"


def test_a_5mb_binary_payload_survives_rescue_and_copy(sh):
    data = os.urandom(5 * 1024 * 1024)
    r = sh("set", "invalid.address", input=data)
    key = assert_rescued(r, data, "invalid_address", "Invalid address 'invalid.address'")
    assert sh("copy", key, "bin.data.blob").code == 0
    assert sh("get", "bin.data.blob").out == data


def test_token_stream_content_gets_a_third_hint(sh):
    data = b"meta:path=proj.ns; key=value;"
    r = sh("set", "oops", input=data)
    key = assert_rescued(r, data, "oops", "Invalid address 'oops'")
    assert r.lines[2] == f"💡 Looks like a token stream: prontodb get {key} | prontodb stream"
    plain = sh("set", "oops", input=b"just; text")
    assert len(plain.lines) == 3 and plain.lines[2].startswith("⏳ Kept for ")


def test_ascii_fallback_when_stderr_cannot_encode(sh):
    r = sh("set", "invalid.address", input=b"x", env={"PYTHONIOENCODING": "ascii"})
    assert r.code == 3
    assert r.lines == [
        f"!!  Invalid address 'invalid.address' - content cached as: {r.key}",
        f"-> Use: prontodb copy {r.key} <proper.address>",
        r.lines[2],
    ]
    assert r.lines[2].startswith(".. Kept for 15m, until ")


def test_create_cache_changes_the_rescue_ttl(sh):
    assert sh("create-cache", "pipe.cache", "60").code == 0
    r = sh("set", "bad", input=b"x")
    assert r.code == 3
    assert 0 < int(sh("ttl", r.key).out) <= 60


# -- when there is nothing to rescue -------------------------------------------------------------


def _with_open_stdin(home, *args, timeout=15):
    """Run with a stdin pipe that is never written to nor closed: reading it would hang."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "prontodb", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=home,
    )
    try:
        code = proc.wait(timeout=timeout)
        return Result(code, proc.stdout.read(), proc.stderr.read())
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["set", "a.b.c", "value"], 0),
        (["set", "a.b.c", ""], 0),
        (["set", "bad", "value"], 1),
        (["set", "a.b.c", "value", "--ttl", "0"], 1),
        (["set", "a.b.c", "value", "--bogus"], 1),
        (["--cursor", "nope", "set", "a.b.c", "value"], 1),
    ],
)
def test_an_explicit_value_never_reads_stdin(home, sh, args, code):
    r = _with_open_stdin(home, *args)
    assert r.code == code, r
    assert r.out == b""
    assert sh("list-keys", "pipe.cache").out == b""


def test_empty_stdin_is_a_usage_error(sh):
    r = sh("set", "a.b.c", input=b"")
    assert (r.code, r.out) == (1, b"")
    assert "stdin is empty" in r.err
    assert sh("list-keys", "pipe.cache").out == b""
    assert sh("set", "bad", input=b"").code == 1


def test_terminal_stdin_is_a_usage_error_without_hanging(home):
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "prontodb", "set", "a.b.c"],
            stdin=secondary,
            capture_output=True,
            env=home,
            timeout=15,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert proc.returncode == 1
    assert b"stdin is a terminal" in proc.stderr
    assert proc.stdout == b""


# -- copy and move -------------------------------------------------------------------------------


@pytest.fixture
def rescued(sh):
    r = sh("set", "bad", input=b"payload")
    assert r.code == 3
    return r.key


def test_copy_of_a_missing_source(sh):
    r = sh("copy", "pipe.cache.nope", "a.b.c")
    assert (r.code, r.out, r.err) == (2, b"", "❌ Source key 'pipe.cache.nope' not found\n")


def test_copy_to_an_invalid_destination_changes_nothing(sh, rescued, tmp_path):
    r = sh("copy", rescued, "not..valid")
    assert r.code == 1 and "invalid address 'not..valid'" in r.err
    assert sh("get", rescued).out == b"payload"
    other = tmp_path / "other.sqlite"
    assert sh("cursor", "set", "other", str(other)).code == 0
    os.remove(other)
    r = sh("copy", rescued, "bad", "--to-cursor", "other")
    assert r.code == 1
    assert not other.exists()  # not even an empty store was created
    assert sh("get", rescued).out == b"payload"


def test_copy_keep_and_keep_ttl(sh, rescued):
    r = sh("copy", rescued, "a.b.c", "--keep", "--keep-ttl")
    assert r.code == 0
    assert r.lines == [f"✅ Copied: {rescued} → a.b.c"]
    assert sh("get", rescued).out == b"payload"
    assert 0 < int(sh("ttl", "a.b.c").out) <= 900
    r = sh("copy", rescued, "a.b.d")
    assert r.lines[-1] == f"🗑️  Removed from cache: {rescued}"
    assert sh("ttl", "a.b.d").out == b"-1\n"


def test_copy_into_a_ttl_namespace_gets_its_default(sh, rescued):
    assert sh("create-cache", "tmp.ns", "120").code == 0
    assert sh("copy", rescued, "tmp.ns.k").code == 0
    assert 100 < int(sh("ttl", "tmp.ns.k").out) <= 120


def test_an_ordinary_source_is_kept_by_copy(sh):
    assert sh("set", "a.b.c", "v").code == 0
    r = sh("copy", "a.b.c", "a.b.d")
    assert r.lines == ["✅ Copied: a.b.c → a.b.d"]
    assert sh("get", "a.b.c").out == b"v"


def test_move_home_is_permanent_and_removes_the_source(sh, rescued):
    r = sh("move", rescued, "a.b.c")
    assert (r.code, r.lines) == (0, [f"✅ Moved: {rescued} → a.b.c"])
    assert sh("get", rescued).code == 2
    assert sh("ttl", "a.b.c").out == b"-1\n"


def test_move_keep_ttl_keeps_the_source_deadline(sh, rescued):
    assert sh("move", rescued, "a.b.c", "--keep-ttl").code == 0
    assert 0 < int(sh("ttl", "a.b.c").out) <= 900


@pytest.mark.parametrize("verb", ["copy", "move"])
def test_a_live_destination_needs_replace(sh, rescued, verb):
    assert sh("set", "a.b.c", "mine").code == 0
    r = sh(verb, rescued, "a.b.c")
    assert (r.code, r.lines) == (4, ["❌ 'a.b.c' exists; add --replace"])
    assert sh("get", "a.b.c").out == b"mine"
    assert sh("get", rescued).code == 0
    assert sh(verb, rescued, "a.b.c", "--replace").code == 0
    assert sh("get", "a.b.c").out != b"mine"
    assert sh("get", rescued).code == 2


def test_cross_backend_copy_and_move(sh, rescued):
    assert sh("cursor", "set", "lm", "--backend", "lmdb").code == 0
    assert sh("cursor", "set", "dc", "--backend", "diskcache").code == 0
    r = sh("copy", rescued, "a.b.c", "--to-cursor", "lm")
    assert r.code == 0 and r.lines[-1] == f"🗑️  Removed from cache: {rescued}"
    assert sh("get", rescued).code == 2
    assert sh("--cursor", "lm", "get", "a.b.c").out == b"payload"
    assert sh("move", "a.b.c", "x.y.z", "--from-cursor", "lm", "--to-cursor", "dc").code == 0
    assert sh("--cursor", "lm", "get", "a.b.c").code == 2
    assert sh("--cursor", "dc", "get", "x.y.z").out == b"payload"


# -- in-process: the last resort -----------------------------------------------------------------


def test_when_not_even_a_file_can_be_written_it_says_so(home, monkeypatch, capsysbinary):
    from prontodb import pipecache

    def no_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipecache, "write_file", no_disk)
    os.makedirs(default_store())  # and no store either
    read, write = os.pipe()
    os.write(write, b"x")
    os.close(write)
    with os.fdopen(read, "r") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        code = cli.main(["set", "a.b.c"], standalone_mode=False)
    out, err = capsysbinary.readouterr()
    assert (code, out) == (1, b"")
    assert (
        err.decode().startswith("❌ Storage failure: ")
        and "the content could not be rescued: [Errno 28] No space left on device" in err.decode()
    )


def test_a_closed_stdin_before_the_body_is_a_plain_usage_error(home):
    done = subprocess.run(
        [sys.executable, "-m", "prontodb", "set", "--bogus", "a.b.c"],
        capture_output=True,
        env=home,
        timeout=15,
        preexec_fn=lambda: os.close(0),
    )
    assert done.returncode == 1
    assert b"no such option: --bogus" in done.stderr and b"unexpected" not in done.stderr


def test_a_fallback_rescue_follows_the_migrated_default_store(sh):
    assert sh("set", "a.b.c", "v").code == 0
    assert sh("cursor", "migrate", "default", "--backend", "lmdb").code == 0
    r = sh("--cursor", "nope", "set", "a.b.d", input=b"precious")
    assert r.code == 3
    assert sh("get", r.key).out == b"precious"
    assert sh("get", "a.b.c").out == b"v"
