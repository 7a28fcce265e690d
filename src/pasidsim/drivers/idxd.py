"""idxd: Intel Data Streaming Accelerator (DSA) and In-Memory Analytics Accelerator (IAA).

A device here is one user work queue (``/dev/dsa/wqX.Y``).  Two plug-in kinds:

- ``idxd`` — a *shared* work queue (the usual user configuration): any number of opens; every
  open binds the opener's mm (``iommu_sva_bind_device``), so the mm gets its PASID; threads
  submit with ENQCMD, which takes the PASID from their IA32_PASID MSR (#GP fixup on first
  use, :mod:`pasidsim.x86`).
- ``idxd-dwq`` — a *dedicated* work queue: one client at a time (a second open is ``-EBUSY``);
  the driver programs the bound PASID into the queue's configuration and the client submits
  with MOVDIR64B through the portal.

Order of operations (drivers/dma/idxd/cdev.c):

- ``idxd_cdev_open``: dedicated queue already in use → ``-EBUSY``; ``iommu_sva_bind_device(dev,
  current->mm)`` (an error fails the open); dedicated: ``idxd_wq_set_pasid``.
- ``idxd_cdev_mmap``: the portal is mapped ``VM_DONTCOPY`` (a forked child has no portal).
- ``idxd_cdev_release``: wait for in-flight work first — shared queue ``idxd_device_drain_pasid``,
  dedicated ``idxd_wq_disable_pasid`` (which drains) — *then* ``iommu_sva_unbind_device``.
  The drain is :func:`pasidsim.hooks.device_stop_pasid`, called while the PASID is still bound.
- ``remove`` (``idxd_user_drv_remove``): the queue is drained and disabled, but open files
  keep their bonds until their own release, which still runs with idxd's ``file_operations``
  after the driver is gone.  Unbinding the PCI driver this way leaves their PASIDs attached
  when the bus's ``dma_cleanup`` runs ``iommu_device_unuse_default_domain``: it WARNs and
  keeps ``owner_cnt`` ([I]: read in cdev.c/init.c v6.6 to v7.0-rc and iommu.c; not run on
  hardware).
- E0 only (2018 io_mm RFC: the ``mm_exit`` callback a driver passed to
  ``iommu_sva_device_init``, called from the io_mm's mmu-notifier ``release``; idxd came later
  and never had one, the model's callback does what its release does): drain the bond's PASID
  before returning, as the RFC's contract asked ("when the device driver returns from
  mm_exit(), it effectively tells the core that it has finished using the PASID", seed 002).
  With ``DriverConfig.mm_exit_drains`` false the callback only stops new submissions and
  returns without waiting (the mm release path must not block, seed 002), -EBUSY when
  descriptors are still queued (the core then WARNs "possible leak of PASID" and frees it
  anyway); the queued descriptors complete later.

The kernel-owned PASID (``DriverConfig.system_pasid``): ``idxd_enable_system_pasid`` at probe
takes a global PASID and attaches the device's current domain (the DMA API's) at it; failures
only print "No in-kernel DMA with PASID" and the probe goes on; ``idxd_disable_system_pasid``
at remove, after the queues are drained, detaches and frees it.
"""

from __future__ import annotations

from .. import hooks
from ..domain import iommu_attach_device_pasid, iommu_detach_device_pasid
from ..errors import EBUSY, ENOSPC, EPERM
from ..pasid import iommu_alloc_global_pasid, iommu_free_global_pasid
from ..state import IOMMU_PASID_INVALID, SystemState
from ..sva import iommu_sva_bind_device
from .base import Driver, teardown_code

_RELEASE = teardown_code("idxd_cdev_release", mutex=False)


class IdxdDriver(Driver):
    """A DSA/IAA *shared* work queue per device (``kind: idxd``)."""

    kind = "idxd"
    binds_sva = True
    dedicated = False
    enqcmd_portal = True  # a shared WQ's portal (ENQCMD)

    def open(self, s: SystemState, file: int, tid: int) -> tuple[SystemState, int]:
        """``idxd_cdev_open``: bind ``current->mm``; the file keeps the bond.
        Returns 0, -EBUSY (dedicated queue in use) or the bind error."""
        f = s.files[file]
        if self.dedicated and any(o.dev == f.dev and o.handles for fid, o in s.files.items()
                                  if fid != file):
            return s, -EBUSY
        s, h = iommu_sva_bind_device(s, f.dev, f.mm, drvdata=file)
        if h < 0:
            return s, h
        return s._replace(files=s.files.set(file, f._replace(handles=(h,)))), 0

    def mmap(self, s: SystemState, file: int, pgoff: int = 0) -> tuple[SystemState, int]:
        """``idxd_cdev_mmap``: the work-queue portal, ``VM_DONTCOPY``."""
        return s, 1

    def drain(self, s: SystemState, file: int) -> SystemState:
        """Wait for the queue's in-flight descriptors of the file's PASID
        (``idxd_device_drain_pasid`` / ``idxd_wq_disable_pasid``)."""
        f = s.files[file]
        for h in f.handles:
            rec = s.handles.get(h)
            if rec is not None:
                s = hooks.device_stop_pasid(s, f.dev, rec.pasid)
        return s

    release_code = _RELEASE

    def _teardown(self, s: SystemState, file: int) -> SystemState:
        """Drain, then unbind (:func:`~pasidsim.drivers.base.teardown_code`)."""
        s, _ = _RELEASE(s, file)
        return s

    def release(self, s: SystemState, file: int) -> SystemState:
        """``idxd_cdev_release``: drain, then unbind."""
        if not s.files[file].handles:
            return s
        return self._teardown(s, file)

    def probe(self, s: SystemState, dev: int) -> tuple[SystemState, int]:
        """``idxd_probe``: with ``DriverConfig.system_pasid``, :func:`idxd_enable_system_pasid`
        (its failure is only a warning).  Returns 0."""
        if s.config.drivers[s.devs[dev].driver].system_pasid:
            s2, pasid = idxd_enable_system_pasid(s, dev)
            if pasid > 0:
                s = s2
        return s, 0

    def remove(self, s: SystemState, dev: int) -> SystemState:
        """Driver unbind (``idxd_remove`` → ``idxd_user_drv_remove`` → ``idxd_drv_disable_wq``):
        the queue is drained and disabled ("Clients has claim on wq" when files are open), but
        the open files keep their SVA bonds: idxd never revokes them, and each is unbound by
        its file's own release (``idxd_cdev_release`` → ``idxd_file_dev_release``), which
        still runs after the driver is gone (the file keeps idxd's ``file_operations``).  The
        bus's ``dma_cleanup`` then finds their PASIDs still attached
        (:func:`~pasidsim.drivers.device_release_driver`).
        Models drivers/dma/idxd/cdev.c ``idxd_user_drv_remove()``, device.c
        ``idxd_drv_disable_wq()`` (v6.6 to v7.0-rc)."""
        for fid, f in sorted(s.files.items()):
            if f.dev == dev and f.handles:
                s = self.drain(s, fid)
        if s.devs[dev].kernel_pasid:
            s = idxd_disable_system_pasid(s, dev)
        return s

    def mm_exit(self, s: SystemState, dev: int, handle: int) -> tuple[SystemState, int]:
        """E0 ``mm_exit(dev, pasid, drvdata)``: stop the queue's work for the bond's PASID.

        With the driver's ``mm_exit_drains`` (the RFC's contract) the callback drains the
        PASID (``idxd_device_drain_pasid``) before returning.  Without it, new submissions are
        refused -- there are none to model: the exiting mm's portal is ``VM_DONTCOPY`` and was
        just unmapped by ``exit_mmap`` -- and the callback returns without waiting: the
        descriptors already queued complete later as ``dma_complete`` hardware events.
        Returns 0, or -EBUSY when it returns with descriptors of the PASID still queued."""
        if not s.config.drivers[s.devs[dev].driver].mm_exit_drains:
            return s, self.queued_ret(s, dev, handle)
        for fid, f in sorted(s.files.items()):
            if handle in f.handles:
                s = self.drain(s, fid)
        return s, 0


def _set_kernel_pasid(s: SystemState, dev: int, pasid: int) -> SystemState:
    d = s.devs[dev]
    return s._replace(devs=s.devs[:dev] + (d._replace(kernel_pasid=pasid),) + s.devs[dev + 1:])


def idxd_enable_system_pasid(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """The PASID of idxd's kernel work queues: ``iommu_get_domain_for_dev`` (none: -EPERM),
    ``iommu_alloc_global_pasid`` (none: -ENOSPC), ``iommu_attach_device_pasid(domain, dev,
    pasid, NULL)`` (its error; the PASID is freed again).  Returns the PASID or -errno; on
    failure the state is unchanged.
    Models drivers/dma/idxd/init.c ``idxd_enable_system_pasid()``."""
    g = s.config.device_group[dev]
    domain = s.groups[g].domain if g >= 0 else 0
    if not domain:
        return s, -EPERM
    s0 = s
    s, pasid = iommu_alloc_global_pasid(s, dev)
    if pasid == IOMMU_PASID_INVALID:
        return s0, -ENOSPC
    s, ret = iommu_attach_device_pasid(s, domain, dev, pasid)
    if ret:
        return s0, ret
    return _set_kernel_pasid(s, dev, pasid), pasid


def idxd_disable_system_pasid(s: SystemState, dev: int) -> SystemState:
    """``iommu_detach_device_pasid`` of the device's current domain at the system PASID, then
    ``iommu_free_global_pasid``.  Models drivers/dma/idxd/init.c
    ``idxd_disable_system_pasid()``."""
    pasid = s.devs[dev].kernel_pasid
    g = s.config.device_group[dev]
    s, _ = iommu_detach_device_pasid(s, s.groups[g].domain, dev, pasid)
    s, _ = iommu_free_global_pasid(s, pasid)
    return _set_kernel_pasid(s, dev, 0)


class IdxdDedicatedDriver(IdxdDriver):
    """A DSA/IAA *dedicated* work queue (``kind: idxd-dwq``): one client at a time."""

    kind = "idxd-dwq"
    dedicated = True
    enqcmd_portal = False  # a dedicated WQ takes MOVDIR64B (``wq_submit``), not ENQCMD


__all__ = ["IdxdDriver", "IdxdDedicatedDriver", "idxd_enable_system_pasid",
           "idxd_disable_system_pasid"]
