"""The click-free hot path (prontodb.cli._hot) against the click path: same argv, same stdout,
stderr and exit code, and the same store afterwards.

The command lines are every one the test suite runs for the hot commands
(tests/fixtures/hot_argv.json, recorded by the hook in tests/conftest.py; regenerate with
``PRONTO_RECORD_HOT_ARGV=/tmp/rec.jsonl pytest -n 2`` and the snippet in :func:`_load`'s
docstring) plus the failure shapes below. Each side replays them in order in its own home,
the hot side with the hot path on, the click side with ``PRONTO_NO_FAST=1``.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import prontodb
from prontodb.cli import _hot, run
from prontodb.cli.argv import classify

FIXTURE = Path(__file__).parent / "fixtures" / "hot_argv.json"

#: Failure shapes and flag placements, run before the recorded lines.
SHAPES: list[list[str]] = [
    ["set", "p.n.k", "hello"],
    ["get", "p.n.k"],
    ["get", "p.n.missing"],
    ["get", "p.n.k", "p.n.missing"],
    ["get", "--default", "dflt", "p.n.missing"],
    ["--json", "get", "p.n.k"],
    ["get", "p.n.k", "--json"],
    ["--json", "get", "p.n.missing"],
    ["get", "bad..address"],
    ["--json", "get", "bad..address"],
    ["get", "-p", "p", "-n", "n", "k"],
    ["-p", "p", "-n", "n", "get", "k"],
    ["--project=p", "--namespace=n", "get", "k"],
    ["-pp", "-nn", "get", "k"],
    ["get", "--", "p.n.k"],
    ["set", "p.n.dash", "--", "-5"],
    ["get", "p.n.dash"],
    ["set", "p.n.k", "--nx", "again"],
    ["--json", "set", "p.n.k", "--nx", "again"],
    ["set", "p.n.fresh", "--xx", "v"],
    ["set", "p.n.k", "--if-version", "1", "v2"],
    ["set", "p.n.k", "--if-version", "x", "v2"],
    ["set", "p.n.t", "v", "--ttl", "1h"],
    ["set", "p.n.t", "v", "--ttl", "soon"],
    ["set", "p.n.t", "v", "--ttl", "1h", "--keep-ttl"],
    ["set", "bad..address", "v"],
    ["set", "bad..address"],  # piped content rescued
    ["set", "p.n.piped"],  # piped content stored
    ["set", "p.n.piped", "--nx"],  # condition fails: rescued
    ["set", "--stdin", "p.n.k", "v"],  # usage error with piped content: rescued
    ["set"],
    ["exists", "p.n.k"],
    ["exists", "p.n.k", "p.n.missing"],
    ["--json", "exists", "p.n.k", "p.n.missing"],
    ["exists", "bad..address"],
    ["incr", "p.n.c"],
    ["incr", "p.n.c", "5"],
    ["decr", "p.n.c", "--", "-3"],
    ["--json", "incr", "p.n.c"],
    ["incr", "p.n.k"],  # not a counter
    ["incr", "p.n.c", "x"],
    ["set", "p.n.big", "9223372036854775807"],
    ["incr", "p.n.big"],
    ["del", "p.n.c"],
    ["del", "p.n.c", "p.n.k"],
    ["--json", "del", "p.n.nothing"],
    ["del"],
    ["del", "--dry-run", "p.n.k"],
    ["del", "--scope", "p.n", "--dry-run"],
    ["del", "--scope", "p"],
    ["get", "help"],
    ["get", "--help"],
    ["--version"],
    ["get"],
    ["get", "--bogus", "p.n.k"],
    ["--ns-delim", ":", "get", "p:n:k"],
]


def _load() -> list[list[str]]:
    """The recorded command lines. Regenerate: run the suite with PRONTO_RECORD_HOT_ARGV set,
    then write the distinct lines of that file, sorted, as one JSON list into the fixture."""
    lines = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert len(lines) > 1000, "the recorded command lines are missing"
    return lines


_VOLATILE = [
    (re.compile(r"pipe\.cache\.\d+_[0-9a-f]+"), "pipe.cache.ID"),
    (re.compile(r"Kept for [0-9hms]+, until \d\d:\d\d"), "Kept for D, until HH:MM"),
    (re.compile(r'"(written_at|expires_at)":[0-9.e+]+'), r'"\1":T'),
]


def _normal(text: str, root: str) -> str:
    if root:
        text = text.replace(root, "{root}")
    for pattern, stand_in in _VOLATILE:
        text = pattern.sub(stand_in, text)
    return text


class Side:
    """One replay: its own home and working directory, the hot path on or off."""

    def __init__(self, root: Path, fast: bool) -> None:
        self.root = root
        self.fast = fast
        self.work = root / "work" / "a" / "b"
        self.work.mkdir(parents=True)
        self.env = {
            "HOME": str(root / "home"),
            "XDG_DATA_HOME": str(root / "home" / "data"),
            "XDG_CONFIG_HOME": str(root / "home" / "config"),
            "XDG_CACHE_HOME": str(root / "home" / "cache"),
        }

    def run(self, argv: list[str], stdin: bytes) -> tuple[int, str, str]:
        argv = [w.replace("{tmp}", str(self.root / "tmp")) for w in argv]
        saved_env = dict(os.environ)
        saved_io = sys.stdin, sys.stdout, sys.stderr
        saved_cwd = os.getcwd()
        out, err = io.BytesIO(), io.BytesIO()
        for key in list(os.environ):
            if key.startswith("PRONTO_"):
                del os.environ[key]
        os.environ.update(self.env)
        if not self.fast:
            os.environ[_hot.NO_FAST_ENV] = "1"
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
        sys.stdout = io.TextIOWrapper(out, encoding="utf-8")
        sys.stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace")
        os.chdir(self.work)
        try:
            code = run(argv)
            sys.stdout.flush()
            sys.stderr.flush()
            stdout, stderr = out.getvalue(), err.getvalue()
        finally:
            os.chdir(saved_cwd)
            sys.stdin, sys.stdout, sys.stderr = saved_io
            os.environ.clear()
            os.environ.update(saved_env)
        root = str(self.root)
        return (
            code,
            _normal(stdout.decode("utf-8", "backslashreplace"), root),
            _normal(stderr.decode("utf-8", "backslashreplace"), root),
        )

    def contents(self) -> list[tuple[str, bytes]]:
        """Every entry of the default store (the replay's lasting effect); rescues named
        without their time (two rescues of the same content and address within one second
        share one entry, so how many there are depends on the clock)."""
        path = Path(self.env["XDG_DATA_HOME"]) / "prontodb"
        if not path.exists():
            return []
        found = []
        for file in sorted(path.rglob("*.sqlite")):
            with prontodb.open(str(file)) as store:
                found += [(_normal(str(e.address), ""), e.value) for e in store.entries()]
        return sorted(set(found))


def _stdin_for(argv: list[str]) -> bytes:
    return b"piped content\n" if classify(argv).rescues else b""


def test_hot_and_click_paths_agree_on_every_recorded_command_line(tmp_path):
    hot, slow = Side(tmp_path / "hot", fast=True), Side(tmp_path / "click", fast=False)
    served = 0
    for argv in [*SHAPES, *_load()]:
        stdin = _stdin_for(argv)
        served += _hot.serves(classify(argv))
        assert hot.run(argv, stdin) == slow.run(argv, stdin), argv
    assert served > 1000  # the hot side really ran most of them on the hot path
    assert hot.contents() == slow.contents()


def test_calls_the_hot_path_does_not_serve_are_left_to_click():
    for argv in (
        ["get", "--help"],
        ["get", "help"],
        ["get"],
        ["--version"],
        ["keys"],
        ["get", "--bogus", "x"],
        ["--ns-delim", ":", "get", "p:n:k"],
        ["cursor", "list"],
    ):
        assert not _hot.serves(classify(argv)), argv
    for argv in (["get", "p.n.k"], ["--json", "set", "p.n.k", "v"], ["incr", "c", "--", "-2"]):
        assert _hot.serves(classify(argv)), argv


#: What a hot command must not import (docs/performance.md, start-up), by engine: click,
#: the modules session 3 took off the start-up path (typing, re and enum, dataclasses and
#: inspect, contextlib, urllib, entry-point metadata, the sqlite3 package's datetime), and
#: every other engine; session 4 added threading, functools/collections on lmdb (through
#: contextlib or threading), the operator/struct wrappers and the rarely needed error classes
#: (a get that misses raises NotFoundError, one of those). A diskcache store imports the
#: diskcache package, which imports much of this itself; only what ProntoDB controls is
#: checked there.
_NEVER = ("click", "dataclasses", "inspect", "importlib.metadata", "urllib.parse", "redis")
_HOT_FORBIDDEN = {
    "sqlite": _NEVER
    + ("typing", "re", "enum", "datetime", "tempfile", "fnmatch", "json", "threading")
    + ("struct", "prontodb._rare_errors")
    + ("lmdb", "diskcache", "prontodb.backends.lmdb", "prontodb.backends.diskcache"),
    # an lmdb command imports neither threading (prontodb._threadsync) nor contextlib
    # (prontodb._lazy), so not functools and collections either
    "lmdb": _NEVER
    + ("typing", "re", "enum", "datetime", "tempfile", "fnmatch", "json", "threading")
    + ("contextlib", "functools", "collections", "operator", "prontodb._rare_errors")
    + ("diskcache", "_sqlite3", "prontodb.backends.sqlite", "prontodb.backends.diskcache"),
    "diskcache": _NEVER + ("lmdb", "prontodb.backends.lmdb"),
}
_HOT_PROBE = """
import sys
sys.path[:0] = [{root!r}]
sys.path.append({purelib!r})
from prontodb.cli import run
code = run({argv!r})
print(code, sorted(sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("engine", ["sqlite", "lmdb", "diskcache"])
@pytest.mark.parametrize(
    "argv",
    [
        ["set", "p.n.k", "v"],
        ["get", "p.n.k"],
        ["exists", "p.n.k"],
        ["incr", "p.n.c"],
        ["decr", "p.n.c"],
        ["del", "p.n.k"],
        ["get", "p.n.missing"],
    ],
)
def test_a_hot_command_imports_no_click_no_typing_and_no_other_engine(home, tmp_path, engine, argv):
    """Run in ``python -S`` (no site: the editable install's import hook imports re) with the
    source tree and the installed packages on the path, as a regular install runs."""
    import sysconfig

    db = str(tmp_path / f"store.{engine}")
    subprocess.run(
        [sys.executable, "-m", "prontodb", "--database", db, "set", "p.n.k", "v"],
        env=home,
        check=True,
        capture_output=True,
    )
    probe = _HOT_PROBE.format(
        root=str(Path(__file__).parent.parent),
        purelib=sysconfig.get_paths()["purelib"],
        argv=["--database", db, *argv],
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe], env=home, capture_output=True, text=True, check=True
    )
    code, modules = done.stderr.strip().splitlines()[-1].split(" ", 1)
    imported = set(eval(modules))  # a printed list of module names
    assert code in ("0", "2"), done.stderr
    assert "prontodb.cli._hot" in imported
    forbidden = set(_HOT_FORBIDDEN[engine])
    if argv[0] in ("get", "exists") and engine != "diskcache":
        forbidden.add("contextlib")  # a read enters no transaction (prontodb._lazy)
    if "p.n.missing" in argv:
        forbidden.discard("prontodb._rare_errors")  # NotFoundError
    assert sorted(imported & forbidden) == [], done.stderr


# -- the process's end after a hot command (prontodb.cli._end_now) -----------------------------


def _cli_process(
    env: dict[str, str], argv: list[str], *, fast: bool, stdin: bytes = b"", **kw: object
) -> subprocess.CompletedProcess[bytes]:
    env = dict(env)
    if not fast:
        env[_hot.NO_FAST_ENV] = "1"
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "prontodb", *argv], env=env, input=stdin, capture_output=True, **kw
    )


def test_a_hot_process_ends_as_the_click_process_does(home, tmp_path):
    """The console entry (``main``) ends a hot command with ``os._exit``: same exit code,
    stdout and stderr as the click path (which exits as usual), for every failure shape, and
    the same store afterwards."""
    stores = {}
    for fast in (True, False):
        db = str(tmp_path / f"store-{fast}.sqlite")
        stores[fast] = db
        for argv in SHAPES:
            _cli_process(home, ["--database", db, *argv], fast=fast, stdin=_stdin_for(argv))
    for argv in SHAPES:
        hot, slow = (
            _cli_process(home, ["--database", stores[f], *argv], fast=f, stdin=_stdin_for(argv))
            for f in (True, False)
        )
        outcome = [
            (done.returncode, _normal(done.stdout.decode(), str(tmp_path))) for done in (hot, slow)
        ]
        errs = [
            _normal(done.stderr.decode().replace(stores[f], "{db}"), str(tmp_path))
            for done, f in ((hot, True), (slow, False))
        ]
        assert outcome[0] == outcome[1], argv
        assert errs[0] == errs[1], argv
    contents = []
    for f in (True, False):
        with prontodb.open(stores[f]) as store:
            contents.append(
                sorted({(_normal(str(e.address), ""), e.value) for e in store.entries()})
            )
    assert contents[0] == contents[1]


def test_a_hot_process_still_runs_atexit_callbacks(home, tmp_path):
    db = str(tmp_path / "s.sqlite")
    _cli_process(home, ["--database", db, "set", "p.n.k", "v"], fast=True, check=True)
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
        f"sys.argv = ['prontodb', '--database', {db!r}, 'get', 'p.n.k']\n"
        "from prontodb.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=home, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "v", "atexit ran\n")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_hot_process_whose_output_cannot_be_written_exits_as_before(home, tmp_path):
    db = str(tmp_path / "s.sqlite")
    _cli_process(home, ["--database", db, "set", "p.n.k", "v"], fast=True, check=True)
    results = []
    for fast in (True, False):
        with open("/dev/full", "wb") as full:
            env = dict(home, **({} if fast else {_hot.NO_FAST_ENV: "1"}))
            done = subprocess.run(
                [sys.executable, "-m", "prontodb", "--database", db, "get", "p.n.k"],
                env=env,
                stdout=full,
                stderr=subprocess.PIPE,
                check=False,
            )
        results.append((done.returncode, done.stderr.count(b"No space left on device") > 0))
    assert results[0] == results[1]
    assert results[0][0] != 0


def test_a_hot_process_writing_to_a_closed_pipe_exits_as_before(home, tmp_path):
    db = str(tmp_path / "s.sqlite")
    _cli_process(home, ["--database", db, "set", "p.n.k", "v" * 100_000], fast=True, check=True)
    codes = []
    for fast in (True, False):
        env = dict(home, **({} if fast else {_hot.NO_FAST_ENV: "1"}))
        reader_gone = subprocess.Popen(
            [sys.executable, "-m", "prontodb", "--database", db, "get", "p.n.k"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert reader_gone.stdout is not None and reader_gone.stderr is not None
        reader_gone.stdout.close()  # nobody reads: the write meets a closed pipe
        err = reader_gone.stderr.read()
        codes.append((reader_gone.wait(), err))
    assert codes[0] == codes[1]
