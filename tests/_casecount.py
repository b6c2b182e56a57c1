"""How many generated cases the fuzz tests ran, by kind, reported at the end of the run.

The fuzz tests add to :data:`CASES`; ``tests/conftest.py`` prints the totals in pytest's
terminal summary (adding up the xdist workers' counts), so no test depends on running last.
"""

from __future__ import annotations

CASES: dict[str, int] = {}


def count(name: str, cases: int = 1) -> None:
    """Add ``cases`` cases of kind ``name``."""
    CASES[name] = CASES.get(name, 0) + cases


def merge(into: dict[str, int], other: dict[str, int]) -> dict[str, int]:
    """Add the counts of ``other`` to ``into`` and return ``into``."""
    for name, cases in other.items():
        into[name] = into.get(name, 0) + cases
    return into
