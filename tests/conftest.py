"""Shared fixtures: every backend, isolated XDG homes, a fake clock."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from hypothesis import HealthCheck, settings

from prontodb import backends
from prontodb.backends import backend_class
from prontodb.clock import FakeClock

from . import _casecount

# No test asserts a timing: hypothesis's per-example deadline (200 ms) is one, and a loaded CI
# machine trips it. Every property test runs without it and without the too-slow check.
settings.register_profile("prontodb", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("prontodb")

#: Engines with local stores, as the registry lists them (a url engine brings its own tests:
#: its server is not something every run has).
FILE_BACKENDS = backends.file_engines()
#: Every engine the Store-level tests run on: the local ones plus the in-process reference.
ALL_BACKENDS = (*FILE_BACKENDS, "memory")
EXTENSIONS = {name: backends.default_extension(name) for name in ALL_BACKENDS}

#: Real redis-server processes for the redis engine's tests (tests/_redis.py).
pytest_plugins = ["tests._redis"]
#: Fuzz case counts reported by finished xdist workers (the controller's own are in CASES).
_WORKER_CASES: dict[str, int] = {}


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the long soak tests marked slow (see docs/reliability.md)",
    )


def pytest_collection_modifyitems(config, items):
    # That every registered engine runs the kit is checked by a test that asks the registry
    # (tests/test_backend_contract.py), so a new engine never breaks collection.
    if not config.getoption("--run-slow"):
        skip = pytest.mark.skip(reason="long soak test: run with --run-slow")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)


def pytest_sessionfinish(session):
    # An xdist worker hands its fuzz case counts to the controller (see pytest_testnodedown).
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fuzz_cases"] = dict(_casecount.CASES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _casecount.merge(_WORKER_CASES, getattr(node, "workeroutput", {}).get("fuzz_cases", {}))


def pytest_terminal_summary(terminalreporter):
    """How many generated cases the fuzz tests ran (tests/_casecount.py), when any ran."""
    cases = _casecount.merge(dict(_casecount.CASES), _WORKER_CASES)
    if cases:
        terminalreporter.write_line(
            f"fuzz cases: {json.dumps(cases, ensure_ascii=False)} total {sum(cases.values())}"
        )


def store_path(tmp_path, name: str) -> str:
    if name == "memory":
        return f"memory://{uuid.uuid4().hex}"
    return str(tmp_path / f"store{EXTENSIONS[name]}")


@pytest.fixture(params=ALL_BACKENDS)
def backend_name(request) -> str:
    return request.param


@pytest.fixture(params=FILE_BACKENDS)
def file_backend_name(request) -> str:
    return request.param


@pytest.fixture
def backend_path(tmp_path, backend_name) -> str:
    return store_path(tmp_path, backend_name)


@pytest.fixture
def open_backend(backend_name, backend_path):
    """Open (another handle on) the fixture's store; all handles are closed at teardown."""
    handles = []

    def opener(**kwargs):
        handle = backend_class(backend_name)(backend_path, **kwargs)
        handles.append(handle)
        return handle

    yield opener
    for handle in handles:
        handle.close()
    if backend_name == "memory":
        from prontodb.backends.memory import forget

        forget(backend_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(backend_name, backend_path, clock):
    import prontodb

    s = prontodb.open(backend_path, backend=backend_name, clock=clock)
    yield s
    s.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An isolated HOME and XDG tree; returns the environment to hand to subprocesses."""
    root = tmp_path / "home"
    root.mkdir()
    env = {
        "HOME": str(root),
        "XDG_DATA_HOME": str(root / "data"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CACHE_HOME": str(root / "cache"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in list(os.environ):
        if key.startswith("PRONTO_"):
            monkeypatch.delenv(key)
    full = {k: v for k, v in os.environ.items() if not k.startswith("PRONTO_")}
    full.update(env)
    return full


# Recording the command lines the suite runs for the hot-path commands (tests/test_cli_hot.py
# replays them on both paths). Off unless PRONTO_RECORD_HOT_ARGV names a file to append to;
# the test's own temporary directory in a word is written as {tmp}. The replay itself (and
# the second classification of a line the hot path hands to click) are not new lines: the
# fixture keeps each distinct line once.
_RECORD_HOT = os.environ.get("PRONTO_RECORD_HOT_ARGV")
if _RECORD_HOT:
    import re

    import prontodb.cli.argv as _argv_module
    from prontodb.cli._hot import HOT

    _classify = _argv_module.classify
    _TMP = re.compile(r"/[^\s=]*?/pytest-\d+/[^/\s=]+")

    def _recording_classify(argv):
        call = _classify(argv)
        replaying = "test_cli_hot.py" in os.environ.get("PYTEST_CURRENT_TEST", "")
        if call.path and call.path[0] in HOT and not replaying:
            words = [_TMP.sub("{tmp}", word) for word in argv]
            with open(_RECORD_HOT, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(words) + "\n")
        return call

    _argv_module.classify = _recording_classify
