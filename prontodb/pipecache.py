"""The pipe cache: a home for piped content that could not be stored where it was sent.

Content is kept in the TTL namespace ``pipe.cache`` under
``<unix_seconds>_<md5[:8]>_<attempted>`` (docs/pipe-cache.md), with the namespace's default TTL
(900 s unless ``create-cache pipe.cache N`` changed it). :func:`rescue` tries a list of stores in
order and, when none can take the content or it is over the size limit, writes it to a 0600 file
under ``$XDG_CACHE_HOME/prontodb/rescue/`` instead. Content is never truncated.

This module is the library side; the CLI's messages and exit code live in
:mod:`prontodb.cli.rescue`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prontodb import paths
from prontodb.address import DEFAULT_DELIM, Address, parse
from prontodb.clock import system_clock
from prontodb.errors import ProntoError
from prontodb.store import DEFAULT_MAX_VALUE_BYTES, PIPE_CACHE, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from prontodb.clock import Clock

#: The attempted address is cut to this many characters in the cache key.
MAX_ATTEMPTED = 64
#: The key part used when no (usable) address was given.
NO_ADDRESS = "noaddr"
#: The directory (below ``$XDG_CACHE_HOME/prontodb``) of rescue files.
RESCUE_DIR = "rescue"
#: Stream detection looks at no more than this many ``;``-separated segments.
STREAM_SCAN_SEGMENTS = 10_000

_UNSAFE = re.compile(r"[^A-Za-z0-9]")


@dataclass(frozen=True, slots=True)
class Rescued:
    """Where rescued content went: a pipe-cache entry or, failing every store, a file.

    ``address`` is the cache address as printed (``pipe.cache.KEY``) and ``flags`` the global
    flags that reach its store (``--user K --cursor C``); ``file`` is the absolute path of a
    rescue file. ``reused`` is true when an identical rescue already held the content.
    ``passed_over`` says why each earlier place was not used. ``expires_at`` is the cache
    entry's deadline (epoch seconds); a rescue file has none (it stays until deleted).
    """

    address: str | None
    flags: tuple[str, ...]
    file: str | None
    reused: bool
    passed_over: tuple[str, ...] = ()
    expires_at: float | None = None

    @property
    def location(self) -> str:
        """The cache address, or the rescue file's path."""
        return self.address if self.address is not None else str(self.file)


@dataclass(frozen=True, slots=True)
class Place:
    """A store a rescue may use: the path and engine of a store, the (user, meta) layer inside
    it, and the global flags a user must repeat to reach that layer again."""

    path: str
    user: str
    meta: str | None = None
    backend: str | None = None
    durability: str = "normal"
    flags: tuple[str, ...] = ()


# -- names ---------------------------------------------------------------------------------------


def attempted_part(attempted: str | None) -> str:
    """The attempted address as a key part: each character outside ``A-Z a-z 0-9`` becomes one
    ``_`` (no collapsing), cut to 64 characters, trailing ``_`` stripped; ``noaddr`` when
    nothing is left or there was no address."""
    if not attempted:
        return NO_ADDRESS
    part = _UNSAFE.sub("_", attempted)[:MAX_ATTEMPTED].rstrip("_")
    return part or NO_ADDRESS


def cache_name(content: bytes, attempted: str | None, now: float) -> str:
    """The key of a rescue: ``<unix_seconds>_<md5[:8]>_<attempted>``."""
    digest = hashlib.md5(content, usedforsecurity=False).hexdigest()[:8]
    return f"{int(now)}_{digest}_{attempted_part(attempted)}"


def cache_address(name: str) -> Address:
    """The address of the cache entry ``name``. A name holding ``__`` (``a..b`` -> ``a__b``) is
    a key with a context, exactly as the printed address parses back."""
    return parse(f"{PIPE_CACHE[0]}.{PIPE_CACHE[1]}.{name}")


def _candidates(name: str) -> Iterable[str]:
    yield name
    n = 2
    while True:
        yield f"{name}_{n}"
        n += 1


# -- the cache namespace -------------------------------------------------------------------------


def put(store: Store, content: bytes, attempted: str | None) -> tuple[Address, bool]:
    """Keep ``content`` in ``store``'s ``pipe.cache`` (its user/meta layer), with the
    namespace's default TTL. Returns the address and whether an identical live entry under the
    same key was reused; a key holding other bytes gets ``_2``, ``_3``... One transaction."""
    with store.transaction():
        name = cache_name(content, attempted, store.clock())
        for key in _candidates(name):
            address = cache_address(key)
            try:
                held = store.get(address)
            except KeyError:
                store.set(address, content)
                return address, False
            if held == content:
                return address, True
    raise AssertionError("unreachable")  # pragma: no cover - _candidates never ends


# -- rescue files --------------------------------------------------------------------------------


def rescue_dir(env: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/prontodb/rescue`` (not created)."""
    return os.path.join(paths.cache_home(env), RESCUE_DIR)


def _private_dir(path: str) -> str:
    paths.make_private_dir(path)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise OSError(errno.EPERM, f"{path} is not a directory of this account")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def _fallback_dir() -> str:
    """A private directory in the system temp dir, for when the cache home cannot be written."""
    return _private_dir(os.path.join(tempfile.gettempdir(), f"prontodb-{os.geteuid()}", RESCUE_DIR))


class FileSink:
    """A rescue file written as content arrives, so content of any size is kept without
    being held in memory. It is created 0600 under :func:`rescue_dir` (or the private
    fallback directory) as a hidden temp file and appears under its final name, complete, on
    :meth:`finish`. ``size`` counts the bytes written."""

    def __init__(self, env: Mapping[str, str] | None = None, directory: str | None = None) -> None:
        first_error: OSError | None = None
        places = (
            [lambda: directory]
            if directory is not None
            else [lambda: rescue_dir(env), _fallback_dir]
        )
        for where in places:
            try:
                self.directory = os.path.abspath(_private_dir(where()))
                fd, self.tmp = tempfile.mkstemp(prefix=".incoming-", dir=self.directory)
                break
            except OSError as exc:
                first_error = first_error or exc
        else:
            assert first_error is not None
            raise first_error
        os.fchmod(fd, 0o600)
        self._fh = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        self._fh.write(data)
        self._md5.update(data)
        self.size += len(data)

    def flush(self) -> None:
        """Hand what was written to the file system, so that the temp file (``tmp``) can be
        read back while the sink stays open."""
        self._fh.flush()

    def finish(self, attempted: str | None, now: float | None = None) -> str:
        """Sync the file and give it its final name, ``<unix_seconds>_<md5[:8]>_<attempted>``
        (an identical existing file is reused; a different one gets ``_2``, ``_3``...).
        Returns its absolute path."""
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            stamp = int(system_clock() if now is None else now)
            name = f"{stamp}_{self._md5.hexdigest()[:8]}_{attempted_part(attempted)}"
            for candidate in _candidates(name):
                final = os.path.join(self.directory, candidate)
                try:
                    os.link(self.tmp, final)
                except FileExistsError:
                    if _same_file(final, self.tmp):
                        return final
                    continue
                paths.fsync_dir(self.directory)
                return final
        finally:
            self.discard()
        raise AssertionError("unreachable")  # pragma: no cover

    def discard(self) -> None:
        """Remove the temp file (after :meth:`finish`, or instead of it)."""
        if not self._fh.closed:
            self._fh.close()
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def write_file(directory: str, content: bytes, attempted: str | None, now: float) -> str:
    """Write ``content`` to a new 0600 file in ``directory`` (created 0700) named like a cache
    key; an identical existing file is reused, a different one gets ``_2``, ``_3``... The file
    appears complete or not at all. Returns its absolute path."""
    sink = FileSink(directory=directory)
    try:
        sink.write(content)
    except BaseException:
        sink.discard()
        raise
    return sink.finish(attempted, now)


def _same_file(a: str, b: str) -> bool:
    try:
        if os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x, y = fa.read(1 << 20), fb.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False


# -- the whole rescue ----------------------------------------------------------------------------


def rescue(
    content: bytes,
    attempted: str | None,
    places: Iterable[Place],
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    delim: str = DEFAULT_DELIM,
) -> Rescued:
    """Keep ``content`` somewhere it can be found again, never truncated.

    Tries each place in order (opening, or creating, its store) and keeps the content in the
    first one that works. Content over ``max_value_bytes``, or content no place could take,
    goes to a file in :func:`rescue_dir` (or, if that cannot be written either, a private
    directory in the system temp dir). Raises OSError only when no file could be written
    either.
    """
    from prontodb.opener import open_backend

    clock = clock or system_clock
    passed_over: list[str] = []
    if len(content) > max_value_bytes:
        passed_over.append(
            f"value is {len(content)} bytes, over the limit of {max_value_bytes} bytes"
        )
        places = ()
    for place in places:
        try:
            backend = open_backend(
                place.path, backend=place.backend, durability=place.durability, create=True
            )
            try:
                store = Store(
                    backend,
                    user=place.user,
                    meta=place.meta,
                    delim=delim,
                    clock=clock,
                    max_value_bytes=max_value_bytes,
                )
                address, reused = put(store, content, attempted)
                expires_at = store.get_entry(address).expires_at
            finally:
                backend.close()
            return Rescued(
                store.format(address), place.flags, None, reused, tuple(passed_over), expires_at
            )
        except (ProntoError, OSError) as exc:
            passed_over.append(f"{place.path}: {exc}")
        except Exception as exc:  # noqa: BLE001 - any store failure falls through to a file
            passed_over.append(f"{place.path}: unexpected {type(exc).__name__}: {exc}")
    first_error: OSError | None = None
    for directory in (lambda: rescue_dir(env), _fallback_dir):
        try:
            path = write_file(directory(), content, attempted, clock())
        except OSError as exc:
            first_error = first_error or exc
            passed_over.append(f"rescue file: {exc}")
            continue
        return Rescued(None, (), path, False, tuple(passed_over))
    assert first_error is not None
    raise first_error


# -- stream detection ----------------------------------------------------------------------------


def looks_like_stream(content: bytes) -> bool:
    """True when ``content`` looks like a token stream (§6.4): it contains ``;`` and at least
    one ``;``-separated segment parses as a ``meta:`` token, or two parse as data tokens.
    Only the first STREAM_SCAN_SEGMENTS segments of UTF-8 text are looked at."""
    if b";" not in content:
        return False
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    from prontodb.errors import StreamError
    from prontodb.streamtokens import tokenize

    data_tokens = 0
    for segment in text.split(";", STREAM_SCAN_SEGMENTS)[:STREAM_SCAN_SEGMENTS]:
        try:
            tokens = tokenize(segment)
        except StreamError:
            continue
        if len(tokens) != 1:
            continue
        prefix = tokens[0].prefix
        if prefix == "meta":
            return True
        if prefix != "sec":
            data_tokens += 1
            if data_tokens >= 2:
                return True
    return False
