"""The driver plug-in interface."""

from __future__ import annotations

from ..errors import EBUSY, ENODEV
from ..state import SystemState


class Driver:
    """A device driver's callbacks, as the core calls them.  Every hook is pure: it takes the
    state and returns the new one (and a return value where the kernel has one).

    Subclasses set ``kind`` and override what the real driver implements.  The defaults are
    those of a driver with nothing to do (probe succeeds, open succeeds, mmap is refused).
    """

    kind = "base"
    #: its device files are VFIO device cdevs (``vfio_device_fops``): iommufd binds only those
    vfio_device = False

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

    def mmap(self, s: SystemState, file: int) -> tuple[SystemState, int]:
        """``fops->mmap``: returns 1 for a VM_DONTCOPY mapping, 0 for a normal one, -errno
        to refuse."""
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
