"""Conformance scenarios O-01..O-13, O-16 (kernel-spec §8, DMA ownership)."""

import errno

import pytest

from pasidsim.config import DeviceConfig, IommuUnit
from pasidsim.errors import KernelError, Warn
from pasidsim.policy import CURRENT, OwnerModel
from pasidsim.state import DomainType

from ..conftest import assert_invariants, machine

ICTX, ICTX2, VFIO_GROUP = 0xC0FFEE, 0xBEEF, 0xF00D


def grouped(*names, pasid_bits=0, extra=()):
    devs = [DeviceConfig(n, iommu="iommu0", group="G", pasid_bits=pasid_bits) for n in names]
    return machine(*devs, *extra)


def test_O_01_dma_api_bind_counts():
    sys = grouped("a", "b")
    sys.device_driver_attach("a", "e1000e")
    sys.device_driver_attach("b", "e1000e")
    assert sys.group("G").owner_cnt == 2
    sys.device_release_driver("a")
    assert sys.group("G").owner_cnt == 1 and sys.group("G").owner == 0
    assert_invariants(sys, scope=None)


def test_O_02_vfio_on_mixed_group():
    sys = grouped("a", "b")
    sys.device_driver_attach("a", "e1000e")
    sys.device_driver_attach("b", "vfio-pci")
    assert sys.iommu_group_dma_owner_claimed("G") == 1  # not viable
    with pytest.raises(KernelError) as e:
        sys.iommu_group_claim_dma_owner("G", VFIO_GROUP)
    assert e.value.errno == errno.EPERM
    assert sys.group("G").owner == 0 and sys.group("G").owner_cnt == 1


def test_O_03_vfio_happy_path():
    sys = grouped("a", "b")
    sys.device_driver_attach("a", "vfio-pci")
    sys.device_driver_attach("b", "vfio-pci")
    g = sys.group("G")
    assert g.owner_cnt == 0 and sys.iommu_group_dma_owner_claimed("G") == 0
    default = g.default_domain
    sys.iommu_group_claim_dma_owner("G", VFIO_GROUP)
    g = sys.group("G")
    assert g.owner == VFIO_GROUP and g.owner_cnt == 1
    assert sys.state.domains[g.domain].type == DomainType.BLOCKED
    dom = sys.iommu_domain_alloc_paging("a")
    sys.iommu_attach_group(dom, "G")
    assert sys.group("G").domain == dom
    sys.iommu_detach_group(dom, "G")
    assert sys.group("G").domain == g.blocking_domain
    sys.iommu_group_release_dma_owner("G")
    g = sys.group("G")
    assert g.owner == 0 and g.owner_cnt == 0 and g.domain == default
    assert_invariants(sys, scope=None)


def test_O_04_kernel_driver_into_user_owned_group():
    sys = grouped("a", "b", "c")
    sys.device_driver_attach("a", "vfio-pci")
    sys.iommu_group_claim_dma_owner("G", VFIO_GROUP)
    before = sys.state
    with pytest.raises(KernelError) as e:
        sys.device_driver_attach("c", "e1000e")
    assert e.value.errno == errno.EBUSY and sys.state == before
    assert sys.device_driver_attach("c", "pci-stub") == 0  # driver_managed_dma binds
    assert_invariants(sys, scope=None)


def test_O_04_pre_E8_bug_on():
    sys = machine(DeviceConfig("a", iommu="iommu0", group="G"),
                  DeviceConfig("b", iommu="iommu0", group="G"),
                  policy=CURRENT.but(name="pre-E8", owner_model=OwnerModel.PRE_E8_BUG_ON))
    sys.device_driver_attach("a", "vfio-pci")
    sys.iommu_group_claim_dma_owner("G", VFIO_GROUP)
    sys.device_driver_attach("b", "e1000e")
    assert sys.state.warnings[-1][0] == Warn.BUG_ON


def test_O_05_iommufd_shared_owner():
    sys = grouped("a", "b", "c")
    sys.iommu_device_claim_dma_owner("a", ICTX)
    sys.iommu_device_claim_dma_owner("b", ICTX)
    assert sys.group("G").owner_cnt == 2
    with pytest.raises(KernelError) as e:
        sys.iommu_device_claim_dma_owner("c", ICTX2)
    assert e.value.errno == errno.EPERM
    sys.iommu_device_release_dma_owner("b")
    assert sys.group("G").owner_cnt == 1 and sys.group("G").owner == ICTX
    sys.iommu_device_release_dma_owner("a")
    g = sys.group("G")
    assert g.owner_cnt == 0 and g.owner == 0 and g.domain == g.default_domain


def test_O_06_claim_while_private_domain():
    sys = machine(DeviceConfig("a", iommu="iommu0"))
    sys.device_driver_attach("a", "e1000e")
    dom = sys.iommu_domain_alloc_paging("a")
    sys.iommu_attach_device(dom, "a")
    with pytest.raises(KernelError) as e:
        sys.iommu_group_claim_dma_owner("a", VFIO_GROUP)
    assert e.value.errno == errno.EPERM
    sys.device_release_driver("a")  # owner_cnt 0, but the private domain is still attached
    with pytest.raises(KernelError) as e:
        sys.iommu_group_claim_dma_owner("a", VFIO_GROUP)
    assert e.value.errno == errno.EBUSY


def test_O_07_attach_device_multi_device_group():
    sys = grouped("a", "b")
    dom = sys.iommu_domain_alloc_paging("a")
    with pytest.raises(KernelError) as e:
        sys.iommu_attach_device(dom, "a")
    assert e.value.errno == errno.EINVAL


def test_O_08_attach_busy():
    sys = grouped("a", "b")
    sys.iommu_group_claim_dma_owner("G", VFIO_GROUP)
    d1 = sys.iommu_domain_alloc_paging("a")
    d2 = sys.iommu_domain_alloc_paging("a")
    sys.iommu_attach_group(d1, "G")
    with pytest.raises(KernelError) as e:
        sys.iommu_attach_group(d2, "G")
    assert e.value.errno == errno.EBUSY
    sys.iommu_detach_group(d1, "G")
    assert sys.iommu_attach_group(d2, "G") == 0 and sys.group("G").domain == d2


def test_O_09_incompatible_domain():
    iommus = [IommuUnit("X", ops="intel-iommu"), IommuUnit("Y", ops="amd-iommu")]
    sys = machine(DeviceConfig("a", iommu="X"), DeviceConfig("b", iommu="Y"), iommus=iommus)
    sys.iommu_group_claim_dma_owner("a", VFIO_GROUP)
    foreign = sys.iommu_domain_alloc_paging("b")
    with pytest.raises(KernelError) as e:
        sys.iommu_attach_group(foreign, "a")
    assert e.value.errno == errno.EINVAL
    own = sys.iommu_domain_alloc_paging("a")
    assert sys.iommu_attach_group(own, "a") == 0  # soft failure: another domain succeeds


def test_O_10_pasid_blocks_ownership_change():
    sys = grouped("a", "b", pasid_bits=20)
    sys.device_driver_attach("a", "e1000e")
    mm = sys.mm_of(sys.process_create())
    sys.iommu_sva_bind_device("a", mm)
    with pytest.raises(KernelError) as e:
        sys.device_driver_attach("b", "e1000e")
    assert e.value.errno == errno.EBUSY
    sys.device_release_driver("a")
    assert sys.state.warnings[-1][0] == Warn.UNUSE_DEFAULT_DOMAIN
    assert sys.group("G").owner_cnt == 1
    with pytest.raises(KernelError) as e:
        sys.iommu_group_claim_dma_owner("G", VFIO_GROUP)
    assert e.value.errno == errno.EPERM


def test_O_11_release_with_pasid_attached():
    sys = machine(DeviceConfig("a", iommu="iommu0", pasid_bits=20))
    sys.iommu_device_claim_dma_owner("a", ICTX)
    dom = sys.iommu_domain_alloc_paging("a")
    sys.iommu_attach_device_pasid(dom, "a", 5)
    sys.iommu_device_release_dma_owner("a")
    assert sys.state.warnings[-1][0] == Warn.RELEASE_DMA_OWNER
    assert sys.group("a").owner == ICTX and sys.group("a").owner_cnt == 1
    sys.iommu_detach_device_pasid(dom, "a", 5)
    sys.iommu_device_release_dma_owner("a")
    g = sys.group("a")
    assert g.owner == 0 and g.owner_cnt == 0 and g.domain == g.default_domain


def test_O_12_eprobe_defer():
    sys = machine(DeviceConfig("a", iommu="iommu0"), deferred=("a",))
    with pytest.raises(KernelError) as e:
        sys.device_driver_attach("a", "e1000e")
    assert e.value.errno == 517  # EPROBE_DEFER
    assert sys.state.devs[0].driver == -1
    sys.iommu_group_finalize("a")
    assert sys.device_driver_attach("a", "e1000e") == 0 and sys.group("a").owner_cnt == 1


def test_O_13_require_direct():
    sys = machine(DeviceConfig("gfx", iommu="iommu0", require_direct=True))
    before = sys.state
    with pytest.raises(KernelError) as e:
        sys.iommu_group_claim_dma_owner("gfx", VFIO_GROUP)
    assert e.value.errno == errno.EINVAL and sys.state == before


def test_O_16_missing_owner_cookie():
    sys = machine(DeviceConfig("a", iommu="iommu0"), DeviceConfig("n", iommu=None))
    with pytest.raises(KernelError) as e:
        sys.iommu_group_claim_dma_owner("a", 0)
    assert e.value.errno == errno.EINVAL
    assert sys.state.warnings[-1][0] == Warn.CLAIM_NULL_OWNER
    with pytest.raises(KernelError) as e:
        sys.iommu_device_claim_dma_owner("n", ICTX)
    assert e.value.errno == errno.ENODEV
