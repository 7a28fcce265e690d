"""The legacy IOASID allocator on the same PASID space: sets, quotas, private data, refcounts,
custom allocators and the FREE_PENDING grace period.

The API is the union of merged ``drivers/iommu/ioasid.c`` (E2–E10: ``ioasid_alloc/free/find``,
E4 ``ioasid_get/put``, custom allocators) and Jacob Pan's unmerged IOASID-set series (sets with
quotas and capacity, ``ioasid_free`` leaving a still-referenced ID FREE_PENDING).  Where the two
disagree, the set series' stricter errno wins (``ioasid_get`` of an unknown ID returns -EINVAL
where E4 only WARNed).  ``set == 0`` is the NULL set.  Private data is an int token.
"""

from __future__ import annotations

from .errors import EACCES, EAGAIN, EBUSY, EEXIST, EINVAL, ENOENT, ENOSPC, Warn
from .pasid import ida_alloc, warn
from .state import INVALID_IOASID, Ioasid, IoasidSet, IoasidState, SystemState

IOASID_SET_TYPE_NULL = 0
IOASID_SET_TYPE_MM = 1


def ioasid_set_alloc(s: SystemState, token: int, quota: int,
                     type: int) -> tuple[SystemState, int]:  # noqa: A002 - kernel name
    """Create a set of IOASIDs with a quota.

    Args:
        token: owner token (an mm id for MM sets; 0 = NULL).
        quota: IDs the set may hold; 0 = all remaining capacity.
        type: IOASID_SET_TYPE_NULL (0) or IOASID_SET_TYPE_MM (1).
    Returns: set id (> 0); -EINVAL (bad type, MM set without token, NULL set with token),
        -ENOSPC (quota above remaining capacity), -EEXIST (token already owns an MM set).
    Models: ioasid.c (IOASID-set series) ``ioasid_set_alloc()``.
    """
    if type not in (IOASID_SET_TYPE_NULL, IOASID_SET_TYPE_MM):
        return s, -EINVAL
    if quota < 0:
        return s, -EINVAL
    if quota == 0:
        quota = s.ioasid_capacity
    if quota > s.ioasid_capacity:
        return s, -ENOSPC
    if type == IOASID_SET_TYPE_MM:
        if token == 0:
            return s, -EINVAL
        if any(st.type == IOASID_SET_TYPE_MM and st.token == token
               for st in s.ioasid_sets.values()):
            return s, -EEXIST
    elif token != 0:
        return s, -EINVAL
    sid = s.next_id
    return s._replace(next_id=sid + 1, ioasid_capacity=s.ioasid_capacity - quota,
                      ioasid_sets=s.ioasid_sets.set(sid, IoasidSet(token, quota, type))), sid


def ioasid_set_free(s: SystemState, set: int) -> tuple[SystemState, int]:  # noqa: A002
    """Free a set.  Returns 0; -EINVAL for an unknown set; -EBUSY while it holds IDs, and the
    set is then marked free_pending and destroyed with its last ID.
    Models: ``ioasid_set_free()``."""
    st = s.ioasid_sets.get(set)
    if st is None:
        return s, -EINVAL
    if st.nr_ioasids > 0:
        return s._replace(ioasid_sets=s.ioasid_sets.set(set, st._replace(free_pending=True))), -EBUSY
    return _destroy_set(s, set), 0


def _destroy_set(s: SystemState, set: int) -> SystemState:  # noqa: A002
    st = s.ioasid_sets[set]
    return s._replace(ioasid_sets=s.ioasid_sets.delete(set),
                      ioasid_capacity=s.ioasid_capacity + st.quota)


def ioasid_alloc(s: SystemState, set: int, min: int, max: int,  # noqa: A002
                 private: int = 0) -> tuple[SystemState, int]:
    """Allocate an IOASID in ``[min, max]`` (inclusive) from the shared PASID space.

    Args:
        set: set id, or 0 for the NULL set.
        min, max: inclusive bounds, 1 <= min <= max < 2**20.
        private: private data token, returned by :func:`ioasid_find`.
    Returns: the ID, or ``INVALID_IOASID`` (0xFFFFFFFF) for an unknown or freeing set, an
        exhausted quota, a bad range or an exhausted space.  The ID starts IDLE with refs 1.
    Models: ioasid.c ``ioasid_alloc()``.
    """
    st = None
    if set:
        st = s.ioasid_sets.get(set)
        if st is None or st.free_pending or st.quota <= st.nr_ioasids:
            return s, INVALID_IOASID
    if min < 1 or max < min or max >= 1 << 20:
        return s, INVALID_IOASID
    s2, ident = ida_alloc(s, min, max)
    if ident < 0:
        return s, INVALID_IOASID
    s2 = s2._replace(ioasids=s2.ioasids.set(ident, Ioasid(set=set, private=private)))
    if st is not None:
        s2 = s2._replace(ioasid_sets=s2.ioasid_sets.set(set, st._replace(nr_ioasids=st.nr_ioasids + 1)))
    return s2, ident


def _reclaim(s: SystemState, ident: int) -> SystemState:
    data = s.ioasids[ident]
    if ident in s.ida:
        s = s._replace(ioasids=s.ioasids.delete(ident), ida=s.ida.clear(ident))
    else:  # the ID was already freed through another API (one IDA): ida_free() WARNs
        s = warn(s._replace(ioasids=s.ioasids.delete(ident)), Warn.FREE_UNALLOCATED_PASID,
                 ident)
    if data.set:
        st = s.ioasid_sets[data.set]
        st = st._replace(nr_ioasids=st.nr_ioasids - 1)
        s = s._replace(ioasid_sets=s.ioasid_sets.set(data.set, st))
        if st.free_pending and st.nr_ioasids == 0:
            s = _destroy_set(s, data.set)
    return s


def ioasid_free(s: SystemState, set: int, ident: int) -> tuple[SystemState, int]:  # noqa: A002
    """Free an IOASID: it becomes FREE_PENDING and its allocation reference is dropped; it is
    reclaimed (reusable) only when no other reference remains.

    Unknown ID or wrong set → WARN, no change; already FREE_PENDING → no change.  Returns 0.
    Models: ioasid.c (IOASID-set series) ``ioasid_free()``; E2 ``ioasid_free()`` when no
    other reference was taken.
    """
    data = s.ioasids.get(ident)
    if data is None:
        return warn(s, Warn.IOASID_UNKNOWN, ident), 0
    if set and data.set != set:
        return warn(s, Warn.IOASID_WRONG_SET, ident, set), 0
    if data.state == IoasidState.FREE_PENDING:
        return s, 0
    if data.refs <= 1:
        return _reclaim(s, ident), 0
    data = data._replace(state=IoasidState.FREE_PENDING, refs=data.refs - 1)
    return s._replace(ioasids=s.ioasids.set(ident, data)), 0


def ioasid_get(s: SystemState, set: int, ident: int) -> tuple[SystemState, int]:  # noqa: A002
    """Take a reference.  Returns 0; -EINVAL unknown; -EBUSY FREE_PENDING; -EACCES when
    ``set`` is non-NULL and does not own the ID.  Models: ``ioasid_get()``."""
    data = s.ioasids.get(ident)
    if data is None:
        return s, -EINVAL
    if data.state == IoasidState.FREE_PENDING:
        return s, -EBUSY
    if set and data.set != set:
        return s, -EACCES
    return s._replace(ioasids=s.ioasids.set(ident, data._replace(refs=data.refs + 1))), 0


def ioasid_put(s: SystemState, set: int, ident: int) -> tuple[SystemState, int]:  # noqa: A002
    """Drop a reference.  Returns 1 (true) when this put freed the ID, else 0 (false); an
    unknown ID WARNs ("Trying to free unknown IOASID") and returns 0.
    Models: ioasid.c ``ioasid_put()`` (E4) / the set series' deferred free."""
    data = s.ioasids.get(ident)
    if data is None:
        return warn(s, Warn.IOASID_UNKNOWN, ident), 0
    if set and data.set != set:
        return warn(s, Warn.IOASID_WRONG_SET, ident, set), 0
    if data.refs <= 1:
        return _reclaim(s, ident), 1
    return s._replace(ioasids=s.ioasids.set(ident, data._replace(refs=data.refs - 1))), 0


def ioasid_find(s: SystemState, set: int, ident: int) -> tuple[SystemState, int]:  # noqa: A002
    """Look up the private data of an IOASID.  Returns the private token (>= 0); -ENOENT when
    the ID is not allocated (or pending free); -EACCES when ``set`` is non-NULL and differs.
    Models: ioasid.c ``ioasid_find()`` (getter omitted)."""
    data = s.ioasids.get(ident)
    if data is None or data.state == IoasidState.FREE_PENDING:
        return s, -ENOENT
    if set and data.set != set:
        return s, -EACCES
    return s, data.private


def ioasid_set_data(s: SystemState, ident: int, data: int) -> tuple[SystemState, int]:
    """Replace the private data.  Returns 0 or -ENOENT.  Models ``ioasid_set_data()``."""
    rec = s.ioasids.get(ident)
    if rec is None:
        return s, -ENOENT
    return s._replace(ioasids=s.ioasids.set(ident, rec._replace(private=data))), 0


def ioasid_register_allocator(s: SystemState, ops: int, fns: int = 0) -> tuple[SystemState, int]:
    """Register a custom allocator (e.g. VT-d virtual-command PASIDs in a guest).

    Args:
        ops: token of the ``ioasid_allocator_ops`` structure.
        fns: token of its alloc/free functions; allocators with equal ``fns`` share IDs.
    Returns: 0; -EEXIST for the same ops twice; -EAGAIN for the first custom allocator while
        the default allocator holds IDs.
    Models: ioasid.c ``ioasid_register_allocator()``.
    """
    if any(o == ops for o, _ in s.allocators):
        return s, -EEXIST
    if not s.allocators and len(s.ioasids) > 0:
        return s, -EAGAIN
    return s._replace(allocators=s.allocators + ((ops, fns),)), 0


def ioasid_unregister_allocator(s: SystemState, ops: int) -> tuple[SystemState, int]:
    """Unregister a custom allocator.  Unknown ops → WARN; the last of a family with IDs
    outstanding → WARN (they are orphaned).  Returns 0.  Models
    ``ioasid_unregister_allocator()``."""
    match = [a for a in s.allocators if a[0] == ops]
    if not match:
        return warn(s, Warn.ALLOCATOR_NOT_REGISTERED, ops), 0
    rest = tuple(a for a in s.allocators if a[0] != ops)
    if not any(f == match[0][1] for _, f in rest) and len(s.ioasids) > 0:
        s = warn(s, Warn.ALLOCATOR_ORPHANS, ops, len(s.ioasids))
    return s._replace(allocators=rest), 0
