"""The Redis engine: a store shared by many machines through a Redis server or Redis Cluster.

A store is addressed by URL (never turned into a local path):
``redis://[user[:password]@]host:port[/db]?store=NAME``, ``rediss://…`` for TLS, and
``redis+cluster://host:port[,host:port…]?store=NAME`` (``rediss+cluster://`` with TLS) for a
cluster. ``store`` defaults to ``default`` and follows the cursor-name rule;
``password_env=VAR`` reads the password from the environment at run time. Every other query
option is handed to redis-py (``Redis.from_url`` / ``RedisCluster.from_url``), which owns
connections, reconnects, retries and cluster redirections (MOVED/ASK).

Layout — every key of store NAME carries the hash tag ``{pdb:NAME}``, so a store lives in one
cluster slot and every script below touches one slot only:

* ``{pdb:NAME}:rev`` — the engine's commit counter; its existence is the store's existence;
* ``{pdb:NAME}:retired`` — present once ``cursor migrate`` moved the store elsewhere (its value
  names where): opening the store and every commit refuse, so no write lands in a store nobody
  reads any more (see :meth:`RedisBackend.retire`);
* ``{pdb:NAME}:idx`` — a sorted set of every key, all at score 0, so ``ZRANGEBYLEX`` walks the
  keys in byte order (Redis compares members with memcmp): the ordered prefix scan;
* ``{pdb:NAME}:v:<key>`` — the value of ``<key>`` (raw key bytes in the name);
* ``{pdb:NAME}:t:<token>`` — "this commit was applied" for 60 s (a Redis expiry on the engine's
  own bookkeeping, never on values), so a commit retried by redis-py after a lost reply is not
  applied twice;
* ``{pdb:NAME}:s:<id>:{i,h,m}`` — a snapshot's frozen index, values and marker (expiring lease);
* ``{pdb:NAME}:w:<id>:{h,d,m}`` — a large transaction's staged writes: puts (a hash), deletes
  (a set) and a marker, expiring together; invisible to readers until one script publishes
  them atomically at commit (see :meth:`RedisBackend._spill`).

Transactions take the store's writer lock at their first read (in the same round trip), so
writers of one store wait for each other rather than conflict, and are committed by one Lua
script that also validates optimistically: each read inside a transaction
also reads the revision (GET rev + GET key in one MULTI/EXEC, atomically); the first read fixes
the transaction's revision, a later read that sees another revision raises
``WriteConflictError`` at once (so a unit of work never computes on a mixed view), writes are
buffered, and the commit script applies them only if the revision is still the one read —
otherwise ``WriteConflictError`` and nothing is written; :meth:`Backend.run_transaction`
re-runs the unit. A transaction that read nothing commits its writes unconditionally. A
script rather than WATCH/MULTI/EXEC for the commit: it needs no connection pinned for the whole
unit of work, and its "applied" mark makes a commit that redis-py re-sends after a lost reply
harmless — see docs/redis.md for the measurements.

Snapshots: one script copies the store's index and values into snapshot keys atomically (the
server is busy for that copy, about a microsecond per entry); reads inside ``snapshot()`` go to
the copy, which is deleted at the end (and expires on its own if the process dies).

Durability: ``normal`` is what the server's own persistence (AOF/RDB) gives. ``full`` sends
``WAIT n 5000`` on the connection that committed, ``n`` being the replicas connected to the
store's primary (Redis 7.0 has no WAITAOF); a commit not confirmed by them raises
BackendError saying so. :meth:`RedisBackend.info` reports what the server's configuration
guarantees.
"""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from prontodb.backends.base import Backend, parse_counter, prefix_successor
from prontodb.errors import (
    BackendError,
    ConfigError,
    ReadOnlyStoreError,
    StorageFullError,
    StoreBusyError,
    StoreNotFoundError,
    StoreRetiredError,
    UsageError,
    WriteConflictError,
)
from prontodb.names import check_name

#: URL schemes of this engine, and whether each one names a cluster.
SCHEMES = {"redis": False, "rediss": False, "redis+cluster": True, "rediss+cluster": True}
DEFAULT_STORE = "default"
#: Keys read per page by a scan (one script call per page).
PAGE = 1000
#: A transaction that reads holds the store's writer lock from its first read to its commit, so
#: writers wait for each other instead of conflicting; the lock's lease ends it if its holder
#: dies (and a holder that outlives its lease still commits only at the revision it read).
LOCK_LEASE_MS = 5000
#: How long a writer waits for the lock before StoreBusyError (SQLite's busy timeout).
LOCK_WAIT_S = 60.0
#: Commits with more arguments than this go through MULTI/EXEC instead of the script.
BULK_ARGS = 256
#: A transaction's buffered writes past this many keys are staged on the server (streamed, so
#: client memory stays flat) and published by one script at commit.
STAGE_CHUNK = 5000
#: Staged writes expire this long after the last chunk (a crashed writer leaks nothing; a
#: publish that finds them expired writes nothing).
STAGE_LEASE_MS = 600_000
#: How long the "applied" mark of a commit is kept (covers redis-py's own retries).
TOKEN_TTL_MS = 60_000
#: A snapshot's copy expires this long after its last read (a crashed reader leaks nothing).
SNAPSHOT_LEASE_MS = 600_000
#: How long a ``full`` commit waits for its replicas.
WAIT_TIMEOUT_MS = 5000
_CONNECT_TIMEOUT_S = 5.0
#: How often redis-py reconnects and re-sends a command after a dropped connection.
RETRIES = 3
_SOCKET_TIMEOUT_S = 30.0

# --- Lua scripts (each touches only keys of one store, so one slot) -------------------------

# KEYS: rev, idx; ARGV: min, max, limit, value-key prefix -> {rev, keys, values}
_PAGE = """
local rev = redis.call('GET', KEYS[1])
local ks = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local vs = {}
if #ks > 0 then
  local names = {}
  for i, k in ipairs(ks) do names[i] = ARGV[4] .. k end
  vs = redis.call('MGET', unpack(names))
end
return {rev, ks, vs}
"""

# KEYS: rev, idx, token, lock, retired; ARGV: expected rev ('' = none), value-key prefix,
# token ttl, number of puts P, lock token ('' = none; the lock is released when it is ours),
# then P (key, value) pairs, then the keys to delete
# -> {1, new rev, removed} | {-1} conflict | {-2} store missing | {-3} store retired
# Writes go in chunks through native multi-key commands (MSET, ZADD, DEL, ZREM): a Lua loop
# that calls SET and ZADD per key costs several times more on the server.
_COMMIT = """
if ARGV[5] ~= '' and redis.call('GET', KEYS[4]) == ARGV[5] then redis.call('DEL', KEYS[4]) end
if ARGV[1] ~= '' then
  local done = redis.call('GET', KEYS[3])
  if done then
    local sep = string.find(done, ' ')
    return {1, tonumber(string.sub(done, 1, sep - 1)), tonumber(string.sub(done, sep + 1))}
  end
end
if redis.call('EXISTS', KEYS[5]) == 1 then return {-3} end
local rev = redis.call('GET', KEYS[1])
if not rev then return {-2} end
if ARGV[1] ~= '' and rev ~= ARGV[1] then return {-1} end
local prefix, chunk = ARGV[2], 1000
local last = 5 + 2 * tonumber(ARGV[4])
for first = 6, last, 2 * chunk do
  local values, members = {}, {}
  for i = first, math.min(last, first + 2 * chunk - 1), 2 do
    values[#values + 1] = prefix .. ARGV[i]
    values[#values + 1] = ARGV[i + 1]
    members[#members + 1] = 0
    members[#members + 1] = ARGV[i]
  end
  redis.call('MSET', unpack(values))
  redis.call('ZADD', KEYS[2], unpack(members))
end
local removed = 0
for first = last + 1, #ARGV, chunk do
  local names, members = {}, {}
  for i = first, math.min(#ARGV, first + chunk - 1) do
    names[#names + 1] = prefix .. ARGV[i]
    members[#members + 1] = ARGV[i]
  end
  local gone = redis.call('DEL', unpack(names))
  if gone > 0 then
    redis.call('ZREM', KEYS[2], unpack(members))
    removed = removed + gone
  end
end
if last > 5 or removed > 0 then rev = redis.call('INCR', KEYS[1]) end
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[3], rev .. ' ' .. removed, 'PX', tonumber(ARGV[3]))
end
return {1, tonumber(rev), removed}
"""

# KEYS: lock; ARGV: token -> 1 when the lock was ours and is released
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# The common case on its own: one blind put. KEYS: rev, idx, value key, retired; ARGV: key,
# value -> new rev | -2 store missing | -3 store retired
# (three redis.call: the commit counter is raised inside the MSET, as in _COUNTED)
_PUT = """
local now = redis.call('MGET', KEYS[1], KEYS[4])
if not now[1] then return -2 end
if now[2] then return -3 end
local rev = tonumber(now[1]) + 1
redis.call('MSET', KEYS[3], ARGV[2], KEYS[1], rev)
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return rev
"""

# KEYS: rev, idx, snapshot index, snapshot values, snapshot marker; ARGV: value-key prefix,
# lease ms, page -> rev, or false when the store is missing
_SNAPSHOT = """
local rev = redis.call('GET', KEYS[1])
if not rev then return false end
redis.call('SET', KEYS[5], rev, 'PX', tonumber(ARGV[2]))
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('COPY', KEYS[2], KEYS[3])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]))
  local page = tonumber(ARGV[3])
  local n = redis.call('ZCARD', KEYS[2])
  for first = 0, n - 1, page do
    local ks = redis.call('ZRANGE', KEYS[2], first, first + page - 1)
    local names = {}
    for i, k in ipairs(ks) do names[i] = ARGV[1] .. k end
    local vs = redis.call('MGET', unpack(names))
    local pairs_ = {}
    for i, k in ipairs(ks) do
      if vs[i] then
        pairs_[#pairs_ + 1] = k
        pairs_[#pairs_ + 1] = vs[i]
      end
    end
    if #pairs_ > 0 then redis.call('HSET', KEYS[4], unpack(pairs_)) end
  end
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[2]))
end
return rev
"""

# put_counted in one round trip: an optimistic commit that carries its read set. The client
# built the value from the counter and the ``also`` value it expects; the script writes only
# when both still hold and no writer holds the store's lock, else it returns what it found so
# the client can rebuild at once. Expectation modes: 'x' unknown (only read), 'n' absent,
# 'v' equal to the value given.
# KEYS: rev, idx, lock, retired, counter value key (these five are fixed per store and
#       counter, so the client sends them pre-packed), value key, also value key
# ARGV: key, counter mode, counter value, also mode ('' = no also), also value, new counter,
#       new value, counter key
# -> 1 written | {0, counter, also, held} not written | {-2} missing | {-3} retired
# Three redis.call, each costing the server more than the command it runs: one MGET for every
# read; one MSET for the counter, the value and the engine's commit counter (raised from the
# value MGET read: no INCR call); one ZADD for the key — the counter's index member only when
# the counter is new (an existing value key is in the index already). No Lua function or
# table building.
_COUNTED = """
local now = redis.call('MGET', KEYS[1], KEYS[4], KEYS[3], KEYS[5], KEYS[7])
if not now[1] then return {-2} end
if now[2] then return {-3} end
local c = now[4]
local ok = not now[3] and ((ARGV[2] == 'n' and not c) or (ARGV[2] == 'v' and c == ARGV[3]))
if ok and ARGV[4] ~= '' then
  local a = now[5]
  ok = (ARGV[4] == 'n' and not a) or (ARGV[4] == 'v' and a == ARGV[5])
end
if not ok then return {0, c, ARGV[4] ~= '' and now[5], now[3] and 1 or 0} end
redis.call('MSET', KEYS[5], ARGV[6], KEYS[6], ARGV[7], KEYS[1], tonumber(now[1]) + 1)
if c then
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
else
  redis.call('ZADD', KEYS[2], 0, ARGV[8], 0, ARGV[1])
end
return 1
"""

# Publish a transaction's staged writes: atomically, at the revision it read (if it read).
# KEYS: rev, idx, token, lock, retired, staged puts, staged deletes, stage marker
# ARGV: expected rev ('' = none), value-key prefix, token ttl, lock token, chunk
# -> {1, new rev, removed} | {-1} conflict | {-2} missing | {-3} retired | {-4} stage expired
_PUBLISH = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
if ARGV[1] ~= '' then
  local done = redis.call('GET', KEYS[3])
  if done then
    local sep = string.find(done, ' ')
    return {1, tonumber(string.sub(done, 1, sep - 1)), tonumber(string.sub(done, sep + 1))}
  end
end
if redis.call('EXISTS', KEYS[5]) == 1 then return {-3} end
local rev = redis.call('GET', KEYS[1])
if not rev then return {-2} end
if ARGV[1] ~= '' and rev ~= ARGV[1] then return {-1} end
if redis.call('EXISTS', KEYS[8]) == 0 then return {-4} end
local prefix, chunk = ARGV[2], ARGV[5]
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[6], cursor, 'COUNT', chunk)
  cursor = page[1]
  local kv = page[2]
  if #kv > 0 then
    local values, members = {}, {}
    for i = 1, #kv, 2 do
      values[i] = prefix .. kv[i]
      values[i + 1] = kv[i + 1]
      members[i] = 0
      members[i + 1] = kv[i]
    end
    redis.call('MSET', unpack(values))
    redis.call('ZADD', KEYS[2], unpack(members))
  end
until cursor == '0'
local removed = 0
cursor = '0'
repeat
  local page = redis.call('SSCAN', KEYS[7], cursor, 'COUNT', chunk)
  cursor = page[1]
  local ks = page[2]
  if #ks > 0 then
    local names = {}
    for i, k in ipairs(ks) do names[i] = prefix .. k end
    local gone = redis.call('DEL', unpack(names))
    if gone > 0 then
      redis.call('ZREM', KEYS[2], unpack(ks))
      removed = removed + gone
    end
  end
until cursor == '0'
redis.call('DEL', KEYS[6], KEYS[7], KEYS[8])
rev = redis.call('INCR', KEYS[1])
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[3], rev .. ' ' .. removed, 'PX', tonumber(ARGV[3]))
end
return {1, tonumber(rev), removed}
"""

# The staged writes of keys in [min, max) (ZRANGEBYLEX-style bounds, as plain strings with
# '' for none): KEYS: staged puts, staged deletes; ARGV: low, high -> {puts kv, deletes}
_STAGED_RANGE = """
local function inside(k)
  return k >= ARGV[1] and (ARGV[2] == '' or k < ARGV[2])
end
local puts, dels = {}, {}
local kv = redis.call('HGETALL', KEYS[1])
for i = 1, #kv, 2 do
  if inside(kv[i]) then puts[#puts + 1] = kv[i]; puts[#puts + 1] = kv[i + 1] end
end
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if inside(k) then dels[#dels + 1] = k end
end
return {puts, dels}
"""

# KEYS: rev, retired; ARGV: the revision the caller read, where the data went
# -> 1 retired | -1 a commit landed since that revision | -2 store missing | -3 already retired
_RETIRE = """
local rev = redis.call('GET', KEYS[1])
if not rev then return -2 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -3 end
if rev ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('INCR', KEYS[1])
return 1
"""

# KEYS: snapshot index, snapshot values, snapshot marker; ARGV: min, max, limit, lease ms
# -> {alive, keys, values}
_SNAPSHOT_PAGE = """
if redis.call('EXISTS', KEYS[3]) == 0 then return {0, {}, {}} end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[4])) end
local ks = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local vs = {}
if #ks > 0 then vs = redis.call('HMGET', KEYS[2], unpack(ks)) end
return {1, ks, vs}
"""

# KEYS: snapshot values, snapshot marker; ARGV: key -> {alive, value}
_SNAPSHOT_GET = """
if redis.call('EXISTS', KEYS[2]) == 0 then return {0} end
return {1, redis.call('HGET', KEYS[1], ARGV[1])}
"""


#: A put_counted value up to this size is copied into its pre-packed command; a larger one is
#: sent as its own buffer (redis-py's own cut-off for the same choice is 6,000 bytes).
_INLINE_VALUE = 6000


def _bulk(item: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(item), item)


def _packed_head(sha: str, numkeys: int, nargs: int, fixed: list[bytes]) -> bytes:
    """The start of a RESP ``EVALSHA`` command with ``numkeys`` keys and ``nargs`` other
    arguments, up to and including its ``fixed`` leading keys."""
    parts = [
        b"*%d\r\n" % (3 + numkeys + nargs),
        _bulk(b"EVALSHA"),
        _bulk(sha.encode()),
        _bulk(b"%d" % numkeys),
    ]
    return b"".join(parts + [_bulk(k) for k in fixed])


def _pack_tail(items: list[bytes]) -> bytes:
    """``items`` as consecutive RESP bulk strings."""
    return b"".join([b"$%d\r\n%b\r\n" % (len(x), x) for x in items])


class Location:
    """A parsed store URL: what redis-py is given, which store, and how it is shown.

    ``display`` is the URL without any password — the only form that appears in messages,
    ``repr`` and cursor files.
    """

    __slots__ = ("cluster", "client_url", "nodes", "store", "password", "display")

    def __init__(self, url: str, env: dict[str, str] | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ConfigError(
                f"not a redis URL: {redact(url)!r} (schemes: {', '.join(sorted(SCHEMES))})",
                argument="path",
                value=redact(url),
                rule="scheme",
            )
        self.cluster = SCHEMES[scheme]
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        store = DEFAULT_STORE
        password_env: str | None = None
        passed: list[tuple[str, str]] = []
        for key, value in query:
            if key == "store":
                store = value
            elif key == "password_env":
                password_env = value
            elif key == "password":
                raise ConfigError(
                    f"{redact(url)}: a password in the URL query is not accepted; "
                    "use ?password_env=VAR",
                    argument="path",
                    value=redact(url),
                    rule="password in query",
                )
            else:
                passed.append((key, value))
        self.store = check_name("store", store)
        self.password: str | None = None
        if password_env is not None:
            environ = os.environ if env is None else env
            if not password_env or password_env not in environ:
                raise ConfigError(
                    f"{redact(url)}: password_env names {password_env!r}, which is not set "
                    "in the environment",
                    argument="path",
                    value=redact(url),
                    rule="password_env unset",
                )
            self.password = environ[password_env]
        auth, _, hosts = parts.netloc.rpartition("@")
        nodes = [h for h in hosts.split(",") if h]
        if not nodes:
            raise ConfigError(
                f"{redact(url)}: no host in the URL",
                argument="path",
                value=redact(url),
                rule="host",
            )
        if not self.cluster and len(nodes) > 1:
            raise ConfigError(
                f"{redact(url)}: several hosts need the redis+cluster:// scheme",
                argument="path",
                value=redact(url),
                rule="hosts",
            )
        base = "rediss" if scheme.startswith("rediss") else "redis"
        auth_part = f"{auth}@" if auth else ""
        rest = urllib.parse.urlencode(passed)
        self.client_url = urllib.parse.urlunsplit(
            (base, auth_part + nodes[0], parts.path, rest, "")
        )
        self.nodes = nodes
        self.display = redact(url)


#: The stores this process is building in place (hash tag -> the key its own objects check
#: instead of the retired marker), see RedisBackend.build_in_place.
_building: dict[bytes, bytes] = {}


def redact(url: str) -> str:
    """``url`` with any inline password removed (the user name is kept)."""
    from prontodb.backends import without_password

    return without_password(url)


def has_inline_password(url: str) -> bool:
    """True when ``url`` carries a password in its user-info part."""
    auth, at, _ = urllib.parse.urlsplit(url).netloc.rpartition("@")
    return bool(at) and ":" in auth and bool(auth.split(":", 1)[1])


def _translate(exc: Exception, where: str) -> BackendError:
    """Map a redis-py error onto the ProntoDB hierarchy (the caller keeps it as __cause__)."""
    import redis.exceptions as rx

    text = str(exc)
    if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError) or (
        "WRONGPASS" in text or "NOAUTH" in text or "invalid username-password" in text
    ):
        return BackendError(f"{where}: authentication failed (check the user and password)")
    if isinstance(exc, rx.NoPermissionError) or text.startswith("NOPERM"):
        return BackendError(f"{where}: the server's ACL does not allow this ({text})")
    if isinstance(exc, rx.ReadOnlyError) or text.startswith("READONLY"):
        return ReadOnlyStoreError(f"{where}: the server is a read-only replica ({text})")
    if isinstance(exc, rx.OutOfMemoryError) or text.startswith("OOM"):
        return StorageFullError(
            f"{where}: the server is out of memory (maxmemory reached); nothing was written"
        )
    if isinstance(exc, rx.BusyLoadingError | rx.ClusterDownError | rx.TryAgainError) or (
        text.startswith(("MASTERDOWN", "LOADING", "CLUSTERDOWN", "TRYAGAIN", "BUSY"))
    ):
        return StoreBusyError(
            f"{where}: the server is not serving this store right now (failover, loading or a "
            f"long script in progress: {text}); try again"
        )
    if isinstance(
        exc, rx.ConnectionError | rx.TimeoutError | rx.RedisClusterUnreachableError | OSError
    ):
        return BackendError(
            f"{where}: cannot reach the redis server ({text or type(exc).__name__})"
        )
    return BackendError(f"{where}: redis error: {text or type(exc).__name__}")


class RedisBackend(Backend):
    """One store (one hash tag) on a Redis server or cluster. See the module docstring."""

    name = "redis"
    extensions = ()

    def __init__(self, path: str, *, durability: str = "normal", create: bool = True) -> None:
        """Open store ``path`` (a URL); a store retired by ``cursor migrate`` raises
        StoreRetiredError naming where its data went, with or without ``create``."""
        self._setup(path, durability, create)
        with self._errors():
            pipe = self._client.pipeline(transaction=False)
            if create:
                pipe.set(self._rev_key, b"0", nx=True)
            else:
                pipe.exists(self._rev_key)
            pipe.get(self._retired_key)
            present, retired = pipe.execute()
        if retired is not None:
            self.close()
            raise self._retired_error(retired)
        if not create and not present:
            self.close()
            raise StoreNotFoundError(f"no store at {self.path}")

    def _setup(self, path: str, durability: str, create: bool) -> None:
        """Parse the URL, connect and register the scripts; the store itself is not read."""
        location = Location(path)
        super().__init__(location.display, durability=durability, create=create)
        self.location = location
        tag = f"{{pdb:{location.store}}}".encode()
        self._tag = tag
        self._rev_key = tag + b":rev"
        self._lock_key = tag + b":lock"
        # A store this process builds in place is retired for everyone else; its own objects
        # check a key that does not exist instead (build_in_place).
        self._retired_key = _building.get(tag, tag + b":retired")
        self._lock_token = b""  # set while this object's transaction holds the writer lock
        self._idx_key = tag + b":idx"
        self._value_prefix = tag + b":v:"
        self._depth = 0  # 1 while this engine's own transaction is open
        self._buffer: dict[bytes, bytes | None] = {}
        self._read_rev: bytes | None = None
        self._snapshot_keys: tuple[bytes, bytes, bytes] | None = None
        # the staged writes of the open transaction: (puts, deletes, marker) keys, or None
        self._stage: tuple[bytes, bytes, bytes] | None = None
        self._stage_deletes = False  # whether any delete was staged (puts must then SREM)
        self._replicas: dict[object, int] = {}
        # put_counted's expectation per (counter key, also key): the values it last saw
        self._counted_seen: dict[tuple[bytes, bytes | None], tuple[Any, Any]] = {}
        # put_counted's pre-packed command head per counter key, and the connection pool it
        # is sent through (None on a cluster: redis-py routes the script there)
        self._counted_head: dict[bytes, bytes] = {}
        self._direct: Any = None
        # the connection _send_packed keeps, and the (process, thread) that took it
        self._pinned: Any = None
        self._pinned_by: tuple[int, int] | None = None
        self._client: Any = None
        with self._errors():
            self._client = self._connect(location)
            self._scripts = {
                name: self._client.register_script(lua)
                for name, lua in (
                    ("page", _PAGE),
                    ("commit", _COMMIT),
                    ("put", _PUT),
                    ("release", _RELEASE),
                    ("snapshot", _SNAPSHOT),
                    ("snapshot_page", _SNAPSHOT_PAGE),
                    ("snapshot_get", _SNAPSHOT_GET),
                    ("retire", _RETIRE),
                    ("counted", _COUNTED),
                    ("publish", _PUBLISH),
                    ("staged_range", _STAGED_RANGE),
                )
            }
            if not location.cluster:
                import redis.exceptions as rx

                self._direct = self._client.connection_pool
                self._no_script = rx.NoScriptError

    @classmethod
    def destroy(cls, path: str) -> int:
        """Delete every key of the store at ``path``, retired or not (``cursor delete
        --purge``, ``cursor migrate --remove-old``/``--replace-target``); return how many keys
        were removed (0: there was no store)."""
        engine = cls.__new__(cls)
        engine._setup(path, "normal", False)
        return engine.drop()

    def _retired_error(self, successor: bytes) -> StoreRetiredError:
        where = successor.decode("utf-8", "replace")
        return StoreRetiredError(
            f"{self.path}: this store was retired by cursor migrate; its data now lives at "
            f"{where} (point your cursor there: prontodb cursor set NAME {where}); nothing "
            "was read or written",
            successor=where,
        )

    def retire(self, successor: str) -> None:
        """Take this store out of use for good, inside ``transaction()`` after it read the
        store: atomically, and only when no commit landed since the transaction's reads
        (else WriteConflictError and nothing changes), mark the store retired with
        ``successor`` (where its data went, shown without password). From then on opening it
        and every commit of any client — one that opened it earlier too — raise
        StoreRetiredError naming ``successor``; a blind write racing the retirement lands
        before it (the revision moved: WriteConflictError) or is refused after it. The keys
        stay until :meth:`destroy` (``--remove-old``); :meth:`unretire` undoes it."""
        self._require_writable()
        if not self._depth or self._read_rev is None or self._buffer:
            raise UsageError(
                f"{self.path}: retire() needs a transaction that read the store and wrote nothing"
            )
        with self._errors():
            code = self._scripts["retire"](
                keys=[self._rev_key, self._retired_key],
                args=[self._read_rev, redact(successor)],
            )
        if code != 1:
            self._fail(int(code))
        self._read_rev = None  # the revision moved: nothing more may commit here

    def unretire(self) -> None:
        """Undo :meth:`retire` (a migrate that failed after retiring puts the store back)."""
        self._require_open()
        with self._errors():
            self._client.delete(self._retired_key)

    @classmethod
    @contextmanager
    def build_in_place(cls, path: str, where: str) -> Iterator[Callable[[], None]]:
        """See :meth:`Backend.build_in_place`. The retired marker is set first (one SET), so a
        client elsewhere is refused before anything is emptied; the store's other keys are
        then deleted; objects this process opens on the store inside the block check a
        private key in place of the marker (the marker itself is never theirs to see)."""
        engine = cls.__new__(cls)
        engine._setup(path, "normal", False)
        tag, marker = engine._tag, engine._retired_key
        if tag in _building:
            engine.close()
            raise UsageError(f"{engine.path}: this store is already being built here")
        try:
            with engine._errors():
                engine._client.set(marker, redact(where).encode())
                pattern = tag.replace(b"[", b"\\[") + b"*"
                doomed = [name for name in engine._scan_names(pattern) if name != marker]
                for at in range(0, len(doomed), PAGE):
                    engine._client.unlink(*doomed[at : at + PAGE])
        except BaseException:
            engine.close()
            raise
        _building[tag] = tag + b":building:" + secrets.token_hex(8).encode()

        def open_up() -> None:
            with engine._errors():
                engine._client.delete(marker)

        try:
            yield open_up
        finally:
            _building.pop(tag, None)
            engine.close()

    # --- connection ---------------------------------------------------------------------

    @staticmethod
    def _connect(location: Location) -> Any:
        options: dict[str, Any] = {
            "socket_connect_timeout": _CONNECT_TIMEOUT_S,
            "socket_timeout": _SOCKET_TIMEOUT_S,
        }
        if location.password is not None:
            options["password"] = location.password
        if location.cluster:
            from redis.cluster import ClusterNode, RedisCluster

            node_type: Any = ClusterNode  # redis-py leaves its __init__ unannotated
            extra = []
            for node in location.nodes[1:]:
                host, _, port = node.rpartition(":")
                if not host or not port.isdigit():
                    raise ConfigError(f"{location.display}: bad cluster node {node!r}")
                extra.append(node_type(host, int(port)))
            if extra:
                options["startup_nodes"] = extra
            return RedisCluster.from_url(location.client_url, **options)
        from redis import Redis
        from redis.backoff import ExponentialWithJitterBackoff
        from redis.retry import Retry

        # Redis.from_url builds its pool without redis-py's default retry policy: ask for it
        # (reconnect and re-send after a dropped connection; commits are safe to re-send).
        options["retry"] = Retry(ExponentialWithJitterBackoff(base=0.01, cap=1.0), RETRIES)
        return Redis.from_url(location.client_url, **options)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate redis-py errors raised inside the block."""
        import redis.exceptions as rx

        try:
            yield
        except (rx.RedisError, rx.RedisClusterException, OSError) as exc:
            raise _translate(exc, self.path) from exc

    def _fail(self, code: int) -> NoReturn:
        if code == -3:
            with self._errors():
                successor = self._client.get(self._retired_key)
            raise self._retired_error(successor or b"(unknown)")
        if code == -1:
            raise WriteConflictError(
                f"{self.path}: another writer committed first; nothing of this transaction "
                "was written"
            )
        raise StoreNotFoundError(
            f"{self.path}: the store was deleted while it was open; nothing was written"
        )

    @classmethod
    def sniff(cls, path: str) -> bool:
        """A url engine has no file to sniff: always False."""
        return False

    # --- reads --------------------------------------------------------------------------

    def _seen(self, rev: bytes | None) -> None:
        """Record the revision a read inside a transaction saw; a second, different one means
        another writer committed meanwhile: the transaction can only conflict, so stop now."""
        if rev is None:
            self._fail(-2)
        if self._read_rev is None:
            self._read_rev = rev
        elif rev != self._read_rev:
            self._fail(-1)

    def _get(self, key: bytes) -> bytes | None:
        if self._depth:
            if key in self._buffer:
                return self._buffer[key]
            # GET rev and GET key in one MULTI/EXEC: atomic, one round trip, and plain
            # commands cost the server less than a script call.
            rev, value = self._read_in_transaction(key)
            self._seen(rev)
            if self._stage is not None:
                return self._staged_or(key, value)
            return value
        if self._snapshot_keys is not None:
            with self._errors():
                alive, *value = self._scripts["snapshot_get"](
                    keys=[self._snapshot_keys[1], self._snapshot_keys[2]], args=[key]
                )
            if not alive:
                self._snapshot_lost()
            return value[0]  # type: ignore[no-any-return]
        with self._errors():
            return self._client.get(self._value_prefix + key)  # type: ignore[no-any-return]

    def _scan(self, prefix: bytes, *, start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        low = max(prefix, start) if start is not None else prefix
        high = prefix_successor(prefix)
        pages = self._pages(b"[" + low if low else b"-", b"(" + high if high else b"+")
        if not self._depth or not (self._buffer or self._stage):
            for keys, values in pages:
                yield from zip(keys, values, strict=True)
            return
        yield from self._merged(pages, low, high)

    def _merged(
        self,
        pages: Iterator[tuple[list[bytes], list[bytes]]],
        low: bytes,
        high: bytes | None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """The server's pairs with this transaction's writes — staged ones (the range's part
        of them read in one reply), then buffered ones — laid over them."""
        overlay: dict[bytes, bytes | None] = {}
        if self._stage is not None:
            with self._errors():
                puts, deletes = self._scripts["staged_range"](
                    keys=list(self._stage[:2]), args=[low, high or b""]
                )
            overlay.update(dict.fromkeys(deletes))
            overlay.update(zip(puts[::2], puts[1::2], strict=True))
        overlay.update(
            (k, v) for k, v in self._buffer.items() if k >= low and (high is None or k < high)
        )
        mine = sorted(overlay.items())
        i = 0
        for keys, values in pages:
            for key, value in zip(keys, values, strict=True):
                while i < len(mine) and mine[i][0] < key:
                    if mine[i][1] is not None:
                        yield mine[i]  # type: ignore[misc]
                    i += 1
                if i < len(mine) and mine[i][0] == key:
                    if mine[i][1] is not None:
                        yield mine[i]  # type: ignore[misc]
                    i += 1
                    continue
                yield key, value
        for key, left in mine[i:]:
            if left is not None:
                yield key, left

    def _staged_or(self, key: bytes, committed: bytes | None) -> bytes | None:
        """``key`` as this transaction's staged writes leave it (``committed``: its value on
        the server)."""
        assert self._stage is not None
        with self._errors():
            pipe = self._client.pipeline(transaction=False)
            pipe.hget(self._stage[0], key)
            pipe.sismember(self._stage[1], key)
            staged, deleted = pipe.execute()
        if staged is not None:
            return staged  # type: ignore[no-any-return]
        return None if deleted else committed

    def _read_in_transaction(self, key: bytes) -> tuple[bytes | None, bytes | None]:
        """GET rev + GET key in one MULTI/EXEC; the transaction's first read also takes the
        store's writer lock in the same round trip (and waits while another writer has it)."""
        deadline = time.monotonic() + LOCK_WAIT_S
        delay = 0.0002
        while True:
            token = self._lock_token or secrets.token_hex(8).encode()
            with self._errors():
                pipe = self._client.pipeline(transaction=True)
                if not self._lock_token:
                    pipe.set(self._lock_key, token, nx=True, px=LOCK_LEASE_MS)
                pipe.get(self._rev_key)
                pipe.get(self._value_prefix + key)
                replies = pipe.execute()
            if self._lock_token:
                return replies[0], replies[1]
            if replies[0]:
                self._lock_token = token
                return replies[1], replies[2]
            delay = self._wait_for_lock(deadline, delay)

    def _take_lock(self) -> None:
        """Take the store's writer lock (a transaction's first read is a scan)."""
        deadline = time.monotonic() + LOCK_WAIT_S
        delay = 0.0002
        while not self._lock_token:
            token = secrets.token_hex(8).encode()
            with self._errors():
                if self._client.set(self._lock_key, token, nx=True, px=LOCK_LEASE_MS):
                    self._lock_token = token
                    return
            delay = self._wait_for_lock(deadline, delay)

    def _wait_for_lock(self, deadline: float, delay: float) -> float:
        if time.monotonic() > deadline:
            raise StoreBusyError(
                f"{self.path}: another writer held the store's lock for over {LOCK_WAIT_S:.0f} s"
            )
        time.sleep(random.uniform(0, delay))
        return min(delay * 2, 0.01)

    def _release_lock(self) -> None:
        token, self._lock_token = self._lock_token, b""
        if token:
            try:
                with self._errors():
                    self._scripts["release"](keys=[self._lock_key], args=[token])
            except BackendError:
                pass  # the lease ends it

    def _pages(self, low: bytes, high: bytes) -> Iterator[tuple[list[bytes], list[bytes]]]:
        """Pages of (keys, values) between the ZRANGEBYLEX bounds ``low`` and ``high``."""
        while True:
            if self._snapshot_keys is not None and not self._depth:
                with self._errors():
                    alive, keys, values = self._scripts["snapshot_page"](
                        keys=list(self._snapshot_keys),
                        args=[low, high, PAGE, SNAPSHOT_LEASE_MS],
                    )
                if not alive:
                    self._snapshot_lost()
            else:
                if self._depth and not self._lock_token:
                    self._take_lock()
                with self._errors():
                    rev, keys, values = self._scripts["page"](
                        keys=[self._rev_key, self._idx_key],
                        args=[low, high, PAGE, self._value_prefix],
                    )
                if self._depth:
                    self._seen(rev)
            # An index member whose value is gone is damage (check() reports it), not data.
            pairs = [(k, v) for k, v in zip(keys, values, strict=True) if v is not None]
            yield [k for k, _ in pairs], [v for _, v in pairs]
            if len(keys) < PAGE:
                return
            low = b"(" + keys[-1]

    # --- writes -------------------------------------------------------------------------

    def _put(self, key: bytes, value: bytes) -> None:
        if self._depth:
            self._buffer[bytes(key)] = bytes(value)
            if len(self._buffer) >= STAGE_CHUNK:
                self._spill()
            return
        if self.durability == "full":
            self._commit({bytes(key): bytes(value)})
            return
        with self._errors():
            rev = self._scripts["put"](
                keys=[self._rev_key, self._idx_key, self._value_prefix + key, self._retired_key],
                args=[key, value],
            )
        if rev < 0:
            self._fail(rev)

    def _put_many(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Buffered in the transaction (one of its own when none is open); every
        ``STAGE_CHUNK`` keys the buffer is staged on the server, so memory stays flat."""
        if not self._depth:
            with self.transaction():
                return self._put_many(items)
        count = 0
        buffer = self._buffer
        for key, value in items:
            buffer[bytes(key)] = bytes(value)
            count += 1
            if len(buffer) >= STAGE_CHUNK:
                self._spill()
                buffer = self._buffer
        return count

    def _spill(self) -> None:
        """Move the transaction's buffered writes to its staging keys on the server (puts to
        a hash, deletes to a set; a later write of a key replaces its earlier staged one) in
        one pipeline that also renews their common lease (not MULTI/EXEC: queueing a chunk
        costs the server a copy, and a spill cut short fails the transaction anyway). Readers
        never see staged writes; the commit publishes them atomically (``_PUBLISH``), an abort
        deletes them."""
        if self._stage is None:
            base = self._tag + b":w:" + secrets.token_hex(8).encode()
            self._stage = (base + b":h", base + b":d", base + b":m")
        staged, deleted, marker = self._stage
        puts = {k: v for k, v in self._buffer.items() if v is not None}
        deletes = [k for k, v in self._buffer.items() if v is None]
        with self._errors():
            pipe = self._client.pipeline(transaction=False)
            if puts:
                pipe.execute_command("HSET", staged, *[x for pair in puts.items() for x in pair])
                if self._stage_deletes:
                    pipe.execute_command("SREM", deleted, *puts)
            if deletes:
                self._stage_deletes = True
                pipe.execute_command("HDEL", staged, *deletes)
                pipe.execute_command("SADD", deleted, *deletes)
            pipe.set(marker, b"1", px=STAGE_LEASE_MS)
            pipe.pexpire(staged, STAGE_LEASE_MS)
            pipe.pexpire(deleted, STAGE_LEASE_MS)
            pipe.execute()
        self._buffer = {}

    def _drop_stage(self) -> None:
        stage, self._stage = self._stage, None
        if stage is not None:
            try:
                with self._errors():
                    self._client.unlink(*stage)
            except BackendError:
                pass  # the lease ends them

    def _put_counted(
        self,
        counter_key: bytes,
        key: bytes,
        build: Callable[[int, bytes | None], bytes],
        also: bytes | None,
    ) -> int:
        """:meth:`Backend.put_counted` in one round trip where it can: the value is built from
        the counter and ``also`` value this object saw last, and one script commits it only
        if both still hold (and no transaction holds the store's lock) — the read set travels
        with the commit. Otherwise the script answers with what it found and the value is
        rebuilt (``build`` is pure); a first call, a lock held by another writer or repeated
        misses under contention take the general path (transaction with the lock). Durability
        ``full`` and calls inside a transaction take the general path too."""
        if self._depth or self.durability == "full":
            return super()._put_counted(counter_key, key, build, also)
        slot = (counter_key, also)
        seen = self._counted_seen.get(slot)
        for _ in range(3):
            if seen is None:
                counter_mode, counter_raw, also_mode, also_raw = b"x", b"", b"x", None
                n, value = 0, b""
            else:
                counter_raw, also_raw = seen
                n = parse_counter(counter_raw, counter_key) + 1
                value = build(n, also_raw)
                counter_mode = b"n" if counter_raw is None else b"v"
                also_mode = b"n" if also_raw is None else b"v"
            new_counter = b"%d" % n
            with self._errors():
                reply = self._counted(
                    counter_key,
                    key,
                    also,
                    [
                        key,
                        counter_mode,
                        counter_raw or b"",
                        b"" if also is None else also_mode,
                        also_raw or b"",
                        new_counter,
                        value,
                        counter_key,
                    ],
                )
            if reply == 1:
                self._counted_seen[slot] = (new_counter, also_raw)
                return n
            code = int(reply[0])
            if code < 0:
                self._fail(code)
            seen = (reply[1], reply[2] if also is not None else None)
            self._counted_seen[slot] = seen
            if int(reply[3]):
                break  # a transaction holds the lock: wait for it on the general path
        return super()._put_counted(counter_key, key, build, also)

    def _counted(
        self, counter_key: bytes, key: bytes, also: bytes | None, args: list[bytes]
    ) -> Any:
        """Run ``_COUNTED`` for ``key``. On a standalone server the command goes out
        pre-packed (:meth:`_send_packed`): its first eight items (``EVALSHA``, the script's
        hash, the key count and the five fixed keys) are packed once per counter, the rest
        with one format operation each — redis-py's general argument packing cost more than
        the rest of ``Store.set`` here.
        Reconnect-and-resend is redis-py's (the connection's retry policy), as for any
        command; a server that lost the script (a restart, ``SCRIPT FLUSH``) gets it loaded
        again through redis-py's script object. On a cluster the script object is called
        (redis-py routes it to the slot's primary and follows MOVED/ASK)."""
        prefix = self._value_prefix
        value_key = prefix + key
        also_key = prefix + (also if also is not None else counter_key)
        if self._direct is None:
            script = self._scripts["counted"]
            return script(keys=[*self._counted_keys(counter_key), value_key, also_key], args=args)
        head = self._counted_head.get(counter_key)
        if head is None:
            head = _packed_head(self._scripts["counted"].sha, 7, 8, self._counted_keys(counter_key))
            self._counted_head[counter_key] = head
        value = args[6]
        if len(value) <= _INLINE_VALUE:
            packed = [head + _pack_tail([value_key, also_key, *args])]
        else:  # a large value is sent as it is, not copied into the command
            before = _pack_tail([value_key, also_key, *args[:6]])
            packed = [
                head + before + b"$%d\r\n" % len(value),
                value,
                b"\r\n" + _pack_tail(args[7:]),
            ]
        try:
            return self._send_packed(packed)
        except self._no_script:
            script = self._scripts["counted"]
            return script(keys=[*self._counted_keys(counter_key), value_key, also_key], args=args)

    def _counted_keys(self, counter_key: bytes) -> list[bytes]:
        """The fixed KEYS of ``_COUNTED`` for ``counter_key``: rev, idx, lock, retired and the
        counter's value key."""
        return [
            self._rev_key,
            self._idx_key,
            self._lock_key,
            self._retired_key,
            self._value_prefix + counter_key,
        ]

    def _send_packed(self, packed: list[bytes]) -> Any:
        """Send one pre-packed command (its parts, in order) and return its parsed reply; a
        dropped connection is reconnected and the command re-sent under the connection's
        retry policy (what redis-py's ``execute_command`` does). The connection is one this
        object keeps out of the pool for its lifetime (taking one from the pool and giving it
        back cost redis-py more than packing the command), used only by the process and
        thread that took it; any other caller borrows one from the pool as usual."""
        conn = self._pinned
        if conn is None or self._pinned_by != (os.getpid(), threading.get_ident()):
            if conn is None and self._pinned_by is None:
                conn = self._pinned = self._pool_connection()
                self._pinned_by = (os.getpid(), threading.get_ident())
            else:
                return self._send_pooled(packed)

        def send() -> Any:
            conn.send_packed_command(packed)
            return conn.read_response()

        return conn.retry.call_with_retry(send, lambda _error: conn.disconnect())

    def _send_pooled(self, packed: list[bytes]) -> Any:
        """:meth:`_send_packed` on a connection borrowed from the pool for this one command."""
        conn = self._pool_connection()

        def send() -> Any:
            conn.send_packed_command(packed)
            return conn.read_response()

        try:
            return conn.retry.call_with_retry(send, lambda _error: conn.disconnect())
        finally:
            self._direct.release(conn)

    def _pool_connection(self) -> Any:
        try:
            return self._direct.get_connection()
        except TypeError:  # redis-py before 5.3 wants a command name
            return self._direct.get_connection("EVALSHA")

    def _delete(self, key: bytes) -> bool:
        if self._depth:
            existed = self.get(key) is not None
            self._buffer[bytes(key)] = None
            if len(self._buffer) >= STAGE_CHUNK:
                self._spill()
            return existed
        return self._commit({}, [bytes(key)]) > 0

    def _commit(
        self,
        puts: dict[bytes, bytes],
        deletes: Iterable[bytes] = (),
        expected: bytes | None = None,
    ) -> int:
        """Apply ``puts`` and ``deletes`` (distinct keys) atomically — only at revision
        ``expected`` when given; return how many deletes removed something."""
        args: list[bytes | int] = [
            expected if expected is not None else b"",
            self._value_prefix,
            TOKEN_TTL_MS,
            len(puts),
            self._lock_token,
        ]
        for pair in puts.items():
            args.extend(pair)
        args.extend(deletes)
        # The "applied" mark matters only for a conditional commit (a blind one is idempotent).
        mark = secrets.token_hex(12).encode() if expected is not None else b"-"
        keys = [
            self._rev_key,
            self._idx_key,
            self._tag + b":t:" + mark,
            self._lock_key,
            self._retired_key,
        ]
        with self._errors():
            if len(args) > BULK_ARGS and self.durability != "full":
                result = self._commit_bulk(puts, list(deletes), expected, keys[2])
            elif self.durability == "full":
                result, acked, wanted = self._commit_and_wait(keys, args)
                self._lock_token = b""  # the commit script released it
            else:
                result = self._scripts["commit"](keys=keys, args=args)
                self._lock_token = b""  # the commit script released it
        if result[0] != 1:
            self._fail(result[0])
        if self.durability == "full" and acked < wanted:
            raise BackendError(
                f"{self.path}: the write was committed on the primary but only {acked} of "
                f"{wanted} replicas confirmed it within {WAIT_TIMEOUT_MS} ms (durability full)"
            )
        return int(result[2])

    def _commit_bulk(
        self,
        puts: dict[bytes, bytes],
        deletes: list[bytes],
        expected: bytes | None,
        token: bytes,
    ) -> list[int]:
        """A large commit as WATCH rev / MULTI / MSET+ZADD, DEL+ZREM chunks / INCR / EXEC: the
        same all-or-nothing guarantee as the commit script, but with the server's native
        multi-key commands (a Lua loop over tens of thousands of arguments costs the server
        several times more). Three round trips instead of one, so only for large commits."""
        import redis.exceptions as rx

        prefix = self._value_prefix
        items = list(puts.items())
        for _ in range(8):
            pipe = self._client.pipeline(transaction=True)
            try:
                pipe.watch(self._rev_key)  # retire() raises it: the marker below is current
                rev = pipe.get(self._rev_key)
                if rev is None:
                    return [-2]
                if pipe.exists(self._retired_key):
                    return [-3]
                if expected is not None and rev != expected:
                    return [-1]
                pipe.multi()
                for first in range(0, len(items), PAGE):
                    chunk = items[first : first + PAGE]
                    # execute_command: redis-py's cluster pipeline refuses its mset() helper
                    # even for keys of one slot.
                    pipe.execute_command("MSET", *[x for k, v in chunk for x in (prefix + k, v)])
                    pipe.execute_command(
                        "ZADD", self._idx_key, *[x for k, _ in chunk for x in (0, k)]
                    )
                for first in range(0, len(deletes), PAGE):
                    names = deletes[first : first + PAGE]
                    pipe.execute_command("DEL", *[prefix + k for k in names])
                    pipe.execute_command("ZREM", self._idx_key, *names)
                pipe.incr(self._rev_key)
                pipe.set(token, b"applied", px=TOKEN_TTL_MS)  # harmless for a blind commit
                try:
                    replies = pipe.execute()
                except rx.WatchError:
                    if expected is None:
                        continue  # a blind commit simply tries again on the new revision
                    # Another commit landed after our GET (or the connection dropped while
                    # watching: then the mark says whether EXEC ran).
                    if self._client.exists(token):
                        return [1, int(self._client.get(self._rev_key) or 0), 0]
                    return [-1]
            finally:
                pipe.reset()
            chunks = (len(items) + PAGE - 1) // PAGE
            removed = sum(int(x) for x in replies[2 * chunks : -2 : 2])
            return [1, int(replies[-2]), removed]
        return [-1]

    def _commit_and_wait(
        self, keys: list[bytes], args: list[bytes | int], script: str = "commit"
    ) -> tuple[Any, int, int]:
        """Commit and ``WAIT`` on one connection of the store's primary (WAIT only covers the
        writes of its own connection). ``full`` waits for every replica connected to the
        primary: when fewer confirm, the count is read again (a replica that left is not
        waited for; a primary left without replicas falls back on its own persistence)."""
        import redis.exceptions as rx

        for attempt in range(3):
            client = self._primary_client()
            wanted = self._replica_count(client, fresh=False)
            pipe = client.pipeline(transaction=False)
            self._scripts[script](keys=keys, args=args, client=pipe)
            if wanted:
                pipe.execute_command("WAIT", wanted, WAIT_TIMEOUT_MS)
            try:
                replies = pipe.execute()
            except (rx.MovedError, rx.AskError):
                # The slot moved (resharding, failover): the script did not run. Let redis-py
                # learn the new layout, then commit on the slot's new primary.
                if not self.location.cluster or attempt == 2:
                    raise
                self._client.nodes_manager.initialize()
                continue
            acked = int(replies[1]) if wanted else 0
            if acked < wanted:
                wanted = min(wanted, self._replica_count(client, fresh=True))
            return replies[0], acked, wanted
        raise AssertionError("unreachable")

    def _primary_client(self) -> Any:
        """A plain client of the server holding this store (the slot's primary on a cluster)."""
        if not self.location.cluster:
            return self._client
        node = self._client.get_node_from_key(self._rev_key, replica=False)
        return self._client.get_redis_connection(node)

    def _replica_count(self, client: Any, *, fresh: bool) -> int:
        """Replicas connected to the primary behind ``client`` (cached per primary)."""
        where = (
            client.get_connection_kwargs().get("port"),
            client.get_connection_kwargs().get("host"),
        )
        if fresh or where not in self._replicas:
            info = client.info("replication")
            self._replicas[where] = int(info.get("connected_slaves", 0))
        return self._replicas[where]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """The outermost transaction (the base class joins nested ones): reads fix a
        revision, writes are buffered, the commit applies them at that revision or raises
        WriteConflictError."""
        self._depth = 1
        self._buffer = {}
        self._read_rev = None
        self._stage = None
        self._stage_deletes = False
        try:
            try:
                yield
                if self._stage is not None and self._buffer:
                    self._spill()
                buffer, expected, staged = self._buffer, self._read_rev, self._stage
            finally:
                self._depth = 0
                self._buffer = {}
                self._read_rev = None
            if staged is not None:
                self._publish(staged, expected)
            elif buffer:
                puts = {k: v for k, v in buffer.items() if v is not None}
                deletes = [k for k, v in buffer.items() if v is None]
                self._commit(puts, deletes, expected)
        finally:
            self._drop_stage()  # published: already gone; aborted: deleted here
            self._release_lock()

    def _publish(self, stage: tuple[bytes, bytes, bytes], expected: bytes | None) -> None:
        """Commit the staged writes of a transaction (see ``_PUBLISH``)."""
        mark = secrets.token_hex(12).encode() if expected is not None else b"-"
        keys = [
            self._rev_key,
            self._idx_key,
            self._tag + b":t:" + mark,
            self._lock_key,
            self._retired_key,
            *stage,
        ]
        args: list[bytes | int] = [
            expected if expected is not None else b"",
            self._value_prefix,
            TOKEN_TTL_MS,
            self._lock_token,
            PAGE,
        ]
        acked = wanted = 0
        with self._errors():
            if self.durability == "full":
                result, acked, wanted = self._commit_and_wait(keys, args, "publish")
            else:
                result = self._scripts["publish"](keys=keys, args=args)
            self._lock_token = b""  # the script released it
        if result[0] == -4:
            raise BackendError(
                f"{self.path}: this transaction's staged writes expired on the server (no "
                f"write for {STAGE_LEASE_MS // 1000} s); nothing was written"
            )
        if result[0] != 1:
            self._fail(int(result[0]))
        self._stage = None  # the script deleted the staging keys
        if acked < wanted:
            raise BackendError(
                f"{self.path}: the write was committed on the primary but only {acked} of "
                f"{wanted} replicas confirmed it within {WAIT_TIMEOUT_MS} ms (durability full)"
            )

    # --- snapshots ----------------------------------------------------------------------

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """The outermost snapshot: an atomic copy of the store that reads go to."""
        base = self._tag + b":s:" + secrets.token_hex(8).encode()
        names = (base + b":i", base + b":h", base + b":m")
        with self._errors():
            rev = self._scripts["snapshot"](
                keys=[self._rev_key, self._idx_key, *names],
                args=[self._value_prefix, SNAPSHOT_LEASE_MS, PAGE],
            )
        if rev is None:
            self._fail(-2)
        self._snapshot_keys = names
        try:
            yield
        finally:
            self._snapshot_keys = None
            try:
                with self._errors():
                    self._client.unlink(*names)
            except BackendError:
                pass  # the copy expires on its own

    def _snapshot_lost(self) -> NoReturn:
        raise BackendError(
            f"{self.path}: the snapshot expired (no read for {SNAPSHOT_LEASE_MS // 1000} s); "
            "start again"
        )

    # --- maintenance --------------------------------------------------------------------

    def files(self) -> list[str]:
        """A url engine has no local files."""
        return []

    def _check(self) -> list[str]:
        """Index and values agree: every index member has a value, every value key is in the
        index, and the revision key exists. Walks the store (an unordered SCAN over the
        store's own keys is used here only, never on a hot path)."""
        problems: list[str] = []
        with self._errors():
            if not self._client.exists(self._rev_key):
                return [f"{self.path}: the store's revision key is missing"]
            indexed = 0
            for keys, _ in self._raw_pages():
                indexed += len(keys)
                names = [self._value_prefix + k for k in keys]
                if names:
                    present = self._exists_each(names)
                    problems.extend(
                        f"index lists {k!r} but it has no value"
                        for k, ok in zip(keys, present, strict=True)
                        if not ok
                    )
            pattern = self._value_prefix.replace(b"[", b"\\[") + b"*"
            values = 0
            missing: list[bytes] = []
            for name in self._scan_names(pattern):
                values += 1
                if (
                    len(missing) < 20
                    and self._client.zscore(self._idx_key, name[len(self._value_prefix) :]) is None
                ):
                    missing.append(name[len(self._value_prefix) :])
            problems.extend(f"value {k!r} is not in the index" for k in missing)
            if not missing and values != indexed:
                problems.append(f"{values} values but {indexed} index entries")
        return problems

    def _raw_pages(self) -> Iterator[tuple[list[bytes], list[bytes]]]:
        low = b"-"
        while True:
            keys = self._client.zrangebylex(self._idx_key, low, b"+", start=0, num=PAGE)
            yield keys, []
            if len(keys) < PAGE:
                return
            low = b"(" + keys[-1]

    def _exists_each(self, names: list[bytes]) -> list[bool]:
        if self.location.cluster:
            return [bool(self._client.exists(n)) for n in names]
        pipe = self._client.pipeline(transaction=False)
        for n in names:
            pipe.exists(n)
        return [bool(x) for x in pipe.execute()]

    def _scan_names(self, pattern: bytes) -> Iterator[bytes]:
        if self.location.cluster:
            node = self._client.get_node_from_key(self._rev_key, replica=False)
            client = self._client.get_redis_connection(node)
        else:
            client = self._client
        yield from client.scan_iter(match=pattern, count=1000)

    def info(self) -> dict[str, object]:
        """Facts for ``prontodb info``/``doctor``: server version, mode, the store's slot and
        node, persistence settings, memory, the engine's commit counter, its keys (every layer
        and the Store's own bookkeeping), what ``durability`` means on this server, and
        warnings (no persistence for a ``normal`` store; an eviction policy
        that may delete entries)."""
        self._require_open()
        with self._errors():
            client = self._primary_client()
            server = client.info("server")
            persistence = client.info("persistence")
            memory = client.info("memory")
            replication = client.info("replication")
            config: dict[str, str] = {}
            for name in ("appendonly", "appendfsync", "save", "maxmemory-policy"):
                try:
                    config.update(client.config_get(name))
                except Exception:  # CONFIG may be disabled or not permitted by ACL
                    pass
            revision = int(self._client.get(self._rev_key) or 0)
            entries = int(self._client.zcard(self._idx_key))
            facts: dict[str, object] = {
                "store": self.location.store,
                "mode": "cluster" if self.location.cluster else "standalone",
                "server_version": server.get("redis_version"),
                "commits": revision,
                "keys": entries,
                "aof_enabled": bool(persistence.get("aof_enabled")),
                "appendfsync": config.get("appendfsync"),
                "rdb_save": config.get("save"),
                "used_memory": memory.get("used_memory"),
                "maxmemory": memory.get("maxmemory"),
                "maxmemory_policy": config.get("maxmemory-policy")
                or memory.get("maxmemory_policy"),
                "replicas": int(replication.get("connected_slaves", 0)),
            }
            if self.location.cluster:
                slot = self._client.keyslot(self._rev_key)
                node = self._client.get_node_from_key(self._rev_key, replica=False)
                facts["slot"] = slot
                facts["node"] = node.name
        facts["guarantee"] = _guarantee(facts, self.durability)
        facts["warnings"] = _warnings(facts)
        return facts

    def drop(self) -> int:
        """Delete every key of this store (its entries, index, revision, snapshots and commit
        marks) and close it; return how many keys were removed. Used by ``cursor delete
        --purge``; never on a hot path."""
        self._require_open()
        removed = 0
        with self._errors():
            pattern = self._tag.replace(b"[", b"\\[") + b"*"
            batch: list[bytes] = []
            for name in self._scan_names(pattern):
                batch.append(name)
                if len(batch) >= PAGE:
                    removed += int(self._client.unlink(*batch))
                    batch = []
            if batch:
                removed += int(self._client.unlink(*batch))
        self.close()
        return removed

    def _close(self) -> None:
        pinned, self._pinned = self._pinned, None
        # (a forked child leaves the parent's connection alone)
        if pinned is not None and self._pinned_by and self._pinned_by[0] == os.getpid():
            try:
                self._direct.release(pinned)
            except Exception:
                pass
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass


def _guarantee(facts: dict[str, object], durability: str) -> str:
    """What an acknowledged write survives on this server, in one sentence."""
    aof, fsync, save = facts["aof_enabled"], facts["appendfsync"], facts["rdb_save"]
    if aof and fsync == "always":
        disk = "the AOF is fsynced before each reply: a power loss of the primary loses nothing"
    elif aof:
        disk = (
            f"the AOF is fsynced {'every second' if fsync == 'everysec' else 'by the OS'}: "
            "a killed server loses nothing, a power loss may lose about the last second"
        )
    elif save:
        disk = f"only RDB snapshots ({save}): a crash loses the writes since the last snapshot"
    else:
        disk = "no persistence: a server restart loses everything"
    if durability == "full":
        replicas = facts["replicas"]
        if replicas:
            return f"full: each write waits until {replicas} replica(s) hold it (WAIT); {disk}"
        return f"full: no replica to WAIT for, so only the server's own persistence: {disk}"
    return f"normal: {disk}"


def _warnings(facts: dict[str, object]) -> list[str]:
    found = []
    if not facts["aof_enabled"] and not facts["rdb_save"]:
        found.append("the server has neither AOF nor RDB persistence: a restart loses the store")
    policy = facts["maxmemory_policy"]
    if policy and policy != "noeviction" and not str(policy).startswith("volatile"):
        found.append(f"maxmemory-policy is {policy}: the server may evict entries; use noeviction")
    return found
