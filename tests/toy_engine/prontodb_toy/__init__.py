"""A toy outside engine for ProntoDB's tests: an append-only log file, registered only through
the entry point ``prontodb.backends = toy -> prontodb_toy:SPEC`` (see tests/test_backend_toy.py).

This module is the light *spec* module: it imports nothing of the engine itself.
"""

from prontodb.backends import EngineSpec

SPEC = EngineSpec(
    name="toy",
    target="prontodb_toy.engine:ToyBackend",
    kind="file",
    extensions=(".toy",),
    magic=((0, b"PRONTOY1"),),
    side_suffixes=("-lock",),
    install_hint="pip install prontodb-toy (test fixture)",
)
