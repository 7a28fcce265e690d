"""Device drivers as plug-ins, and driver binding through the bus DMA hooks.

A driver plug-in is a :class:`~pasidsim.drivers.base.Driver` subclass registered under its
``kind``; :class:`~pasidsim.config.DriverConfig` names the kind.  The core calls the plug-in at
probe/remove, open/release (``__fput``), mmap and, in the E0 design, mm exit.

Kernel sources modeled: drivers/base/dd.c ``really_probe()`` (``bus->dma_configure`` before
``drv->probe``, ``dma_cleanup`` on failure and on unbind), ``device_driver_attach()``,
``device_release_driver()``; drivers/pci/pci-driver.c ``pci_dma_configure()`` /
``pci_dma_cleanup()``.
"""

from __future__ import annotations

from ..errors import EBUSY, ModelUsageError
from ..group import iommu_device_unuse_default_domain, iommu_device_use_default_domain
from ..state import SystemState
from .base import Driver, DmaApiDriver
from .uacce import UacceDriver

REGISTRY: dict[str, Driver] = {}


def register(driver: Driver) -> Driver:
    """Register a driver plug-in under ``driver.kind`` (later registrations replace)."""
    REGISTRY[driver.kind] = driver
    return driver


register(DmaApiDriver())
register(UacceDriver())
# Further plug-ins register themselves when imported (each module calls ``register``).
from . import amdgpu, idxd, vfio  # noqa: E402,F401


def plugin(s: SystemState, drv: int) -> Driver:
    """The plug-in implementing driver index ``drv``."""
    kind = s.config.drivers[drv].kind
    try:
        return REGISTRY[kind]
    except KeyError:
        raise ModelUsageError(f"driver {s.config.drivers[drv].name!r}: no plug-in for kind {kind!r}") from None


def _set_dev(s: SystemState, dev: int, driver: int) -> SystemState:
    devs = list(s.devs)
    devs[dev] = devs[dev]._replace(driver=driver)
    return s._replace(devs=tuple(devs))


def device_driver_attach(s: SystemState, dev: int, drv: int) -> tuple[SystemState, int]:
    """Bind driver ``drv`` to device ``dev`` (``really_probe``).

    The bus ``dma_configure`` hook counts the driver as a DMA-API user of the group unless it
    sets ``driver_managed_dma``; then the driver's probe runs.
    Returns 0; -EBUSY when a driver is already bound; the error of
    ``iommu_device_use_default_domain`` (-EBUSY: group user-owned or on another domain or
    with PASIDs; -EPROBE_DEFER: group not finalised) or of the driver's probe.  A failed probe
    leaves no trace.
    """
    cfg = s.config
    if not 0 <= dev < len(cfg.devices) or not 0 <= drv < len(cfg.drivers):
        raise ModelUsageError(f"device_driver_attach: unknown device {dev} or driver {drv}")
    if s.devs[dev].driver >= 0:
        return s, -EBUSY
    s0 = s
    if not cfg.drivers[drv].driver_managed_dma:
        s, ret = iommu_device_use_default_domain(s, dev)
        if ret:
            return s0, ret
    s = _set_dev(s, dev, drv)
    s, ret = plugin(s, drv).probe(s, dev)
    if ret:
        return s0, ret
    return s, 0


def device_release_driver(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """Unbind the driver of ``dev``: the driver's remove, then the bus ``dma_cleanup`` hook
    (``iommu_device_unuse_default_domain``, which WARNs and keeps the count when PASIDs are
    still attached).  No driver: no change.  Returns 0."""
    drv = s.devs[dev].driver
    if drv < 0:
        return s, 0
    s = plugin(s, drv).remove(s, dev)
    from ..files import run_task_work
    s = run_task_work(s)
    if not s.config.drivers[drv].driver_managed_dma:
        s, _ = iommu_device_unuse_default_domain(s, dev)
    return _set_dev(s, dev, -1), 0


def driver_open(s: SystemState, file: int, tid: int) -> tuple[SystemState, int]:
    """The bound driver's ``open`` for a new file."""
    dev = s.files[file].dev
    return plugin(s, s.devs[dev].driver).open(s, file, tid)


def driver_release(s: SystemState, file: int) -> SystemState:
    """The driver's ``release`` (from ``__fput``).  A device whose driver was unbound since
    the open gets no callback (its remove already tore the file's state down)."""
    drv = s.devs[s.files[file].dev].driver
    if drv < 0:
        return s
    return plugin(s, drv).release(s, file)


def driver_mmap(s: SystemState, file: int) -> tuple[SystemState, int]:
    """The driver's ``mmap``: returns (state, VM_DONTCOPY as 0/1) or (state, -errno)."""
    drv = s.devs[s.files[file].dev].driver
    if drv < 0:
        from ..errors import ENODEV
        return s, -ENODEV
    return plugin(s, drv).mmap(s, file)


def driver_mm_exit(s: SystemState, dev: int, handle: int) -> tuple[SystemState, int]:
    """E0 only: the driver's ``mm_exit(dev, pasid, drvdata)`` callback; returns its return
    value (0: the device is done with the PASID)."""
    drv = s.devs[dev].driver
    if drv < 0:
        return s, 0
    return plugin(s, drv).mm_exit(s, dev, handle)


__all__ = ["Driver", "register", "device_driver_attach", "device_release_driver",
           "driver_open", "driver_release", "driver_mmap", "driver_mm_exit", "REGISTRY"]
