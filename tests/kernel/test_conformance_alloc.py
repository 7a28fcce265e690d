"""Conformance scenarios A-01..A-12 (kernel-spec §8, allocation)."""

import errno

import pytest

from pasidsim.errors import KernelError, Warn
from pasidsim.ioasid import IOASID_SET_TYPE_MM, IOASID_SET_TYPE_NULL
from pasidsim.policy import CURRENT, Allocator
from pasidsim.state import INVALID_IOASID, IOMMU_PASID_INVALID, IoasidState

from ..conftest import machine


def test_A_01_first_lowest():
    sys = machine(("d", 20))
    assert [sys.iommu_alloc_global_pasid("d") for _ in range(3)] == [1, 2, 3]
    sys.iommu_free_global_pasid(2)
    assert sys.iommu_alloc_global_pasid("d") == 2  # immediate reuse
    assert sorted(sys.state.ida.ids()) == [1, 2, 3]


def test_A_02_no_pasid_device():
    sys = machine(("d", 0))
    assert sys.iommu_alloc_global_pasid("d") == IOMMU_PASID_INVALID
    t = sys.process_create()
    with pytest.raises(KernelError) as e:
        sys.iommu_sva_bind_device("d", sys.mm_of(t))
    assert e.value.errno == errno.ENOSPC and e.value.function == "iommu_sva_bind_device"
    assert sys.mm(sys.mm_of(t)).pasid == IOMMU_PASID_INVALID
    assert sys.state.ida.allocated == 0


def test_A_03_exhaustion():
    sys = machine(("d", 2))  # max_pasids 4: valid PASIDs 1..3
    mms = [sys.mm_of(sys.process_create()) for _ in range(4)]
    handles = [sys.iommu_sva_bind_device("d", m) for m in mms[:3]]
    assert [sys.iommu_sva_get_pasid(h) for h in handles] == [1, 2, 3]
    before = sys.state
    with pytest.raises(KernelError) as e:
        sys.iommu_sva_bind_device("d", mms[3])
    assert e.value.errno == errno.ENOSPC
    assert sys.state == before


def test_A_04_overflow_across_devices():
    sys = machine(("devA", 20), ("devB", 4))  # devB: max_pasids 16
    mms = [sys.mm_of(sys.process_create()) for _ in range(20)]
    hs = [sys.iommu_sva_bind_device("devA", m) for m in mms]
    assert [sys.iommu_sva_get_pasid(h) for h in hs] == list(range(1, 21))
    with pytest.raises(KernelError) as e:
        sys.iommu_sva_bind_device("devB", mms[19])
    assert e.value.errno == errno.EOVERFLOW
    h = sys.iommu_sva_bind_device("devB", mms[4])
    assert sys.iommu_sva_get_pasid(h) == 5


def test_A_05_free_invalid_warns_without_change():
    sys = machine(("d", 20))
    sys.iommu_alloc_global_pasid("d")
    before = sys.state.fingerprint_nowarn()
    assert sys.iommu_free_global_pasid(IOMMU_PASID_INVALID) == 0
    assert sys.state.warnings[-1][0] == Warn.FREE_INVALID_PASID
    assert sys.state.fingerprint_nowarn() == before
    sys.iommu_free_global_pasid(77)  # never allocated: ida_free WARN
    assert sys.state.warnings[-1][0] == Warn.FREE_UNALLOCATED_PASID
    assert sys.state.fingerprint_nowarn() == before


def test_A_06_legacy_refcount():
    sys = machine(("d", 20))
    n = sys.ioasid_alloc(0, 1, 100, private=42)
    assert n == 1
    sys.ioasid_get(0, n)
    assert sys.ioasid_put(0, n) == 0  # false: still referenced
    assert sys.ioasid_find(0, n) == 42
    assert sys.ioasid_put(0, n) == 1  # true: freed
    with pytest.raises(KernelError) as e:
        sys.ioasid_find(0, n)
    assert e.value.errno == errno.ENOENT
    assert n not in sys.state.ida


def test_A_07_legacy_set_mismatch():
    sys = machine(("d", 20))
    set_a = sys.ioasid_set_alloc(0, 10, IOASID_SET_TYPE_NULL)
    set_b = sys.ioasid_set_alloc(0, 10, IOASID_SET_TYPE_NULL)
    n = sys.ioasid_alloc(set_a, 1, 100)
    with pytest.raises(KernelError) as e:
        sys.ioasid_find(set_b, n)
    assert e.value.errno == errno.EACCES
    assert sys.ioasid_find(set_a, n) == 0


def test_A_08_custom_allocator_conflict():
    sys = machine(("d", 20))
    n = sys.ioasid_alloc(0, 1, 100)
    with pytest.raises(KernelError) as e:
        sys.ioasid_register_allocator(ops=0x1000, fns=1)
    assert e.value.errno == errno.EAGAIN
    sys.ioasid_free(0, n)
    assert sys.ioasid_register_allocator(ops=0x1000, fns=1) == 0
    with pytest.raises(KernelError) as e:
        sys.ioasid_register_allocator(ops=0x1000, fns=1)
    assert e.value.errno == errno.EEXIST
    assert sys.state.allocators == ((0x1000, 1),)


def test_A_09_pending_free():
    sys = machine(("d", 20))
    st = sys.ioasid_set_alloc(0, 0, IOASID_SET_TYPE_NULL)
    n = sys.ioasid_alloc(st, 1, 3)
    sys.ioasid_get(st, n)
    sys.ioasid_free(st, n)
    assert sys.state.ioasids[n].state == IoasidState.FREE_PENDING
    with pytest.raises(KernelError) as e:
        sys.ioasid_get(st, n)
    assert e.value.errno == errno.EBUSY
    got = [sys.ioasid_alloc(st, 1, 3) for _ in range(3)]
    assert n not in got and got[-1] == INVALID_IOASID
    assert sys.ioasid_put(st, n) == 1
    assert n not in sys.state.ida
    assert sys.ioasid_alloc(st, 1, 3) == n


def test_A_09_pending_free_global_policy():
    """The same grace period on the global allocator: a PASID still programmed in a device
    is pending-free and not reusable until the device lets go of it."""
    sys = machine(("d", 20), policy=CURRENT.but(allocator=Allocator.PENDING_FREE))
    p = sys.iommu_alloc_global_pasid("d")
    dom = sys.iommu_domain_alloc_paging("d")
    sys.iommu_attach_device_pasid(dom, "d", p)
    sys.iommu_free_global_pasid(p)
    assert p in sys.state.pending_free and p in sys.state.ida
    assert sys.iommu_alloc_global_pasid("d") != p
    sys.iommu_detach_device_pasid(dom, "d", p)
    assert p not in sys.state.ida and p not in sys.state.pending_free


def test_A_10_set_quota():
    sys = machine(("d", 20))
    st = sys.ioasid_set_alloc(7, 2, IOASID_SET_TYPE_MM)
    a, b = sys.ioasid_alloc(st, 1, 100), sys.ioasid_alloc(st, 1, 100)
    assert (a, b) == (1, 2)
    assert sys.ioasid_alloc(st, 1, 100) == INVALID_IOASID
    with pytest.raises(KernelError) as e:
        sys.ioasid_set_free(st)
    assert e.value.errno == errno.EBUSY
    assert sys.state.ioasid_sets[st].free_pending
    sys.ioasid_free(st, a)
    assert st in sys.state.ioasid_sets
    sys.ioasid_free(st, b)
    assert st not in sys.state.ioasid_sets
    assert sys.state.ioasid_capacity == 0x100000


def test_A_11_amdgpu_cyclic():
    sys = machine(("gpu", 16))
    p = sys.amdgpu_pasid_alloc(4)
    assert p == 1
    sys.amdgpu_pasid_free(p)
    seen = []
    for _ in range(15):
        q = sys.amdgpu_pasid_alloc(4)
        seen.append(q)
        sys.amdgpu_pasid_free(q)
    assert seen == list(range(2, 16)) + [1]
    with pytest.raises(KernelError) as e:
        sys.amdgpu_pasid_alloc(0)
    assert e.value.errno == errno.EINVAL


def test_A_11_amdgpu_lowest_reuses_at_once():
    sys = machine(("gpu", 16), policy=CURRENT.but(amdgpu_cyclic=False))
    p = sys.amdgpu_pasid_alloc(4)
    sys.amdgpu_pasid_free(p)
    assert sys.amdgpu_pasid_alloc(4) == p


def test_A_12_amdgpu_delayed_free():
    sys = machine(("gpu", 16))
    fence = sys.dma_fence_create()
    p = sys.amdgpu_pasid_alloc(2)  # IDs 1..3
    sys.amdgpu_pasid_free_delayed(p, fence)
    assert p in sys.state.amdgpu_ida
    got = [sys.amdgpu_pasid_alloc(2) for _ in range(2)]
    assert p not in got
    with pytest.raises(KernelError):
        sys.amdgpu_pasid_alloc(2)  # exhausted while p waits on the fence
    sys.dma_fence_signal(fence)
    assert p not in sys.state.amdgpu_ida
    # OOM path: the fence is waited for synchronously, then the PASID is freed
    f2 = sys.dma_fence_create()
    q = got[0]
    sys.amdgpu_pasid_free_delayed(q, f2, oom=True)
    assert q not in sys.state.amdgpu_ida and sys.state.fences[f2] is True
