"""``mm_struct`` reference counting and teardown.

Two counters (include/linux/mm_types.h): ``mm_users`` counts users of the address space (tasks,
``mmget()`` holders); when it reaches 0 ``__mmput()`` tears the address space down (exit_mmap:
VMAs unmapped, their file references dropped; the mmu-notifier ``release`` callbacks quiesce SVA
PASIDs) and drops the mm_count reference that the users held.  ``mm_count`` counts references to
the ``struct mm_struct`` itself (``mmgrab()``); when it reaches 0 ``__mmdrop()`` frees it and
``mm_pasid_drop()`` returns its PASID (today's kernel, 2667ed10d9f0).

Kernel sources modeled: kernel/fork.c ``mmget/mmput/__mmput/mmgrab/mmdrop/__mmdrop``,
``mm_pasid_drop()`` (drivers/iommu/iommu-sva.c), mm/mmu_notifier.c ``__mmu_notifier_release``
with the IOMMU drivers' ``release`` (intel ``intel_mm_release``, arm-smmu-v3 ``arm_smmu_mm_release``).
"""

from __future__ import annotations

from .errors import ModelUsageError, Warn
from .file_table import fput, vma_close
from .hw.cache import flush_pasid
from .lifecycle import CREATE, Lifecycle, MmLc, transition
from .locking import LockClass, acquire, lock_key, release
from .mem import unmap_range
from .ops_tables import MMU_NOTIFIER_OPS
from .pasid import iommu_free_global_pasid
from .policy import FreePoint
from .state import IOMMU_PASID_INVALID, Mm, MmState, PasidEntryMode, SystemState, warn


#: ``iommu_sva_lock`` (the SVA layer's lock; pasidsim.sva holds it in bind and unbind)
SVA_LOCK = lock_key(LockClass.IOMMU_SVA_LOCK)


def mm_get(s: SystemState, mm: int) -> Mm:
    """The live record of ``mm``; ModelUsageError if it does not exist."""
    rec = s.mms.get(mm)
    if rec is None:
        raise ModelUsageError(f"unknown or freed mm {mm}")
    return rec


def mm_alloc(s: SystemState) -> tuple[SystemState, int]:
    """A fresh mm (``mm_init()``: mm_users 1, mm_count 1, ``iommu_mm = NULL``)."""
    mid = s.next_id
    transition(Lifecycle.MM, CREATE, MmLc.LIVE)
    return s._replace(next_id=mid + 1, mms=s.mms.set(mid, Mm())), mid


def _put(s: SystemState, mm: int, rec: Mm) -> SystemState:
    return s._replace(mms=s.mms.set(mm, rec))


def mmgrab(s: SystemState, mm: int) -> SystemState:
    """``mmgrab()``: mm_count + 1.  A grab of a freed mm is a use-after-free (WARN)."""
    rec = s.mms.get(mm)
    if rec is None:
        return warn(s, Warn.USE_AFTER_FREE, mm, 1)
    return _put(s, mm, rec._replace(mm_count=rec.mm_count + 1))


def mmget(s: SystemState, mm: int) -> SystemState:
    """``mmget()``: mm_users + 1 (the caller must already hold a user reference)."""
    rec = s.mms.get(mm)
    if rec is None or rec.mm_users == 0:
        return warn(s, Warn.USE_AFTER_FREE, mm, 2)
    return _put(s, mm, rec._replace(mm_users=rec.mm_users + 1))


def mmget_not_zero(s: SystemState, mm: int) -> tuple[SystemState, bool]:
    """``mmget_not_zero()``: take a user reference unless the mm already exited."""
    rec = s.mms.get(mm)
    if rec is None or rec.mm_users == 0:
        return s, False
    return _put(s, mm, rec._replace(mm_users=rec.mm_users + 1)), True


def mm_pasid_drop(s: SystemState, mm: int) -> SystemState:
    """``mm_pasid_drop()``: free the mm's PASID (if any) and clear ``iommu_mm``."""
    rec = s.mms[mm]
    if rec.pasid == IOMMU_PASID_INVALID:
        return s
    s, _ = iommu_free_global_pasid(s, rec.pasid)
    return _put(s, mm, rec._replace(pasid=IOMMU_PASID_INVALID))


def mmdrop(s: SystemState, mm: int) -> SystemState:
    """``mmdrop()``: mm_count - 1; at 0 ``__mmdrop()`` frees the mm (and, with the PASID
    freed at __mmdrop as today, its PASID).  The record leaves the table."""
    rec = s.mms.get(mm)
    if rec is None:
        return warn(s, Warn.USE_AFTER_FREE, mm, 3)
    if rec.mm_count > 1:
        return _put(s, mm, rec._replace(mm_count=rec.mm_count - 1))
    # __mmdrop(): only an exited mm may be freed (mm_users > 0 holds one mm_count)
    transition(Lifecycle.MM, rec.state, MmLc.FREED)
    s = _put(s, mm, rec._replace(mm_count=0))
    if s.policy.pasid_free_point == FreePoint.MMDROP:
        s = mm_pasid_drop(s, mm)
    return s._replace(mms=s.mms.delete(mm))


def mmu_notifier_release(s: SystemState, mm: int) -> SystemState:
    """The IOMMU drivers' mmu-notifier ``release``: every (device, PASID) entry translating
    through one of the mm's SVA domains becomes QUIESCED (transactions aborted, faults not
    reported; ATS answers R=W=0; page requests answered INVALID).  The PASID stays allocated.
    Models intel ``intel_mm_release()`` (tear down entry with IGNORE_FAULT) and
    arm-smmu-v3 ``arm_smmu_mm_release()`` (quiet CD), which takes the driver's ``sva_lock``
    on units with ``release_takes_sva_lock`` (5.18-6.8)."""
    rec = s.mms[mm]
    if not rec.sva_domains:
        return s
    units = s.config.iommus
    if any(units[s.domains[d].iommu].release_takes_sva_lock for d in rec.sva_domains):
        # arm_smmu_mm_release(): mutex_lock(&sva_lock) ... mutex_unlock(&sva_lock)
        s = release(acquire(s, SVA_LOCK), SVA_LOCK)
    doms = set(rec.sva_domains)
    table = s.pasid_table
    quiesced = []
    for key, (dom, mode) in list(table.items()):
        if dom in doms and mode == PasidEntryMode.TRANSLATE:
            table = table.set(key, (dom, int(PasidEntryMode.QUIESCED)))
            quiesced.append(key)
    s = s._replace(pasid_table=table)
    for dev, pasid in quiesced:
        s = flush_pasid(s, dev, pasid)
    return s


def mmput(s: SystemState, mm: int) -> SystemState:
    """``mmput()``: mm_users - 1; at 0 ``__mmput()``: exit_mmap (each VMA's file reference is
    dropped, the final ``__fput`` deferred as task work), mmu-notifier release, the E6 PASID
    drop when the policy frees at ``__mmput``, and ``mmdrop()`` of the users' reference."""
    rec = s.mms.get(mm)
    if rec is None or rec.mm_users <= 0:
        return warn(s, Warn.USE_AFTER_FREE, mm, 4)
    if rec.mm_users > 1:
        return _put(s, mm, rec._replace(mm_users=rec.mm_users - 1))
    # __mmput() -> exit_mmap(): the mmu-notifier release runs first (SVA PASIDs quiesced,
    # their IOTLB/ATC entries flushed), then every VMA is unmapped and its file put.
    transition(Lifecycle.MM, rec.state, MmLc.EXITED)
    s = _put(s, mm, rec._replace(mm_users=0, state=MmState.EXITED))
    if s.policy.mm_exit_callback:
        # E0: the io_mm's mmu-notifier release is the one the core registered: the drivers'
        # mm_exit callbacks run first, while the PASID still translates (the page tables are
        # still there), then the bonds are detached and the io_mm's PASID is removed from
        # the IDR (2018 RFC ``iommu_notifier_release``)
        s = MMU_NOTIFIER_OPS["io_mm"](s, mm)
    s = mmu_notifier_release(s, mm)
    vmas = s.mms[mm].vmas
    s = _put(s, mm, s.mms[mm]._replace(vmas=()))
    for vma in vmas:
        s = unmap_range(s, mm, vma.start, vma.npages, notify=False)
        if vma.file:
            s = fput(vma_close(s, vma.file, vma.pgoff), vma.file)
    if s.policy.pasid_free_point == FreePoint.MMPUT:
        s = mm_pasid_drop(s, mm)
    return mmdrop(s, mm)
