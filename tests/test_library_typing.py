"""``mypy --strict`` on a user's script passes against the INSTALLED package: the package is
built as a wheel (from a copy of the sources, so the worktree stays clean), installed without
dependencies into a fresh venv in tmp, and mypy (from this environment) checks the script with
that venv's interpreter, from a directory where the source tree is not importable. A second
script full of mistakes must fail, which proves mypy saw real types (py.typed), not Any.

Needs only pip's cache or the configured package index for the build backend."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import venv

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = pathlib.Path(__file__).resolve().parent / "typing"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> pathlib.Path:
    """The python of a fresh venv holding the built wheel of prontodb (and nothing else)."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for tree in ("prontodb", "bin"):
        shutil.copytree(ROOT / tree, source / tree, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "-w", str(root / "wheel"), str(source)],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        # Offline without setuptools a wheel cannot be built; in CI (which installs from the
        # package registry) a failed build is a failure, never a skip.
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot build the wheel: {built.stderr}")
        pytest.skip(f"cannot build the wheel here (no build backend reachable): {built.stderr}")
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / "bin" / "python"
    wheel = next((root / "wheel").glob("prontodb-*.whl"))
    subprocess.run(
        [*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    return python


def run_mypy(python: pathlib.Path, script: pathlib.Path, where: pathlib.Path):
    where.mkdir(exist_ok=True)
    shutil.copy(script, where / script.name)
    (where / "mypy.ini").write_text("[mypy]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            "mypy.ini",
            "--python-executable",
            str(python),
            "--cache-dir",
            str(where / ".mypy_cache"),
            script.name,
        ],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
    )


def test_the_installed_package_ships_py_typed(installed):
    """The venv imports prontodb from its own site-packages (the library needs none of its
    dependencies to import), and the marker file is there."""
    found = subprocess.run(
        [str(installed), "-c", "import prontodb, pathlib; print(pathlib.Path(prontodb.__file__))"],
        capture_output=True,
        text=True,
        cwd=installed.parent,
        check=True,
    )
    package = pathlib.Path(found.stdout.strip()).parent
    assert package.parent.name == "site-packages"
    assert package.is_relative_to(installed.parent.parent)
    assert (package / "py.typed").exists()


def test_mypy_strict_passes_on_a_user_script(installed, tmp_path):
    result = run_mypy(installed, SCRIPTS / "user_script.py", tmp_path / "good")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_mypy_strict_catches_mistakes(installed, tmp_path):
    result = run_mypy(installed, SCRIPTS / "user_mistakes.py", tmp_path / "bad")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert 'Incompatible types in assignment (expression has type "bytes"' in out
    assert 'Argument "ttl" to "set" of "Store" has incompatible type' in out
    assert '"Store" has no attribute "open_the_pod_bay_doors"' in out
    assert "missing library stubs or py.typed" not in out
