"""Every failure class of a command that takes piped content, through a real pipe into a real
process, and back home byte-exact through the printed hint run verbatim by a shell.

Each row pipes content into ``prontodb ARGS`` (a child process, stdin a real pipe), expects
exit 3, takes the ``💡 Use:`` line from stderr, fills in ``<proper.address>``, runs it with
``bash -c`` in the same environment, and reads the destination back with the hint's own
global flags. The signal rows send SIGINT/SIGTERM/SIGHUP to a ``prontodb set`` whose producer
has written part of its input and is still running.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

BIN = os.path.dirname(sys.executable)
HINT = re.compile(r"^💡 Use: (.*)$", re.M)
KEPT = re.compile(
    r"^⏳ Kept for (\d+[dhms])+, until \d\d:\d\d \(local time\); (PRONTO_\w+=\S* )?prontodb .*ttl ",
    re.M,
)
CONTENT = b"# notes\n\x00binary\xff and text; with = and : signs\n\n"

FAIL_STORE_SET = """
from prontodb.store import Store
_set = Store.set
def _failing(self, address, value, **kw):
    if self.address(address).project != "pipe":
        raise {exc}
    return _set(self, address, value, **kw)
Store.set = _failing
"""


@pytest.fixture
def env(home):
    return {**home, "PATH": BIN + os.pathsep + home.get("PATH", "")}


def prontodb(env, *args, input=None, extra=None, inject=None, check_stdin=True):
    head = [sys.executable, "-m", "prontodb"]
    if inject is not None:
        head = [
            sys.executable,
            "-c",
            f"import sys\n{inject}\nsys.argv[0] = 'prontodb'\n"
            "from prontodb.cli import main\nmain()\n",
        ]
    return subprocess.run(
        [*head, *args],
        input=input,
        env={**env, **(extra or {})},
        capture_output=True,
        timeout=60,
    )


def bring_home(env, done, extra=None, dest="home.safe.entry") -> bytes:
    """Run the printed hint verbatim (``<proper.address>`` filled in) with bash, then read
    ``dest`` back through the hint's own global flags. Returns the bytes stored there."""
    err = done.stderr.decode()
    assert done.returncode == 3, (done.returncode, err)
    assert KEPT.search(err) or "⏳ Kept as a file until you delete it" in err, err
    (hint,) = HINT.findall(err)
    hint = hint.replace("<proper.address>", dest)
    ran = subprocess.run(
        ["bash", "-c", hint], env={**env, **(extra or {})}, capture_output=True, timeout=60
    )
    assert ran.returncode == 0, (hint, ran.stderr.decode())
    words = shlex.split(hint.split("<")[0])
    assigned = {}
    while "=" in words[0]:  # an environment assignment such as PRONTO_MAX_VALUE_BYTES=N
        name, _, value = words.pop(0).partition("=")
        assigned[name] = value
    assert words[0] == "prontodb"
    command = next(i for i, w in enumerate(words) if w in ("copy", "set"))
    flags = words[1:command]
    if "--to-cursor" in words:
        flags += ["--cursor", words[words.index("--to-cursor") + 1]]
    got = prontodb(env, *flags, "get", dest, extra={**(extra or {}), **assigned})
    assert got.returncode == 0, got.stderr.decode()
    return got.stdout


def _insecure_store(env) -> list[str]:
    path = os.path.join(env["HOME"], "open.sqlite")
    assert prontodb(env, "--database", path, "set", "x.y.z", "1").returncode == 0
    os.chmod(path, 0o666)
    return ["--database", path]


def _directory_store(env) -> list[str]:
    path = os.path.join(env["HOME"], "dir.sqlite")
    os.mkdir(path)
    return ["--database", path]


def _existing(env) -> list[str]:
    assert prontodb(env, "set", "a.b.c", "old").returncode == 0
    return []


def _cursor(env) -> list[str]:
    assert prontodb(env, "cursor", "set", "work", "-p", "kb", "-n", "notes").returncode == 0
    return []


# (id, argv, extra env, setup returning extra leading argv, reason fragment on stderr)
CASES = [
    ("invalid-address", ["set", "invalid..address"], {}, None, "Invalid address"),
    ("incomplete-address", ["set", "notes"], {}, None, "Invalid address 'notes'"),
    ("no-address", ["set"], {}, None, "No address given"),
    ("help-word-taken-for-help", ["set", "help"], {}, None, "Invalid address 'help'"),
    ("unknown-command", ["sett", "a.b.c"], {}, None, "no such command 'sett'"),
    ("synonym-command", ["put", "a.b.c"], {}, None, "did you mean 'set'"),
    ("bare-prontodb", [], {}, None, "no command given"),
    ("unknown-option", ["set", "--bogus", "a.b.c"], {}, None, "no such option: --bogus"),
    ("unknown-global-option", ["--bogus", "set", "a.b.c"], {}, None, "no such option"),
    ("cursor-eats-command", ["--cursor", "set", "kb.notes.x"], {}, None, "--cursor needs a value"),
    ("user-eats-command", ["--user", "set", "kb.notes.x"], {}, None, "--user needs a value"),
    ("database-eats-command", ["--database", "set", "a.b.c"], {}, None, "needs a value"),
    ("project-eats-command", ["-p", "set", "a.b.c"], {}, None, "-p/--project needs a value"),
    ("namespace-eats-command", ["-n", "set", "a.b.c"], {}, None, "needs a value"),
    ("trailing-cursor", ["set", "a.b.c", "--cursor"], {}, None, "--cursor needs a value"),
    ("trailing-ttl", ["set", "a.b.c", "--ttl"], {}, None, "--ttl needs a value"),
    ("dash-value-attached", ["set", "app.db.password", "-pa55word"], {}, None, "go after --"),
    ("flag-with-value", ["set", "a.b.c", "--keep-ttl=yes"], {}, None, "takes no value"),
    ("ttl-and-keep-ttl", ["set", "a.b.c", "--ttl", "5", "--keep-ttl"], {}, None, "--keep-ttl"),
    ("bad-duration", ["set", "a.b.c", "--ttl", "soon"], {}, None, "Invalid duration"),
    ("zero-duration", ["set", "a.b.c", "--ttl", "0"], {}, None, "Invalid duration"),
    ("huge-duration", ["set", "a.b.c", "--ttl", "999999999999d"], {}, None, "too large"),
    ("unknown-cursor", ["--cursor", "nope", "set", "a.b.c"], {}, None, "nope"),
    ("bad-user-name", ["--user", "../x", "set", "a.b.c"], {}, None, "user name"),
    ("bad-delimiter", ["--ns-delim", "x", "set", "a.b.c"], {}, None, "delimiter"),
    ("empty-cursor-value", ["--cursor=", "set", "a.b.c"], {}, None, "--cursor"),
    (
        "locked-context",
        ["--user", "bob", "set", "a.b.c"],
        {"PRONTO_FORCE_USER": "keeper"},
        None,
        "Locked context",
    ),
    ("forced-user-invalid-address", ["set", "bad"], {"PRONTO_FORCE_USER": "keeper"}, None, "bad"),
    ("env-user-invalid-address", ["set", "bad"], {"PRONTO_USER": "alice"}, None, "bad"),
    ("cursor-invalid-address", ["--cursor", "work", "set", "a..b"], {}, _cursor, "Invalid"),
    ("insecure-store", ["set", "a.b.c"], {}, _insecure_store, "Storage failure"),
    ("store-is-a-directory", ["set", "a.b.c"], {}, _directory_store, "Storage failure"),
    ("bad-size-limit-env", ["set", "a.b.c"], {"PRONTO_MAX_VALUE_BYTES": "lots"}, None, "PRONTO"),
    ("stream-bad-token", ["stream"], {}, None, "stream"),
    ("stream-unknown-option", ["stream", "--bogus"], {}, None, "no such option"),
    ("stdin-flag-and-value", ["set", "a.b.c", "v", "--stdin"], {}, None, "not both"),
    ("condition-nx-not-applied", ["set", "a.b.c", "--nx"], {}, _existing, "Not applied"),
    ("condition-xx-not-applied", ["set", "x.y.z", "--xx"], {}, None, "Not applied"),
    ("condition-version-mismatch", ["set", "a.b.c", "--if-version", "999"], {}, _existing, "not"),
    ("bad-if-version", ["set", "a.b.c", "--if-version", "x"], {}, None, "--if-version"),
]


@pytest.mark.parametrize(
    ("argv", "extra", "setup", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_every_failure_class_comes_home_byte_exact(env, argv, extra, setup, reason):
    lead = setup(env) if setup else []
    done = prontodb(env, *lead, *argv, input=CONTENT, extra=extra)
    assert reason in done.stderr.decode(), done.stderr.decode()
    assert bring_home(env, done, extra) == CONTENT


def test_over_the_size_limit_comes_home_with_a_raised_limit(env):
    data = os.urandom(300_000)
    extra = {"PRONTO_MAX_VALUE_BYTES": "100000"}
    done = prontodb(env, "set", "big.blob.one", input=data, extra=extra)
    assert "Value too large: 300000 bytes" in done.stderr.decode()
    (hint,) = HINT.findall(done.stderr.decode())
    assert hint.startswith("PRONTO_MAX_VALUE_BYTES=300000 prontodb set big.blob.one < ")
    assert bring_home(env, done, extra, dest="big.blob.one") == data


def test_unexpected_exception_comes_home(env):
    patch = FAIL_STORE_SET.format(exc="RuntimeError('disk on fire')")
    done = prontodb(env, "set", "a.b.c", input=CONTENT, inject=patch)
    assert "Unexpected RuntimeError: disk on fire" in done.stderr.decode()
    assert bring_home(env, done) == CONTENT


def test_interrupt_while_storing_comes_home(env):
    patch = FAIL_STORE_SET.format(exc="KeyboardInterrupt")
    done = prontodb(env, "set", "a.b.c", input=CONTENT, inject=patch)
    assert "Interrupted" in done.stderr.decode()
    assert bring_home(env, done) == CONTENT


def test_json_rescue_object_and_error(env):
    done = prontodb(env, "--json", "set", "bad", input=CONTENT)
    assert done.returncode == 3
    obj = json.loads(done.stdout)
    assert obj["rescued"] is True and obj["partial"] is False and obj["file"] is None
    assert obj["key"].startswith("pipe.cache.") and obj["expires_at"] > time.time()
    assert obj["hint"] == f"prontodb copy {obj['key']} <proper.address>"
    assert json.loads(done.stderr) == {"error": obj["reason"], "exit": 3}


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_while_stdin_is_read_rescues_the_partial_content(env, sig):
    """The producer writes part of its input and keeps the pipe open; the signal arrives
    while ``prontodb set`` is still reading: what arrived is rescued, said to be partial."""
    first = b"line one\nline two\n"
    read_end, write_end = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-m", "prontodb", "set", "kb.log.tail"],
        stdin=read_end,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(read_end)
    try:
        os.write(write_end, first)
        # Wait until the child has consumed the bytes (the pipe is empty again) before the
        # signal, so the test says what it means: the content is partial, the read ongoing.
        deadline = time.monotonic() + 30
        while _pipe_pending(write_end) and time.monotonic() < deadline:
            time.sleep(0.01)
        _wait_for_handlers(child.pid)
        child.send_signal(getattr(signal, sig))
        out, err = child.communicate(timeout=60)
    finally:
        os.close(write_end)
        if child.poll() is None:
            child.kill()
    done = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    text = err.decode()
    assert f"Interrupted by {sig} while reading stdin; partial content (18 bytes read)" in text
    assert bring_home(env, done) == first


def _pipe_pending(fd: int) -> int:
    import fcntl
    import termios

    buf = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return int.from_bytes(buf, sys.byteorder)


def _wait_for_handlers(pid: int) -> None:
    """Wait until the child has installed its SIGTERM handler (it does so before it reads);
    a signal sent earlier would meet Python's defaults, which is a different test."""
    mask = 1 << (signal.SIGTERM - 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as fh:
                caught = next(ln for ln in fh if ln.startswith("SigCgt:"))
        except (OSError, StopIteration):
            return
        if int(caught.split()[1], 16) & mask:
            return
        time.sleep(0.01)
