"""A worker process for the redis reliability tests: one "machine" (its own HOME) writing,
incrementing and compare-and-setting one shared store through a cursor, and recording what
was acknowledged.

Run through ``multiprocessing`` (spawn). Each operation is one of: a unique write, a counter
increment (``Store.incr``) and a compare-and-set append to a shared list (``set`` with
``if_version`` of the entry that was read, retried until it applies). An operation whose call
returned is *acknowledged*; one that raised a BackendError (server down, failover) has an
unknown outcome and is counted apart. The result is written as JSON to ``out``.
"""

from __future__ import annotations

import json
import os
import time


def work(home: dict[str, str], worker: int, ops: int, seconds: float, out: str) -> None:
    os.environ.update(home)
    import prontodb
    from prontodb.errors import BackendError, ConflictError, NotFoundError

    acked: list[str] = []
    counted = unknown_counts = 0
    appended: list[str] = []
    unknown: list[str] = []
    errors: dict[str, int] = {}
    store = prontodb.open(cursor="team")
    with open(out + ".ready", "w"):
        pass  # the parent starts its clock (and its failover) once every worker is ready
    deadline = time.monotonic() + seconds
    i = 0
    while i < ops and time.monotonic() < deadline:
        kind = i % 3
        try:
            if kind == 0:
                key = f"w.w{worker}.k{i}"
                store.set(key, f"{worker}:{i}")
                acked.append(key)
            elif kind == 1:
                try:
                    store.incr("c.shared.counter")
                    counted += 1
                except BaseException:
                    unknown_counts += 1
                    raise
            else:
                # Compare-and-set: append to a shared list only if it is still the version
                # that was read; on "not applied" read again (a lock-free retry loop).
                item = f"{worker}-{i}"
                try:
                    while True:
                        try:
                            entry = store.entry("c.shared.list")
                            now, version = entry.value.decode(), entry.version
                        except NotFoundError:
                            if store.set("c.shared.list", item, only_if_absent=True):
                                break
                            continue
                        if store.set("c.shared.list", f"{now} {item}", if_version=version):
                            break
                    appended.append(item)
                except BaseException:
                    unknown.append(item)
                    raise
        except (BackendError, ConflictError) as exc:
            name = type(exc).__name__
            errors[name] = errors.get(name, 0) + 1
            time.sleep(0.05)
        i += 1
    store.close()
    with open(out, "w") as fh:
        json.dump(
            {
                "acked": acked,
                "counted": counted,
                "unknown_counts": unknown_counts,
                "appended": appended,
                "unknown_appends": unknown,
                "errors": errors,
            },
            fh,
        )
