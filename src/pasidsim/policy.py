"""Design variants: the kernel's PASID lifecycle as it was in each epoch, as switches.

One code path reads these switches; a historical design is a :class:`Policy` value, never a
forked copy of the subsystem.  :data:`CURRENT` is today's kernel (v6.8+ ``iommu_mm_data``, PASID
freed in ``__mmdrop``, handle sharing, ENQCMD #GP fixup, E8 DMA ownership).  The named historical
policies live in :mod:`pasidsim.designs`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum, unique


@unique
class Allocator(IntEnum):
    """How free PASIDs are chosen and when a freed one may be reused."""

    LOWEST = 0  # IDA lowest free, immediate reuse (drivers/iommu/iommu.c, today)
    CYCLIC = 1  # idr_alloc_cyclic: reuse only after wrap-around (amdgpu since 2026)
    PENDING_FREE = 2  # lowest free, but a freed PASID still referenced stays FREE_PENDING (§1.5)


@unique
class FreePoint(IntEnum):
    """Where the mm's PASID is returned to the allocator."""

    UNBIND = 0  # E4–E5: last unbind (ioasid_put), mm->pasid = 0
    MMPUT = 1  # E6 (5.18-rc1..rc5): __mmput -> mm_pasid_drop
    MMDROP = 2  # E7+ (2667ed10d9f0): __mmdrop -> mm_pasid_drop
    MM_EXIT = 3  # E0 io_mm: io_mm kref -> 0 (unbind or mm exit), IDR removal immediate


@unique
class Enqcmd(IntEnum):
    """x86 ENQCMD / IA32_PASID handling."""

    DISABLED = 0  # E5: X86_FEATURE_ENQCMD force-disabled; #GP is never fixed up
    IPI = 1  # E3: MSR of every thread updated by IPI at bind/unbind (update_pasid())
    GP_FIXUP = 2  # E6+: lazily on #GP, per-mm immutable PASID
    TASK_REFCOUNT = 3  # Sep 2021 proposal: #GP takes a PASID ref, task exit puts it


@unique
class OwnerModel(IntEnum):
    """Group DMA-ownership rules."""

    E8 = 0  # counted DMA-API use + one exclusive owner cookie (v5.19+)
    PRE_E8_BUG_ON = 1  # VFIO notifier BUG_ON when a kernel driver binds into a user group
    ENUM_DEC2021 = 2  # Dec 2021 DMA-owner enum series, with owner_cnt = 1 in use_dma_api
    ENUM_V4 = 3  # the enum series v4 as posted (17 Dec 2021): iommu_group_set_dma_owner()


@unique
class AmdgpuPasidLock(IntEnum):
    """How amdgpu's cyclic PASID allocator is locked (drivers/gpu/drm/amd/amdgpu/amdgpu_ids.c)."""

    XARRAY = 0  # today: an XArray, xa_alloc_cyclic under its IRQ-safe lock, no sleep under it
    IDR_SPIN_GFP_KERNEL = 1  # 8f1de51f49be/14b81abe7bdc: IDR, plain spin_lock, GFP_KERNEL
    IDR_SPIN_PRELOAD = 2  # "fix sleeping allocation under spinlock": idr_preload, plain spin_lock


@dataclass(frozen=True)
class Policy:
    """A design variant.  Every field is read by the one code path.

    Attributes:
        name: label used in reports.
        allocator: :class:`Allocator` of the global PASID space.
        pasid_free_point: :class:`FreePoint`.
        bind_takes_mmget: bind holds mm_users (the never-merged 5.18-rc fix; seed 000 cycle).
        handle_sharing: a second bind of the same (device, mm) returns the same handle with
            users+1 (false = E12 before 65d4418c5002: -EBUSY).
        shared_sva_domain: one SVA domain per mm and IOMMU shared by devices (E12 1:n); false
            = a domain per bind (E9).
        enqcmd: :class:`Enqcmd`.
        owner_model: :class:`OwnerModel`.
        claim_attaches_blocking: ``iommu_group_claim_dma_owner`` attaches the blocking domain
            (0286300e6045, E8+); false = only records the owner (H11 window).
        unbind_touches_mm_after_free: H8: unbind walks ``iommu_mm`` lists after
            ``iommu_domain_free`` (the E16 bug).
        singleton_group_required: E1: SVA bind on a multi-device group fails -EINVAL.
        mm_exit_callback: E0: the driver's ``mm_exit`` is called from the mmu-notifier
            release and the bond is torn down there.
        sva_disabled_x86: E15: every bind to a device behind an x86 IOMMU (VT-d, AMD-Vi)
            fails -EOPNOTSUPP (``IS_ENABLED(CONFIG_X86)``; an SMMU implies an Arm kernel).
        private_pasid: allow ``SVM_FLAG_PRIVATE_PASID`` binds (seed 002 requirement 5).
        amdgpu_cyclic: amdgpu's own PASID IDR is cyclic (14b81abe7bdc) rather than lowest-free.
        fork_shares_iommu_mm: H7: ``mm_init()`` does not clear ``iommu_mm`` (an early
            iommu_mm_data revision removed ``mm_pasid_init``): the child aliases the parent's
            PASID and the first ``__mmdrop`` frees it.
        release_unbinds_before_drain: the accelerator drivers' ``release`` unbinds the file's
            bond before it drains the queue (the order the threads warn against: "Closing
            the queue calls iommu_sva_unbind_device() which destroys the PASID context (after
            the device driver stopped all DMA for this PASID)", seed 000).
        amdgpu_pasid_lock: :class:`AmdgpuPasidLock`: amdgpu's cyclic PASID IDR as
            8f1de51f49be / 14b81abe7bdc merged it (``idr_alloc_cyclic(..., GFP_KERNEL)`` under a
            plain ``spin_lock``, also taken by the fence callback in IRQ context), after "fix
            sleeping allocation under spinlock in PASID IDR" (``idr_preload``, still a plain
            ``spin_lock``), or today's XArray (IRQ-safe, no sleep under its lock).
        mm_exit_keeps_bonds: with ``mm_exit_callback``: the drivers are told at mm exit but
            the bonds (and the PASID) stay until each driver's explicit unbind; meanwhile the
            PASID entry is non-present with faults suppressed (Christian König's proposal,
            seed 002: "each driver is informed by the mm_exit(), but needs to explicitly call
            unbind() before a PASID is reused").
        attach_device_owner_cnt: ``iommu_attach_device`` accepts a multi-device group when
            the caller's driver is its only DMA user (``owner_cnt == 1``, no user owner) instead
            of requiring a singleton group; later DMA-API users of the group are refused by
            ``iommu_device_use_default_domain`` (Jason Gunthorpe, seed 003).
        iopf_remove_before_teardown: VT-d's blocking ``set_dev_pasid`` disables I/O page
            faults (the last one removes the device from its fault queue, freeing the groups
            still queued) *before* tearing the PASID entry down and draining its page
            requests: v6.16 as released (17fce9d2336d), fixed by f0b9d31c6edd ("iommu/vt-d:
            Fix UAF on sva unbind with pending IOPFs").
    """

    name: str = "current"
    allocator: Allocator = Allocator.LOWEST
    pasid_free_point: FreePoint = FreePoint.MMDROP
    bind_takes_mmget: bool = False
    handle_sharing: bool = True
    shared_sva_domain: bool = True
    enqcmd: Enqcmd = Enqcmd.GP_FIXUP
    owner_model: OwnerModel = OwnerModel.E8
    claim_attaches_blocking: bool = True
    unbind_touches_mm_after_free: bool = False
    singleton_group_required: bool = False
    mm_exit_callback: bool = False
    sva_disabled_x86: bool = False
    private_pasid: bool = False
    amdgpu_cyclic: bool = True
    fork_shares_iommu_mm: bool = False
    release_unbinds_before_drain: bool = False
    amdgpu_pasid_lock: AmdgpuPasidLock = AmdgpuPasidLock.XARRAY
    mm_exit_keeps_bonds: bool = False
    attach_device_owner_cnt: bool = False
    iopf_remove_before_teardown: bool = False

    def but(self, **changes) -> "Policy":
        """A copy with some switches changed (``CURRENT.but(allocator=Allocator.CYCLIC)``)."""
        return replace(self, **changes)


CURRENT = Policy()
