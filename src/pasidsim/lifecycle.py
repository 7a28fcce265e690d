"""The lifecycles of the model as data: one ``IntEnum`` of states and one table of transitions
per lifecycle, and the check the kernel code runs at each transition.  The state diagrams of
``docs/lifecycles.md`` are drawn from the same tables by :mod:`pasidsim.report.lifecycles`.

A lifecycle is a :class:`Spec`: its states (an ``IntEnum``), a text, the kernel sources it
models and a tuple of :class:`Transition` rows ``(src, dst, event, kernel_fn, note)``.  A row
whose ``src`` is :data:`CREATE` is the creation of an object in state ``dst``.  Several rows
may share one ``(src, dst)`` pair (different events, or the same step in different designs);
a self-loop (``src == dst``) is a change within the state (a reference count).  The note of a
row gives its precondition where the kernel guards it (the ``-EBUSY``/``-EPERM`` a failed
guard returns is no transition: the state is unchanged).

:func:`transition` is what the kernel modules call where a lifecycle moves: one membership
test of ``(src, dst)`` in a frozenset per lifecycle; a pair absent from the table is a bug of
the model and raises :class:`~pasidsim.errors.ModelInternalError`.  Where the kernel
``WARN_ON``s and carries on (a double free, a put below zero), nothing changes: that is a
warning recorded in the state, not a transition, and an invariant forbids it.

This module is static data and imports only :mod:`pasidsim.errors` and the standard library:
it sits above ``state.py`` and below every kernel module, and does not read states (the caller
works out ``src`` and ``dst`` from its records).  Where a lifecycle has an enum in
``state.py`` (:class:`~pasidsim.state.MmState`, :class:`~pasidsim.state.PasidEntryMode`,
:class:`~pasidsim.state.IoasidState`), the values agree, so a stored field can be passed as is.

``python -m pasidsim.report.lifecycles > docs/lifecycles.md`` writes the diagrams (Mermaid
``stateDiagram-v2``); ``tests/unit/test_lifecycle.py`` fails when that file is stale.

Kernel sources modeled: see each :class:`Spec` (``Spec.sources``); the reference is
kernel-spec §1–§5 (§2.11 and §4.5 are its state machines).
"""

from __future__ import annotations

from enum import IntEnum, unique
from typing import NamedTuple

from .errors import ModelInternalError

#: ``src`` of a creation row: the object did not exist (drawn ``[*]`` in the diagrams).
CREATE = -1


@unique
class Lifecycle(IntEnum):
    """The lifecycles of the model; a value indexes :data:`SPECS`."""

    PASID = 0  # one PASID of the global IDA
    MM = 1  # struct mm_struct
    IOMMU_MM = 2  # mm->iommu_mm (the mm's PASID)
    BOND = 3  # struct iommu_sva (an SVA bond / handle)
    SVA_DOMAIN = 4  # an SVA iommu_domain
    PASID_SLOT = 5  # group->pasid_array[pasid]
    PASID_ENTRY = 6  # the hardware PASID-table entry of (device, PASID)
    GROUP_OWNER = 7  # DMA ownership of an iommu_group
    WQ = 8  # a device's work queue, for one PASID
    DESC = 9  # one work descriptor
    TASK_PASID = 10  # a thread's IA32_PASID MSR
    IOASID = 11  # legacy ioasid_data
    AMDGPU_PASID = 12  # one PASID of amdgpu's own IDR


class Transition(NamedTuple):
    """One row of a lifecycle table.

    Attributes:
        src: state before (a member of the lifecycle's enum, or :data:`CREATE`).
        dst: state after.
        event: short name of what happens (``"alloc"``, ``"last_unbind"``).
        kernel_fn: the kernel function that performs it (the model function of the same name
            is where :func:`transition` is called).
        note: precondition, design variant, kernel-spec section.
    """

    src: int
    dst: int
    event: str
    kernel_fn: str
    note: str = ""


class Spec(NamedTuple):
    """A lifecycle: its states, what it is, and its transition table.

    Attributes:
        lifecycle: its :class:`Lifecycle` value.
        states: the ``IntEnum`` of its states.
        title: heading in the docs.
        subject: what one instance of the lifecycle is.
        text: a paragraph for the docs.
        sources: kernel sources modeled (``file: function()``).
        state_notes: one line per state (keyed by member).
        transitions: the table.
    """

    lifecycle: Lifecycle
    states: type
    title: str
    subject: str
    text: str
    sources: tuple
    state_notes: dict
    transitions: tuple


T = Transition


# -- PASID ---------------------------------------------------------------------------------------

@unique
class PasidLc(IntEnum):
    """One PASID value of the system-wide IDA (``iommu_global_pasid_ida``)."""

    FREE = 0
    ALLOCATED = 1
    PENDING_FREE = 2


_P = PasidLc
_PASID = Spec(
    Lifecycle.PASID, PasidLc, "PASID",
    "one PASID value of the system-wide IDA (`iommu_global_pasid_ida`)",
    "A PASID is allocated lowest-free in `[1, max_pasids - 1]` (cyclically under the `cyclic` "
    "design).  In today's allocator it is reusable the moment it is freed: there is no grace "
    "period, and safety rests on callers freeing it only after every device has stopped using "
    "it (§1.3, §2.6).  The `pending-free` design (the unmerged IOASID-set series, §1.5) keeps "
    "a PASID that devices still reference PENDING_FREE instead -- allocated, not reusable -- "
    "until the last device reference is dropped.  Device references (a programmed PASID-table "
    "entry, a queued descriptor) are counted apart from the allocator state: they are the "
    "self-loops.  Freeing `IOMMU_PASID_INVALID`, a FREE or a PENDING_FREE PASID only WARNs "
    "(no transition).",
    ("drivers/iommu/iommu.c: iommu_alloc_global_pasid(), iommu_free_global_pasid()",
     "lib/idr.c: ida_alloc_range(), ida_free(), idr_alloc_cyclic()",
     "drivers/iommu/ioasid.c (IOASID-set series, unmerged): ioasid_free(), ioasid_put() "
     "(FREE_PENDING)"),
    {_P.FREE: "not allocated: the allocator may hand it out",
     _P.ALLOCATED: "allocated (an mm's, a private bond's, an IOASID's)",
     _P.PENDING_FREE: "freed by its owner while devices still hold it: draining, not "
                      "reusable (`pending-free` design only)"},
    (T(CREATE, _P.FREE, "boot", "DEFINE_IDA", "the global IDA starts empty (§1.3)"),
     T(_P.FREE, _P.ALLOCATED, "alloc", "ida_alloc_range",
       "from iommu_alloc_global_pasid(): lowest free in [1, max_pasids - 1] (§1.3); "
       "ioasid_alloc() allocates in the same space (§1.4)"),
     T(_P.FREE, _P.ALLOCATED, "alloc_cyclic", "idr_alloc_cyclic",
       "`cyclic` design: the search starts after the last ID handed out"),
     T(_P.ALLOCATED, _P.FREE, "free", "iommu_free_global_pasid",
       "ida_free(): reusable at once.  LOWEST/CYCLIC: also while devices still reference it "
       "(no grace period, §1.3; invariant A3 flags that state); PENDING_FREE: only with no "
       "device reference.  Also the IOASID reclaim (ioasid_free/ioasid_put)"),
     T(_P.ALLOCATED, _P.PENDING_FREE, "free_referenced", "iommu_free_global_pasid",
       "`pending-free` design, device references remain: kept allocated, not reusable "
       "(ioasid_free -> FREE_PENDING, §1.5)"),
     T(_P.PENDING_FREE, _P.FREE, "last_put", "pasid_put",
       "the last device reference dropped (entry blocked, descriptor drained): the deferred "
       "ida_free (the last ioasid_put, §1.5)"),
     T(_P.ALLOCATED, _P.ALLOCATED, "dev_get", "pasid_get",
       "model-only device reference (today's kernel counts none; ioasid_get in §1.4/§1.5): a "
       "PASID-table entry programmed (set_dev_pasid) or a descriptor queued"),
     T(_P.ALLOCATED, _P.ALLOCATED, "dev_put", "pasid_put",
       "entry blocked (page requests drained) or descriptor completed"),
     T(_P.FREE, _P.FREE, "dev_get", "pasid_get",
       "a device holds a PASID value the global IDA did not hand out (iommufd attaches "
       "user-chosen PASIDs, §5.1), or one freed under it (LOWEST/CYCLIC)"),
     T(_P.FREE, _P.FREE, "dev_put", "pasid_put", "as dev_get"),
     T(_P.PENDING_FREE, _P.PENDING_FREE, "dev_get", "pasid_get",
       "a device takes the PASID while it drains (iommufd attach of the same value, a "
       "descriptor queued through an entry still programmed): the set series refuses "
       "software gets (ioasid_get -EBUSY), not the hardware"),
     T(_P.PENDING_FREE, _P.PENDING_FREE, "dev_put", "pasid_put", "not the last reference")))


# -- mm ------------------------------------------------------------------------------------------

@unique
class MmLc(IntEnum):
    """``struct mm_struct``; LIVE and EXITED equal :class:`pasidsim.state.MmState`'s values."""

    LIVE = 0
    EXITED = 1
    FREED = 2


_M = MmLc
_MM = Spec(
    Lifecycle.MM, MmLc, "mm",
    "one `struct mm_struct`",
    "`mm_users` counts users of the address space (threads, mmget holders); `mm_count` "
    "counts references to the struct itself (mmgrab; the users together hold one).  The last "
    "mmput runs `__mmput`: exit_mmap, the mmu-notifier release (the mm's SVA PASID entries "
    "quiesced), then the users' mmdrop.  The last mmdrop runs `__mmdrop`, which today frees the "
    "mm's PASID (`mm_pasid_drop`).  SVA binds hold `mm_count` through their SVA domain, never "
    "`mm_users`, so an mm stays EXITED while a bond remains (§2.6, §2.9).  EXITED never "
    "returns to LIVE (`mmget_not_zero` fails); mmget of an EXITED mm and any use of a FREED one "
    "are WARNs (USE_AFTER_FREE), not transitions.",
    ("kernel/fork.c: mm_init(), mmget(), mmget_not_zero(), mmput(), __mmput(), mmgrab(), "
     "mmdrop(), __mmdrop()",
     "mm/mmu_notifier.c: __mmu_notifier_release()"),
    {_M.LIVE: "mm_users > 0",
     _M.EXITED: "mm_users == 0, mm_count > 0: __mmput ran (address space torn down)",
     _M.FREED: "__mmdrop ran: the struct (and today its PASID) is freed"},
    (T(CREATE, _M.LIVE, "mm_alloc", "mm_init",
       "process creation and fork: mm_users 1, mm_count 1, iommu_mm NULL"),
     T(_M.LIVE, _M.LIVE, "mmget", "mmget",
       "clone(CLONE_VM); mmget_not_zero of the IOPF path; bind in the H2 design"),
     T(_M.LIVE, _M.LIVE, "mmput", "mmput", "not the last user"),
     T(_M.LIVE, _M.LIVE, "mmgrab", "mmgrab", "iommu_sva_domain_alloc: the SVA domain's reference"),
     T(_M.LIVE, _M.LIVE, "mmdrop", "mmdrop", "not the last reference (a freed SVA domain)"),
     T(_M.LIVE, _M.EXITED, "last_mmput", "__mmput",
       "exit_mmap, mmu-notifier release (SVA entries quiesced, PASID kept), file refs of the "
       "VMAs dropped, then mmdrop of the users' reference (which may go on to FREED); E6 frees "
       "the PASID here (701fac40384f); E0 first runs the drivers' mm_exit callbacks, while "
       "the PASID still translates"),
     T(_M.EXITED, _M.EXITED, "mmgrab", "mmgrab", "legal while mm_count > 0"),
     T(_M.EXITED, _M.EXITED, "mmdrop", "mmdrop", "not the last reference"),
     T(_M.EXITED, _M.FREED, "last_mmdrop", "__mmdrop",
       "the users' reference (no bond left) or the last SVA domain's (iommu_domain_free); "
       "mm_pasid_drop frees the PASID (today, 2667ed10d9f0)")))


# -- mm->iommu_mm --------------------------------------------------------------------------------

@unique
class IommuMmLc(IntEnum):
    """``mm->iommu_mm`` (the mm's PASID): NULL (``pasid == IOMMU_PASID_INVALID``) or set."""

    NULL = 0
    ALLOCATED = 1


_I = IommuMmLc
_IOMMU_MM = Spec(
    Lifecycle.IOMMU_MM, IommuMmLc, "iommu_mm (the mm's PASID)",
    "`mm->iommu_mm` of one mm, with its PASID",
    "Allocated lazily at the mm's first bind attempt and kept even when that bind fails "
    "later (§2.2); later binds reuse it and take no reference.  Where it goes back to NULL -- "
    "the PASID freed -- is the choice the history turns on: today at `__mmdrop` (E7+, so a live "
    "mm's PASID never changes); at `__mmput` in v5.18-rc1 (E6, H1); at the last unbind in "
    "v5.10-v5.13 (E4-E5) and in the per-task refcount proposal (H5); when the io_mm's kref drops "
    "to 0 (last unbind or mm exit) in the 2018 io_mm RFC (E0).  fork gives the child a NULL iommu_mm (`mm_init` -> `mm_pasid_init`), "
    "except in the H7 revision, where the child starts aliasing its parent's.",
    ("drivers/iommu/iommu-sva.c: iommu_alloc_mm_data(), mm_pasid_drop(), "
     "iommu_sva_free_pasid() (E4-E5)",
     "kernel/fork.c: mm_init() -> mm_pasid_init(), __mmput() (E6), __mmdrop()"),
    {_I.NULL: "no iommu_mm: the mm has no PASID",
     _I.ALLOCATED: "iommu_mm with its PASID (immutable while set)"},
    (T(CREATE, _I.NULL, "mm_init", "mm_pasid_init", "every new mm, forked ones included (§2.7)"),
     T(CREATE, _I.ALLOCATED, "fork_aliased", "dup_mm",
       "H7 only (iommu_mm_data revision without mm_pasid_init): the child shares the parent's "
       "iommu_mm and PASID; invariant A1 flags it"),
     T(_I.NULL, _I.ALLOCATED, "first_bind", "iommu_alloc_mm_data",
       "first bind attempt: passes arch_pgtable_dma_compat (LAM mm: -EBUSY) and allocates a "
       "PASID (-ENOSPC otherwise); kept whatever the rest of the bind does"),
     T(_I.ALLOCATED, _I.ALLOCATED, "bind", "iommu_alloc_mm_data",
       "later binds: the existing PASID, no reference (-EOVERFLOW when >= the device's "
       "max_pasids: no change)"),
     T(_I.ALLOCATED, _I.NULL, "mmdrop_free", "mm_pasid_drop",
       "from __mmdrop: today (E7+, 2667ed10d9f0)"),
     T(_I.ALLOCATED, _I.NULL, "mmput_free", "mm_pasid_drop",
       "from __mmput: E6 (701fac40384f), H2"),
     T(_I.ALLOCATED, _I.NULL, "unbind_free", "iommu_sva_free_pasid",
       "E4-E5: the last bond gone (ioasid_put), mm->pasid = 0 and the MSRs updated by IPI; "
       "H5: also no thread that activated it left (at that thread's exit); E0: the io_mm's "
       "last bond unbound (io_mm_put -> io_mm_release -> idr_remove)"),
     T(_I.ALLOCATED, _I.NULL, "io_mm_exit", "iommu_notifier_release",
       "E0: at mm exit, the drivers' mm_exit callbacks called while the PASID still "
       "translates, then every bond detached: the io_mm's kref reaches 0")))


# -- SVA bond ------------------------------------------------------------------------------------

@unique
class BondLc(IntEnum):
    """An SVA bond: ``struct iommu_sva`` (``iommu_attach_handle`` in a ``pasid_array`` slot)."""

    BOUND = 0
    UNBOUND = 1


_B = BondLc
_BOND = Spec(
    Lifecycle.BOND, BondLc, "SVA bond (handle)",
    "one `struct iommu_sva` returned by `iommu_sva_bind_device`",
    "One handle per (group, PASID) slot, shared by repeated binds of the same mm: the same "
    "handle is returned and `handle->users` counts the binds (65d4418c5002; the E12 regression "
    "made the second bind fail -EBUSY).  The last unbind detaches the PASID from the group "
    "(entries blocked, IOTLB/ATC invalidated, page requests drained) and frees the handle; the "
    "caller must have stopped the device's DMA on the PASID before (the driver's drain, see "
    "the work-queue lifecycle).  A failed bind leaves no handle.  In the E0 design bonds are "
    "torn down at mm exit after the driver's mm_exit callback, and a later unbind returns "
    "-ESRCH.",
    ("drivers/iommu/iommu-sva.c: iommu_sva_bind_device(), iommu_sva_unbind_device()",),
    {_B.BOUND: "handle->users >= 1",
     _B.UNBOUND: "last unbind done: PASID detached from the group, handle freed"},
    (T(CREATE, _B.BOUND, "bind", "iommu_sva_bind_device",
       "new handle, users 1, attached at the mm's PASID (or a private PASID, "
       "SVM_FLAG_PRIVATE_PASID); the slot must be free or hold this mm's SVA handle (else "
       "-EBUSY)"),
     T(_B.BOUND, _B.BOUND, "bind_shared", "iommu_sva_bind_device",
       "the slot already holds this mm's SVA handle: users + 1, the same handle returned "
       "(handle sharing; not in E12)"),
     T(_B.BOUND, _B.BOUND, "unbind", "iommu_sva_unbind_device", "users - 1, not the last"),
     T(_B.BOUND, _B.UNBOUND, "last_unbind", "iommu_sva_unbind_device",
       "iommu_detach_device_pasid, handle freed; the SVA domain loses a user"),
     T(_B.BOUND, _B.UNBOUND, "io_mm_exit", "iommu_notifier_release",
       "E0: torn down at mm exit after the driver's mm_exit callback (a non-zero return "
       "WARNs \"possible leak of PASID\")")))


# -- SVA domain ----------------------------------------------------------------------------------

@unique
class SvaDomainLc(IntEnum):
    """An ``IOMMU_DOMAIN_SVA`` domain."""

    ALLOCATED = 0
    ATTACHED = 1
    FREED = 2


_D = SvaDomainLc
_SVA_DOMAIN = Spec(
    Lifecycle.SVA_DOMAIN, SvaDomainLc, "SVA domain",
    "one SVA `iommu_domain`",
    "One SVA domain per (mm, IOMMU driver), shared by every device of that driver the mm is "
    "bound to (`domain->users`, E12; the E9 design had one per bind).  It holds `mm_count` "
    "(mmgrab at allocation): freeing it is the mmdrop that may run `__mmdrop` and so free the "
    "mm's PASID, after which nothing may touch `iommu_mm` (H8).",
    ("drivers/iommu/iommu-sva.c: iommu_sva_domain_alloc(), iommu_sva_bind_device(), "
     "iommu_sva_unbind_device()",
     "drivers/iommu/iommu.c: iommu_domain_free()"),
    {_D.ALLOCATED: "allocated for a bind (holds mm_count), not yet attached: users 0",
     _D.ATTACHED: "attached at >= 1 (group, PASID), in iommu_mm->sva_domains: users >= 1",
     _D.FREED: "freed: its mm_count reference dropped"},
    (T(CREATE, _D.ALLOCATED, "alloc", "iommu_sva_domain_alloc",
       "no compatible domain of this mm attaches: a new one (mmgrab); -EOPNOTSUPP without "
       "domain_alloc_sva"),
     T(_D.ALLOCATED, _D.ATTACHED, "first_attach", "iommu_attach_device_pasid",
       "users = 1, added to iommu_mm->sva_domains (and the mm to iommu_sva_mms, E16)"),
     T(_D.ALLOCATED, _D.FREED, "attach_failed", "iommu_domain_free",
       "bind's error path (mmdrop); the model discards the failed bind's state instead"),
     T(_D.ATTACHED, _D.ATTACHED, "attach", "iommu_attach_device_pasid",
       "a bind of another device reuses the mm's compatible domain: users + 1"),
     T(_D.ATTACHED, _D.ATTACHED, "detach", "iommu_sva_unbind_device",
       "the last unbind of one handle, other users remain: users - 1"),
     T(_D.ATTACHED, _D.FREED, "last_detach", "iommu_domain_free",
       "from iommu_sva_unbind_device, users 0: list_del then iommu_domain_free -> mmdrop "
       "(H8: freed first, then the lists touched: use after free)")))


# -- (group, PASID) slot -------------------------------------------------------------------------

@unique
class PasidSlotLc(IntEnum):
    """The entry of ``group->pasid_array`` at one PASID."""

    EMPTY = 0
    RESERVED = 1
    ATTACHED = 2


_S = PasidSlotLc
_PASID_SLOT = Spec(
    Lifecycle.PASID_SLOT, PasidSlotLc, "(group, PASID) slot",
    "`group->pasid_array[pasid]` of one group (index 0: the RID slot of the "
    "`*_group_handle` APIs)",
    "Attach reserves the slot (`XA_ZERO_ENTRY`: busy to inserts, invisible to lookups), "
    "programs every PASID-capable member of the group and only then publishes the entry, so "
    "no page request sees a failed attach (§2.8, §2.11).  At call granularity reserve, program "
    "and store are one step and the model keeps no RESERVED state: the rows through RESERVED "
    "are for lock granularity (and name the unwind of a failed `set_dev_pasid`).  A PCI-reset "
    "fence keeps the slots while the entries are parked on the blocked domain.",
    ("drivers/iommu/iommu.c: iommu_attach_device_pasid(), iommu_replace_device_pasid(), "
     "iommu_detach_device_pasid(), __iommu_set_group_pasid(), iommu_attach_group_handle(), "
     "iommu_replace_group_handle(), iommu_detach_group_handle()",),
    {_S.EMPTY: "nothing attached at this PASID",
     _S.RESERVED: "xa_insert'ed zero entry while the members are programmed (lock "
                  "granularity)",
     _S.ATTACHED: "a domain, or a handle (SVA, iommufd) and its domain"},
    (T(CREATE, _S.EMPTY, "group_alloc", "iommu_group_alloc", "xa_init of pasid_array"),
     T(_S.EMPTY, _S.ATTACHED, "attach", "iommu_attach_device_pasid",
       "call granularity: reserve, set_dev_pasid on every member, store; -EBUSY when "
       "occupied or the group is fenced for a reset, -EINVAL (pasid >= a member's "
       "max_pasids, IOMMU_NO_PASID, incompatible domain); also iommu_attach_group_handle "
       "and iommu_replace_group_handle (slot 0, which reserves an empty slot too)"),
     T(_S.EMPTY, _S.RESERVED, "reserve", "xa_insert",
       "lock granularity: XA_ZERO_ENTRY (-ENOMEM: no transition)"),
     T(_S.RESERVED, _S.ATTACHED, "publish", "xa_store", "every member's set_dev_pasid succeeded"),
     T(_S.RESERVED, _S.EMPTY, "unwind", "xa_release",
       "a member's set_dev_pasid failed: the members already set are blocked again"),
     T(_S.ATTACHED, _S.ATTACHED, "replace", "iommu_replace_device_pasid",
       "iommufd: another domain/handle (-EINVAL: slot empty, same handle, NULL handle); also "
       "iommu_replace_group_handle (slot 0)"),
     T(_S.ATTACHED, _S.ATTACHED, "join", "iommufd_hw_pagetable_attach",
       "iommufd: another device of the group attaches the same HWPT: recorded in the "
       "handle (-EBUSY: slot held by SVA or already this device; -EINVAL: another HWPT). "
       "A shared SVA bind (handle->users + 1) leaves the slot as it is too"),
     T(_S.ATTACHED, _S.ATTACHED, "leave", "iommufd_hw_pagetable_detach",
       "iommufd: a device that is not the group's last detaches"),
     T(_S.ATTACHED, _S.EMPTY, "detach", "iommu_detach_device_pasid",
       "every PASID-capable member set blocked, xa_erase; also iommu_detach_group_handle"),
     T(_S.EMPTY, _S.EMPTY, "detach_empty", "iommu_detach_device_pasid",
       "detach of a PASID with nothing attached: no check, as the kernel (it validates "
       "nothing)")))


# -- hardware PASID-table entry ------------------------------------------------------------------

@unique
class PasidEntryLc(IntEnum):
    """The PASID-table entry of (device, PASID); TRANSLATE and QUIESCED equal
    :class:`pasidsim.state.PasidEntryMode`'s values, BLOCKED is the absent entry."""

    TRANSLATE = 0
    QUIESCED = 1
    BLOCKED = 2


_E = PasidEntryLc
_PASID_ENTRY = Spec(
    Lifecycle.PASID_ENTRY, PasidEntryLc, "PASID-table entry (hardware)",
    "the hardware PASID-table entry of one (device, PASID): VT-d scalable-mode PASID entry, "
    "SMMUv3 context descriptor",
    "BLOCKED is the non-present entry (the blocked domain).  A programmed entry -- TRANSLATE "
    "or QUIESCED -- holds a device reference on its PASID (see PASID).  When the mm exits "
    "while bound, the mmu-notifier release quiesces its entries: transactions aborted, faults "
    "not reported, ATS answers R=W=0, page requests answered INVALID; the PASID stays "
    "allocated (§2.9).  Only a detach (the unbind) or a reset fence blocks the entry, which "
    "also flushes its IOTLB/ATC entries and page requests; a QUIESCED entry is never "
    "reprogrammed directly.",
    ("drivers/iommu/iommu.c: __iommu_set_group_pasid(), iommu_detach_device_pasid(), "
     "pci_dev_reset_iommu_prepare(), pci_dev_reset_iommu_done()",
     "drivers/iommu/intel/svm.c: intel_mm_release(); "
     "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3-sva.c: arm_smmu_mm_release()"),
    {_E.TRANSLATE: "present, translating through the attached domain",
     _E.QUIESCED: "present, aborting quietly: the mm exited (FPD / quiet CD)",
     _E.BLOCKED: "non-present"},
    (T(CREATE, _E.BLOCKED, "probe", "probe_device",
       "the IOMMU driver's probe allocates the PASID table (intel_pasid_alloc_table, the "
       "SMMUv3 CD table): every entry non-present"),
     T(_E.BLOCKED, _E.TRANSLATE, "set_dev_pasid", "set_dev_pasid",
       "from iommu_attach_device_pasid (each PASID-capable member not fenced), or "
       "pci_dev_reset_iommu_done reprogramming the retained pasid_array; takes a PASID "
       "device reference"),
     T(_E.TRANSLATE, _E.TRANSLATE, "replace", "set_dev_pasid",
       "iommu_replace_device_pasid to another domain: the old domain's IOTLB/ATC entries "
       "flushed"),
     T(_E.TRANSLATE, _E.QUIESCED, "mm_release", "mmu_notifier_release",
       "__mmput -> exit_mmap while bound: intel_mm_release / arm_smmu_mm_release; IOTLB/ATC "
       "flushed"),
     T(_E.TRANSLATE, _E.BLOCKED, "block", "iommu_detach_device_pasid",
       "blocked domain's set_dev_pasid: IOTLB/ATC invalidated, page requests flushed "
       "(iopf_queue_flush_dev), PASID device reference dropped; also the reset fence "
       "(pci_dev_reset_iommu_prepare) and a failed attach's unwind"),
     T(_E.QUIESCED, _E.BLOCKED, "block", "iommu_detach_device_pasid",
       "the unbind after the mm exited (or a reset fence)")))


# -- group DMA ownership -------------------------------------------------------------------------

@unique
class GroupOwnerLc(IntEnum):
    """DMA ownership of an ``iommu_group`` (``owner_cnt``, ``owner``, and which core domain)."""

    DEFAULT = 0
    DMA_API = 1
    USER_OWNED = 2
    BLOCKED = 3
    USER_ON_DEFAULT = 4


_G = GroupOwnerLc
_CLAIM_PRE = ("owner != NULL (else WARN, -EINVAL); owner_cnt == 0 (else -EPERM); domain NULL "
              "or default and no PASID attached (else -EBUSY); no reset fence (-EBUSY)")
_GROUP_OWNER = Spec(
    Lifecycle.GROUP_OWNER, GroupOwnerLc, "IOMMU-group DMA ownership",
    "the DMA ownership of one `iommu_group`",
    "Who may DMA through a group (E8, v5.19+): nobody yet; kernel DMA-API drivers, counted in "
    "`owner_cnt` by the bus `dma_configure` hook at probe (unless `driver_managed_dma`); or one "
    "exclusive user owner named by a cookie (VFIO group, iommufd context), `owner_cnt` "
    "counting the claims of its devices.  A user-owned group is on the blocking domain unless "
    "user space attached a domain of its own.  The two modes exclude each other: a claim of a "
    "DMA-API group fails -EPERM, a DMA-API probe into a user-owned group -EBUSY (§4.3, §4.5).  "
    "Variants: before E8 VFIO's notifier BUG_ONs instead (`pre-E8-bug-on`); the Dec 2021 enum "
    "draft takes `owner_cnt = 1`, so a second DMA-API driver fails -EBUSY "
    "(`dma-owner-enum-2021`); the enum series v4 as posted (`dma-owner-enum-v4`) detaches a "
    "claimed group to NULL (no blocking domain) and, releasing it with a user domain still "
    "attached, only WARNs; before 0286300e6045 a claim leaves the group on the kernel "
    "default domain (H11: USER_ON_DEFAULT, which invariant O3 forbids).  Attaching and "
    "detaching RID domains does not check ownership (callers own the group first): on an "
    "unowned or DMA-API group it changes nothing here.",
    ("drivers/iommu/iommu.c: iommu_device_use_default_domain(), "
     "iommu_device_unuse_default_domain(), __iommu_take_dma_ownership(), "
     "iommu_group_claim_dma_owner(), iommu_device_claim_dma_owner(), "
     "__iommu_release_dma_ownership(), iommu_group_release_dma_owner(), "
     "iommu_device_release_dma_owner(), __iommu_attach_group(), iommu_detach_group()",
     "drivers/pci/pci-driver.c: pci_dma_configure(), pci_dma_cleanup()"),
    {_G.DEFAULT: "owner_cnt 0, owner NULL: on the default domain (NULL before a deferred "
                 "group's default domain exists)",
     _G.DMA_API: "owner_cnt n > 0, owner NULL: n kernel DMA-API drivers bound",
     _G.USER_OWNED: "owner cookie set, owner_cnt = its claims: a user domain attached",
     _G.BLOCKED: "owner cookie set, owner_cnt = its claims: on the blocking domain",
     _G.USER_ON_DEFAULT: "owner cookie set but still on the kernel default domain (H11 "
                         "only)"},
    (T(CREATE, _G.DEFAULT, "group_alloc", "iommu_group_alloc",
       "with its default domain (bus_iommu_probe), or none yet (deferred)"),
     T(_G.DEFAULT, _G.DEFAULT, "finalize", "iommu_setup_default_domain",
       "a deferred group gets its default domain"),
     T(_G.DEFAULT, _G.DEFAULT, "attach_private", "iommu_attach_device",
       "a kernel private domain on an unowned singleton group, or iommu_detach_group back "
       "(no ownership check)"),
     T(_G.DEFAULT, _G.DMA_API, "use_dma_api", "iommu_device_use_default_domain",
       "pci_dma_configure at probe: default domain set (else -EPROBE_DEFER)"),
     T(_G.DMA_API, _G.DMA_API, "use_dma_api", "iommu_device_use_default_domain",
       "owner_cnt + 1: on the default domain and no PASID attached (else -EBUSY); "
       "dma-owner-enum-2021: always -EBUSY"),
     T(_G.DMA_API, _G.DMA_API, "unuse_dma_api", "iommu_device_unuse_default_domain",
       "pci_dma_cleanup, owner_cnt - 1, not the last (PASID attached: WARN, no change)"),
     T(_G.DMA_API, _G.DMA_API, "attach_private", "iommu_attach_device",
       "a DMA-API driver's private domain (or back to the default): no ownership check"),
     T(_G.DMA_API, _G.DEFAULT, "unuse_dma_api", "iommu_device_unuse_default_domain",
       "the last DMA-API driver unbound: no PASID attached (else WARN, no change)"),
     T(_G.DEFAULT, _G.BLOCKED, "claim", "__iommu_take_dma_ownership",
       "iommu_group_claim_dma_owner / iommu_device_claim_dma_owner: " + _CLAIM_PRE
       + "; the blocking domain attached (require_direct: -EINVAL; alloc failure -ENOMEM)"),
     T(_G.DEFAULT, _G.USER_ON_DEFAULT, "claim", "__iommu_take_dma_ownership",
       "H11 (before 0286300e6045): the same guards, no blocking domain attached"),
     T(_G.DEFAULT, _G.USER_OWNED, "claim", "iommu_group_set_dma_owner",
       "dma-owner-enum-v4: claimed while a non-default domain is attached: WARN, it stays "
       "(v4 detaches a default-domain group to NULL instead: BLOCKED)"),
     T(_G.BLOCKED, _G.BLOCKED, "claim_shared", "iommu_device_claim_dma_owner",
       "the same cookie: owner_cnt + 1 (another cookie, or iommu_group_claim_dma_owner: "
       "-EPERM)"),
     T(_G.BLOCKED, _G.BLOCKED, "release_shared", "iommu_device_release_dma_owner",
       "owner_cnt > 1: owner_cnt - 1"),
     T(_G.BLOCKED, _G.BLOCKED, "bug_on", "vfio_iommu_group_notifier",
       "pre-E8: a DMA-API driver probes into the user-owned group: BUG_ON recorded (B1 "
       "forbids it), nothing else changes (E8+: -EBUSY, no transition)"),
     T(_G.BLOCKED, _G.USER_OWNED, "attach_user", "__iommu_attach_group",
       "iommu_attach_group / iommu_attach_device / iommu_attach_group_handle of a user "
       "domain (VFIO container, iommufd HWPT): the group is on a core domain (else -EBUSY), "
       "compatible (else -EINVAL), not fenced (-EBUSY); also iommu_replace_group_handle"),
     T(_G.USER_OWNED, _G.BLOCKED, "detach_user", "iommu_detach_group",
       "back to the core domain: the blocking domain (also iommu_detach_device)"),
     T(_G.USER_OWNED, _G.USER_OWNED, "claim_shared", "iommu_device_claim_dma_owner",
       "as on BLOCKED (also the pre-E8 BUG_ON)"),
     T(_G.USER_OWNED, _G.USER_OWNED, "release_shared", "iommu_device_release_dma_owner",
       "owner_cnt > 1: owner_cnt - 1"),
     T(_G.USER_OWNED, _G.USER_OWNED, "replace_user", "iommu_replace_group_handle",
       "iommufd moves the RID to another user domain"),
     T(_G.BLOCKED, _G.DEFAULT, "release", "__iommu_release_dma_ownership",
       "iommu_group_release_dma_owner, or the last iommu_device_release_dma_owner: no PASID "
       "attached (else WARN, stays owned); the default domain attached"),
     T(_G.USER_OWNED, _G.DEFAULT, "release", "__iommu_release_dma_ownership",
       "released with a user domain still attached: the default domain replaces it (nofail)"),
     T(_G.USER_ON_DEFAULT, _G.USER_ON_DEFAULT, "claim_shared", "iommu_device_claim_dma_owner",
       "H11: as on BLOCKED"),
     T(_G.USER_ON_DEFAULT, _G.USER_ON_DEFAULT, "release_shared",
       "iommu_device_release_dma_owner", "H11: as on BLOCKED"),
     T(_G.USER_ON_DEFAULT, _G.USER_OWNED, "attach_user", "__iommu_attach_group",
       "H11: from the default domain"),
     T(_G.USER_ON_DEFAULT, _G.BLOCKED, "detach_user", "iommu_detach_group",
       "H11: the core domain of an owned group is the blocking domain (allocated here)"),
     T(_G.USER_ON_DEFAULT, _G.DEFAULT, "release", "__iommu_release_dma_ownership",
       "H11: as from BLOCKED")))


# -- device work queue ---------------------------------------------------------------------------

@unique
class WqLc(IntEnum):
    """The descriptors a device has in flight for one PASID."""

    IDLE = 0
    QUEUED = 1
    DRAINING = 2


_W = WqLc
_WQ = Spec(
    Lifecycle.WQ, WqLc, "device work queue (per PASID)",
    "the work one device has in flight for one PASID (DSA work queue, HiSilicon QM queue)",
    "Each queued descriptor holds a device reference on the PASID and does its DMA only when "
    "the hardware completes it, translating through whatever is attached at the PASID at that "
    "moment.  Before unbinding, the driver's release drains the PASID (idxd "
    "`idxd_device_drain_pasid` / `idxd_wq_disable_pasid`, uacce `hisi_qm_stop_qp`): DRAINING "
    "lasts while the drain runs -- at call granularity it is entered and left inside one step.  "
    "An E0 `mm_exit` callback that returns without draining (`mm_exit_drains: false`) leaves "
    "the queue QUEUED while the PASID is freed: what invariant A3q catches.",
    ("drivers/dma/idxd/cdev.c: idxd_cdev_release(); drivers/dma/idxd/device.c: "
     "idxd_device_drain_pasid(), idxd_wq_disable_pasid()",
     "drivers/crypto/hisilicon/qm.c: hisi_qm_stop_qp() (uacce_put_queue)",
     "Intel DSA architecture specification: dedicated/shared WQs, ENQCMD, Drain PASID"),
    {_W.IDLE: "nothing in flight for this PASID",
     _W.QUEUED: "n >= 1 descriptors in flight, each holding a PASID device reference",
     _W.DRAINING: "the driver's drain runs: in-flight descriptors complete (or are aborted)"},
    (T(CREATE, _W.IDLE, "boot", "idxd_wq_enable", "a queue starts empty"),
     T(_W.IDLE, _W.QUEUED, "submit", "enqcmd",
       "shared WQ: ENQCMD with the thread's IA32_PASID (#GP fixup first); dedicated WQ: "
       "MOVDIR64B, the PASID the driver programmed (wq_submit)"),
     T(_W.QUEUED, _W.QUEUED, "submit", "enqcmd", "another descriptor"),
     T(_W.QUEUED, _W.QUEUED, "complete", "dma_complete",
       "hardware event: a descriptor completes, others remain"),
     T(_W.QUEUED, _W.IDLE, "complete", "dma_complete", "the last descriptor completes"),
     T(_W.QUEUED, _W.DRAINING, "drain", "idxd_device_drain_pasid",
       "driver release/remove before unbind (device_stop_pasid hook; uacce hisi_qm_stop_qp)"),
     T(_W.IDLE, _W.DRAINING, "drain", "idxd_device_drain_pasid", "nothing queued: ends at once"),
     T(_W.DRAINING, _W.DRAINING, "drained_one", "idxd_device_drain_pasid",
       "one descriptor completed (its DMA done) or discarded (abort)"),
     T(_W.DRAINING, _W.IDLE, "drain_done", "idxd_device_drain_pasid",
       "nothing of this PASID left in flight")))


@unique
class DescLc(IntEnum):
    """One work descriptor."""

    QUEUED = 0
    COMPLETED = 1
    ABORTED = 2


_Q = DescLc
_DESC = Spec(
    Lifecycle.DESC, DescLc, "work descriptor",
    "one work descriptor submitted to a device",
    "Queued with the PASID of the queue (dedicated WQ) or of the submitting thread's "
    "IA32_PASID (shared WQ, ENQCMD); completed by the hardware -- its completion-record write "
    "translated then -- or by a drain; discarded by an aborting drain.",
    ("Intel DSA architecture specification: descriptor submission, completion, Drain PASID",
     "arch/x86: ENQCMD, MOVDIR64B"),
    {_Q.QUEUED: "in flight: holds a device reference on its PASID",
     _Q.COMPLETED: "executed: its DMA translated at completion time",
     _Q.ABORTED: "discarded by an aborting drain: no DMA"},
    (T(CREATE, _Q.QUEUED, "submit", "enqcmd",
       "ENQCMD (shared WQ) or the driver's dedicated WQ (wq_submit): pasid_get"),
     T(_Q.QUEUED, _Q.COMPLETED, "complete", "dma_complete",
       "hardware event at any time until drained: translated through what is attached now; "
       "pasid_put"),
     T(_Q.QUEUED, _Q.COMPLETED, "drained", "idxd_device_drain_pasid", "the drain completes it"),
     T(_Q.QUEUED, _Q.ABORTED, "aborted", "idxd_device_drain_pasid",
       "drain with abort: discarded, pasid_put")))


# -- task IA32_PASID -----------------------------------------------------------------------------

@unique
class TaskPasidLc(IntEnum):
    """A thread's IA32_PASID MSR and ``task_struct::pasid_activated``."""

    INACTIVE = 0
    ACTIVE = 1
    EXITED = 2


_X = TaskPasidLc
_TASK_PASID = Spec(
    Lifecycle.TASK_PASID, TaskPasidLc, "thread IA32_PASID (ENQCMD)",
    "one thread's IA32_PASID MSR and `pasid_activated`",
    "Today (E6+) the MSR is written only by the thread itself, in its #GP handler, on its "
    "first ENQCMD after the mm got a PASID; fork and clone start INACTIVE; a living thread's "
    "MSR is never cleared, because a live mm's PASID never changes.  E3/E4 wrote the MSR of "
    "every thread of the mm by IPI at bind and unbind (`update_pasid`): the remote write H4 "
    "forbids (invariant X3).  The H5 proposal (Sep 2021) made each activation a reference on "
    "the PASID, put at thread exit.",
    ("arch/x86/kernel/traps.c: try_fixup_enqcmd_gp(), exc_general_protection()",
     "kernel/fork.c: dup_task_struct() (pasid_activated = 0)",
     "arch/x86/kernel/fpu/xstate.c: update_pasid() (E3-E5)"),
    {_X.INACTIVE: "pasid_activated 0, IA32_PASID not valid: ENQCMD takes #GP",
     _X.ACTIVE: "pasid_activated 1, IA32_PASID = pasid | VALID",
     _X.EXITED: "the thread exited"},
    (T(CREATE, _X.INACTIVE, "fork", "dup_task_struct",
       "process creation, fork, clone: pasid_activated = 0, the PASID xstate not inherited"),
     T(_X.INACTIVE, _X.ACTIVE, "gp_fixup", "try_fixup_enqcmd_gp",
       "#GP on ENQCMD while the mm has a PASID (E6+; H5 also takes a PASID reference)"),
     T(_X.INACTIVE, _X.ACTIVE, "ipi_set", "update_pasid",
       "E3/E4: the mm got a PASID: every thread's MSR written by IPI"),
     T(_X.ACTIVE, _X.ACTIVE, "ipi_set", "update_pasid",
       "E3/E4: rewritten by IPI (the value may change after a free and a new bind)"),
     T(_X.ACTIVE, _X.INACTIVE, "ipi_clear", "update_pasid",
       "E4: the PASID was freed at the last unbind: MSR cleared by IPI"),
     T(_X.INACTIVE, _X.INACTIVE, "ipi_clear", "update_pasid",
       "E4: a thread that never activated it (no change)"),
     T(_X.INACTIVE, _X.EXITED, "exit", "do_exit", "thread exit"),
     T(_X.ACTIVE, _X.EXITED, "exit", "do_exit",
       "thread exit; H5: its PASID reference put (may free the PASID)")))


# -- legacy IOASID -------------------------------------------------------------------------------

@unique
class IoasidLc(IntEnum):
    """``struct ioasid_data``; IDLE and FREE_PENDING equal :class:`pasidsim.state.IoasidState`'s
    values (IOASID_STATE_ACTIVE, 1, is not modeled)."""

    IDLE = 0
    FREE_PENDING = 2
    FREED = 3


_O = IoasidLc
_IOASID = Spec(
    Lifecycle.IOASID, IoasidLc, "IOASID (legacy allocator)",
    "one `ioasid_data` of the legacy allocator, on the global PASID space",
    "The IOASID allocator of v5.5-v6.4 (E2-E10) with the states of Jacob Pan's unmerged "
    "IOASID-set series (§1.4, §1.5).  An IOASID starts IDLE with one reference; `ioasid_free` "
    "while others hold it makes it FREE_PENDING -- not reusable, `ioasid_get` -EBUSY, "
    "`ioasid_find` -ENOENT -- and the last `ioasid_put` reclaims it.  The series' "
    "`IOASID_STATE_ACTIVE` is not modeled: no path enters it (§1.5 names no transition into "
    "it).",
    ("drivers/iommu/ioasid.c: ioasid_alloc(), ioasid_free(), ioasid_get(), ioasid_put(), "
     "ioasid_find(), ioasid_set_data() (E2-E10 and the IOASID-set series)",),
    {_O.IDLE: "allocated, refs >= 1",
     _O.FREE_PENDING: "freed by its owner while other references remain: reserved, "
                      "not reusable",
     _O.FREED: "reclaimed: the ID is back in the PASID space"},
    (T(CREATE, _O.IDLE, "alloc", "ioasid_alloc",
       "refs 1; INVALID_IOASID for an unknown or freeing set, an exhausted quota or space"),
     T(_O.IDLE, _O.IDLE, "get", "ioasid_get", "refs + 1 (-EACCES for another set)"),
     T(_O.IDLE, _O.IDLE, "put", "ioasid_put", "refs - 1, not the last; also ioasid_set_data"),
     T(_O.IDLE, _O.FREE_PENDING, "free_referenced", "ioasid_free",
       "other references remain: refs - 1, FREE notification (§1.5)"),
     T(_O.IDLE, _O.FREED, "free", "ioasid_free",
       "no other reference: reclaimed at once (E2 ioasid_free)"),
     T(_O.IDLE, _O.FREED, "last_put", "ioasid_put", "E4: the last reference (returns true)"),
     T(_O.FREE_PENDING, _O.FREE_PENDING, "put", "ioasid_put",
       "not the last; ioasid_free again is a no-op"),
     T(_O.FREE_PENDING, _O.FREED, "last_put", "ioasid_put",
       "the deferred free; the set is destroyed with its last ID if it was freed")))


# -- amdgpu PASID --------------------------------------------------------------------------------

@unique
class AmdgpuPasidLc(IntEnum):
    """One PASID of amdgpu's own IDR (``amdgpu_pasid_idr``)."""

    FREE = 0
    ALLOCATED = 1
    DELAYED_FREE = 2


_A = AmdgpuPasidLc
_AMDGPU_PASID = Spec(
    Lifecycle.AMDGPU_PASID, AmdgpuPasidLc, "amdgpu PASID",
    "one PASID value of amdgpu's own IDR (not the IOMMU's global IDA)",
    "GPU VMs get PASIDs from amdgpu's IDR.  At file close a VM's PASID is freed only once the "
    "fences on its root page directory have signalled (`amdgpu_pasid_free_delayed`): the "
    "real-world grace period (§5.3).  Since 14b81abe7bdc the IDR is also cyclic, so a freed "
    "PASID is not handed out again soon, which covers faults still pending in the IH ring "
    "(H13; `amdgpu-lowest` is the design before).",
    ("drivers/gpu/drm/amd/amdgpu/amdgpu_ids.c: amdgpu_pasid_alloc(), amdgpu_pasid_free(), "
     "amdgpu_pasid_free_delayed(), amdgpu_pasid_free_cb()",
     "drivers/dma-buf/dma-fence.c: dma_fence_signal()"),
    {_A.FREE: "not in the IDR",
     _A.ALLOCATED: "a VM's PASID",
     _A.DELAYED_FREE: "freed by the VM, waiting for its fence (callback installed)"},
    (T(CREATE, _A.FREE, "boot", "DEFINE_IDR", "amdgpu_pasid_idr starts empty"),
     T(_A.FREE, _A.ALLOCATED, "alloc", "amdgpu_pasid_alloc",
       "idr_alloc_cyclic in [1, 2^bits) (lowest free before 14b81abe7bdc); bits 0: -EINVAL"),
     T(_A.ALLOCATED, _A.FREE, "free", "amdgpu_pasid_free",
       "idr_remove; also amdgpu_pasid_free_delayed with no fence, a signalled one, or a "
       "failed callback allocation (dma_fence_wait, then free)"),
     T(_A.ALLOCATED, _A.DELAYED_FREE, "free_delayed", "amdgpu_pasid_free_delayed",
       "an unsignalled fence: dma_fence_add_callback"),
     T(_A.DELAYED_FREE, _A.FREE, "fence_signalled", "amdgpu_pasid_free_cb",
       "dma_fence_signal runs the callback: idr_remove"),
     T(_A.DELAYED_FREE, _A.FREE, "free", "amdgpu_pasid_free",
       "a direct free of a PASID whose delayed free is pending (a driver double free): the "
       "callback stays armed and frees the PASID's next owner when the fence signals")))


#: Every lifecycle, indexed by :class:`Lifecycle`.
SPECS: tuple = (_PASID, _MM, _IOMMU_MM, _BOND, _SVA_DOMAIN, _PASID_SLOT, _PASID_ENTRY,
                _GROUP_OWNER, _WQ, _DESC, _TASK_PASID, _IOASID, _AMDGPU_PASID)

#: The allowed ``(src, dst)`` pairs of each lifecycle (plain ints), for :func:`transition`.
ALLOWED: dict = {spec.lifecycle: frozenset((int(t.src), int(t.dst)) for t in spec.transitions)
                 for spec in SPECS}


def _validate() -> None:
    """Check the tables at import: SPECS in Lifecycle order, states of the right enum (each
    enum is ``@unique``: no two states share a value), no state with the value of CREATE,
    every state documented, no duplicated row."""
    if tuple(s.lifecycle for s in SPECS) != tuple(Lifecycle):
        raise ModelInternalError("lifecycle SPECS are not in Lifecycle order")
    for spec in SPECS:
        members = set(spec.states)
        if CREATE in members:
            raise ModelInternalError(f"{spec.lifecycle.name}: a state has the value of CREATE")
        if set(spec.state_notes) != members:
            raise ModelInternalError(f"{spec.lifecycle.name}: state_notes do not match states")
        seen = set()
        for t in spec.transitions:
            if (t.src != CREATE and t.src not in members) or t.dst not in members:
                raise ModelInternalError(f"{spec.lifecycle.name}: bad state in {t}")
            if any(c in t.event + t.kernel_fn for c in "|`\n :;#"):
                raise ModelInternalError(f"{spec.lifecycle.name}: event and kernel_fn must be "
                                         f"plain names: {t}")
            key = (int(t.src), int(t.dst), t.event, t.kernel_fn)
            if key in seen:
                raise ModelInternalError(f"{spec.lifecycle.name}: duplicated row {t}")
            seen.add(key)


_validate()


def _state_name(lc: int, state: int) -> str:
    if state == CREATE:
        return "(create)"
    try:
        return SPECS[lc].states(state).name
    except (ValueError, IndexError, TypeError):
        return repr(state)


def transition(lc: Lifecycle, src: int, dst: int, _allowed: dict = ALLOWED) -> None:
    """Check that lifecycle ``lc`` may go from state ``src`` to state ``dst``.

    Called by the kernel model wherever a lifecycle moves; the caller works out both states
    from its records (``src`` may be :data:`CREATE` for a creation).  One dict lookup and one
    frozenset membership test: the model checker calls it millions of times.

    Args:
        lc: the :class:`Lifecycle`.
        src, dst: states of ``lc``'s enum (members or their int values).
    Raises:
        ModelInternalError: ``(src, dst)`` is not in ``lc``'s table (a bug of the model), or
            ``lc`` is not a lifecycle.
    Models: no kernel function: the tables are transcribed from kernel-spec (§2.11, §4.5 and
        the sources named in each :class:`Spec`).
    """
    try:
        pairs = _allowed[lc]
    except (KeyError, TypeError):
        raise ModelInternalError(f"transition(): {lc!r} is not a lifecycle") from None
    if (src, dst) in pairs:
        return
    name = Lifecycle(lc).name
    raise ModelInternalError(
        f"{name} lifecycle: {_state_name(lc, src)} -> {_state_name(lc, dst)} is not in its "
        f"transition table (pasidsim.lifecycle.SPECS[{name}])")


def allowed(lc: Lifecycle, src: int, dst: int) -> bool:
    """True when ``(src, dst)`` is in lifecycle ``lc``'s table (:func:`transition` without the
    exception).  Raises KeyError when ``lc`` is not a lifecycle."""
    return (src, dst) in ALLOWED[lc]


def transitions(lc: Lifecycle) -> tuple:
    """The :class:`Transition` rows of lifecycle ``lc`` (``SPECS[lc].transitions``).  Raises
    ValueError when ``lc`` is not a lifecycle."""
    return SPECS[Lifecycle(lc)].transitions


__all__ = [
    "CREATE", "Lifecycle", "Transition", "Spec", "SPECS", "ALLOWED", "transition", "allowed",
    "transitions", "PasidLc", "MmLc", "IommuMmLc", "BondLc",
    "SvaDomainLc", "PasidSlotLc", "PasidEntryLc", "GroupOwnerLc", "WqLc", "DescLc",
    "TaskPasidLc", "IoasidLc", "AmdgpuPasidLc",
]

