"""amdgpu plug-in: a VM (and an amdgpu PASID, no mm) per open file; job fences; postclose frees
the PASID only when the VM's fence signals."""

from __future__ import annotations

import pytest

from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.drivers.amdgpu import vm_fence, vm_pasid
from pasidsim.errors import EBADF, EINVAL
from pasidsim.state import IOMMU_PASID_INVALID
from pasidsim.step import Action
from pasidsim.system import System


@pytest.fixture
def gpu():
    cfg = Config.build(iommus=[IommuUnit("dmar0")],
                       devices=[DeviceConfig("gpu0", iommu="dmar0", pasid_bits=16),
                                DeviceConfig("nic0", iommu="dmar0")],
                       drivers=[DriverConfig("amdgpu", kind="amdgpu"), DriverConfig("e1000e")])
    sys = System(cfg)
    sys.device_driver_attach("gpu0", "amdgpu")
    sys.device_driver_attach("nic0", "e1000e")
    return sys


def test_open_gives_a_vm_pasid_without_an_mm(gpu):
    p = gpu.process_create()
    fd = gpu.dev_open(p, "gpu0")
    assert vm_pasid(gpu.state.files[fd].drvdata) == 1
    assert 1 in gpu.state.amdgpu_ida and gpu.state.ida.allocated == 0
    assert gpu.mm(gpu.mm_of(p)).pasid == IOMMU_PASID_INVALID


def test_jobs_share_the_vm_fence_until_it_signals(gpu):
    p = gpu.process_create()
    fd = gpu.dev_open(p, "gpu0")
    f1 = gpu.amdgpu_cs_submit(p, fd)
    assert gpu.amdgpu_cs_submit(p, fd) == f1
    assert vm_fence(gpu.state.files[fd].drvdata) == f1
    gpu.dma_fence_signal(f1)
    f2 = gpu.amdgpu_cs_submit(p, fd)
    assert f2 != f1


def test_postclose_frees_when_the_fence_signals(gpu):
    p = gpu.process_create()
    fd = gpu.dev_open(p, "gpu0")
    f = gpu.amdgpu_cs_submit(p, fd)
    gpu.close(p, fd)
    assert dict(gpu.state.amdgpu_pending) == {1: f} and 1 in gpu.state.amdgpu_ida
    q = gpu.process_create()
    fq = gpu.dev_open(q, "gpu0")
    assert vm_pasid(gpu.state.files[fq].drvdata) == 2
    gpu.dma_fence_signal(f)
    assert 1 not in gpu.state.amdgpu_ida and not gpu.state.amdgpu_pending


def test_idle_vm_is_freed_at_once_and_signalled_fence_does_not_delay(gpu):
    p = gpu.process_create()
    fd = gpu.dev_open(p, "gpu0")
    gpu.close(p, fd)
    assert gpu.state.amdgpu_ida.allocated == 0
    fd = gpu.dev_open(p, "gpu0")
    gpu.dma_fence_signal(gpu.amdgpu_cs_submit(p, fd))
    gpu.task_exit(p)
    assert gpu.state.amdgpu_ida.allocated == 0 and not gpu.state.amdgpu_pending


def test_exhausted_pasids_open_still_succeeds_with_pasid_0(gpu):
    st = gpu.state
    ida = st.amdgpu_ida
    for i in range(1, 1 << 16):
        ida = ida.set(i)
    gpu.state = st._replace(amdgpu_ida=ida)
    p = gpu.process_create()
    fd = gpu.dev_open(p, "gpu0")
    assert vm_pasid(gpu.state.files[fd].drvdata) == 0
    gpu.close(p, fd)  # nothing to free
    assert gpu.state.amdgpu_ida.allocated == (1 << 16) - 1


def test_submit_errors(gpu):
    p = gpu.process_create()
    nic = gpu.dev_open(p, "nic0")
    assert gpu.apply(Action.of("amdgpu_cs_submit", tid=p, fd=nic)) == -EINVAL
    assert gpu.apply(Action.of("amdgpu_cs_submit", tid=p, fd=12345)) == -EBADF


def test_remove_finalises_open_vms(gpu):
    p = gpu.process_create()
    fd = gpu.dev_open(p, "gpu0")
    gpu.amdgpu_cs_submit(p, fd)
    gpu.device_release_driver("gpu0")
    assert len(gpu.state.amdgpu_pending) == 1
    gpu.task_exit(p)
    assert len(gpu.state.amdgpu_pending) == 1 and not gpu.state.warnings
