"""The built wheel: what ships, and what must not."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # Built from a copy of the tracked files only: a stale build/ or egg-info in the working
    # tree (setuptools reuses them in an in-tree build) must not hide a file the wheel lacks.
    source = build / "source"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        origin, copy = ROOT / name.decode(), source / name.decode()
        copy.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_symlink():
            copy.symlink_to(os.readlink(origin))
        elif origin.is_file():
            shutil.copy2(origin, copy)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "-q",
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=build,
    )
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("prontodb-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_ships_every_engine_the_kit_and_py_typed(wheel_names):
    engines = {p.name for p in (ROOT / "prontodb" / "backends").glob("*.py")}
    shipped = {n.rsplit("/", 1)[1] for n in wheel_names if n.startswith("prontodb/backends/")}
    assert engines and engines <= shipped
    assert "prontodb/py.typed" in wheel_names
    assert "prontodb/testing/__init__.py" in wheel_names


def test_wheel_ships_every_module_of_the_source_tree(wheel_names):
    """Every tracked module under prontodb/ is in the wheel (a hand-kept package list once
    left out prontodb.portable, hidden by a stale build/ directory in the working tree)."""
    tracked = subprocess.run(
        ["git", "ls-files", "prontodb"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    modules = {name for name in tracked if name.endswith(".py")}
    assert "prontodb/portable/__init__.py" in modules
    assert modules <= set(wheel_names), sorted(modules - set(wheel_names))


def test_wheel_has_no_top_level_backends_or_tests(wheel_names):
    tops = {n.split("/", 1)[0] for n in wheel_names}
    assert "backends" not in tops
    assert "tests" not in tops
    assert {t for t in tops if not t.endswith((".dist-info", ".data"))} == {"prontodb"}


def test_one_version_in_the_wheel_the_package_and_the_cli(wheel):
    """The version is written once (prontodb.__version__); the wheel's metadata and
    ``prontodb --version`` say the same."""
    import prontodb

    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        fields = archive.read(metadata).decode().split("\n\n", 1)[0].splitlines()
    assert f"Version: {prontodb.__version__}" in fields
    assert wheel.name.startswith(f"prontodb-{prontodb.__version__}-")
    done = subprocess.run(
        [sys.executable, "-m", "prontodb", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"prontodb {prontodb.__version__}\n"
    with open(ROOT / "pyproject.toml", "rb") as fh:
        pyproject = tomllib.load(fh)
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "prontodb.__version__"}


def test_the_command_is_a_plain_script_that_imports_nothing_before_prontodb(wheel):
    """``prontodb`` ships as a script (pip rewrites its ``#!python``), not as an entry point
    whose pip<25 wrapper imports ``re`` first (docs/performance.md, one-shot start-up)."""
    with zipfile.ZipFile(wheel) as archive:
        (script,) = (n for n in archive.namelist() if n.endswith(".data/scripts/prontodb"))
        text = archive.read(script).decode()
        assert not any(n.endswith("entry_points.txt") for n in archive.namelist())
    lines = [ln for ln in text.splitlines() if ln.startswith(("import ", "from "))]
    assert text.startswith("#!python")
    assert lines == ["import sys", "from prontodb.cli import main"]
