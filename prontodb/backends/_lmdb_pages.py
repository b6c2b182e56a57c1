"""LMDB's on-disk pages read in Python: the damage check that runs before liblmdb touches a page.

liblmdb trusts every page it reads: a page that is not what its parent says it is (one zeroed
4 KiB page is enough) makes it assert, which aborts the whole interpreter. This module reads
the data file through its own read-only map, in host byte order as LMDB writes it (the 0.9
file format, which ProntoDB creates), and raises :class:`Damage` for a page liblmdb could not
read safely. The engine (``lmdb.py``) turns that into ``CorruptStoreError``.

A page is *checked* when its header carries its own number and the kind its place in the tree
calls for (branch above the last level, leaf on it), its free-space bounds are sane, a branch
has at least two keys and a leaf at least one, every node lies inside the page with its key
(and an inline value) inside the page too, every leaf node is a plain or big value (no
sub-database flags, which this store never writes), and every big value's overflow pages
carry their number and the overflow flag and stay inside the file. The node checks work on
whole columns of the page at a time (a ``memoryview`` cast to 16-bit words), not per field.

:class:`PageGuard` decides which pages a read will make liblmdb touch, by doing liblmdb's own
descent in Python (its binary search, step for step, so that even a page with keys out of
order leads both to the same child), and checks those first.
"""

from __future__ import annotations

import mmap
import os
import struct
from _operator import add, itemgetter
from _thread import allocate_lock
from bisect import bisect_right

P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
#: Every page-kind bit (LEAF2 0x20 and SUBP 0x40 are dupsort pages, never written here).
_KIND_BITS = P_BRANCH | P_LEAF | P_OVERFLOW | P_META | 0x20 | 0x40
F_BIGDATA = 0x01
PAGEHDRSZ = 16
NODESZ = 8
META_MAGIC = 0xBEEFC0DE
P_INVALID = 2**64 - 1
#: LMDB's cursor stack depth: no sound tree is deeper.
MAX_DEPTH = 32

_HEADER = struct.Struct("=QHHHH")  # pgno, pad, flags, lower, upper
_PGNO = struct.Struct("=Q")
_U32 = struct.Struct("=I")
# MDB_meta after the page header: magic, version, address, mapsize, two MDB_db (pad, flags,
# depth, branch, leaf, overflow pages, entries, root), last page, txnid.
_META = struct.Struct("=IIQQ" + "IHHQQQQQ" * 2 + "QQ")


TYPE_CHECKING = False
if TYPE_CHECKING:  # not imported at run time: collections.abc imports collections
    from collections.abc import Callable

    #: Returns a map of the file covering at least the given number of bytes (Damage if
    #: shorter).
    Remap = Callable[[int], mmap.mmap]


class Damage(Exception):
    """A page is not what the tree says it is; the message names the page and the fault."""


class Meta(tuple[int, int, int, int, int, int, int, int, int]):
    """What one valid meta page says: the snapshot ``txnid`` and its two trees (a plain tuple
    subclass, not a NamedTuple: ``typing`` costs a one-shot command its start-up)."""

    __slots__ = ()

    def __new__(
        cls,
        txnid: int,
        number: int,
        psize: int,
        free_root: int,
        free_depth: int,
        main_root: int,
        main_depth: int,
        tree_pages: int,
        last: int,
    ) -> Meta:
        return tuple.__new__(
            cls,
            (txnid, number, psize, free_root, free_depth, main_root, main_depth, tree_pages, last),
        )

    @property
    def txnid(self) -> int:
        return self[0]

    @property
    def number(self) -> int:
        return self[1]

    @property
    def psize(self) -> int:
        return self[2]

    @property
    def free_root(self) -> int:
        return self[3]

    @property
    def free_depth(self) -> int:
        return self[4]

    @property
    def main_root(self) -> int:
        return self[5]

    @property
    def main_depth(self) -> int:
        return self[6]

    @property
    def tree_pages(self) -> int:
        """Branch + leaf + overflow pages of the main tree."""
        return self[7]

    @property
    def last(self) -> int:
        """The last page number in use."""
        return self[8]


def read_metas(data: mmap.mmap | bytes, size: int) -> tuple[list[Meta], list[str]]:
    """The valid meta pages of the file (any order) and the problems with the others."""
    if size < 2 * PAGEHDRSZ + _META.size:
        return [], ["the file is too short for its two meta pages"]
    psize = _U32.unpack_from(data, PAGEHDRSZ + 24)[0]
    if psize < 512 or psize & (psize - 1) or psize > 65536 or 2 * psize > size:
        return [], [f"meta page 0 is damaged (page size {psize})"]
    metas: list[Meta] = []
    for number in (0, 1):
        base = number * psize
        flags = _HEADER.unpack_from(data, base)[2]
        f = _META.unpack_from(data, base + PAGEHDRSZ)
        if not flags & P_META or f[0] != META_MAGIC:
            continue
        # f[4:12] is the free-list tree, f[12:20] the main tree: pad, flags, depth, branch,
        # leaf, overflow, entries, root.
        metas.append(
            Meta(f[21], number, psize, f[11], f[6], f[19], f[14], f[15] + f[16] + f[17], f[20])
        )
    if not metas:
        return [], ["both meta pages are damaged"]
    problems = [f"meta page {1 - metas[0].number} is damaged"] if len(metas) == 1 else []
    return metas, problems


def _pick(words: memoryview, index: list[int]) -> tuple[int, ...]:
    """``words[i]`` for every ``i`` of ``index`` in one C-level call."""
    if len(index) == 1:
        return (words[index[0]],)
    picked: tuple[int, ...] = itemgetter(*index)(words)
    return picked


def _shift(index: list[int], by: int) -> list[int]:
    return [i + by for i in index]


class PageGuard:
    """The checked pages of one LMDB file in this process, shared by every backend object on
    its environment, and the walks that check them before liblmdb reads.

    What the record assumes:

    * A reader's snapshot (one meta ``txnid``) is immutable while that reader is open: LMDB
      writes copy-on-write and reuses a page only after every reader that could see it has
      ended. So a page checked under snapshot ``T`` stays as checked for every later read of
      snapshot ``T``; the set of checked pages is kept for the newest snapshot read and
      dropped when a read of another snapshot begins.
    * Every page in a tree committed after snapshot ``T0`` is either a page of ``T0``'s tree,
      unchanged, or one that LMDB wrote itself after ``T0``. So once every page of ``T0``'s
      trees has been checked (``whole_from = T0``), reads of snapshots ``>= T0`` need no check.
    * Nothing else writes to the file while this process has it open. Damage done by another
      program *after* a page was checked is not seen by reads (``check()``/doctor walks every
      page again and finds it). A snapshot older than ``whole_from`` is walked as usual.

    Reads that walk paths pay per page visited; once the pages visited pass the number of
    pages in the file, the next read walks every page instead (ski rental: at most twice the
    cheaper of the two).
    """

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._lock = allocate_lock()
        self._data: mmap.mmap | None = None
        self._size = 0
        self.whole_from: int | None = None
        self._checked_txn = -1
        self._checked: set[int] = set()
        # Checked branch pages of that snapshot as read once: (keys, children, ordered).
        self._branches: dict[int, tuple[list[bytes], list[int], bool] | None] = {}
        self._visits = 0
        self._meta: Meta | None = None

    def close(self) -> None:
        """Release the file (the map goes when no walk uses it)."""
        with self._lock:
            self._data = None
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    # -- the file ------------------------------------------------------------------------

    def file_size(self) -> int:
        """The data file's size now."""
        return os.fstat(self._fd).st_size

    def _map(self, end: int) -> mmap.mmap:
        """The map, covering at least ``end`` bytes (re-mapped when the file has grown)."""
        data = self._data
        if data is not None and end <= self._size:
            return data
        with self._lock:
            if self._fd < 0:
                raise Damage("the store was closed")
            size = os.fstat(self._fd).st_size
            if end > size:
                raise Damage(f"a page the tree uses lies past the end of the file ({size} bytes)")
            if self._data is None or size > self._size:
                # The old map is dropped, not closed: a walk in another thread may still read it.
                self._data = mmap.mmap(self._fd, size, access=mmap.ACCESS_READ)
                self._size = size
            return self._data

    def meta(self, txnid: int) -> Meta | None:
        """The meta page of snapshot ``txnid``, or None when it has been overwritten (two
        commits since): the caller begins its read again.

        The meta of the newest snapshot asked for is remembered: what LMDB commits as
        snapshot ``txnid`` never changes (a later commit writes a meta of a higher ``txnid``),
        so a repeated read of the same snapshot takes it from there."""
        known = self._meta
        if known is not None and known[0] == txnid:
            return known
        data = self._map(0)
        metas, _ = read_metas(data, self._size)
        for meta in metas:
            if meta.txnid == txnid:
                # A commit may be rewriting this meta page right now (the second after ours):
                # believe it only when a second read agrees.
                again, _ = read_metas(data, self._size)
                if meta not in again:
                    return None
                if known is None or txnid > known[0]:
                    self._meta = meta
                return meta
        return None

    # -- what a read touches ---------------------------------------------------------------

    def covered(self, meta: Meta) -> bool:
        """True when every page of ``meta``'s tree is known to be sound (no walk needed)."""
        return self.whole_from is not None and meta.txnid >= self.whole_from

    def _checked_for(self, txnid: int) -> set[int]:
        if self._checked_txn != txnid:
            self._checked = set()
            self._branches = {}
            self._checked_txn = txnid
        return self._checked

    def _spend(self, pages: int, meta: Meta) -> None:
        """Count pages visited by path walks; past the file's page count, walk everything."""
        self._visits += pages
        if self._visits > self._size // meta.psize:
            self.check_whole(meta)

    def check_get(self, meta: Meta, key: bytes) -> None:
        """Check every page liblmdb reads to look ``key`` up in ``meta``'s snapshot (the path
        from the root to the leaf, and the overflow pages of that leaf's big values)."""
        if self.covered(meta) or meta.main_root == P_INVALID:
            return
        checked = self._checked_for(meta.txnid)
        self._descend(meta, key, checked, [])
        self._spend(meta.main_depth, meta)

    def check_range(self, meta: Meta, low: bytes, high: bytes | None, want: int) -> int | None:
        """Check the pages liblmdb reads when a cursor is set to the first key ``>= low`` and
        moved forward: leaf after leaf (with the branch pages between them) until a leaf
        holding a key ``>= high`` or ``want`` entries. Returns how many entries from that first
        key on lie in checked leaves — the cursor must not move past them — or None when they
        reach the end of the tree (no limit)."""
        if self.covered(meta) or meta.main_root == P_INVALID:
            return None
        checked = self._checked_for(meta.txnid)
        stack: list[tuple[int, int, int]] = []
        data, base, count, visited = self._descend(meta, low, checked, stack, leaf_from=low)
        while True:
            last_key = self._node_key(data, base, self._nkeys(data, base) - 1)
            if high is not None and count and last_key >= high:
                break
            if count >= want:
                break
            # liblmdb's mdb_cursor_sibling: up to the first branch with a next child, then
            # down its leftmost path to the leaf level.
            while stack and stack[-1][1] + 1 >= stack[-1][2]:
                stack.pop()
            if not stack:
                self._spend(visited, meta)
                return None
            pgno, index, nkeys = stack.pop()
            stack.append((pgno, index + 1, nkeys))
            level = len(stack)
            data = self._map((pgno + 1) * meta.psize)
            child = self._child(data, pgno * meta.psize, index + 1)
            while True:
                data, base = self._page(meta, child, level, checked)
                visited += 1
                n = self._nkeys(data, base)
                if level == meta.main_depth - 1:
                    count += n
                    break
                stack.append((child, 0, n))
                child = self._child(data, base, 0)
                level += 1
        self._spend(visited, meta)
        return count

    def _descend(
        self,
        meta: Meta,
        key: bytes,
        checked: set[int],
        stack: list[tuple[int, int, int]],
        leaf_from: bytes | None = None,
    ) -> tuple[mmap.mmap, int, int, int]:
        """liblmdb's mdb_page_search for ``key``, checking each page on the way. Fills
        ``stack`` with (branch page, child index, keys) and returns the leaf's map and offset,
        with ``leaf_from``: how many entries of the leaf are ``>= leaf_from``, and the pages
        visited."""
        if not 1 <= meta.main_depth <= MAX_DEPTH:
            raise Damage(f"main tree: impossible depth {meta.main_depth}")
        pgno = meta.main_root
        leaf_level = meta.main_depth - 1
        branches: dict[int, tuple[list[bytes], list[int], bool] | None]
        branches = self._branches if checked is self._checked else {}
        for level in range(leaf_level):
            branch = branches.get(pgno)
            if branch is None:
                # The first visit bisects the page in place (a one-shot read stops there);
                # a second one reads it into lists that later visits bisect in C.
                if pgno not in branches:
                    branches[pgno] = None
                    data, base = self._page(meta, pgno, level, checked)
                    n = self._nkeys(data, base)
                    index, found = self._search(data, base, n, key, 1)
                    if index >= n:
                        index = n - 1
                    elif not found:
                        index -= 1
                    stack.append((pgno, index, n))
                    pgno = self._child(data, base, index)
                    continue
                branch = branches[pgno] = self._branch(meta, pgno, level, checked)
            keys, children, ordered = branch
            n = len(keys)
            if ordered:  # liblmdb's bisection gives the same index as bisect on sorted keys
                index = bisect_right(keys, key, 1) - 1
            else:
                index, found = _search_list(keys, key, 1)
                if index >= n:
                    index = n - 1
                elif not found:
                    index -= 1
            stack.append((pgno, index, n))
            pgno = children[index]
        data, base = self._page(meta, pgno, leaf_level, checked)
        count = 0
        if leaf_from is not None:
            n = self._nkeys(data, base)
            index, _found = self._search(data, base, n, leaf_from, 0)
            count = n - index
        return data, base, count, meta.main_depth

    def _branch(
        self, meta: Meta, pgno: int, level: int, checked: set[int]
    ) -> tuple[list[bytes], list[int], bool]:
        """Branch page ``pgno`` at ``level``, checked, read into its keys and children (key
        0 is never compared), and whether keys 1.. ascend strictly (a sound page's do)."""
        data, base = self._page(meta, pgno, level, checked)
        n = self._nkeys(data, base)
        keys = [self._node_key(data, base, i) for i in range(n)]
        children = [self._child(data, base, i) for i in range(n)]
        rest = keys[1:]
        ordered = all(map(bytes.__lt__, rest, rest[1:]))
        return keys, children, ordered

    def _search(self, data: mmap.mmap, base: int, n: int, key: bytes, low: int) -> tuple[int, bool]:
        """mdb_node_search: the index of the first node whose key is ``>= key`` (``n`` when
        none is), by liblmdb's own bisection so both agree even on a disordered page, and
        whether it is an exact match."""
        high = n - 1
        i = low
        cmp = 0
        while low <= high:
            i = (low + high) >> 1
            node_key = self._node_key(data, base, i)
            cmp = (key > node_key) - (key < node_key)
            if cmp == 0:
                return i, True
            if cmp > 0:
                low = i + 1
            else:
                high = i - 1
        if cmp > 0:
            i += 1
        return i, False

    @staticmethod
    def _nkeys(data: mmap.mmap, base: int) -> int:
        return int(_HEADER.unpack_from(data, base)[3] - PAGEHDRSZ) >> 1

    @staticmethod
    def _node_key(data: mmap.mmap, base: int, i: int) -> bytes:
        node = base + _U16.unpack_from(data, base + PAGEHDRSZ + 2 * i)[0]
        ksize = _U16.unpack_from(data, node + 6)[0]
        return data[node + NODESZ : node + NODESZ + ksize]

    @staticmethod
    def _child(data: mmap.mmap, base: int, i: int) -> int:
        node = base + _U16.unpack_from(data, base + PAGEHDRSZ + 2 * i)[0]
        lo, hi, top = _NODE3.unpack_from(data, node)
        return int(lo | hi << 16 | top << 32)

    def _page(self, meta: Meta, pgno: int, level: int, checked: set[int]) -> tuple[mmap.mmap, int]:
        """The page ``pgno`` at ``level`` of the main tree, checked unless it already was
        (its kind is compared with its level every time: that costs nothing)."""
        kind = P_LEAF if level == meta.main_depth - 1 else P_BRANCH
        if not 2 <= pgno <= meta.last:
            raise Damage(f"main tree, page {pgno}: page number out of range (last is {meta.last})")
        base = pgno * meta.psize
        data = self._map(base + meta.psize)
        if pgno in checked:
            if _HEADER.unpack_from(data, base)[2] & _KIND_BITS != kind:
                raise Damage(f"main tree, page {pgno}: not a {_NAMES[kind]} page")
            return data, base
        check_page(data, meta, pgno, kind, self._map, "main tree")
        checked.add(pgno)
        return data, base

    # -- every page ------------------------------------------------------------------------

    def check_whole(self, meta: Meta) -> None:
        """Check every page of ``meta``'s two trees (raise Damage at the first fault); reads
        of this snapshot and later ones then need no walk. The caller holds a reader (or the
        write lock) on ``meta``'s snapshot."""
        if self.covered(meta):
            return
        problems = walk(self._map(2 * meta.psize), meta, self._map, limit=1)
        if problems:
            raise Damage(problems[0])
        with self._lock:
            if self.whole_from is None or meta.txnid > self.whole_from:
                self.whole_from = meta.txnid


def _search_list(keys: list[bytes], key: bytes, low: int) -> tuple[int, bool]:
    """:meth:`PageGuard._search` over a branch page's keys read into a list (a page whose
    keys are out of order: liblmdb's bisection step for step)."""
    high = len(keys) - 1
    i = low
    cmp = 0
    while low <= high:
        i = (low + high) >> 1
        node_key = keys[i]
        cmp = (key > node_key) - (key < node_key)
        if cmp == 0:
            return i, True
        if cmp > 0:
            low = i + 1
        else:
            high = i - 1
    if cmp > 0:
        i += 1
    return i, False


_NAMES = {P_BRANCH: "branch", P_LEAF: "leaf"}
_U16 = struct.Struct("=H")
_NODE3 = struct.Struct("=HHH")
_ODD_MASKS: dict[int, int] = {}


def _odd_mask(n: int) -> int:
    mask = _ODD_MASKS.get(n)
    if mask is None:
        mask = _ODD_MASKS[n] = int.from_bytes(b"\x01\x00" * n, "little")
    return mask


def check_page(
    data: mmap.mmap,
    meta: Meta,
    pgno: int,
    kind: int,
    remap: Remap,
    tree: str,
) -> list[int]:
    """Check page ``pgno`` (which must be a ``kind`` page) and return the children of a branch
    page (empty for a leaf). Raises Damage. ``remap(end)`` returns a map covering ``end``
    bytes (for overflow pages past the current map)."""
    psize = meta.psize
    base = pgno * psize
    where = f"{tree}, page {pgno}"
    own, _pad, flags, lower, upper = _HEADER.unpack_from(data, base)
    if own != pgno or flags & _KIND_BITS != kind:
        raise Damage(f"{where}: damaged page header (number {own}, flags {flags:#x})")
    if not PAGEHDRSZ <= lower <= upper <= psize or lower & 1 or upper & 1:
        raise Damage(f"{where}: damaged free-space bounds ({lower}, {upper})")
    n = (lower - PAGEHDRSZ) >> 1
    if n < (2 if kind == P_BRANCH else 1):
        raise Damage(f"{where}: a {_NAMES[kind]} page with {n} keys")
    raw = data[base + PAGEHDRSZ : base + lower]
    if int.from_bytes(raw, "little") & _odd_mask(n):
        raise Damage(f"{where}: a node at an odd offset")
    offsets = memoryview(raw).cast("H").tolist()
    if min(offsets) < upper or max(offsets) > psize - NODESZ:
        raise Damage(f"{where}: a node points outside the page")
    with memoryview(data) as view, view[base : base + psize].cast("H") as words:
        index = [o >> 1 for o in offsets]
        sizes = _pick(words, _shift(index, 3))
        if max(map(add, offsets, sizes)) > psize - NODESZ:
            raise Damage(f"{where}: a node has a key running past the page")
        lows = _pick(words, index)
        highs = _pick(words, _shift(index, 1))
        tops = _pick(words, _shift(index, 2))
    if kind == P_BRANCH:
        children = [a | b << 16 | c << 32 for a, b, c in zip(lows, highs, tops, strict=True)]
        if min(children) < 2 or max(children) > meta.last:
            raise Damage(f"{where}: a node points at a page out of range (last is {meta.last})")
        return children
    if max(tops) > F_BIGDATA:
        raise Damage(f"{where}: a node carries flags this store never writes")
    lengths = [lo | hi << 16 for lo, hi in zip(lows, highs, strict=True)]
    if max(tops) == 0:
        ends = map(add, map(add, offsets, sizes), lengths)
        if max(ends) > psize - NODESZ:
            raise Damage(f"{where}: a node has a value running past the page")
        return []
    for i, big in enumerate(tops):
        end = offsets[i] + NODESZ + sizes[i]
        if not big:
            if end + lengths[i] > psize:
                raise Damage(f"{where}: node {i} has a value running past the page")
            continue
        if end + 8 > psize:
            raise Damage(f"{where}: node {i} has a value running past the page")
        over = _PGNO.unpack_from(data, base + end)[0]
        _check_overflow(data, meta, over, lengths[i], remap, where)
    return []


def _check_overflow(
    data: mmap.mmap, meta: Meta, over: int, length: int, remap: Remap, where: str
) -> None:
    psize = meta.psize
    if not 2 <= over <= meta.last:
        raise Damage(f"{where}: a big value points at overflow page {over}")
    pages = (PAGEHDRSZ + length + psize - 1) // psize
    if over + pages - 1 > meta.last:
        raise Damage(f"{where}: a big value runs past the last page")
    end = (over + pages) * psize
    if end > len(data):
        data = remap(end)  # Damage when the file is shorter
    own, _pad, flags, _l, _u = _HEADER.unpack_from(data, over * psize)
    count = _U32.unpack_from(data, over * psize + 12)[0]
    if own != over or flags & _KIND_BITS != P_OVERFLOW or count < pages:
        raise Damage(f"overflow page {over}: damaged page header (number {own}, flags {flags:#x})")


def walk(data: mmap.mmap, meta: Meta, remap: Remap, limit: int = 20) -> list[str]:
    """Check every page of ``meta``'s free-list and main trees; the problems found (at most
    about ``limit``; empty when the trees are sound)."""
    problems: list[str] = []
    for tree, root, depth in (
        ("free list tree", meta.free_root, meta.free_depth),
        ("main tree", meta.main_root, meta.main_depth),
    ):
        if root == P_INVALID:
            continue
        if not 1 <= depth <= MAX_DEPTH:
            problems.append(f"{tree}: impossible depth {depth}")
            continue
        level_pages = [root]
        for level in range(depth):
            kind = P_LEAF if level == depth - 1 else P_BRANCH
            below: list[int] = []
            for pgno in level_pages:
                try:
                    if not 2 <= pgno <= meta.last:
                        raise Damage(f"{tree}, page {pgno}: page number out of range")
                    end = (pgno + 1) * meta.psize
                    if end > len(data):
                        data = remap(end)
                    below += check_page(data, meta, pgno, kind, remap, tree)
                except Damage as exc:
                    problems.append(str(exc))
                    if len(problems) >= limit:
                        return problems
            if len(set(below)) != len(below):
                problems.append(f"{tree}: a page is referenced twice")
                break
            level_pages = below
    return problems
