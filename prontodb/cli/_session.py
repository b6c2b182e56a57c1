"""The per-invocation session: global flags, the resolved store, and output helpers.

The session opens the store lazily (so ``--help`` never touches a file) and closes it when the
command ends, leaving no WAL or journal side file behind.
"""

from __future__ import annotations

import os
import sys

from prontodb.cli._echo import echo

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Mapping
    from typing import Any

    import click

    from prontodb.selection import Target
    from prontodb.store import Store


#: Paths of the stores opened by the running invocation, for error messages that lack one.
OPENED: list[str] = []


class Session:
    """Global options of one invocation and the store they select."""

    def __init__(
        self,
        *,
        user: str | None,
        cursor: str | None,
        database: str | None,
        meta: str | None,
        project: str | None,
        namespace: str | None,
        delim: str | None,
        json: bool,
        env: dict[str, str] | None = None,
    ) -> None:
        self.user_flag = user
        self.cursor_flag = cursor
        self.database_flag = database
        self.meta_flag = meta
        self.project = project
        self.namespace = namespace
        self.delim = delim or "."
        self.json = json
        self.env = dict(os.environ) if env is None else env
        self._target: Target | None = None
        self._stores: list[Store] = []

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any]) -> Session:
        """A Session from the root group's parameters by name (``user``, ``cursor``,
        ``database``, ``meta``, ``project``, ``namespace``, ``ns_delim``, ``as_json``); missing
        ones are unset."""
        return cls(
            user=flags.get("user"),
            cursor=flags.get("cursor"),
            database=flags.get("database"),
            meta=flags.get("meta"),
            project=flags.get("project"),
            namespace=flags.get("namespace"),
            delim=flags.get("ns_delim"),
            json=bool(flags.get("as_json")),
        )

    # -- store selection -------------------------------------------------------------------

    def target(self) -> Target:
        """Which store, layer and defaults this command uses (flags beat the environment)."""
        if self._target is None:
            from prontodb import selection

            self._target = selection.resolve(
                user=self.user_flag,
                meta=self.meta_flag,
                cursor=self.cursor_flag,
                database=self.database_flag,
                project=self.project,
                namespace=self.namespace,
                env=self.env,
            )
        return self._target

    def max_value_bytes(self) -> int:
        """``PRONTO_MAX_VALUE_BYTES`` (default 64 MiB)."""
        from prontodb.errors import ConfigError
        from prontodb.store import DEFAULT_MAX_VALUE_BYTES

        raw = self.env.get("PRONTO_MAX_VALUE_BYTES")
        if not raw:
            return DEFAULT_MAX_VALUE_BYTES
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(
                f"PRONTO_MAX_VALUE_BYTES must be a whole number, not {raw!r}"
            ) from None
        if value <= 0:
            raise ConfigError("PRONTO_MAX_VALUE_BYTES must be greater than zero")
        return value

    def open(self, *, write: bool, target: Target | None = None) -> Store:
        """Open the selected store (or ``target``). Reading commands never create a store at
        an explicit ``--database``/``PRONTO_DB`` path: a missing one is ``no store at PATH``."""
        from prontodb.opener import open_target

        t = target or self.target()
        create = write or not t.explicit_path
        store = open_target(
            t, create=create, delim=self.delim, max_value_bytes=self.max_value_bytes()
        )
        self._stores.append(store)
        OPENED.append(store.backend.path)
        return store

    def target_for(self, cursor_name: str | None) -> Target:
        """The target of this session, or the one reached through another cursor."""
        if cursor_name is None:
            return self.target()
        from prontodb import selection

        return selection.resolve(
            user=self.user_flag,
            meta=self.meta_flag,
            cursor=cursor_name,
            project=self.project,
            namespace=self.namespace,
            env=self.env,
        )

    def open_pair(self, from_cursor: str | None, to_cursor: str | None) -> tuple[Store, Store]:
        """Source and destination stores of a copy. Two targets on one file share one backend
        handle, so a copy within one file is a single transaction."""
        from prontodb.store import Store

        src_t, dst_t = self.target_for(from_cursor), self.target_for(to_cursor)
        source = self.open(write=False, target=src_t)
        if os.path.realpath(src_t.path) == os.path.realpath(dst_t.path):
            target = Store(
                source.backend,
                user=dst_t.user,
                meta=dst_t.meta,
                project=dst_t.project,
                namespace=dst_t.namespace,
                delim=self.delim,
                max_value_bytes=source.max_value_bytes,
                owns_backend=False,
            )
            return source, target
        return source, self.open(write=True, target=dst_t)

    def close(self) -> None:
        """Close every store this session opened."""
        while self._stores:
            self._stores.pop().close()

    # -- output ----------------------------------------------------------------------------

    def out(self, data: bytes) -> None:
        """Write raw bytes to stdout."""
        stream = sys.stdout.buffer
        stream.write(data)
        stream.flush()

    def line(self, text: str) -> None:
        """Write one line of data to stdout."""
        echo(text)

    def emit_json(self, obj: Any) -> None:
        """Write one JSON object per line to stdout."""
        import json

        echo(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))

    def status(self, text: str) -> None:
        """A status line on stderr (symbols fall back to ASCII when stderr cannot encode)."""
        echo(safe_symbols(text), err=True)


_ASCII = {"⚠️": "!!", "💡": "->", "❌": "x", "✅": "ok", "🗑️": "rm", "→": "->", "⏳": ".."}


def safe_symbols(text: str) -> str:
    """Replace emoji with ASCII stand-ins when stderr's encoding cannot carry them."""
    encoding = getattr(sys.stderr, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
        return text
    except (UnicodeEncodeError, LookupError):
        for symbol, plain in _ASCII.items():
            text = text.replace(symbol, plain)
        return text.encode(encoding, "replace").decode(encoding)


def session(ctx: click.Context) -> Session:
    """The Session of the running invocation."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Session)
    return obj
