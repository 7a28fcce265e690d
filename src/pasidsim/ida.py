"""A persistent ID allocator with the kernel's IDA/IDR semantics.

``Ida`` is an immutable value: every operation returns a new ``Ida`` and the old one stays valid
and unchanged.  It is implemented as a *version tree over one mutable store* (Baker's trick for
persistent arrays): the store — a set of allocated IDs, a min-heap of free IDs below the
high-water mark, and the mark — always holds the contents of one version, the *root*; every other
version is a diff (one ID toggled) against a neighbour.  Reading or updating a version first
*reroots* the store at it by replaying the toggles on the path (each toggle is its own inverse).
Linear use (the facade, a simulation) therefore costs O(log n) per operation with mutable-speed
constants; the model checker, which jumps between nearby states, pays the tree distance between
them (a few toggles).

Lowest-free allocation over ``[1, hi]`` pops the heap (lazy deletion); a range starting above 1
and cyclic allocation scan from their start.  Hash and equality are structural (the set of IDs,
the cyclic cursor), identical in every process; the hash is computed once per version.

Two implementations with one behaviour: this module's pure-Python :class:`PyIda`, and
``pasidsim._ida.Ida``, the same algorithm in C (built with the package; 2-3x faster).
``Ida`` is the C one when it is importable (set ``PASIDSIM_PURE_IDA=1`` to force Python); the
tests run both against a set model.

Memory: one set entry per allocated ID plus its heap entry once freed (about 60–100 bytes per
allocated ID); no per-ID bitmap.

Kernel sources modeled:
- ``lib/idr.c: ida_alloc_range()/ida_free()`` (lowest free ID in ``[min, max]``),
- ``lib/idr.c: idr_alloc_cyclic()`` (search from the ID after the last allocated, wrap once).
"""

from __future__ import annotations

import os
from heapq import heappop, heappush


class _Store:
    """The mutable contents of the root version."""

    __slots__ = ("live", "heap", "top")

    def __init__(self) -> None:
        self.live: set[int] = set()
        self.heap: list[int] = []  # every free ID in [1, top) is here (plus stale entries)
        self.top = 1  # every ID >= top is free; ID 0 is never allocated

    def toggle(self, ident: int) -> None:
        live = self.live
        if ident in live:
            live.remove(ident)
            heappush(self.heap, ident)
        else:
            live.add(ident)
            heap = self.heap
            if heap and heap[0] == ident:
                heappop(heap)
            top = self.top
            if ident >= top:
                heap = self.heap
                for gap in range(top, ident):
                    heappush(heap, gap)
                self.top = ident + 1


class PyIda:
    """An immutable set of allocated IDs with lowest-free and cyclic allocation.

    Attributes:
        allocated: number of allocated IDs.
        cursor: where a cyclic allocation starts (the ID after the last one issued); 0 until
            the first cyclic allocation.
    """

    __slots__ = ("_store", "_parent", "_op", "_hash", "__weakref__")
    cursor = 0  # versions made by cyclic allocation are _CyclicIda, which store their own

    def __init__(self) -> None:
        self._store = _Store()
        self._parent: Ida | None = None

    # -- version tree -------------------------------------------------------------------------
    def _reroot(self) -> _Store:
        """Make this version the one the store holds (the root: the version without a
        parent), replaying the toggles on the path from the current root."""
        store = self._store
        if self._parent is None:
            return store
        path = []
        v = self
        while v._parent is not None:
            path.append(v)
            v = v._parent
        # v is the current root; walk back down, moving the root one edge at a time
        for u in reversed(path):
            store.toggle(u._op)
            v._parent, v._op = u, u._op
            u._parent = None
            v = u
        return store

    def _new(self, store: _Store, ident: int, cursor: int) -> "Ida":
        """A fresh root after ``ident`` was toggled in ``store`` (rooted at self so far)."""
        if cursor:
            new = _NEW(_CyclicIda)
            new.cursor = cursor
        else:
            new = _NEW(PyIda)
        new._store = store
        new._parent = None
        self._parent = new
        self._op = ident
        return new

    @property
    def allocated(self) -> int:
        """Number of allocated IDs."""
        return len(self._reroot().live)

    # -- queries -------------------------------------------------------------------------------
    def __contains__(self, ident: object) -> bool:
        if not isinstance(ident, int):
            return False
        return ident in self._reroot().live

    def ids(self) -> list[int]:
        """All allocated IDs, ascending."""
        return sorted(self._reroot().live)

    def find_free(self, lo: int, hi: int) -> int:
        """Lowest free ID in ``[lo, hi]`` (inclusive), or -1 when the range is full."""
        if lo > hi:
            return -1
        store = self._reroot()
        live = store.live
        if lo <= 1:
            heap = store.heap
            while heap and heap[0] in live:
                heappop(heap)  # stale: allocated again since it was freed
            cand = heap[0] if heap else store.top
            return cand if cand <= hi else -1
        cand = lo
        while cand in live:
            cand += 1
        return cand if cand <= hi else -1

    # -- updates -------------------------------------------------------------------------------
    def set(self, ident: int) -> "Ida":
        """Mark ``ident`` allocated (it must be free)."""
        store = self._reroot()
        store.toggle(ident)
        return self._new(store, ident, self.cursor)

    def clear(self, ident: int) -> "Ida":
        """Mark ``ident`` free (it must be allocated)."""
        store = self._store
        if self._parent is not None:
            self._reroot()
        store.live.remove(ident)
        heappush(store.heap, ident)
        if type(self) is not PyIda:
            return self._new(store, ident, self.cursor)
        new = _NEW(PyIda)
        new._store = store
        new._parent = None
        self._parent = new
        self._op = ident
        return new

    def alloc_lowest(self, lo: int, hi: int) -> tuple["Ida", int]:
        """``ida_alloc_range(ida, lo, hi)``: lowest free ID in ``[lo, hi]``; -1 if none."""
        store = self._store
        if self._parent is not None:
            self._reroot()
        if lo > 1 or type(self) is not PyIda:
            ident = self.find_free(lo, hi)
            if ident < 0:
                return self, -1
            store.toggle(ident)
            return self._new(store, ident, self.cursor), ident
        # fast path (every global PASID allocation): the heap's head or the high-water mark
        live, heap = store.live, store.heap
        while heap and heap[0] in live:
            heappop(heap)
        if heap:
            ident = heap[0]
            if ident > hi:
                return self, -1
            heappop(heap)
        else:
            ident = store.top
            if ident > hi:
                return self, -1
            store.top = ident + 1
        live.add(ident)
        new = _NEW(PyIda)
        new._store = store
        new._parent = None
        self._parent = new
        self._op = ident
        return new, ident

    def alloc_cyclic(self, lo: int, hi: int) -> tuple["Ida", int]:
        """``idr_alloc_cyclic(idr, NULL, lo, hi + 1)``: first free ID at or after the cursor,
        wrapping to ``lo`` once; the cursor moves past the ID issued.  -1 if none."""
        cursor = self.cursor
        start = cursor if lo <= cursor <= hi else lo
        ident = self.find_free(start, hi) if start > 1 else self.find_free(lo, hi)
        if ident < 0 and start > lo:
            ident = self.find_free(lo, start - 1)
        if ident < 0:
            return self, -1
        store = self._store
        store.toggle(ident)
        return self._new(store, ident, ident + 1), ident

    # -- value semantics ----------------------------------------------------------------------
    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:
            pass
        h = hash((self.cursor, frozenset(self._reroot().live)))
        self._hash = h
        return h

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, PyIda):
            return NotImplemented
        if self.cursor != other.cursor:
            return False
        mine = frozenset(self._reroot().live)
        return mine == other._reroot().live

    def __reduce__(self):
        return (_rebuild, (self.ids(), self.cursor))

    def __repr__(self) -> str:
        ids = self.ids()
        shown = ", ".join(map(str, ids[:8])) + (", …" if len(ids) > 8 else "")
        return f"Ida([{shown}], allocated={len(ids)}, cursor={self.cursor})"


class _CyclicIda(PyIda):
    """A version made by (or after) a cyclic allocation: it carries its cursor."""

    __slots__ = ("cursor",)


_NEW = object.__new__


def _rebuild(ids: list[int], cursor: int) -> PyIda:
    ida = PyIda() if not cursor else _NEW(_CyclicIda)
    if cursor:
        ida._store = _Store()
        ida._parent = None
        ida.cursor = cursor
    store = ida._store
    store.live.update(ids)
    top = (max(ids) + 1) if ids else 1
    store.top = top
    live = store.live
    store.heap = [i for i in range(1, top) if i not in live]
    return ida


def _select():
    """The C allocator unless ``PASIDSIM_PURE_IDA`` is set or the extension was not built."""
    if os.environ.get("PASIDSIM_PURE_IDA"):
        return PyIda
    try:
        # local import: the C extension is optional (not built -> the Python twin)
        from ._ida import Ida as CIda
    except ImportError:  # the extension was not built: same behaviour, slower
        return PyIda
    return CIda


Ida = _select()
