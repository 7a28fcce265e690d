"""uacce (Unified/User-space-access-intended Accelerator Framework): HiSilicon ZIP/SEC/HPRE.

Order of operations (drivers/misc/uacce/uacce.c): ``open`` binds the device to
``current->mm`` (``uacce_bind_queue`` → ``iommu_sva_bind_device``); ``mmap`` of the queue's
MMIO/DUS regions creates a VM_DONTCOPY VMA that holds the file; ``release`` stops the queue
(``uacce_put_queue``: the hardware stops DMA on the PASID) and then unbinds; ``remove`` does the
same for every open queue.

E0 only (2018 io_mm RFC: the ``mm_exit`` callback passed to ``iommu_sva_device_init``, called
from the io_mm's mmu-notifier ``release``): ``mm_exit`` stops the queue (as ``uacce_stop_queue``
does: the hardware finishes the PASID's DMA) before returning.  With
``DriverConfig.mm_exit_drains`` false it only stops new submissions and returns without
waiting; work already queued completes later.

The queue (``struct uacce_queue``) lives in the file's ``drvdata``: its state in bits 0-1
(``UACCE_Q_ZOMBIE`` 0, ``UACCE_Q_INIT`` 1, ``UACCE_Q_STARTED`` 2) and the mmapped regions
(``qfrs``: bit 2 MMIO, bit 3 DUS).  ``UACCE_CMD_START_Q`` starts an INIT queue,
``UACCE_CMD_PUT_Q`` stops it and gives the hardware queue back (ZOMBIE; the bond stays until
``release``).  A parent driver that registers without ``UACCE_DEV_SVA``
(``DriverConfig.uacce_sva`` false) gets queues bound to no mm.
"""

from __future__ import annotations

from .. import hooks
from ..errors import EBADF, EEXIST, EINVAL, ENODEV, ENOTTY, ENXIO
from ..fault import FaultPoint, fault_point
from ..ops_tables import file_driver_ops
from ..state import IOMMU_PASID_INVALID, SystemState
from ..sva import iommu_sva_bind_device, iommu_sva_get_pasid, iommu_sva_unbind_device
from ..locking import Do, KFunc, Lock, LockClass, Unlock, acquire, lock_key, release
from .base import Driver, teardown_code

_RELEASE = teardown_code("uacce_fops_release", mutex=True)
#: ``uacce_put_queue`` as ``uacce_remove`` runs it: under the ``uacce->mutex`` it holds
_PUT = teardown_code("uacce_put_queue", mutex=False)

UACCE_Q_ZOMBIE, UACCE_Q_INIT, UACCE_Q_STARTED = 0, 1, 2
UACCE_QFRT_MMIO, UACCE_QFRT_DUS, UACCE_MAX_REGION = 0, 1, 2
UACCE_CMD_START_Q = 0x5700  # _IO('W', 0)
UACCE_CMD_PUT_Q = 0x5701  # _IO('W', 1)
_STATE = 3


def uacce_dev_sva(s: SystemState, dev: int) -> bool:
    """The accelerator was registered with ``UACCE_DEV_SVA`` (``DriverConfig.uacce_sva``).
    Since the removal of ``uacce_enable_sva()`` (v6.16, "iommu: Remove
    IOMMU_DEV_FEAT_IOPF") the flag is not dropped for a device that cannot do SVA: its
    bind fails at open instead."""
    return s.config.drivers[s.devs[dev].driver].uacce_sva


def _set_q(s: SystemState, file: int, q: int) -> SystemState:
    return s._replace(files=s.files.set(file, s.files[file]._replace(drvdata=q)))


class UacceDriver(Driver):
    """uacce accelerator queue per open file."""

    kind = "uacce"
    binds_sva = True
    #: the model's generic SVA accelerator (the demo's ``dsa0``) also takes ENQCMD on its
    #: mapped queue; real uacce devices (HiSilicon) have their own doorbells
    enqcmd_portal = True

    def open(self, s: SystemState, file: int, tid: int) -> tuple[SystemState, int]:
        """``uacce_fops_open`` (:data:`UACCE_OPEN`; this is its body under ``uacce->mutex``):
        bind ``current->mm`` (``uacce_bind_queue``; only with
        ``UACCE_DEV_SVA``; a bond whose PASID reads back INVALID is undone, -ENODEV), then the
        parent driver's ``get_queue`` for the bond's PASID; if that fails (fault point
        UACCE_GET_QUEUE, -EBUSY: no free hardware queue) the bond is undone
        (``out_with_bond: uacce_unbind_queue``) and the open fails.  The queue starts INIT.
        Returns 0 or -errno; a failed bind or get_queue keeps what the kernel keeps (the mm's
        PASID)."""
        f = s.files[file]
        if not uacce_dev_sva(s, f.dev):  # uacce_bind_queue: no UACCE_DEV_SVA, no bond
            err = fault_point(FaultPoint.UACCE_GET_QUEUE)
            return (s, err) if err else (_set_q(s, file, UACCE_Q_INIT), 0)
        s, h = iommu_sva_bind_device(s, f.dev, f.mm, drvdata=file)
        if h < 0:
            return s, h
        s, pasid = iommu_sva_get_pasid(s, h)
        if pasid == IOMMU_PASID_INVALID:
            return self.unbind_queue(s, h), -ENODEV
        err = fault_point(FaultPoint.UACCE_GET_QUEUE)
        if err:
            return self.unbind_queue(s, h), err  # out_with_bond
        f = s.files[file]
        return s._replace(files=s.files.set(file, f._replace(handles=(h,),
                                                             drvdata=UACCE_Q_INIT))), 0

    def unbind_queue(self, s: SystemState, handle: int) -> SystemState:
        """``uacce_unbind_queue``: drop the queue's bond (``iommu_sva_unbind_device``)."""
        s, _ = iommu_sva_unbind_device(s, handle)
        return s

    def stop_queue(self, s: SystemState, file: int) -> SystemState:
        """``uacce_stop_queue`` / ``hisi_qm_stop_qp``: the device stops DMA for this queue."""
        f = s.files[file]
        for h in f.handles:
            if h in s.handles:
                s = hooks.device_stop_pasid(s, f.dev, s.handles[h].pasid)
        return s

    release_code = _RELEASE

    def _put_queue(self, s: SystemState, file: int) -> SystemState:
        """Under ``uacce->mutex``: stop the queue (the device finishes the PASID's DMA), then
        unbind (:func:`~pasidsim.drivers.base.teardown_code`)."""
        s, _ = _RELEASE(s, file)
        return s

    def release(self, s: SystemState, file: int) -> SystemState:
        return self._put_queue(s, file)

    def remove(self, s: SystemState, dev: int) -> SystemState:
        """``uacce_remove``, under ``uacce->mutex``: every open queue is stopped, put (ZOMBIE)
        and unbound; the files stay open (later ioctls and mmaps fail -ENXIO, ``release`` only
        cleans up); ``uacce->parent`` is cleared, so an open that looked the device up before
        and takes the mutex after fails -EINVAL."""
        key = lock_key(LockClass.UACCE_MUTEX, dev)
        s = acquire(s, key)
        for fid, f in sorted(s.files.items()):
            if f.dev == dev and (f.handles or f.drvdata & _STATE):
                s, _ = _PUT(s, fid)
                s = _set_q(s, fid, UACCE_Q_ZOMBIE)  # regions zapped (unmap_mapping_range)
        return release(s, key)

    def mmap(self, s: SystemState, file: int, pgoff: int = 0) -> tuple[SystemState, int]:
        """``uacce_fops_mmap`` of region ``pgoff`` (``UACCE_QFRT_MMIO`` 0, ``UACCE_QFRT_DUS``
        1): -EINVAL (no such region); -ENXIO (the queue is a zombie: put, or the device
        removed); -EEXIST (the region is already mapped).  Returns 1 (VM_DONTCOPY)."""
        if not 0 <= pgoff < UACCE_MAX_REGION:
            return s, -EINVAL
        q = s.files[file].drvdata
        if not q & _STATE:
            return s, -ENXIO
        if q >> (2 + pgoff) & 1:
            return s, -EEXIST
        return _set_q(s, file, q | 1 << (2 + pgoff)), 1

    def vma_close(self, s: SystemState, file: int, pgoff: int) -> SystemState:
        """``uacce_vma_close``: the region's ``q->qfrs[vm_pgoff]`` is cleared, so it can be
        mapped again.  Models drivers/misc/uacce/uacce.c ``uacce_vma_close()``."""
        f = s.files.get(file)
        if f is None or not 0 <= pgoff < UACCE_MAX_REGION:
            return s
        return _set_q(s, file, f.drvdata & ~(1 << (2 + pgoff)))

    def mm_exit(self, s: SystemState, dev: int, handle: int) -> tuple[SystemState, int]:
        """E0 ``mm_exit``: stop the bond's queue and wait for it (``mm_exit_drains``), or,
        without ``mm_exit_drains``, return at once (queued work completes later).  Returns 0,
        or -EBUSY when it returns with work of the PASID still queued."""
        if not s.config.drivers[s.devs[dev].driver].mm_exit_drains:
            return s, self.queued_ret(s, dev, handle)
        for fid, f in sorted(s.files.items()):
            if handle in f.handles:
                s = self.stop_queue(s, fid)
        return s, 0


def _open_parent(s: SystemState, loc: tuple) -> tuple[SystemState, tuple]:
    """``if (!uacce->parent) return -EINVAL``: the driver was unbound from the device after
    the open's lookup (``uacce_remove`` cleared it).  ``loc``: (ret, file, tid)."""
    f = s.files[loc[1]]
    if s.devs[f.dev].driver != f.drv:
        return s, (-EINVAL,) + loc[1:]
    return s, loc


def _open_body(s: SystemState, loc: tuple) -> tuple[SystemState, tuple]:
    if loc[0]:
        return s, loc
    s, ret = UacceDriver().open(s, loc[1], loc[2])
    return s, (ret,) + loc[1:]


def _open_mutex(s: SystemState, loc: tuple) -> int:
    return lock_key(LockClass.UACCE_MUTEX, s.files[loc[1]].dev)


#: ``uacce_fops_open``: ``mutex_lock(&uacce->mutex)`` (a preemption point), the parent check,
#: the bind and ``get_queue``, unlock.  Models drivers/misc/uacce/uacce.c ``uacce_fops_open()``.
UACCE_OPEN = KFunc("uacce_fops_open", ("file", "tid"),
                   (Lock(_open_mutex), Do(_open_parent), Do(_open_body), Unlock(_open_mutex)),
                   "``uacce_fops_open(file)`` by task ``tid``: 0 or -errno (-EINVAL when the "
                   "driver was unbound since the lookup).")
UacceDriver.open_code = UACCE_OPEN


def uacce_fops_unl_ioctl(s: SystemState, tid: int, fd: int, cmd: int) -> tuple[SystemState, int]:
    """``ioctl(fd, cmd)`` on a uacce queue by task ``tid``: ``UACCE_CMD_START_Q`` (0x5700)
    starts an INIT queue (-EINVAL otherwise); ``UACCE_CMD_PUT_Q`` (0x5701) stops a started
    queue (the hardware stops DMA on its PASID) and gives the hardware queue back (ZOMBIE; the
    bond stays until ``release``).  Returns 0; -EBADF (fd not open in the task's process);
    -ENOTTY (not a uacce queue); -ENXIO (the queue is a zombie); -EINVAL (another command).
    Models: drivers/misc/uacce/uacce.c ``uacce_fops_unl_ioctl()``, ``uacce_start_queue()``,
    ``uacce_put_queue()``."""
    t = s.tasks.get(tid)
    if t is None or fd not in s.procs[t.pid].files:
        return s, -EBADF
    f = s.files[fd]
    if not isinstance(file_driver_ops(s, fd), UacceDriver):
        return s, -ENOTTY
    q = f.drvdata
    state = q & _STATE
    if state == UACCE_Q_ZOMBIE:
        return s, -ENXIO
    if cmd == UACCE_CMD_START_Q:
        if state != UACCE_Q_INIT:
            return s, -EINVAL
        return _set_q(s, fd, q & ~_STATE | UACCE_Q_STARTED), 0
    if cmd == UACCE_CMD_PUT_Q:
        if state == UACCE_Q_STARTED:
            s = UacceDriver().stop_queue(s, fd)
        return _set_q(s, fd, q & ~_STATE | UACCE_Q_ZOMBIE), 0
    return s, -EINVAL
