"""The shipped kit, run against the built-in engines that have no module of their own, and the
check that every registered engine runs the kit somewhere in this suite."""

from __future__ import annotations

import pathlib

import pytest

from prontodb import backends
from prontodb.testing import BackendContract


class TestMemoryContract(BackendContract):
    engine = "memory"
    multiprocess = False


def test_every_registered_engine_runs_the_kit(request):
    """Asks the registry, so a newly registered engine fails here until its test module
    subclasses the kit (and an engine whose library is missing is reported, not hidden)."""
    covered = {
        item.cls.engine
        for item in request.session.items
        if item.cls is not None and issubclass(item.cls, BackendContract)
    }
    here = pathlib.Path(__file__).parent
    modules = {p.name for p in here.glob("test_backend_*.py")}
    collected = {item.path.name for item in request.session.items}
    if not modules <= collected:
        pytest.skip("only part of the suite was collected")
    missing = set(backends.engine_names()) - covered
    assert not missing, f"registered engines without a BackendContract test module: {missing}"
