"""Shared builders for tests."""

from __future__ import annotations

import pytest

from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.drivers import Driver, register
from pasidsim.invariants import check_state
from pasidsim.policy import CURRENT
from pasidsim.system import System

class PortalDriver(Driver):
    """Test driver: a device node whose mmap gives a shared-work-queue portal (no bind)."""

    kind = "test-portal"
    enqcmd_portal = True

    def mmap(self, s, file):
        return s, 0


register(PortalDriver())

DRIVERS = [
    DriverConfig("e1000e"),  # plain DMA-API driver
    DriverConfig("vfio-pci", driver_managed_dma=True, kind="dma-api"),
    DriverConfig("uacce", kind="uacce"),
    DriverConfig("pci-stub", driver_managed_dma=True),
    DriverConfig("portal", kind="test-portal"),
]


def portal(sys, tid, dev):
    """Bind the portal driver if needed, open the device and map its portal."""
    d = sys.config.device_index(dev)
    if sys.state.devs[d].driver < 0:
        sys.device_driver_attach(dev, "portal")
    fd = sys.dev_open(tid, dev)
    sys.mmap(tid, fd)
    return fd


def machine(*devices, iommus=None, policy=CURRENT, deferred=()):
    """A System with the given devices (DeviceConfig or (name, pasid_bits) tuples)."""
    devs = []
    for d in devices:
        if isinstance(d, tuple):
            d = DeviceConfig(d[0], iommu="iommu0", pasid_bits=d[1])
        devs.append(d)
    iommus = iommus or [IommuUnit("iommu0")]
    cfg = Config.build(iommus=iommus, devices=devs, drivers=DRIVERS, deferred_groups=deferred)
    return System(cfg, policy)


def assert_invariants(sys: System, scope="kernel"):
    """Direct kernel calls skip the caller-contract invariants unless scope=None."""
    bad = check_state(sys.state, scope)
    assert not bad, bad


@pytest.fixture
def dsa():
    """One 20-bit PASID device behind one IOMMU, uacce driver bound, one process."""
    sys = machine(("dsa0", 20))
    sys.device_driver_attach("dsa0", "uacce")
    return sys
