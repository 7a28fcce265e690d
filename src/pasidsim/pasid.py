"""The PASID space: the global allocator, device references and the grace period.

Every function takes a :class:`~pasidsim.state.SystemState` and returns ``(state, ret)``; a
failure returns the state it was given.

Kernel sources modeled:
- ``drivers/iommu/iommu.c: iommu_alloc_global_pasid(), iommu_free_global_pasid()`` (IDA, lowest
  free in ``[1, dev->iommu->max_pasids - 1]``, immediate reuse);
- the amdgpu allocator, ``drivers/gpu/drm/amd/amdgpu/amdgpu_ids.c`` (cyclic IDR since
  14b81abe7bdc, delayed free until the VM's fences signal);
- the unmerged IOASID-set design (Jacob Pan 2020) for the pending-free grace period: a PASID freed
  while references remain is FREE_PENDING, not reusable, until the last reference is put.
"""

from __future__ import annotations

from .errors import EINVAL, ENOSPC, Warn
from .fault import FaultPoint, fault_point
from .lifecycle import Lifecycle, PasidLc, transition
from .locking import GFP_KERNEL_ALLOC, LockClass, acquire, lock_key, might_sleep, release
from .policy import Allocator, AmdgpuPasidLock
from .state import IOMMU_FIRST_GLOBAL_PASID, IOMMU_PASID_INVALID, SystemState, warn


def ida_alloc(s: SystemState, lo: int, hi: int) -> tuple[SystemState, int]:
    """Allocate the ID the system's allocator policy chooses in ``[lo, hi]`` (inclusive).

    Returns ``(state, id)`` or ``(state, -ENOSPC)``.  Models ``ida_alloc_range()`` (LOWEST,
    PENDING_FREE) and ``idr_alloc_cyclic()`` (CYCLIC).
    """
    if s.policy.allocator == Allocator.CYCLIC:
        ida, ident = s.ida.alloc_cyclic(lo, hi)
    else:
        ida, ident = s.ida.alloc_lowest(lo, hi)
    if ident < 0:
        return s, -ENOSPC
    transition(Lifecycle.PASID, PasidLc.FREE, PasidLc.ALLOCATED)
    return s._replace(ida=ida), ident


def iommu_alloc_global_pasid(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """Allocate a system-wide PASID usable by device ``dev``.

    Args:
        dev: device index.
    Returns:
        The lowest free PASID in ``[1, max_pasids(dev) - 1]`` (or the next one cyclically, by
        policy), or ``IOMMU_PASID_INVALID`` (0xFFFFFFFF) when the device has no PASID support
        (max_pasids 0) or the range is exhausted (-ENOSPC/-ENOMEM collapse to INVALID).
    Models: drivers/iommu/iommu.c ``iommu_alloc_global_pasid()``.
    """
    maxp = s.config.max_pasids[dev]
    if maxp == 0:
        return s, IOMMU_PASID_INVALID
    if fault_point(FaultPoint.IDA_ALLOC):
        return s, IOMMU_PASID_INVALID
    s2, ret = ida_alloc(s, IOMMU_FIRST_GLOBAL_PASID, maxp - 1)
    if ret < 0:
        return s, IOMMU_PASID_INVALID
    return s2, ret


def iommu_free_global_pasid(s: SystemState, pasid: int) -> tuple[SystemState, int]:
    """Return ``pasid`` to the global space.

    ``IOMMU_PASID_INVALID`` → WARN, no change.  An ID that is not allocated → WARN (as
    ``ida_free()`` does), no change.  Under the PENDING_FREE allocator a PASID that devices
    still reference becomes pending-free: it stays allocated (not reusable) until the last
    reference is dropped by :func:`pasid_put`.  Returns ``(state, 0)``.
    Models: drivers/iommu/iommu.c ``iommu_free_global_pasid()``, lib/idr.c ``ida_free()``.
    """
    if pasid == IOMMU_PASID_INVALID:
        return warn(s, Warn.FREE_INVALID_PASID, pasid), 0
    if pasid not in s.ida or pasid in s.pending_free:
        return warn(s, Warn.FREE_UNALLOCATED_PASID, pasid), 0
    if s.policy.allocator == Allocator.PENDING_FREE and s.pasid_refs.get(pasid, 0) > 0:
        transition(Lifecycle.PASID, PasidLc.ALLOCATED, PasidLc.PENDING_FREE)
        return s._replace(pending_free=s.pending_free.set(pasid, 1)), 0
    transition(Lifecycle.PASID, PasidLc.ALLOCATED, PasidLc.FREE)
    return s._replace(ida=s.ida.clear(pasid)), 0


def pasid_get(s: SystemState, pasid: int) -> SystemState:
    """A device starts to hold ``pasid`` (programmed in its PASID table, or work in flight)."""
    return s._replace(pasid_refs=s.pasid_refs.set(pasid, s.pasid_refs.get(pasid, 0) + 1))


def pasid_put(s: SystemState, pasid: int) -> SystemState:
    """A device stops holding ``pasid`` (drained).  The last put of a pending-free PASID
    returns it to the allocator (the end of its grace period)."""
    n = s.pasid_refs.get(pasid, 0)
    if n <= 0:
        return warn(s, Warn.PASID_PUT_UNDERFLOW, pasid)
    refs = s.pasid_refs.delete(pasid) if n == 1 else s.pasid_refs.set(pasid, n - 1)
    s = s._replace(pasid_refs=refs)
    if n == 1 and pasid in s.pending_free:
        transition(Lifecycle.PASID, PasidLc.PENDING_FREE, PasidLc.FREE)
        s = s._replace(pending_free=s.pending_free.delete(pasid), ida=s.ida.clear(pasid))
    return s


def pasid_is_free(s: SystemState, pasid: int) -> bool:
    """True when ``pasid`` may be handed out again (not allocated, not pending)."""
    return pasid not in s.ida


# -- amdgpu: VM PASIDs with no mm behind them --------------------------------------------------

#: ``amdgpu_pasid_idr_lock`` (drivers/gpu/drm/amd/amdgpu/amdgpu_ids.c, 14b81abe7bdc)
AMDGPU_PASID_LOCK = lock_key(LockClass.AMDGPU_PASID_LOCK)


def amdgpu_pasid_alloc(s: SystemState, bits: int) -> tuple[SystemState, int]:
    """Allocate a GPU VM PASID in ``[1, 2**bits - 1]``.

    Args:
        bits: PASID width in bits, 1..20.
    Returns:
        the PASID, ``-EINVAL`` when ``bits == 0``, ``-ENOSPC`` when exhausted.
    amdgpu's IDR is its own namespace (not the IOMMU's global IDA).  Cyclic when
    ``policy.amdgpu_cyclic`` (14b81abe7bdc, 2026), else lowest free (before).
    Models: drivers/gpu/drm/amd/amdgpu/amdgpu_ids.c ``amdgpu_pasid_alloc()``.
    """
    if bits <= 0:
        return s, -EINVAL
    hi = (1 << min(bits, 20)) - 1
    spin = s.policy.amdgpu_pasid_lock
    if spin:  # spin_lock(&amdgpu_pasid_idr_lock) (interrupts left on)
        s = acquire(s, AMDGPU_PASID_LOCK)
        if spin == AmdgpuPasidLock.IDR_SPIN_GFP_KERNEL:  # idr_alloc_cyclic(..., GFP_KERNEL)
            s = might_sleep(s, GFP_KERNEL_ALLOC)
    if s.policy.amdgpu_cyclic:
        ida, ident = s.amdgpu_ida.alloc_cyclic(1, hi)
    else:
        ida, ident = s.amdgpu_ida.alloc_lowest(1, hi)
    if spin:
        s = release(s, AMDGPU_PASID_LOCK)
    if ident < 0:
        return s, -ENOSPC
    return s._replace(amdgpu_ida=ida), ident


def amdgpu_pasid_free(s: SystemState, pasid: int) -> tuple[SystemState, int]:
    """``amdgpu_pasid_free()``: ``idr_remove`` (unknown PASID: no change).  Returns 0."""
    spin = s.policy.amdgpu_pasid_lock
    if spin:  # plain spin_lock, also from the fence callback in IRQ context
        s = acquire(s, AMDGPU_PASID_LOCK)
    if pasid in s.amdgpu_ida:
        s = s._replace(amdgpu_ida=s.amdgpu_ida.clear(pasid))
    if spin:
        s = release(s, AMDGPU_PASID_LOCK)
    return s, 0


def dma_fence_create(s: SystemState) -> tuple[SystemState, int]:
    """A new unsignalled fence (GPU work on a VM); returns its id."""
    fid = s.next_id
    return s._replace(next_id=fid + 1, fences=s.fences.set(fid, False)), fid


def dma_fence_signal(s: SystemState, fence: int) -> tuple[SystemState, int]:
    """Signal ``fence``: every PASID whose delayed free waits on it is freed.

    Returns 0, or ``-EINVAL`` for an unknown fence (already signalled: 0, no change).
    Models: drivers/dma-buf/dma-fence.c ``dma_fence_signal()`` running the callback installed
    by ``amdgpu_pasid_free_delayed()``.
    """
    if fence not in s.fences:
        return s, -EINVAL
    if s.fences[fence]:
        return s, 0
    s = s._replace(fences=s.fences.set(fence, True))
    for pasid in sorted(p for p, f in s.amdgpu_pending.items() if f == fence):  # PASID order
        s = s._replace(amdgpu_pending=s.amdgpu_pending.delete(pasid))
        s, _ = amdgpu_pasid_free(s, pasid)
    return s, 0


def amdgpu_pasid_free_delayed(s: SystemState, pasid: int, fence: int = 0,
                              oom: bool = False) -> tuple[SystemState, int]:
    """Free ``pasid`` once ``fence`` (the VM root PD's bookkeeping fences) has signalled.

    Args:
        pasid: an allocated amdgpu PASID.
        fence: fence id, or 0 when the reservation object holds no fence (free now).
        oom: the callback allocation fails: the kernel waits for the fence synchronously
            (``dma_fence_wait``), modeled as the fence completing within this call, then frees.
    Returns 0; ``-EINVAL`` for an unknown fence or a PASID that is not allocated.
    Models: amdgpu_ids.c ``amdgpu_pasid_free_delayed()``.
    """
    if pasid not in s.amdgpu_ida or pasid in s.amdgpu_pending:
        return s, -EINVAL
    if fence == 0 or s.fences.get(fence, None) is True:
        return amdgpu_pasid_free(s, pasid)
    if fence not in s.fences:
        return s, -EINVAL
    if oom:
        s, _ = dma_fence_signal(s, fence)
        return amdgpu_pasid_free(s, pasid)
    return s._replace(amdgpu_pending=s.amdgpu_pending.set(pasid, fence)), 0


__all__ = [
    "ida_alloc", "iommu_alloc_global_pasid", "iommu_free_global_pasid", "pasid_get",
    "pasid_put", "pasid_is_free", "amdgpu_pasid_alloc", "amdgpu_pasid_free",
    "amdgpu_pasid_free_delayed", "dma_fence_create", "dma_fence_signal",
]
