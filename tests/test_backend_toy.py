"""An outside engine, registered the way a third-party package registers one: a distribution
with a ``prontodb.backends`` entry point, on sys.path. The kit runs against it unchanged, and
the CLI uses it through a cursor in a separate process."""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from prontodb import backends
from prontodb.testing import BackendContract

SOURCE = pathlib.Path(__file__).parent / "toy_engine" / "prontodb_toy"


def _install_toy_distribution() -> str:
    """A site directory holding the toy package and its dist-info (entry point included)."""
    site = tempfile.mkdtemp(prefix="prontodb-toy-site-")
    atexit.register(shutil.rmtree, site, True)
    shutil.copytree(SOURCE, os.path.join(site, "prontodb_toy"))
    info = os.path.join(site, "prontodb_toy-0.1.dist-info")
    os.mkdir(info)
    with open(os.path.join(info, "METADATA"), "w") as fh:
        fh.write("Metadata-Version: 2.1\nName: prontodb-toy\nVersion: 0.1\n")
    with open(os.path.join(info, "entry_points.txt"), "w") as fh:
        fh.write("[prontodb.backends]\ntoy = prontodb_toy:SPEC\n")
    return site


SITE = _install_toy_distribution()
sys.path.insert(0, SITE)
backends.discover(refresh=True)


class TestToyContract(BackendContract):
    engine = "toy"


def test_the_toy_engine_came_from_its_entry_point():
    spec = backends.engine_spec("toy")
    assert spec.target == "prontodb_toy.engine:ToyBackend"
    assert "toy" in backends.engine_names(selectable_only=True)
    assert backends.from_extension("x.toy") == "toy"
    assert backends.side_suffixes()[-1:] == ("-lock",) or "-lock" in backends.side_suffixes()


def test_a_broken_entry_point_is_reported_not_fatal(tmp_path, monkeypatch):
    info = tmp_path / "broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[prontodb.backends]\nbroken = no_such_module:SPEC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    errors = backends.discover(refresh=True)
    assert "broken" in errors and "no_such_module" in errors["broken"]
    assert "broken" not in backends.engine_names()
    with pytest.raises(backends.ConfigError, match="cannot load"):
        backends.backend_class("broken")
    assert "toy" in backends.engine_names()  # the good ones are still there


def test_the_cli_uses_the_toy_engine_through_a_cursor(tmp_path, home):
    env = dict(home, PYTHONPATH=SITE)
    store = tmp_path / "team.toy"

    def cli(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "prontodb", *argv],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = cli("cursor", "set", "team", str(store))
    assert made.returncode == 0, made.stderr
    wrote = cli("--cursor", "team", "set", "app.cfg.colour", "blue")
    assert wrote.returncode == 0, wrote.stderr
    read = cli("--cursor", "team", "get", "app.cfg.colour")
    assert (read.returncode, read.stdout.strip()) == (0, "blue"), read.stderr
    assert backends.sniff(str(store)) == "toy"
    explicit = cli("cursor", "set", "other", str(tmp_path / "o.data"), "--backend", "toy")
    assert explicit.returncode == 0, explicit.stderr
    assert backends.sniff(str(tmp_path / "o.data")) == "toy"
