"""The built wheel: what ships, and what must not."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
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
    (wheel,) = out.glob("prontodb-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_ships_every_engine_the_kit_and_py_typed(wheel_names):
    engines = {p.name for p in (ROOT / "prontodb" / "backends").glob("*.py")}
    shipped = {n.rsplit("/", 1)[1] for n in wheel_names if n.startswith("prontodb/backends/")}
    assert engines and engines <= shipped
    assert "prontodb/py.typed" in wheel_names
    assert "prontodb/testing/__init__.py" in wheel_names


def test_wheel_has_no_top_level_backends_or_tests(wheel_names):
    tops = {n.split("/", 1)[0] for n in wheel_names}
    assert "backends" not in tops
    assert "tests" not in tops
    assert {t for t in tops if not t.endswith(".dist-info")} == {"prontodb"}
