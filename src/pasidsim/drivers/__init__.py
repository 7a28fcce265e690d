"""Device drivers as plug-ins, and driver binding through the bus DMA hooks.

A driver plug-in is a :class:`~pasidsim.drivers.base.Driver` subclass; its instance is the
driver's ops table (probe/remove, the ``file_operations`` open/release/mmap, the E0 ``mm_exit``
op), entered under its ``kind`` in :data:`pasidsim.ops_tables.DRIVER_OPS`, which is the only way
the kernel core reaches a driver.  :data:`BUILTIN` lists the reference drivers; they are
entered by :func:`pasidsim.ops.build`, and a user's plug-in by :func:`register`.
:class:`~pasidsim.config.DriverConfig` names the kind.

Kernel sources modeled: drivers/base/dd.c ``really_probe()`` (``bus->dma_configure`` before
``drv->probe``, ``dma_cleanup`` on failure and on unbind), ``device_driver_attach()``,
``device_release_driver()``; drivers/pci/pci-driver.c ``pci_dma_configure()`` /
``pci_dma_cleanup()``.
"""

from __future__ import annotations

from ..errors import EBUSY
from ..group import iommu_device_unuse_default_domain, iommu_device_use_default_domain
from ..ops_tables import DRIVER_OPS, driver_ops
from ..state import SystemState
from ..sva import IOMMU_SVA_FEAT_IOPF, iommu_sva_device_init, iommu_sva_device_shutdown
from ..work import run_work
from .amdgpu import AmdgpuDriver
from .base import DmaApiDriver, Driver
from .idxd import IdxdDedicatedDriver, IdxdDriver
from .uacce import UacceDriver
from .vfio import VfioPciDriver

#: The reference drivers, in registration order.
BUILTIN: tuple[Driver, ...] = (DmaApiDriver(), UacceDriver(), AmdgpuDriver(), IdxdDriver(),
                               IdxdDedicatedDriver(), VfioPciDriver())

#: kind -> driver: the same table the kernel dispatches through (``ops_tables.DRIVER_OPS``).
REGISTRY = DRIVER_OPS


def register(driver: Driver) -> Driver:
    """Register a driver plug-in under ``driver.kind`` (a later registration replaces an
    earlier one of the same kind).  Returns ``driver``."""
    DRIVER_OPS[driver.kind] = driver
    return driver


def plugin(s: SystemState, drv: int) -> Driver:
    """The plug-in implementing driver index ``drv``; ModelUsageError when none is registered
    for its kind."""
    return driver_ops(s, drv)


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
    if s.policy.mm_exit_callback and _rfc_sva(s, dev, drv):
        # the RFC's SVA drivers declare the device at probe; a device the IOMMU cannot serve
        # stays without SVA (its binds fail -EINVAL), the probe itself succeeds [I]
        feats = IOMMU_SVA_FEAT_IOPF if cfg.devices[dev].pri else 0
        s2, ret = iommu_sva_device_init(s, dev, feats, 0)
        if ret == 0:
            s = s2
    return s, 0


def _rfc_sva(s: SystemState, dev: int, drv: int) -> bool:
    p = plugin(s, drv)
    return p.binds_sva and (p.kind != "uacce" or s.config.drivers[drv].uacce_sva)


def device_release_driver(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """Unbind the driver of ``dev``: the driver's remove (the ``__fput`` of files it let go
    of runs before the driver is gone), then the bus ``dma_cleanup`` hook
    (``iommu_device_unuse_default_domain``, which WARNs and keeps the count when PASIDs are
    still attached).  No driver: no change.  Returns 0."""
    drv = s.devs[dev].driver
    if drv < 0:
        return s, 0
    s = plugin(s, drv).remove(s, dev)
    s = run_work(s)
    if s.devs[dev].sva_param:
        s, _ = iommu_sva_device_shutdown(s, dev)
    if not s.config.drivers[drv].driver_managed_dma:
        s, _ = iommu_device_unuse_default_domain(s, dev)
    return _set_dev(s, dev, -1), 0


__all__ = ["Driver", "BUILTIN", "register", "plugin", "device_driver_attach",
           "device_release_driver", "REGISTRY"]
