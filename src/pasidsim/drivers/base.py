"""The driver plug-in interface."""

from __future__ import annotations

from .. import hooks
from ..errors import EBUSY, ENODEV
from ..locking import (WAIT_DRAIN, Call, Do, KFunc, Lock, LockClass, Sleep, Unlock, lock_key)
from ..state import SystemState
from ..sva import iommu_sva_unbind_device


def _prepare(s: SystemState, loc: tuple) -> tuple[SystemState, tuple]:
    """loc ``(ret, file)`` -> ``(ret, file, handle, pasid)`` of the file's bond (0, 0: none)."""
    f = s.files[loc[1]]
    h = f.handles[0] if f.handles else 0
    rec = s.handles.get(h)
    return s, loc + (h, rec.pasid if rec is not None else 0)


def _drain_at(first: bool):
    """The drain, placed before (``first``) or after the unbind: it runs where the policy
    puts it (``Policy.release_unbinds_before_drain``)."""
    def when(s: SystemState, loc: tuple) -> bool:
        return bool(loc[3]) and s.policy.release_unbinds_before_drain != first

    def wait(s: SystemState, loc: tuple) -> int:
        return WAIT_DRAIN if when(s, loc) else 0

    def drain(s: SystemState, loc: tuple) -> tuple[SystemState, tuple]:
        if when(s, loc):
            dev = s.files[loc[1]].dev
            s = hooks.device_stop_pasid(s, dev, loc[3])
            d = s.devs[dev]
            # until the release is done: no new DMA on it (another step sees the mark only at
            # lock granularity: at call granularity the release removes it in the same step)
            if s.static.granularity and loc[3] not in d.stopped:
                s = _set_dev(s, dev, d._replace(stopped=d.stopped + (loc[3],)))
        return s, loc
    drain.__name__ = "drain_pasid"
    return Sleep(wait), Do(drain)


def _unbind_args(s: SystemState, loc: tuple):
    return (loc[2],) if loc[2] else None


def _set_dev(s: SystemState, dev: int, d) -> SystemState:
    return s._replace(devs=s.devs[:dev] + (d,) + s.devs[dev + 1:])


def _forget(s: SystemState, loc: tuple) -> tuple[SystemState, tuple]:
    f = s.files[loc[1]]
    d = s.devs[f.dev]
    if loc[3] in d.stopped:
        s = _set_dev(s, f.dev, d._replace(stopped=tuple(p for p in d.stopped if p != loc[3])))
    return s._replace(files=s.files.set(loc[1], f._replace(handles=()))), loc


def _uacce_mutex(s: SystemState, loc: tuple) -> int:
    return lock_key(LockClass.UACCE_MUTEX, s.files[loc[1]].dev)


def teardown_code(name: str, mutex: bool) -> KFunc:
    """A queue's release as the accelerator drivers write it: stop the device's DMA on the
    file's PASID and wait for it (the drain: a sleeping point), then unbind -- or, under
    ``Policy.release_unbinds_before_drain``, the other way round.  ``mutex``: the whole
    teardown under ``uacce->mutex`` (uacce ``uacce_fops_release``).  Returns the KFunc
    ``name(file)``.
    Models drivers/dma/idxd/cdev.c ``idxd_cdev_release()``, drivers/misc/uacce/uacce.c
    ``uacce_fops_release()`` / ``uacce_put_queue()``."""
    code = (Do(_prepare),) + _drain_at(True) + (
        Call(iommu_sva_unbind_device, _unbind_args),) + _drain_at(False) + (Do(_forget),)
    if mutex:
        code = (Lock(_uacce_mutex),) + code + (Unlock(_uacce_mutex),)
    return KFunc(name, ("file",), code, teardown_code.__doc__ or "")


class Driver:
    """A device driver's callbacks, as the core calls them.  Every hook is pure: it takes the
    state and returns the new one (and a return value where the kernel has one).

    Subclasses set ``kind`` and override what the real driver implements.  The defaults are
    those of a driver with nothing to do (probe succeeds, open succeeds, mmap is refused).
    """

    kind = "base"
    #: the driver binds process address spaces: in the 2018 io_mm RFC's designs its probe
    #: calls ``iommu_sva_device_init`` and its remove ``iommu_sva_device_shutdown``
    binds_sva = False
    #: ``release`` as a :class:`~pasidsim.locking.KFunc` with its preemption points (None: the
    #: plain ``release`` is one atomic section)
    release_code: KFunc | None = None
    #: its device files are VFIO device cdevs (``vfio_device_fops``): iommufd binds only those
    vfio_device = False
    #: the device's mapped portal accepts ENQCMD (a shared work queue's enqueue register);
    #: elsewhere the deferrable write is not accepted (``x86.enqcmd`` returns -EAGAIN)
    enqcmd_portal = False

    def probe(self, s: SystemState, dev: int) -> tuple[SystemState, int]:
        """``drv->probe``: 0 or -errno (the bus undoes the DMA-API count on failure)."""
        return s, 0

    def remove(self, s: SystemState, dev: int) -> SystemState:
        """``drv->remove``: tear down everything the driver set up on ``dev``."""
        return s

    def open(self, s: SystemState, file: int, tid: int) -> tuple[SystemState, int]:
        """``fops->open`` by task ``tid``; 0 or -errno (the file is then discarded)."""
        return s, 0

    def release(self, s: SystemState, file: int) -> SystemState:
        """``fops->release`` (last reference dropped)."""
        return s

    def mmap(self, s: SystemState, file: int, pgoff: int = 0) -> tuple[SystemState, int]:
        """``fops->mmap`` at page offset ``pgoff`` (passed only when non-zero, so a plug-in
        may define ``mmap(s, file)``): returns 1 for a VM_DONTCOPY mapping, 0 for a normal
        one, -errno to refuse."""
        return s, -ENODEV

    def mm_exit(self, s: SystemState, dev: int, handle: int) -> tuple[SystemState, int]:
        """E0 ``mm_exit(dev, pasid, drvdata)`` callback: stop all DMA on the bond's PASID.
        Returns 0 when the device is done with the PASID; non-zero makes the core WARN
        "possible leak of PASID" (and free it anyway)."""
        return s, 0

    @staticmethod
    def queued_ret(s: SystemState, dev: int, handle: int) -> int:
        """-EBUSY when descriptors tagged with the bond's PASID are still queued on ``dev``
        (what an ``mm_exit`` that returns without waiting reports), else 0."""
        h = s.handles.get(handle)
        if h is None:
            return 0
        busy = any(d.dev == dev and d.pasid == h.pasid for d in s.inflight.values())
        return -EBUSY if busy else 0


class DmaApiDriver(Driver):
    """A plain kernel driver that uses the DMA API (NIC, NVMe, HDA): counted in the group's
    ``owner_cnt`` by the bus at probe; its device node (if any) can be opened but not mapped."""

    kind = "dma-api"
