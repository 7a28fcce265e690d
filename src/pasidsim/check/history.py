"""The historical designs and the scenario on which each one breaks, as the mailing lists saw.

Each :class:`HistoryCase` names a design (:data:`pasidsim.designs.DESIGNS`), a built-in scenario,
and the property the design violates there; ``current`` must pass the same scenario.  These rows
are the documented diagonal of the expected verdicts (``check/expected/<scenario>.yaml``, which
judge every cell): each row's ``breaks`` is its cell's expected ``breaks`` there (tested in
``tests/checker/test_expected.py``).  ``pasidsim check`` marks them ✓ and prints their traces.
"""

from __future__ import annotations

from typing import NamedTuple


class HistoryCase(NamedTuple):
    """One row: ``design`` breaks ``breaks`` (an invariant name, ``quiescence`` or ``EXPECT``)
    on built-in ``scenario`` checked at ``granularity`` (``"call"`` or ``"lock"``,
    :mod:`pasidsim.step`); ``what`` says how it broke on the list."""

    design: str
    scenario: str
    breaks: str  # invariant name (kernel-spec §7), "quiescence" (leak) or "EXPECT" (errno)
    what: str
    granularity: str = "call"


HISTORY: tuple[HistoryCase, ...] = (
    HistoryCase("E0-io_mm", "hist-io_mm-mm-exit", "A3q",
                "2018 io_mm RFC: the PASID returns to the IDR at mm exit; a driver whose "
                "mm_exit cannot wait for its queues (the release path must not block) leaves "
                "descriptors tagged with it queued (\"some grace period before a PASID is "
                "reused\", seed 002)"),
    HistoryCase("E4-unbind-free", "hist-enqcmd-thread-pool", "X3",
                "E3-E5 (v5.10-v5.13): PASID freed at last unbind and pushed to every thread's "
                "IA32_PASID by IPI; the IPI writes other tasks' MSRs (H4, 9bfecd058339)"),
    HistoryCase("E5-enqcmd-disabled", "enqcmd-thread-fixup", "EXPECT",
                "v5.13-v5.17: ENQCMD force-disabled (9bfecd058339, \"broken beyond repair\"): "
                "a thread's ENQCMD takes a #GP that nothing fixes up, SIGSEGV (seed 004)"),
    HistoryCase("koenig-explicit-unbind", "wq-inflight-release", "X1",
                "Christian König's proposal (seed 002): drivers told by mm_exit, the PASID reused "
                "only after their explicit unbind -- an io_mm-style PASID still dies with its "
                "last bond while a thread keeps it in IA32_PASID (why E7 ties the PASID to the "
                "mm, seeds 000/004); it passes hist-io_mm-mm-exit, where E0 breaks"),
    HistoryCase("attach-device-owner-cnt", "hist-attach-device-shared-group", "EXPECT",
                "Jason Gunthorpe's proposal (seed 003): iommu_attach_device checks owner_cnt == "
                "1 instead of the group's device count; the attach succeeds on a two-device "
                "group and the sibling's driver probe fails -EBUSY"),
    HistoryCase("vtd-iopf-remove-first", "hist-iopf-unbind-pending", "F3",
                "v6.16 VT-d (17fce9d2336d \"Put iopf enablement in domain attach path\"): the "
                "blocking domain's set_dev_pasid disables IOPF before the PASID tear-down, so "
                "the device leaves its fault queue with a group still queued; the worker then "
                "runs the freed group (\"refcount_t: underflow; use-after-free\" in "
                "iopf_free_group, fixed by f0b9d31c6edd)"),
    HistoryCase("dma-owner-enum-v4", "group-release-ats-flush", "O4",
                "Lu Baolu's DMA-owner enum series v4 (Dec 2021, seed 003): releasing user "
                "ownership with the user's domain still attached only WARNs (05/13: "
                "WARN_ON(group->domain)) and leaves that domain in place with owner_cnt 0, so "
                "the next DMA-API driver would DMA through the user's page table; E8 replaced "
                "the enum with claim/release that put the default domain back"),
    HistoryCase("E6-mmput-free", "h1-fork-exit", "A3",
                "v5.18-rc1 (701fac40384f): PASID freed at __mmput while the forked child's "
                "inherited queue still has it programmed (H1)"),
    HistoryCase("H2-mmget-bind", "h2-mmget-cycle", "quiescence",
                "5.18-rc proposal: bind takes mm_users; the mmapped uacce queue's file holds the "
                "mm, the mm holds the file: nothing is ever released (seed 000, H2)"),
    HistoryCase("E12-no-handle-sharing", "h6-double-bind", "EXPECT",
                "v6.8 092edadd7e2a before 65d4418c5002: a second open of the same device by one "
                "process fails -EBUSY (H6)"),
    HistoryCase("H5-task-refcount", "hist-enqcmd-thread-pool", "M1t",
                "Sep 2021 per-task refcount proposal: the PASID goes with the last bond/thread, "
                "so a live mm's PASID changes (seed 004, H5)"),
    HistoryCase("pre-E8-bug-on", "h10-bind-into-user-group", "B1",
                "before v5.19: binding a kernel driver into a VFIO-owned group hits VFIO's "
                "BUG_ON (H10)"),
    HistoryCase("dma-owner-enum-2021", "hist-dma-api-shared-group", "EXPECT",
                "Dec 2021 DMA-owner series: owner_cnt = 1 in iommu_device_use_dma_api, so a "
                "second kernel driver in a multi-device group fails -EBUSY (seed 003)"),
    HistoryCase("H7-iommu_mm-aliased", "h1-fork-exit", "A1",
                "2023 iommu_mm_data revision without mm_pasid_init(): fork's dup_mm aliases the "
                "parent's iommu_mm, two mms hold one PASID (seed 001, H7)"),
    HistoryCase("H8-unbind-uaf", "h8-unbind-after-exit", "M9",
                "E16: unbind manipulates iommu_mm lists after iommu_domain_free() dropped the "
                "last mm reference (H8)"),
    HistoryCase("amdgpu-lowest", "hist-amdgpu-ih-reuse", "A4",
                "amdgpu before 14b81abe7bdc: a freed VM PASID is reused at once (lowest free) "
                "while a fault tagged with it is still in the IH ring (H13)"),
    HistoryCase("H11-claim-no-blocking", "vfio-multi-device-group", "O3",
                "before 0286300e6045: claiming a group leaves it on the kernel's default "
                "domain until VFIO attaches its own (H11)"),
    # lock granularity: kernel calls stop at their preemption points (pasidsim.step)
    HistoryCase("H2-mmget-bind", "h2-mmget-cycle", "quiescence",
                "5.18-rc proposal: bind takes mm_users; the same leak when calls interleave at "
                "their preemption points (seed 000)", "lock"),
    HistoryCase("H2-mmget-bind", "lock-h2-release-deadlock", "L1",
                "5.18-rc proposal: bind takes mm_users, so unbind's mmput() is the last one; "
                "__mmput runs the mmu-notifier release inside unbind, and a release that takes "
                "the lock unbind holds (arm-smmu-v3 sva_lock, 5.18-6.8) self-deadlocks "
                "(seed 000)", "lock"),
    HistoryCase("H5-task-refcount", "lock-enqcmd-gp-refcount", "L2",
                "Sep 2021 per-task refcount proposal: mutex_lock(&pasid_mutex) in the #GP "
                "fixup, which runs before interrupts are re-enabled: sleeping in atomic "
                "context (seed 004)", "lock"),
    HistoryCase("drv-unbind-before-drain", "lock-release-unbind-before-drain", "A3q",
                "a release that unbinds before it drains frees the PASID with descriptors "
                "still queued; another process can get it before the drain (seed 000: unbind "
                "\"after the device driver stopped all DMA for this PASID\")", "lock"),
    HistoryCase("E6-mmput-free", "lock-exit-task-work-window", "A3",
                "v5.18-rc1 (701fac40384f): PASID freed at __mmput, before exit's task work "
                "releases the queue: the window of a plain exit, no fork needed (seed 000: "
                "the PASID needs a \"pending free\" state)", "lock"),
    HistoryCase("amdgpu-idr-spinlock", "amdgpu-pasid-edges", "L2",
                "amdgpu 8f1de51f49be (14b81abe7bdc upstream, 2026): the cyclic PASID IDR is "
                "allocated with GFP_KERNEL under amdgpu_pasid_idr_lock, a spinlock (\"BUG: "
                "sleeping function called from invalid context\", fixed by \"drm/amdgpu: fix "
                "sleeping allocation under spinlock in PASID IDR\")", "lock"),
    HistoryCase("amdgpu-idr-preload", "hist-amdgpu-ih-reuse", "L3",
                "amdgpu after that fix: amdgpu_pasid_idr_lock is still a plain spin_lock, and "
                "the fence callback frees PASIDs under it from the GPU's interrupt handler: "
                "\"WARNING: inconsistent lock state ... {HARDIRQ-ON-W} -> {IN-HARDIRQ-W}\" "
                "(fixed with spin_lock_irqsave, then an XArray, 2026)", "lock"),
)
