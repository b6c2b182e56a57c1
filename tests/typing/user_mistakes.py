"""Mistakes ``mypy --strict`` must catch against the installed package (each line is one)."""

from __future__ import annotations

import prontodb

store = prontodb.open("data/app.sqlite")
number: int = store["app.users.alice"]
store.set("app.users.alice", b"v", ttl=[5])
store.open_the_pod_bay_doors()
