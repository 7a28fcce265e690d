"""x86 ENQCMD and the per-thread IA32_PASID MSR.

Today (E6+): the MSR of a thread is written lazily, by the thread itself, in its #GP handler,
the first time it executes ENQCMD after its mm got a PASID (``try_fixup_enqcmd_gp``); fork and
clone clear it; the PASID's lifetime is the mm's, not the thread's.  The E3 design propagated the
PASID to every thread by IPI (``update_pasid()``), and the rejected Sep 2021 proposal took a
PASID reference per activated thread (``Enqcmd.TASK_REFCOUNT``).

Kernel sources modeled: arch/x86/kernel/traps.c ``try_fixup_enqcmd_gp()``,
``exc_general_protection()``; kernel/fork.c ``dup_task_struct()`` (pasid_activated = 0).
"""

from __future__ import annotations

from . import locking
from .errors import EAGAIN, EBUSY, EFAULT, EINVAL, ModelUsageError
from .hw.wq import submit
from .ops_tables import dev_driver_ops
from .policy import Enqcmd
from .locking import CtxKind, LockClass, lock_key
from .state import (IOMMU_PASID_INVALID, MSR_IA32_PASID_VALID, PROT_WRITE, SystemState, Task,
                    Work, queue_work)


#: intel svm.c ``pasid_mutex`` (taken by the per-task refcount proposal's #GP fixup)
PASID_MUTEX = lock_key(LockClass.PASID_MUTEX)


def task_get(s: SystemState, tid: int) -> Task:
    """The live task ``tid``; ModelUsageError if it does not exist."""
    t = s.tasks.get(tid)
    if t is None:
        raise ModelUsageError(f"unknown or exited task {tid}")
    return t


def try_fixup_enqcmd_gp(s: SystemState, tid: int) -> tuple[SystemState, bool]:
    """Fix up a #GP taken by ENQCMD: when the task's mm has a PASID and the task has not yet
    activated it, write ``IA32_PASID = pasid | VALID`` and set ``pasid_activated``; the
    instruction is retried.  Returns ``(state, fixed)``; not fixed = a genuine #GP.
    Runs in exception context (interrupts still disabled): under ``Enqcmd.TASK_REFCOUNT``
    its ``mutex_lock(&pasid_mutex)`` sleeps in atomic context (invariant L2 at ``lock``
    granularity).
    Models: arch/x86/kernel/traps.c ``try_fixup_enqcmd_gp()``; the Sep 2021 proposal's
    ``__fixup_pasid_exception()`` (drivers/iommu/intel/svm.c, seed 004)."""
    pol = s.policy
    if pol.enqcmd not in (Enqcmd.GP_FIXUP, Enqcmd.TASK_REFCOUNT):
        return s, False  # X86_FEATURE_ENQCMD disabled (E5), or E3 (MSR set by IPI only)
    t = task_get(s, tid)
    mm = s.mms.get(t.mm)
    if mm is None or mm.pasid == IOMMU_PASID_INVALID:
        return s, False
    if t.pasid_activated:
        return s, False
    if pol.enqcmd == Enqcmd.TASK_REFCOUNT:
        # the Sep 2021 proposal (seed 004): mutex_lock(&pasid_mutex); iommu_sva_alloc_pasid()
        # takes the task's PASID reference; mutex_unlock() -- in the #GP handler, which runs
        # before interrupts are re-enabled (lockdep_assert_irqs_disabled()): atomic context
        ctx, _kind, held = locking.current()
        locking.begin(ctx, CtxKind.EXCEPTION, held)
        try:
            s = locking.release(locking.acquire(s, PASID_MUTEX), PASID_MUTEX)
        finally:
            locking.end()
    t = t._replace(pasid_activated=True, msr=mm.pasid | MSR_IA32_PASID_VALID)
    return s._replace(tasks=s.tasks.set(tid, t)), True


def exc_general_protection(s: SystemState, tid: int) -> tuple[SystemState, int]:
    """A user-mode #GP in task ``tid``.  Returns 0 when it was an ENQCMD PASID fixup (the
    instruction is retried), else ``-EFAULT``: SIGSEGV is delivered and the process is killed
    (default disposition: the fatal signal is queued, :class:`~pasidsim.state.Work` SIGKILL,
    and the process exits on its way back to user space).  Models ``exc_general_protection()``
    (``force_sig(SIGSEGV)``).  ModelUsageError for an unknown task, under every design."""
    t = task_get(s, tid)
    s, fixed = try_fixup_enqcmd_gp(s, tid)
    if fixed:
        return s, 0
    return queue_work(s, Work.SIGKILL, t.pid), -EFAULT


def enqcmd(s: SystemState, tid: int, dev: int) -> tuple[SystemState, int]:
    """Task ``tid`` submits a descriptor to a shared work queue of ``dev`` with ENQCMD.

    The task's mm must map a portal of ``dev`` (an mmap of the device file), else the store
    faults and the process gets SIGSEGV.  The descriptor carries the PASID in the task's
    IA32_PASID MSR and stays queued (``inflight``) until the device completes or drains it; its
    completion write goes to the submitter's address 0.  Without a valid MSR the
    instruction takes #GP: fixed up and retried when the mm has a PASID, else SIGSEGV (the
    process is killed).  A device whose driver has no shared work queue there (its ops'
    ``enqcmd_portal`` false: a GPU BAR, a dedicated WQ, no driver) does not accept the
    deferrable write: ZF=1 ("retry"), nothing is queued.
    Returns the PASID the descriptor carried (> 0), ``-EFAULT`` (no portal mapped: SIGSEGV),
    or ``-EAGAIN`` (not accepted; a #GP fixup that ran before it stays: IA32_PASID is set).
    Models: the ENQCMD instruction (Intel SDM) and arch/x86/kernel/traps.c
    ``fixup_pasid_exception()``.
    """
    t = task_get(s, tid)
    mm = s.mms.get(t.mm)
    if mm is None or not any(v.file and s.files[v.file].dev == dev for v in mm.vmas):
        # no portal of this device mapped: the store faults, SIGSEGV
        return queue_work(s, Work.SIGKILL, t.pid), -EFAULT
    if not t.msr & MSR_IA32_PASID_VALID:
        s, ret = exc_general_protection(s, tid)
        if ret < 0:
            return s, ret
        t = s.tasks[tid]
    if not getattr(dev_driver_ops(s, dev), "enqcmd_portal", False):
        return s, -EAGAIN
    pasid = t.msr & ~MSR_IA32_PASID_VALID
    s, _desc = submit(s, dev, pasid, 0, PROT_WRITE, t.mm, True)
    return s, pasid


def update_pasid_ipi(s: SystemState, mm: int) -> SystemState:
    """E3 ``update_pasid()``: the MSR of every thread of ``mm`` is rewritten by IPI (to the
    mm's PASID, or cleared when it has none).  The remote write is what H4 forbids (X3)."""
    rec = s.mms.get(mm)
    pasid = rec.pasid if rec is not None else IOMMU_PASID_INVALID
    tasks = s.tasks
    for tid, t in s.tasks.items():
        if t.mm != mm:
            continue
        if pasid == IOMMU_PASID_INVALID:
            tasks = tasks.set(tid, t._replace(msr=0, pasid_activated=False))
        else:
            tasks = tasks.set(tid, t._replace(msr=pasid | MSR_IA32_PASID_VALID,
                                              pasid_activated=True))
    return s._replace(tasks=tasks)


def arch_prctl_enable_tagged_addr(s: SystemState, tid: int) -> tuple[SystemState, int]:
    """``arch_prctl(ARCH_ENABLE_TAGGED_ADDR)``: enable LAM on the task's mm.

    Returns 0; -EINVAL when the mm already has a PASID (SVA) and LAM+SVA was not forced
    (checked first); -EBUSY when ``MM_CONTEXT_LOCK_LAM`` is set: the mm has ever had a second
    thread cloned into it (even one that has exited since), or LAM was already enabled (a
    second enable).  The CPU is assumed to have LAM (no -ENODEV) and ``nr_bits`` to be valid.
    Models: arch/x86/kernel/process_64.c ``prctl_enable_tagged_addr()`` (the lock is set by
    arch/x86/kernel/process.c ``copy_thread()`` for ``CLONE_VM`` without ``CLONE_VFORK``, and
    by ``mm_enable_lam()``).
    """
    t = task_get(s, tid)
    rec = s.mms[t.mm]
    if rec.pasid != IOMMU_PASID_INVALID and not rec.force_tagged_sva:
        return s, -EINVAL
    if rec.lam_locked:
        return s, -EBUSY
    return s._replace(mms=s.mms.set(t.mm, rec._replace(lam=True, lam_locked=True))), 0


def arch_prctl_force_tagged_sva(s: SystemState, tid: int) -> tuple[SystemState, int]:
    """``arch_prctl(ARCH_FORCE_TAGGED_SVA)``: let LAM and SVA coexist on the task's mm (the
    process promises to hand only untagged addresses to devices).  Returns 0.
    Models: arch/x86/kernel/process_64.c ``do_arch_prctl_64()``."""
    t = task_get(s, tid)
    rec = s.mms[t.mm]
    return s._replace(mms=s.mms.set(t.mm, rec._replace(force_tagged_sva=True))), 0
