"""Named design variants: today's kernel and the historical designs of the seed threads.

Each is a :class:`~pasidsim.policy.Policy` value (switches of the one code path).
"""

from __future__ import annotations

from .errors import ModelUsageError
from .policy import CURRENT, Allocator, AmdgpuPasidLock, Enqcmd, FreePoint, OwnerModel, Policy

DESIGNS: dict[str, Policy] = {
    "current": CURRENT,
    "E0-io_mm": CURRENT.but(name="E0-io_mm", pasid_free_point=FreePoint.MM_EXIT,
                            mm_exit_callback=True, shared_sva_domain=False),
    "E1-singleton-group": CURRENT.but(name="E1-singleton-group", singleton_group_required=True,
                                      pasid_free_point=FreePoint.UNBIND),
    "E4-unbind-free": CURRENT.but(name="E4-unbind-free", pasid_free_point=FreePoint.UNBIND,
                                  enqcmd=Enqcmd.IPI),
    "E5-enqcmd-disabled": CURRENT.but(name="E5-enqcmd-disabled",
                                      pasid_free_point=FreePoint.UNBIND, enqcmd=Enqcmd.DISABLED),
    "E6-mmput-free": CURRENT.but(name="E6-mmput-free", pasid_free_point=FreePoint.MMPUT),
    "H2-mmget-bind": CURRENT.but(name="H2-mmget-bind", pasid_free_point=FreePoint.MMPUT,
                                 bind_takes_mmget=True),
    "E12-no-handle-sharing": CURRENT.but(name="E12-no-handle-sharing", handle_sharing=False),
    "H5-task-refcount": CURRENT.but(name="H5-task-refcount", pasid_free_point=FreePoint.UNBIND,
                                    enqcmd=Enqcmd.TASK_REFCOUNT),
    "pre-E8-bug-on": CURRENT.but(name="pre-E8-bug-on", owner_model=OwnerModel.PRE_E8_BUG_ON),
    "dma-owner-enum-2021": CURRENT.but(name="dma-owner-enum-2021",
                                       owner_model=OwnerModel.ENUM_DEC2021),
    "H8-unbind-uaf": CURRENT.but(name="H8-unbind-uaf", unbind_touches_mm_after_free=True),
    "H11-claim-no-blocking": CURRENT.but(name="H11-claim-no-blocking",
                                         claim_attaches_blocking=False),
    "amdgpu-lowest": CURRENT.but(name="amdgpu-lowest", amdgpu_cyclic=False),
    "H7-iommu_mm-aliased": CURRENT.but(name="H7-iommu_mm-aliased", fork_shares_iommu_mm=True),
    "E15-x86-sva-disabled": CURRENT.but(name="E15-x86-sva-disabled", sva_disabled_x86=True),
    "pending-free": CURRENT.but(name="pending-free", allocator=Allocator.PENDING_FREE),
    "cyclic": CURRENT.but(name="cyclic", allocator=Allocator.CYCLIC),
    "drv-unbind-before-drain": CURRENT.but(name="drv-unbind-before-drain",
                                           release_unbinds_before_drain=True),
    "amdgpu-idr-spinlock": CURRENT.but(name="amdgpu-idr-spinlock",
                                       amdgpu_pasid_lock=AmdgpuPasidLock.IDR_SPIN_GFP_KERNEL),
    "koenig-explicit-unbind": CURRENT.but(name="koenig-explicit-unbind",
                                          pasid_free_point=FreePoint.MM_EXIT,
                                          mm_exit_callback=True, mm_exit_keeps_bonds=True,
                                          shared_sva_domain=False),
    "attach-device-owner-cnt": CURRENT.but(name="attach-device-owner-cnt",
                                           attach_device_owner_cnt=True),
    "amdgpu-idr-preload": CURRENT.but(name="amdgpu-idr-preload",
                                      amdgpu_pasid_lock=AmdgpuPasidLock.IDR_SPIN_PRELOAD),
    "vtd-iopf-remove-first": CURRENT.but(name="vtd-iopf-remove-first",
                                         iopf_remove_before_teardown=True),
    "dma-owner-enum-v4": CURRENT.but(name="dma-owner-enum-v4", owner_model=OwnerModel.ENUM_V4,
                                     claim_attaches_blocking=False),
}


#: Column labels for the `pasidsim check` matrix: the epoch or hypothesis id of kernel-spec
#: §0/§6 where the design has one.
SHORT_NAMES: dict[str, str] = {
    "current": "now", "E0-io_mm": "E0", "E1-singleton-group": "E1", "E4-unbind-free": "E4",
    "E6-mmput-free": "E6", "H2-mmget-bind": "H2", "E12-no-handle-sharing": "E12",
    "H5-task-refcount": "H5", "pre-E8-bug-on": "preE8", "dma-owner-enum-2021": "own2021",
    "H8-unbind-uaf": "H8", "H11-claim-no-blocking": "H11", "amdgpu-lowest": "H13",
    "H7-iommu_mm-aliased": "H7", "E15-x86-sva-disabled": "E15", "pending-free": "pfree",
    "cyclic": "cyclic", "drv-unbind-before-drain": "drvUB", "amdgpu-idr-spinlock": "amdIDR",
    "amdgpu-idr-preload": "amdPRE", "E5-enqcmd-disabled": "E5",
    "koenig-explicit-unbind": "König", "attach-device-owner-cnt": "ownCnt",
    "vtd-iopf-remove-first": "iopf616",
    "dma-owner-enum-v4": "ownV4",
}

#: One line per design: epoch, what it does, where it breaks (kernel-spec §0, §6).
DESCRIPTIONS: dict[str, str] = {
    "current": "v6.8+: iommu_mm_data, PASID freed at __mmdrop, handle sharing, #GP fixup, E8 ownership",
    "E0-io_mm": "2018 RFC: io_mm with mm_exit callbacks; PASID back in the IDR with the io_mm's last bond (unbind or mm exit)",
    "E1-singleton-group": "v5.3-v5.8 iommu_sva_bind_device: SVA only on single-device groups (-EINVAL)",
    "E4-unbind-free": "v5.10-v5.12: PASID freed at last unbind; MSRs updated by IPI (update_pasid), clones inherit them",
    "E5-enqcmd-disabled": "v5.13-v5.17: ENQCMD force-disabled (9bfecd058339); PASID freed at last unbind",
    "koenig-explicit-unbind": "seed 002 proposal: drivers told by mm_exit, PASID reused only after their explicit unbind",
    "attach-device-owner-cnt": "seed 003 proposal: iommu_attach_device checks owner_cnt == 1, not the group's device count",
    "E6-mmput-free": "v5.18-rc1: PASID freed at __mmput (H1: use-after-free with an inherited fd)",
    "H2-mmget-bind": "5.18-rc proposal: bind holds mm_users (mm->fd->mm cycle, seed 000)",
    "E12-no-handle-sharing": "v6.8 before 65d4418c5002: second bind of (dev, mm) fails -EBUSY",
    "H5-task-refcount": "Sep 2021 proposal: per-task PASID references taken at the #GP fixup (seed 004)",
    "pre-E8-bug-on": "before v5.19: VFIO BUG_ON when a kernel driver binds into a user-owned group",
    "dma-owner-enum-2021": "Dec 2021 DMA-owner series with owner_cnt = 1 in iommu_device_use_dma_api (seed 003)",
    "H8-unbind-uaf": "E16: unbind touches iommu_mm after iommu_domain_free (use after free)",
    "H11-claim-no-blocking": "before 0286300e6045: claim leaves the group on the kernel default domain",
    "amdgpu-lowest": "amdgpu before 14b81abe7bdc: lowest-free PASID reuse (H13)",
    "H7-iommu_mm-aliased": "2023 iommu_mm_data revision without mm_pasid_init: fork aliases iommu_mm (seed 001)",
    "E15-x86-sva-disabled": "stable trees with 72f98ef9a4be alone (5.15.y, 6.1.y, 6.18.y): SVA bind refused on x86",
    "pending-free": "allocator variant: freed PASIDs stay pending until every device drained them",
    "cyclic": "allocator variant: cyclic PASID allocation (reuse after wrap-around)",
    "drv-unbind-before-drain": "driver bug the threads warn of: release unbinds before it drains the queue (seed 000)",
    "amdgpu-idr-spinlock": "amdgpu 8f1de51f49be/14b81abe7bdc as merged: cyclic IDR allocated with GFP_KERNEL under a spinlock",
    "amdgpu-idr-preload": "amdgpu after the sleeping-allocation fix: idr_preload, but a plain spin_lock also taken from the fence IRQ",
    "dma-owner-enum-v4": "Dec 2021 DMA-owner enum series v4 as posted: DMA_API / PRIVATE_DOMAIN_USER owners with a cookie, user claim detaches to NULL (seed 003)",
    "vtd-iopf-remove-first": "v6.16 VT-d (17fce9d2336d): IOPF disabled before the PASID tear-down drains, queued groups freed (fixed by f0b9d31c6edd)",
}


def get_policy(name: str) -> Policy:
    """The design called ``name``; ModelUsageError listing the known ones otherwise."""
    try:
        return DESIGNS[name]
    except KeyError:
        raise ModelUsageError(f"unknown design {name!r}; known: {', '.join(DESIGNS)}") from None
