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
"""

from __future__ import annotations

from .. import hooks
from ..fault import FaultPoint, fault_point
from ..state import SystemState
from ..sva import iommu_sva_bind_device, iommu_sva_unbind_device
from .base import Driver, teardown_code

_RELEASE = teardown_code("uacce_fops_release", mutex=True)


class UacceDriver(Driver):
    """uacce accelerator queue per open file."""

    kind = "uacce"

    def open(self, s: SystemState, file: int, tid: int) -> tuple[SystemState, int]:
        """``uacce_fops_open``: bind ``current->mm`` (``uacce_bind_queue``), then the parent
        driver's ``get_queue`` for the bond's PASID; if that fails (fault point
        UACCE_GET_QUEUE, -EBUSY: no free hardware queue) the bond is undone
        (``out_with_bond: uacce_unbind_queue``) and the open fails.  Returns 0 or -errno; a
        failed bind or get_queue keeps what the kernel keeps (the mm's PASID)."""
        f = s.files[file]
        s, h = iommu_sva_bind_device(s, f.dev, f.mm, drvdata=file)
        if h < 0:
            return s, h
        err = fault_point(FaultPoint.UACCE_GET_QUEUE)
        if err:
            return self.unbind_queue(s, h), err  # out_with_bond
        return s._replace(files=s.files.set(file, f._replace(handles=(h,)))), 0

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
        for fid, f in sorted(s.files.items()):
            if f.dev == dev and f.handles:
                s = self._put_queue(s, fid)
        return s

    def mmap(self, s: SystemState, file: int) -> tuple[SystemState, int]:
        return s, 1

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
