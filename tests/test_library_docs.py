"""docs/python-api.md runs as written: every ```python block, in order, in one namespace, in a
fresh directory with an isolated HOME; and the package docstring's doctest."""

from __future__ import annotations

import doctest
import pathlib
import re

import prontodb

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "python-api.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def test_python_api_examples_run(tmp_path, home, monkeypatch, capsys):
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 8, "the examples were not found"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    namespace: dict[str, object] = {"__name__": "python_api_doc"}
    for number, code in enumerate(blocks, 1):
        try:
            exec(compile(code, f"{DOC.name} block {number}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{DOC.name} block {number} failed:\n{code}") from exc
    store = namespace["store"]
    assert isinstance(store, prontodb.Store)
    store.close()


def test_package_docstring_doctest():
    result = doctest.testmod(prontodb, raise_on_error=False)
    assert result.attempted > 0
    assert result.failed == 0
