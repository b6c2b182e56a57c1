"""The registry of storage engines: one record per engine, loaded lazily by name.

Every fact about an engine (its name, kind ``file``/``directory``/``url``, extensions, magic
bytes, side files, install hint and the dotted path of its :class:`Backend` subclass) lives in
one :class:`EngineSpec`; nothing else in ProntoDB lists engines or their suffixes, other modules
ask the queries below. Built-in engines are records in this module, described the same way as
outside ones, which are discovered through the entry-point group ``prontodb.backends``: each
entry point names an :class:`EngineSpec` (or a mapping of its fields) in a light module.
Importing this package imports no engine, and entry points are read only when a built-in record
does not answer the question (see docs/architecture.md).
"""

from __future__ import annotations

import os
import stat
import sys
import time
from _thread import allocate_lock

from prontodb._frozen import Frozen, slot_setters
from prontodb.backends.base import Backend
from prontodb.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a one-shot command never imports typing
    from collections.abc import Iterator, Mapping
    from typing import IO, Any

#: ``types.MappingProxyType``, without importing :mod:`types` at start-up.
MappingProxyType = type(type.__dict__)

__all__ = [
    "Backend",
    "EngineSpec",
    "backend_class",
    "default_extension",
    "discover",
    "engine_names",
    "engine_spec",
    "file_engines",
    "from_extension",
    "is_url",
    "without_password",
    "register",
    "register_backend",
    "resolve_backend",
    "side_files",
    "sniff",
    "store_files",
    "strip_extension",
]

SQLITE_MAGIC = b"SQLite format 3\x00"
LMDB_MAGIC = (0xBEEFC0DE).to_bytes(4, "little")
#: The entry-point group that outside engines register under.
ENTRY_POINT_GROUP = "prontodb.backends"
KINDS = ("file", "directory", "url")
#: The engine of a new store when nothing (request, extension) chooses one.
DEFAULT_ENGINE = "sqlite"


class EngineSpec(Frozen):
    """Every fact about one engine, without importing it.

    ``target`` is ``"module.path:Class"`` of the :class:`Backend` subclass, imported when a
    store of the engine is opened. ``kind`` says what a location is: a ``file`` (with
    ``side_suffixes`` naming the files kept next to it, e.g. ``-wal``), a ``directory``, or a
    ``url`` (one of ``schemes``; never turned into a local path). ``magic`` lists
    ``(offset, bytes)`` that all appear at the start of the engine's main file — for a
    directory engine, of ``probe``, a file inside the directory. ``extensions`` select the
    engine for a new store (the first is the one given to new stores). ``selectable`` is False
    for engines that users do not choose for a store on disk (memory, for tests).

    An immutable, hashable value with a dataclass-style ``repr`` and equality over its fields
    (a slotted :class:`~prontodb._frozen.Frozen` class rather than a dataclass: building a
    dataclass imports :mod:`inspect`, which a one-shot command cannot afford). Invalid facts
    raise ValueError; :meth:`replace` gives a copy with some fields changed.
    """

    __slots__ = (
        "name",
        "target",
        "kind",
        "extensions",
        "magic",
        "probe",
        "side_suffixes",
        "schemes",
        "install_hint",
        "selectable",
    )
    name: str
    target: str
    kind: str
    extensions: tuple[str, ...]
    magic: tuple[tuple[int, bytes], ...]
    probe: str | None
    side_suffixes: tuple[str, ...]
    schemes: tuple[str, ...]
    install_hint: str
    selectable: bool

    def __init__(
        self,
        name: str,
        target: str,
        kind: str = "file",
        extensions: tuple[str, ...] = (),
        magic: tuple[tuple[int, bytes], ...] = (),
        probe: str | None = None,
        side_suffixes: tuple[str, ...] = (),
        schemes: tuple[str, ...] = (),
        install_hint: str = "",
        selectable: bool = True,
    ) -> None:
        values = (
            name,
            target,
            kind,
            extensions,
            magic,
            probe,
            side_suffixes,
            schemes,
            install_hint,
            selectable,
        )
        for setter, value in zip(_SPEC_SETTERS, values, strict=True):
            setter(self, value)
        self._check()

    def _check(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"engine name must be letters, digits, '-' or '_': {self.name!r}")
        if ":" not in self.target:
            raise ValueError(f"engine target must look like 'module:Class', got {self.target!r}")
        if self.kind not in KINDS:
            raise ValueError(f"engine kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "url" and not self.schemes:
            raise ValueError(f"url engine {self.name!r} needs at least one URL scheme")
        for ext in self.extensions:
            if not ext.startswith(".") or ext != ext.lower():
                raise ValueError(f"extension must be lower case and start with '.': {ext!r}")

    def replace(self, **changes: Any) -> EngineSpec:
        """A copy of this record with the fields named in ``changes`` replaced (checked again)."""
        fields = dict(zip(self.__slots__, self._fields(self), strict=True))
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"EngineSpec has no field {', '.join(sorted(unknown))}")
        fields.update(changes)
        return EngineSpec(**fields)

    @classmethod
    def from_object(cls, obj: object) -> EngineSpec:
        """An :class:`EngineSpec` from what an entry point names: a spec or a mapping."""
        from collections.abc import Mapping  # entry points only, never at start-up

        if isinstance(obj, EngineSpec):
            return obj
        if isinstance(obj, Mapping):
            fields = dict(obj)
            for key in ("extensions", "side_suffixes", "schemes"):
                if key in fields:
                    fields[key] = tuple(fields[key])
            if "magic" in fields:
                fields["magic"] = tuple((int(off), bytes(data)) for off, data in fields["magic"])
            return cls(**fields)
        raise TypeError(f"an engine spec must be an EngineSpec or a mapping, not {obj!r}")

    def matches_head(self, head: bytes) -> bool:
        """True when ``head`` (the start of the main or probe file) carries this engine's magic."""
        return bool(self.magic) and all(
            head[off : off + len(data)] == data for off, data in self.magic
        )

    @property
    def head_size(self) -> int:
        """How many leading bytes :meth:`matches_head` needs."""
        return max((off + len(data) for off, data in self.magic), default=0)


_SPEC_SETTERS = slot_setters(EngineSpec)

_BUILTIN = (
    EngineSpec(
        name="sqlite",
        target="prontodb.backends.sqlite:SqliteBackend",
        kind="file",
        extensions=(".sqlite", ".sqlite3", ".db"),
        magic=((0, SQLITE_MAGIC),),
        side_suffixes=("-wal", "-shm", "-journal"),
        install_hint="built in (Python's sqlite3)",
    ),
    EngineSpec(
        name="lmdb",
        target="prontodb.backends.lmdb:LmdbBackend",
        kind="file",
        extensions=(".lmdb", ".mdb"),
        magic=((16, LMDB_MAGIC),),
        side_suffixes=("-lock",),
        install_hint="pip install lmdb",
    ),
    EngineSpec(
        name="diskcache",
        target="prontodb.backends.diskcache:DiskcacheBackend",
        kind="directory",
        extensions=(".diskcache",),
        magic=((0, SQLITE_MAGIC),),
        probe="cache.db",
        install_hint="pip install diskcache",
    ),
    EngineSpec(
        name="redis",
        target="prontodb.backends.redis:RedisBackend",
        kind="url",
        schemes=("redis", "rediss", "redis+cluster", "rediss+cluster"),
        install_hint="pip install redis (and a Redis server or cluster: docs/redis.md)",
    ),
    EngineSpec(
        name="memory",
        target="prontodb.backends.memory:MemoryBackend",
        kind="url",
        schemes=("memory",),
        install_hint="built in (in-process, for tests)",
        selectable=False,
    ),
)

_REGISTRY: dict[str, EngineSpec] = {spec.name: spec for spec in _BUILTIN}
#: Read-only view of the registry: engine name -> its record.
REGISTRY: Mapping[str, EngineSpec] = MappingProxyType(_REGISTRY)
_discovered = False
_discovery_errors: dict[str, str] = {}


def register(spec: EngineSpec, *, replace: bool = False) -> None:
    """Add an engine record. A second record under a taken name is refused unless ``replace``."""
    if spec.name in _REGISTRY and not replace and _REGISTRY[spec.name] != spec:
        raise ConfigError(f"an engine named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


def register_backend(name: str, target: str, **facts: object) -> None:
    """Register a file engine ``name`` as ``"module.path:Class"`` with optional record fields."""
    register(EngineSpec.from_object({"name": name, "target": target, **facts}), replace=True)


def discover(*, refresh: bool = False) -> Mapping[str, str]:
    """Read the ``prontodb.backends`` entry points once (again with ``refresh``) and register
    the engine records they name. Returns the entry points that could not be loaded, by name,
    with the reason (they are left out; :func:`engine_spec` reports them)."""
    global _discovered
    if _discovered and not refresh:
        return MappingProxyType(_discovery_errors)
    from importlib.metadata import entry_points

    _discovered = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY and not refresh:
            continue
        try:
            spec = EngineSpec.from_object(ep.load())
            if spec.name != ep.name:
                raise ValueError(f"entry point {ep.name!r} names an engine called {spec.name!r}")
        except Exception as exc:  # an outside package's bug must not break ProntoDB
            _discovery_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        if any(b.name == spec.name for b in _BUILTIN):
            _discovery_errors[ep.name] = "a built-in engine has this name"
            continue
        _REGISTRY[spec.name] = spec
        _discovery_errors.pop(ep.name, None)
    return MappingProxyType(_discovery_errors)


def engine_spec(name: str) -> EngineSpec:
    """The record of engine ``name``; ConfigError naming the known engines when there is none."""
    spec = _REGISTRY.get(name)
    if spec is None:
        discover()
        spec = _REGISTRY.get(name)
    if spec is None:
        why = _discovery_errors.get(name)
        if why is not None:
            raise ConfigError(f"engine {name!r} is installed but its spec cannot load ({why})")
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown backend {name!r} (known: {known})")
    return spec


def engine_names(*, selectable_only: bool = False) -> tuple[str, ...]:
    """Names of every registered engine (outside ones included), sorted; with
    ``selectable_only``, only those a user may choose for a store."""
    discover()
    return tuple(sorted(n for n, s in _REGISTRY.items() if s.selectable or not selectable_only))


def file_engines() -> tuple[str, ...]:
    """Engines a user may choose for a store on disk (kind ``file`` or ``directory``)."""
    discover()
    return tuple(sorted(n for n, s in _REGISTRY.items() if s.selectable and s.kind != "url"))


def backend_class(name: str) -> type[Backend]:
    """Import and return the :class:`Backend` subclass of engine ``name``."""
    spec = engine_spec(name)
    module_name, _, class_name = spec.target.partition(":")
    try:
        __import__(module_name)  # importlib.import_module without importing importlib
        module = sys.modules[module_name]
    except ImportError as exc:
        hint = f"; install it: {spec.install_hint}" if spec.install_hint else ""
        raise ConfigError(f"engine {name!r} cannot be imported ({exc}){hint}") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigError(f"engine {name!r}: {spec.target} is not a prontodb Backend subclass")
    return cls


def default_extension(name: str) -> str:
    """The extension given to a new store of engine ``name`` ("" when it has none)."""
    spec = engine_spec(name)
    return spec.extensions[0] if spec.extensions else ""


def _scheme(location: str) -> str | None:
    head, sep, _ = location.partition("://")
    return head.lower() if sep and head.replace("+", "").replace("-", "").isalnum() else None


def is_url(location: str) -> bool:
    """True when ``location`` names a store of a ``url`` engine (never a local path)."""
    return url_engine(location) is not None


def url_engine(location: str) -> str | None:
    """The url engine whose scheme ``location`` uses, or None (a local path)."""
    scheme = _scheme(location)
    if scheme is None:
        return None
    for pass_ in (0, 1):
        for spec in _REGISTRY.values():
            if spec.kind == "url" and scheme in spec.schemes:
                return spec.name
        if pass_ == 0:
            discover()
    return None


def without_password(location: str) -> str:
    """``location`` with the password of a URL's user-info removed (the user name is kept);
    a local path, or a URL without a password, unchanged."""
    if not is_url(location):
        return location
    import urllib.parse

    parts = urllib.parse.urlsplit(location)
    auth, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in auth:
        return location
    user = auth.split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@{hosts}" if user else hosts))


def kind(name: str) -> str:
    """``file``, ``directory`` or ``url``: what a location of engine ``name`` is."""
    return engine_spec(name).kind


def side_files(path: str, name: str | None = None) -> list[str]:
    """The side files (``-wal``, ``-lock``, ...) that exist next to the store file ``path`` —
    of engine ``name``, or of any registered engine when it is not given."""
    specs = [engine_spec(name)] if name is not None else list(_all_specs())
    found: list[str] = []
    for spec in specs:
        for suffix in spec.side_suffixes:
            candidate = path + suffix
            if candidate not in found and os.path.lexists(candidate):
                found.append(candidate)
    return found


def side_suffixes() -> tuple[str, ...]:
    """Every side-file suffix any registered engine uses, without repeats."""
    seen: list[str] = []
    for spec in _all_specs():
        seen.extend(s for s in spec.side_suffixes if s not in seen)
    return tuple(seen)


def store_files(path: str, name: str | None = None) -> list[str]:
    """The files of the store at ``path`` that exist: the path itself (for a directory store,
    everything under it) and its side files."""
    if not os.path.lexists(path):
        return side_files(path, name)
    found = [path]
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            found.extend(os.path.join(root, d) for d in dirs)
            found.extend(os.path.join(root, f) for f in files)
    return found + side_files(path, name)


def __getattr__(name: str) -> Any:
    """``FILE_BACKENDS``: the older spelling of :func:`file_engines` (kept for callers not yet
    moved to the query)."""
    if name == "FILE_BACKENDS":
        return file_engines()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _all_specs() -> Iterator[EngineSpec]:
    discover()
    return iter(list(_REGISTRY.values()))


# POSIX drops every fcntl lock a process holds on a file as soon as the process closes ANY
# descriptor of that file. SQLite's WAL locks are fcntl locks, so reading the header of a SQLite
# file that this process has a connection on (a second open of the same store) would silently
# unlock that connection: another process then checkpoints and deletes the WAL under it, and
# the store is corrupted. SQLite-based engines therefore record the files they hold connections
# on, and sniffing never opens (and so never closes) one of those.
_sqlite_files: dict[tuple[int, int], int] = {}
_sqlite_files_lock = allocate_lock()  # threading.Lock, without importing threading
_kept_open: list[IO[bytes]] = []


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, or None when there is none."""
    return _file_id(path)


def sqlite_file_opened(path: str) -> tuple[int, int] | None:
    """Record that this process is about to hold a SQLite connection on the file at ``path``;
    call before connecting, and give the result to :func:`sqlite_file_closed` after closing."""
    with _sqlite_files_lock:
        file_id = _file_id(path)
        if file_id is not None:
            _sqlite_files[file_id] = _sqlite_files.get(file_id, 0) + 1
        return file_id


def sqlite_file_closed(file_id: tuple[int, int] | None) -> None:
    """Forget one connection recorded by :func:`sqlite_file_opened`."""
    if file_id is None:
        return
    with _sqlite_files_lock:
        left = _sqlite_files.get(file_id, 0) - 1
        if left > 0:
            _sqlite_files[file_id] = left
        else:
            _sqlite_files.pop(file_id, None)


#: Per opened file, the (inode, mtime) of its directory when the file was last verified and the
#: directory had been quiet for a while: while the directory is unchanged, so is the file.
_settled_dirs: dict[tuple[str, tuple[int, int]], tuple[int, int]] = {}
_SETTLE_NS = 50_000_000
_folders: dict[str, str] = {}


def _folder(path: str) -> str:
    """``os.path.dirname(path)``, remembered for up to 256 paths (the write path asks for the
    same few on every commit)."""
    folder = _folders.get(path)
    if folder is None:
        if len(_folders) >= 256:
            _folders.clear()
        folder = _folders[path] = os.path.dirname(path)
    return folder


def check_unmoved(path: str, file_id: tuple[int, int] | None) -> None:
    """Raise StoreNotFoundError when ``path`` no longer names the file that was opened as
    ``file_id`` (deleted or replaced while open). Writes check this once the write lock is
    held: a write into a deleted file would be acknowledged and then vanish with it.

    Deleting or replacing the file changes its directory's mtime, so the file itself is only
    stat'ed again when the directory changed (a stat of a store file that is being synced can
    cost tens of microseconds). A directory mtime is trusted only once it is older than 50 ms,
    so that coarse file-system timestamps cannot hide a change made in the same tick."""
    if file_id is None:
        return
    key = (path, file_id)
    try:
        st = os.stat(_folder(path))
        stamp: tuple[int, int] | None = (st.st_ino, st.st_mtime_ns)
    except OSError:
        stamp = None
    if stamp is not None and _settled_dirs.get(key) == stamp:
        return
    if _file_id(path) != file_id:
        _settled_dirs.pop(key, None)
        from prontodb.errors import StoreNotFoundError

        raise StoreNotFoundError(
            f"{path}: the store was deleted or replaced while it was open; nothing was "
            "written (open it again)"
        )
    if stamp is not None and time.time_ns() - stamp[1] > _SETTLE_NS:
        _settled_dirs[key] = stamp


def refuse_special(path: str) -> None:
    """Raise CorruptStoreError when ``path`` exists but is neither a regular file nor a
    directory (a FIFO, socket or device): such a path is never opened, since opening a FIFO
    blocks forever and a device is nobody's store."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        from prontodb.errors import CorruptStoreError

        raise CorruptStoreError(f"{path} is not a ProntoDB store (not a regular file or directory)")


def read_head(path: str, size: int) -> bytes:
    """The first ``size`` bytes of the file at ``path`` (empty when unreadable), read without
    ever closing a descriptor of a file this process holds SQLite connections on (their locks
    would go with it): such a file is known to be SQLite and is not read at all."""
    with _sqlite_files_lock:
        file_id = _file_id(path)
        if file_id is None:
            return b""
        if file_id in _sqlite_files:
            return SQLITE_MAGIC
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return b""
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device is nobody's store
            os.close(fd)
            return b""
        fh = os.fdopen(fd, "rb")
        try:
            head = fh.read(size)
        except OSError:
            head = b""
        st = os.fstat(fh.fileno())
        if (st.st_dev, st.st_ino) in _sqlite_files:  # replaced by a live store meanwhile
            _kept_open.append(fh)
        else:
            fh.close()
        return head


_read_head = read_head


def sniff(path: str) -> str | None:
    """Name the engine of the existing store at ``path`` from its bytes, or None.

    Each file and directory engine's record says which magic bytes its main file (or, for a
    directory engine, its probe file) starts with; only the bytes are read, never the name.
    """
    for pass_ in (0, 1):
        found = _sniff_known(path)
        if found is not None or pass_:
            return found
        discover()
    return None


def _sniff_known(path: str) -> str | None:
    is_dir = os.path.isdir(path)
    heads: dict[str, bytes] = {}
    for spec in list(_REGISTRY.values()):
        if spec.kind == "url" or not spec.magic or is_dir != (spec.kind == "directory"):
            continue
        target = os.path.join(path, spec.probe) if is_dir and spec.probe else path
        if is_dir and not spec.probe:
            continue
        head = heads.get(target)
        if head is None or len(head) < spec.head_size:
            head = heads[target] = read_head(target, max(spec.head_size, 32))
        if spec.matches_head(head):
            return spec.name
        if is_dir and not head and _empty_file(target):
            return spec.name  # its probe file was just created: a store being set up
    return None


def _empty_file(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def looks_like(path: str, name: str) -> bool:
    """True when the existing file or directory at ``path`` carries engine ``name``'s magic."""
    spec = engine_spec(name)
    if spec.kind == "url" or not spec.magic:
        return False
    if os.path.isdir(path) != (spec.kind == "directory"):
        return False
    target = os.path.join(path, spec.probe) if spec.kind == "directory" and spec.probe else path
    return spec.matches_head(read_head(target, max(spec.head_size, 32)))


def from_extension(path: str) -> str | None:
    """Name the engine that a path's extension suggests, or None."""
    ext = os.path.splitext(path.rstrip(os.sep))[1].lower()
    if not ext:
        return None
    for pass_ in (0, 1):
        for spec in list(_REGISTRY.values()):
            if ext in spec.extensions:
                return spec.name
        if pass_ == 0:
            discover()
    return None


def strip_extension(path: str) -> str:
    """``path`` without an extension that selects an engine (unchanged when it has none)."""
    return os.path.splitext(path)[0] if from_extension(path) else path


def resolve_backend(path: str, requested: str | None = None) -> str:
    """Choose the engine for the local ``path``: the existing store's own format, else
    ``requested``, else the extension, else sqlite. A request that contradicts an existing
    store is an error; so is an existing path that holds something else, or a FIFO, socket
    or device (refused without opening it)."""
    refuse_special(path)
    found = sniff(path) if os.path.exists(path) else None
    if requested is not None:
        engine_spec(requested)  # raises ConfigError naming the known engines
        if found is not None and found != requested:
            raise ConfigError(f"{path} is a {found} store, not {requested}")
        return requested
    if found is not None:
        return found
    if _occupied(path):
        # The first look may have caught a store another process is creating this instant:
        # empty then, its engine's magic written since. Look again (briefly: this is the
        # refusal path) before calling it foreign.
        for _ in range(_SETTLE_TRIES):
            import time

            time.sleep(0.01)
            found = sniff(path) if os.path.exists(path) else None
            if found is not None:
                return found
        from prontodb.errors import CorruptStoreError

        raise CorruptStoreError(f"{path} is not a ProntoDB store (unrecognized format)")
    return from_extension(path) or DEFAULT_ENGINE


#: How many times (10 ms apart) an unrecognized, non-empty store path is looked at again.
_SETTLE_TRIES = 50


def _occupied(path: str) -> bool:
    """Something is at ``path``: a non-empty file, or a directory with entries."""
    try:
        return bool(os.listdir(path)) if os.path.isdir(path) else os.path.getsize(path) > 0
    except OSError:  # nothing there, or a path the system cannot even look up
        return False
