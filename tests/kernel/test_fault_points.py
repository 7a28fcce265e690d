"""Failure injection at the kernel level: each fault point of a call fails with its kernel
errno and the call's unwind gives back exactly the state it was given (the calls here are
atomic in the kernel: ``__iommu_set_group_pasid`` puts the devices already set back on the
blocked domain, a failed claim leaves the group as it was)."""

from __future__ import annotations

import errno

import pytest

from pasidsim import fault
from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.fault import FaultPoint
from pasidsim.step import Action, step
from pasidsim.system import System


def _two_device_group() -> System:
    cfg = Config.build(iommus=[IommuUnit("u")],
                       devices=[DeviceConfig("a", iommu="u", pasid_bits=20, group="g"),
                                DeviceConfig("b", iommu="u", pasid_bits=20, group="g")],
                       drivers=[DriverConfig("d", kind="dma-api")])
    sys = System(cfg)
    sys.device_driver_attach("a", "d")
    sys.device_driver_attach("b", "d")
    return sys


def test_attach_device_pasid_fails_at_each_point_and_unwinds_every_device():
    sys = _two_device_group()
    dom = sys.iommu_domain_alloc_paging("a")
    s0 = sys.state
    act = Action.of("iommu_attach_device_pasid", domain=dom, dev=0, pasid=5, handle=0)
    s_ok, ret = step(s0, act)
    assert ret == 0 and fault.trail() == (FaultPoint.PASID_ARRAY_INSERT,
                                          FaultPoint.SET_DEV_PASID, FaultPoint.SET_DEV_PASID)
    assert {(0, 5), (1, 5)} <= set(s_ok.pasid_table.keys())
    for k in (1, 2, 3):  # the slot, device a's set_dev_pasid, device b's (a is unwound)
        s1, ret = step(s0, act._replace(fail=k))
        assert ret == -errno.ENOMEM
        assert s1 == s0, f"fail point {k}: the unwind left a trace"


def test_claim_dma_owner_without_a_blocking_domain_fails_enomem_and_changes_nothing():
    sys = _two_device_group()
    sys.device_release_driver("a")
    sys.device_release_driver("b")
    s0 = sys.state
    act = Action.of("iommu_group_claim_dma_owner", group=0, owner=7)
    s1, ret = step(s0, act._replace(fail=1))
    assert ret == -errno.ENOMEM and s1 == s0
    s2, ret = step(s0, act)
    assert ret == 0 and s2.groups[0].owner == 7 and s2.groups[0].blocking_domain


@pytest.mark.parametrize("k, point", [(1, FaultPoint.IOMMU_MM_ALLOC), (2, FaultPoint.IDA_ALLOC)])
def test_bind_of_a_fresh_mm_failing_before_the_pasid_exists_changes_nothing(k, point):
    """Before the PASID is allocated nothing is kept: -ENOMEM (iommu_mm kzalloc) or -ENOSPC
    (ida_alloc_range) and the state as it was; after it, today's bind keeps the PASID."""
    sys = _two_device_group()
    mm = sys.mm_of(sys.process_create())
    s0 = sys.state
    act = Action.of("iommu_sva_bind_device", dev=0, mm=mm)
    s1, ret = step(s0, act._replace(fail=k))
    assert fault.trail()[k - 1] == point
    assert ret == -fault.ERRNO[point] and s1 == s0
    s2, ret = step(s0, act._replace(fail=3))  # HANDLE_ALLOC: the mm keeps its PASID
    assert ret == -errno.ENOMEM and s2.mms[mm].pasid == 1 and 1 in s2.ida
