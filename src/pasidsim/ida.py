"""A persistent ID allocator with the kernel's IDA/IDR semantics.

``Ida`` is an immutable value: every operation returns a new ``Ida`` and shares the rest.  The
space is a two-level bitmap: leaves of 1024 IDs (a Python int each, bit ``i`` set = ID allocated)
kept in a HAMT (:class:`immutables.Map`), and a summary int with bit ``L`` set when leaf ``L`` is
full.  Lowest-free search is two find-first-zero operations on ints; an update copies one leaf
int and one HAMT path, O(log n) in the number of leaves (at most 1024 for 2^20 IDs).  Memory is
about one bit per ID plus one HAMT entry per 1024 IDs.

Kernel sources modeled:
- ``lib/idr.c: ida_alloc_range()/ida_free()`` (lowest free ID in ``[min, max]``),
- ``lib/idr.c: idr_alloc_cyclic()`` (search from the ID after the last allocated, wrap once).
"""

from __future__ import annotations

from typing import NamedTuple

from immutables import Map

LEAF_SHIFT = 10
LEAF_IDS = 1 << LEAF_SHIFT
LEAF_FULL = (1 << LEAF_IDS) - 1
_EMPTY: Map = Map()


def _lowest_zero(x: int, start: int) -> int:
    """Index of the lowest clear bit of ``x`` at or above ``start``."""
    y = ~(x >> start)
    return start + ((y & -y).bit_length() - 1)


class Ida(NamedTuple):
    """Immutable ID space.

    Attributes:
        leaves: leaf index -> bitmap of allocated IDs in that leaf (absent = all free).
        full: bitmap of leaves whose 1024 IDs are all allocated.
        allocated: number of allocated IDs.
        cursor: where a cyclic allocation starts searching (the ID after the last one issued).
    """

    leaves: Map = _EMPTY
    full: int = 0
    allocated: int = 0
    cursor: int = 0

    def __contains__(self, ident: object) -> bool:
        if not isinstance(ident, int) or ident < 0:
            return False
        return bool((self.leaves.get(ident >> LEAF_SHIFT, 0) >> (ident & (LEAF_IDS - 1))) & 1)

    def find_free(self, lo: int, hi: int) -> int:
        """Lowest free ID in ``[lo, hi]`` (inclusive), or -1 when the range is full."""
        if lo > hi:
            return -1
        leaves, full = self.leaves, self.full
        leaf = lo >> LEAF_SHIFT
        last = hi >> LEAF_SHIFT
        start = lo & (LEAF_IDS - 1)
        while leaf <= last:
            if (full >> leaf) & 1:
                leaf = _lowest_zero(full, leaf)
                start = 0
                continue
            bits = leaves.get(leaf, 0)
            ident = (leaf << LEAF_SHIFT) + _lowest_zero(bits, start)
            if (ident >> LEAF_SHIFT) == leaf:
                return ident if ident <= hi else -1
            leaf += 1
            start = 0
        return -1

    def set(self, ident: int) -> "Ida":
        """Mark ``ident`` allocated (it must be free)."""
        leaf = ident >> LEAF_SHIFT
        bits = self.leaves.get(leaf, 0) | (1 << (ident & (LEAF_IDS - 1)))
        full = self.full | (1 << leaf) if bits == LEAF_FULL else self.full
        return Ida(self.leaves.set(leaf, bits), full, self.allocated + 1, self.cursor)

    def clear(self, ident: int) -> "Ida":
        """Mark ``ident`` free (it must be allocated)."""
        leaf = ident >> LEAF_SHIFT
        bits = self.leaves.get(leaf, 0) & ~(1 << (ident & (LEAF_IDS - 1)))
        leaves = self.leaves.set(leaf, bits) if bits else self.leaves.delete(leaf)
        return Ida(leaves, self.full & ~(1 << leaf), self.allocated - 1, self.cursor)

    def alloc_lowest(self, lo: int, hi: int) -> tuple["Ida", int]:
        """``ida_alloc_range(ida, lo, hi)``: lowest free ID in ``[lo, hi]``; -1 if none."""
        ident = self.find_free(lo, hi)
        if ident < 0:
            return self, -1
        return self.set(ident), ident

    def alloc_cyclic(self, lo: int, hi: int) -> tuple["Ida", int]:
        """``idr_alloc_cyclic(idr, NULL, lo, hi + 1)``: first free ID at or after the cursor,
        wrapping to ``lo`` once; the cursor moves past the ID issued.  -1 if none."""
        start = self.cursor if lo <= self.cursor <= hi else lo
        ident = self.find_free(start, hi)
        if ident < 0 and start > lo:
            ident = self.find_free(lo, start - 1)
        if ident < 0:
            return self, -1
        new = self.set(ident)
        return new._replace(cursor=ident + 1), ident

    def ids(self) -> list[int]:
        """All allocated IDs, ascending (O(allocated))."""
        out = []
        for leaf in sorted(self.leaves.keys()):
            bits = self.leaves[leaf]
            base = leaf << LEAF_SHIFT
            while bits:
                low = bits & -bits
                out.append(base + low.bit_length() - 1)
                bits ^= low
        return out
