"""VFIO: the vfio-pci plug-in (device cdev bound to iommufd, released on close) and the legacy
group/container ops (kernel-spec §4.6, O-02, O-03, O-04)."""

from __future__ import annotations

import pytest

from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.errors import EBADF, EBUSY, EINVAL, EPERM
from pasidsim.invariants import check_state
from pasidsim.state import DomainType
from pasidsim.step import Action
from pasidsim.system import System


@pytest.fixture
def box():
    cfg = Config.build(
        iommus=[IommuUnit("i0")],
        devices=[DeviceConfig("a", iommu="i0", group="G", pasid_bits=20, driver="snd"),
                 DeviceConfig("b", iommu="i0", group="G"),
                 DeviceConfig("acc", iommu="i0", pasid_bits=20)],
        drivers=[DriverConfig("snd"), DriverConfig("vfio-pci", True, "vfio-pci")])
    sys = System(cfg)
    sys.device_driver_attach("a", "snd")
    return sys


def call(sys, name, **kw):
    for k in ("dev", "drv", "group"):
        if isinstance(kw.get(k), str):
            kw[k] = getattr(sys.config, {"dev": "device_index", "drv": "driver_index",
                                         "group": "group_index"}[k])(kw[k])
    return sys.apply(Action.of(name, **kw))


def test_legacy_container_on_a_mixed_group(box):
    box.device_driver_attach("b", "vfio-pci")
    assert call(box, "vfio_group_get_status", group="G", container=0) == 0
    assert call(box, "vfio_group_set_container", group="G", container=5) == -EPERM
    box.device_release_driver("a")
    assert call(box, "vfio_group_get_status", group="G", container=0) == 1
    assert call(box, "vfio_group_set_container", group="G", container=5) == 0
    g = box.group("G")
    assert g.owner == 5 and box.state.domains[g.domain].type == DomainType.BLOCKED
    assert call(box, "vfio_group_get_status", group="G", container=5) == 1
    assert call(box, "vfio_group_get_status", group="G", container=0) == 0
    assert call(box, "vfio_group_set_container", group="G", container=5) == -EINVAL
    assert call(box, "vfio_group_set_container", group="G", container=6) == -EPERM
    assert call(box, "device_driver_attach", dev="a", drv="snd") == -EBUSY  # O-04 / H10
    assert call(box, "vfio_group_unset_container", group="G", container=6) == -EINVAL
    assert call(box, "vfio_group_unset_container", group="G", container=5) == 0
    g = box.group("G")
    assert (g.owner, g.owner_cnt, g.domain) == (0, 0, g.default_domain)
    assert call(box, "vfio_group_set_container", group="G", container=0) == -EBADF
    assert not check_state(box.state)


def test_unset_detaches_a_container_domain(box):
    box.device_release_driver("a")
    call(box, "vfio_group_set_container", group="G", container=5)
    dom = call(box, "iommu_domain_alloc_paging", dev="a")
    assert call(box, "iommu_attach_group", domain=dom, group="G") == 0
    assert call(box, "vfio_group_unset_container", group="G", container=5) == 0
    assert box.group("G").domain == box.group("G").default_domain


def test_device_cdev_bind_and_release(box):
    box.device_driver_attach("acc", "vfio-pci")
    p = box.process_create()
    fd = box.dev_open(p, "acc")
    ictx = box.iommufd_ctx_create()
    assert call(box, "vfio_device_bind_iommufd", tid=p, fd=fd, ictx=ictx) == fd
    assert call(box, "vfio_device_bind_iommufd", tid=p, fd=fd, ictx=ictx) == -EINVAL
    g = box.group("acc")
    assert (g.owner, g.owner_cnt) == (ictx, 1)
    ioas = box.iommufd_ioas_alloc(ictx)
    hwpt = box.iommufd_hwpt_alloc(ioas, "acc")
    box.iommufd_device_attach(fd, 0, hwpt)
    box.iommufd_device_attach(fd, 3, hwpt)
    box.close(p, fd)  # release: detach PASID 3 and the RID, unbind, ownership released
    g = box.group("acc")
    assert (g.owner, g.owner_cnt, g.pasid_array, g.domain) == (0, 0, (), g.default_domain)
    assert not box.state.handles and not box.state.pasid_table and fd not in box.state.files
    assert box.iommufd_hwpt_destroy(hwpt) == 0


def test_cdev_bind_refused_for_other_files(box):
    p = box.process_create()
    fd = box.dev_open(p, "a")  # bound to a DMA-API driver, not vfio-pci
    ictx = box.iommufd_ctx_create()
    assert call(box, "vfio_device_bind_iommufd", tid=p, fd=fd, ictx=ictx) == -EINVAL
    assert call(box, "vfio_device_bind_iommufd", tid=p, fd=999, ictx=ictx) == -EBADF


def test_cdev_bind_on_a_group_with_a_kernel_driver(box):
    box.device_driver_attach("b", "vfio-pci")
    p = box.process_create()
    fd = box.dev_open(p, "b")
    ictx = box.iommufd_ctx_create()
    assert call(box, "vfio_device_bind_iommufd", tid=p, fd=fd, ictx=ictx) == -EPERM


def test_driver_unbind_releases_bound_files(box):
    box.device_driver_attach("acc", "vfio-pci")
    p = box.process_create()
    fd = box.dev_open(p, "acc")
    ictx = box.iommufd_ctx_create()
    call(box, "vfio_device_bind_iommufd", tid=p, fd=fd, ictx=ictx)
    box.device_release_driver("acc")
    assert box.group("acc").owner == 0 and box.state.files[fd].drvdata == 0
    box.task_exit(p)
    assert not box.state.files and not box.state.warnings
