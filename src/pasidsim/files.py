"""Processes, threads, open device files and mappings.

A process has an mm, threads and one fd table shared by its threads.  Opening a device node
creates a ``struct file`` (f_count 1) and calls the driver's ``open``; ``mmap`` of it creates a
VMA that holds a file reference; the last ``fput`` defers ``__fput`` (the driver's ``release``)
to task work, which runs when the current system call or exit finishes (:func:`run_task_work`).
Thread exit drops the thread's mm_users reference (``exit_mm``) *before* the process's files are
closed (``exit_files``): this order is what makes the seed-000 mm↔fd cycle possible.

Kernel sources modeled: kernel/fork.c ``copy_process()``/``dup_mm()``/``dup_mmap()``
(VM_DONTCOPY), ``dup_task_struct()``; kernel/exit.c ``do_exit()`` (``exit_mm`` then
``exit_files``), ``do_group_exit()``; fs/file_table.c ``fput()``/``__fput()`` (task work);
mm/mmap.c ``mmap_region()`` (``get_file``), ``munmap``.
"""

from __future__ import annotations

from .errors import EBADF, EINVAL, ENODEV, ModelUsageError
from .locking import Call, Do, KFunc
from .file_table import fput, get_file, vma_close
from .mem import _task_mm, unmap_range
from .mm import mm_alloc, mm_get, mmget, mmput
from .ops_tables import file_driver_ops
from .policy import Enqcmd
from .state import (IOMMU_PASID_INVALID, MSR_IA32_PASID_VALID, PAGE_SHIFT, PAGE_SIZE, PROT_READ,
                    PROT_WRITE, File, Proc, SystemState, Task, Vma)
from .sva import maybe_free_refcounted_pasid


def proc_get(s: SystemState, pid: int) -> Proc:
    """The live process ``pid``; ModelUsageError otherwise."""
    p = s.procs.get(pid)
    if p is None:
        raise ModelUsageError(f"unknown or exited process {pid}")
    return p


def _task(s: SystemState, tid: int) -> Task:
    t = s.tasks.get(tid)
    if t is None:
        raise ModelUsageError(f"unknown or exited task {tid}")
    return t


def process_create(s: SystemState) -> tuple[SystemState, int]:
    """A new process with a fresh mm and one thread.  Returns the thread id, which is also
    the process id."""
    s, mm = mm_alloc(s)
    tid = s.next_id
    s = s._replace(next_id=tid + 1, tasks=s.tasks.set(tid, Task(pid=tid, mm=mm)),
                   procs=s.procs.set(tid, Proc(mm=mm, threads=(tid,))))
    return s, tid


def clone_thread(s: SystemState, tid: int) -> tuple[SystemState, int]:
    """``clone(CLONE_VM|CLONE_FILES|CLONE_THREAD)``: a new thread sharing mm (mmget) and fd
    table; ``pasid_activated`` cleared and the PASID xstate not inherited (``dup_task_struct``,
    ``fpu_clone``: "Children never inherit PASID state").  ``copy_thread`` sets the mm's
    ``MM_CONTEXT_LOCK_LAM`` for good.  In the ENQCMD IPI era (``Enqcmd.IPI``, v5.10-v5.12) the
    XSAVE image was copied and ``update_pasid()`` at every switch-in loaded ``mm->pasid``: the
    new thread runs with the mm's PASID in IA32_PASID.  Returns the tid.
    Models: kernel/fork.c ``copy_process()``, arch/x86/kernel/process.c ``copy_thread()``."""
    t = _task(s, tid)
    s = mmget(s, t.mm)
    new = s.next_id
    p = s.procs[t.pid]
    rec = s.mms[t.mm]
    task = Task(pid=t.pid, mm=t.mm)
    if s.policy.enqcmd == Enqcmd.IPI and rec.pasid != IOMMU_PASID_INVALID:
        task = task._replace(pasid_activated=True, msr=rec.pasid | MSR_IA32_PASID_VALID)
    if not rec.lam_locked:
        s = s._replace(mms=s.mms.set(t.mm, rec._replace(lam_locked=True)))
    s = s._replace(next_id=new + 1, tasks=s.tasks.set(new, task),
                   procs=s.procs.set(t.pid, p._replace(threads=p.threads + (new,))))
    return s, new


def fork(s: SystemState, tid: int) -> tuple[SystemState, int]:
    """``fork()``: a child process with a *fresh* mm (``mm_init`` zeroes ``iommu_mm``: no
    PASID; LAM mode and context flags copied, ``dup_lam``), copies of the fd table (each file's f_count + 1) and of the VMAs without
    VM_DONTCOPY (each holding its file), one thread with ``pasid_activated = 0``.
    Returns the child's tid (= pid)."""
    t = _task(s, tid)
    parent = s.procs[t.pid]
    s, mm = mm_alloc(s)
    vmas = []
    pmm = mm_get(s, t.mm)
    for vma in pmm.vmas:
        if vma.dontcopy:
            continue
        s, vid = _new_id(s)
        vmas.append(vma._replace(id=vid))
        if vma.file:
            s = get_file(s, vma.file)
    # The child's anonymous memory is demand-zero (copy-on-write is not modeled).
    child_mm = s.mms[mm]._replace(vmas=tuple(vmas), next_vpage=pmm.next_vpage,
                                  lam=pmm.lam, force_tagged_sva=pmm.force_tagged_sva,
                                  lam_locked=pmm.lam_locked)  # context.flags: dup_mm's memcpy
    if s.policy.fork_shares_iommu_mm:  # H7: dup_mm()'s memcpy leaves iommu_mm aliased
        child_mm = child_mm._replace(pasid=pmm.pasid)
    s = s._replace(mms=s.mms.set(mm, child_mm))
    for f in parent.files:
        s = get_file(s, f)
    child = s.next_id
    s = s._replace(next_id=child + 1, tasks=s.tasks.set(child, Task(pid=child, mm=mm)),
                   procs=s.procs.set(child, Proc(mm=mm, threads=(child,), files=parent.files)))
    return s, child


def _new_id(s: SystemState) -> tuple[SystemState, int]:
    return s._replace(next_id=s.next_id + 1), s.next_id


def task_exit(s: SystemState, tid: int) -> tuple[SystemState, int]:
    """``do_exit()`` of one thread: (per-task PASID reference put, in the Sep 2021 design),
    ``exit_mm`` (mmput), and for the last thread ``exit_files`` (each file fput).  The
    deferred ``__fput`` calls run after, as task work.  Returns 0."""
    t = _task(s, tid)
    p = s.procs[t.pid]
    s = s._replace(tasks=s.tasks.delete(tid))
    if t.pasid_activated and s.policy.enqcmd == Enqcmd.TASK_REFCOUNT and t.mm in s.mms:
        s = maybe_free_refcounted_pasid(s, t.mm)
    s = mmput(s, t.mm)
    threads = tuple(x for x in p.threads if x != tid)
    if threads:
        s = s._replace(procs=s.procs.set(t.pid, p._replace(threads=threads)))
        return s, 0
    s = s._replace(procs=s.procs.delete(t.pid))
    for f in p.files:
        s = fput(s, f)
    return s, 0


def execve(s: SystemState, tid: int) -> tuple[SystemState, int]:
    """``execve()`` by task ``tid`` (a program that exists; open files stay open: no
    ``O_CLOEXEC`` is modelled).

    ``de_thread()``: the process's other threads exit first.  ``exec_mmap()``: the task gets a
    fresh mm (``mm_alloc`` → ``mm_init`` → ``mm_pasid_init``: no PASID, no LAM) and the old one
    is ``mmput`` (its last user: ``__mmput``, which may leave bonds of still-open files on an
    exited mm).  ``flush_thread()`` → ``fpu_flush_thread()`` resets the XSAVE image to the
    init state, so IA32_PASID is 0 from the next return to user space; ``pasid_activated`` is
    not cleared on this path (only ``dup_task_struct`` clears it) [I: source read, no reset
    found], so a later ENQCMD of the new program takes a #GP that ``try_fixup_enqcmd_gp()``
    refuses (SIGSEGV) -- unless the per-task refcount proposal (seed 004) drops the task's
    PASID reference here, as it does at exit.  Returns 0.
    Models: fs/exec.c ``begin_new_exec()``, ``de_thread()``, ``exec_mmap()``;
    arch/x86/kernel/fpu/core.c ``fpu_flush_thread()``.
    """
    t = _task(s, tid)
    for other in [x for x in s.procs[t.pid].threads if x != tid]:
        s, _ = task_exit(s, other)
    t = s.tasks[tid]
    old = t.mm
    if t.pasid_activated and s.policy.enqcmd == Enqcmd.TASK_REFCOUNT:
        s = s._replace(tasks=s.tasks.set(tid, t._replace(pasid_activated=False, msr=0)))
        if old in s.mms:
            s = maybe_free_refcounted_pasid(s, old)
        t = s.tasks[tid]
    s, mm = mm_alloc(s)
    p = s.procs[t.pid]
    s = s._replace(tasks=s.tasks.set(tid, t._replace(mm=mm, msr=0)),
                   procs=s.procs.set(t.pid, p._replace(mm=mm)))
    return mmput(s, old), 0


def do_group_exit(s: SystemState, pid: int) -> SystemState:
    """``do_group_exit()``: every thread of the process exits (lowest tid last).  Also the
    deferred delivery of a fatal signal (:class:`~pasidsim.state.Work` SIGKILL): a process
    that has exited meanwhile is left alone."""
    if pid not in s.procs:
        return s
    p = proc_get(s, pid)
    for tid in reversed(p.threads):
        s, _ = task_exit(s, tid)
    return s


def _open_lookup(s: SystemState, loc: tuple) -> tuple[SystemState, tuple]:
    """The device node's lookup (``chrdev_open``): no driver → -ENODEV; else a new file with
    the driver's ``file_operations``.  ``loc``: (ret, tid, dev) → (ret, tid, dev, file)."""
    _r, tid, dev = loc
    t = _task(s, tid)
    drv = s.devs[dev].driver
    if drv < 0:
        return s, (-ENODEV, tid, dev, 0)
    fid = s.next_id
    s = s._replace(next_id=fid + 1, files=s.files.set(fid, File(dev=dev, mm=t.mm, drv=drv)))
    return s, (0, tid, dev, fid)


def _open_code(s: SystemState, loc: tuple):
    """``f_op->open``: the driver's open as a KFunc when it has preemption points
    (``Driver.open_code``), else its plain ``open``."""
    ops = file_driver_ops(s, loc[3])
    return getattr(ops, "open_code", None) or ops.open


def _open_args(s: SystemState, loc: tuple):
    return None if loc[0] else (loc[3], loc[1])


def _open_ret(loc: tuple, ret: int) -> tuple:
    return (ret,) + loc[1:]


def _open_finish(s: SystemState, loc: tuple) -> tuple[SystemState, tuple]:
    ret, tid, dev, fid = loc
    if not fid:
        return s, loc
    if ret:  # do_dentry_open(): `if (error) goto cleanup_all` (f_op->open returns 0 or -errno)
        s = s._replace(files=s.files.delete(fid))
        if s.next_id == fid + 1:  # the file's id is the only one drawn: give it back
            s = s._replace(next_id=fid)
        return s, loc
    t = _task(s, tid)
    p = s.procs[t.pid]
    s = s._replace(procs=s.procs.set(t.pid, p._replace(files=p.files + (fid,))))
    return s, (fid,) + loc[1:]


#: ``open()`` of a device node: the lookup, then the driver's open (a KFunc with its own
#: preemption points for uacce, whose ``uacce->mutex`` an unbind may take in between).
dev_open = KFunc(
    "dev_open", ("tid", "dev"),
    (Do(_open_lookup), Call(("resolve", _open_code), _open_args, _open_ret), Do(_open_finish)),
    """``open()`` of device ``dev``'s node by task ``tid``.  Returns the new file id (the fd);
    -ENODEV when no driver is bound; the driver's open error: the file is discarded, and what
    the driver's failed open kept stays (a failed SVA bind keeps the mm's PASID; the driver
    unwinds the rest itself).  The file keeps the driver's ``file_operations``.  At ``lock``
    granularity the driver may be unbound between the lookup and its open (uacce: -EINVAL).
    Models fs/open.c ``do_dentry_open()`` (``f_op->open``; on error the file is put without
    ``release``), fs/char_dev.c ``chrdev_open()``.""")


def close(s: SystemState, tid: int, fd: int) -> tuple[SystemState, int]:
    """``close(fd)``: removes the fd and drops its file reference.  Returns 0 or -EBADF."""
    t = _task(s, tid)
    p = s.procs[t.pid]
    if fd not in p.files:
        return s, -EBADF
    s = s._replace(procs=s.procs.set(t.pid, p._replace(
        files=tuple(f for f in p.files if f != fd))))
    return fput(s, fd), 0


def mmap(s: SystemState, tid: int, fd: int, pgoff: int = 0) -> tuple[SystemState, int]:
    """``mmap()`` of an open device file (e.g. a uacce queue or a DSA portal) at page offset
    ``pgoff`` (a uacce queue's region): a VMA holding a reference on the file.  Returns the VMA
    id; -EBADF; the driver's error."""
    t = _task(s, tid)
    if fd not in s.procs[t.pid].files:
        return s, -EBADF
    s0 = s
    ops = file_driver_ops(s, fd)
    if ops is None:
        s, dontcopy = s, -ENODEV
    else:  # plug-ins written before page offsets keep their two-argument mmap
        s, dontcopy = ops.mmap(s, fd, pgoff) if pgoff else ops.mmap(s, fd)
    if dontcopy < 0:
        return s0, dontcopy
    s = get_file(s, fd)
    s, vid = _new_id(s)
    rec = s.mms[t.mm]
    vma = Vma(vid, fd, bool(dontcopy), rec.next_vpage, 1, PROT_READ | PROT_WRITE, pgoff)
    s = s._replace(mms=s.mms.set(t.mm, rec._replace(vmas=rec.vmas + (vma,),
                                                     next_vpage=rec.next_vpage + 2)))
    return s, vid


def munmap(s: SystemState, tid: int, vma: int) -> tuple[SystemState, int]:
    """``munmap()`` of a VMA: its pages are unmapped (frames freed after the IOMMU and
    device TLBs are invalidated through the mmu notifier) and a file reference is dropped.
    Returns 0 or -EINVAL."""
    t = _task(s, tid)
    rec = s.mms[t.mm]
    match = [v for v in rec.vmas if v.id == vma]
    if not match:
        return s, -EINVAL
    v = match[0]
    s = s._replace(mms=s.mms.set(t.mm, rec._replace(vmas=tuple(x for x in rec.vmas if x.id != vma))))
    s = unmap_range(s, t.mm, v.start, v.npages)
    if v.file:
        s = fput(vma_close(s, v.file, v.pgoff), v.file)
    return s, 0


def munmap_range(s: SystemState, tid: int, addr: int) -> tuple[SystemState, int]:
    """``munmap`` of the mapping that starts at byte address ``addr`` (anonymous or device).
    Returns 0 or -EINVAL."""
    mm = _task_mm(s, tid)
    for v in s.mms[mm].vmas:
        if v.start == addr >> PAGE_SHIFT and not addr & (PAGE_SIZE - 1):
            return munmap(s, tid, v.id)
    return s, -EINVAL
