"""Hardware half: F-01..F-07, M-01 and M-07 with DMA, fault reasons, invalidation triggers."""

import errno

import pytest

from pasidsim.config import DeviceConfig, IommuUnit
from pasidsim.errors import Warn
from pasidsim.iopf import IopfResponse
from pasidsim.hw.translate import FaultReason
from pasidsim.invariants import check_state
from pasidsim.state import PAGE_SIZE, PROT_READ, PROT_WRITE, PasidEntryMode

from ..conftest import assert_invariants, machine, portal

RW = PROT_READ | PROT_WRITE


def sva(pri=False, ats=True, **kw):
    """A PRI/ATS device bound to a fresh process with one anonymous page mapped."""
    sys = machine(DeviceConfig("d", iommu="iommu0", pasid_bits=20, pri=pri, ats=ats), **kw)
    t = sys.process_create()
    h = sys.iommu_sva_bind_device("d", sys.mm_of(t))
    p = sys.iommu_sva_get_pasid(h)
    addr = sys.mmap_anon(t, 2, RW)
    return sys, t, h, p, addr


def last_fault(sys):
    return sys.state.faults[-1]


def test_translation_success_and_caches():
    sys, t, h, p, addr = sva()
    pa = sys.touch(t, addr, PROT_WRITE)
    assert sys.dma("d", p, addr + 8, PROT_WRITE) == pa + 8
    vpage = addr // PAGE_SIZE
    assert (0, p, vpage) in sys.state.atc
    assert any(k[2] == p and k[3] == vpage for k in sys.state.iotlb.keys())
    assert sys.dma("d", p, addr, PROT_READ) == pa  # ATC hit
    assert_invariants(sys)


@pytest.mark.parametrize("reason", ["not_present", "permission", "blocked_pasid", "blocked_rid"])
def test_fault_reasons(reason):
    sys, t, h, p, addr = sva(pri=False)
    before = len(sys.state.faults)
    if reason == "not_present":
        ret = sys.apply(_a("dma", dev=0, pasid=p, addr=addr, access=PROT_READ))
        want = FaultReason.NOT_PRESENT
    elif reason == "permission":
        ro = sys.mmap_anon(t, 1, PROT_READ)
        sys.touch(t, ro, PROT_READ)
        ret = sys.apply(_a("dma", dev=0, pasid=p, addr=ro, access=PROT_WRITE))
        want = FaultReason.PERMISSION
    elif reason == "blocked_pasid":
        ret = sys.apply(_a("dma", dev=0, pasid=p + 1, addr=addr, access=PROT_READ))
        want = FaultReason.BLOCKED
    else:
        sys.iommu_sva_unbind_device(h)  # a PASID attached would make the claim -EBUSY
        sys.iommu_group_claim_dma_owner("d", 0xF00D)  # RID on the blocking domain
        ret = sys.apply(_a("dma", dev=0, pasid=0, addr=addr, access=PROT_READ))
        want = FaultReason.BLOCKED
    assert ret == -errno.EFAULT
    assert len(sys.state.faults) == before + 1 and last_fault(sys)[3] == want


def _a(name, **kw):
    from pasidsim.step import Action
    return Action.of(name, **kw)


def test_quiesced_is_silently_dropped_M_01():
    sys, t, h, p, addr = sva(pri=True)
    sys.touch(t, addr, PROT_WRITE)
    sys.dma("d", p, addr, PROT_WRITE)
    sys.task_exit(t)
    assert sys.state.pasid_table[(0, p)][1] == PasidEntryMode.QUIESCED
    assert not sys.state.atc and not sys.state.iotlb  # release flushed the caches
    nfaults = len(sys.state.faults)
    assert sys.apply(_a("dma", dev=0, pasid=p, addr=addr, access=PROT_READ)) == -errno.EIO
    assert len(sys.state.faults) == nfaults  # not reported
    # a page request now is answered INVALID (F-02)
    sys.iommu_report_device_fault("d", p, addr, PROT_READ, grpid=3, last=1)
    assert sys.iopf_handle("d") == IopfResponse.INVALID
    assert sys.state.responses[-1] == (0, p, 3, IopfResponse.INVALID)
    assert p in sys.state.ida
    sys.iommu_sva_unbind_device(h)
    assert p not in sys.state.ida
    assert_invariants(sys)


def test_F_01_resolvable_fault():
    sys, t, h, p, addr = sva(pri=True)
    sys.iommu_report_device_fault("d", p, addr, PROT_WRITE, grpid=1, last=0)
    assert not sys.state.responses  # partial: no response
    sys.iommu_report_device_fault("d", p, addr + PAGE_SIZE, PROT_WRITE, grpid=1, last=1)
    q = sys.state.iopf[0]
    assert len(q.groups) == 1 and len(q.groups[0].faults) == 2 and not q.partial
    assert sys.iopf_handle("d") == IopfResponse.SUCCESS
    assert sys.state.responses == ((0, p, 1, IopfResponse.SUCCESS),)
    mm = sys.mm(sys.mm_of(t))
    assert addr // PAGE_SIZE in mm.pt and addr // PAGE_SIZE + 1 in mm.pt
    assert sys.dma("d", p, addr, PROT_WRITE) > 0  # now translates


def test_dma_miss_on_pri_device_sends_page_request():
    sys, t, h, p, addr = sva(pri=True)
    assert sys.apply(_a("dma", dev=0, pasid=p, addr=addr, access=PROT_WRITE)) == -errno.EAGAIN
    assert sys.iopf_handle("d") == IopfResponse.SUCCESS
    assert sys.dma("d", p, addr, PROT_WRITE) > 0


def test_F_03_no_handler():
    sys, t, h, p, addr = sva(pri=True)
    ret = sys.apply(_a("iommu_report_device_fault", dev=0, pasid=p + 7, addr=addr, access=1,
                       grpid=2, last=1))
    assert ret == -errno.EINVAL
    assert sys.state.responses[-1] == (0, p + 7, 2, IopfResponse.INVALID)


def test_F_04_sticky_error():
    sys, t, h, p, addr = sva(pri=True)
    bad = 0x7000_0000
    sys.iommu_report_device_fault("d", p, addr, PROT_READ, grpid=4, last=0)
    sys.iommu_report_device_fault("d", p, bad, PROT_READ, grpid=4, last=0)
    sys.iommu_report_device_fault("d", p, addr + PAGE_SIZE, PROT_READ, grpid=4, last=1)
    assert sys.iopf_handle("d") == IopfResponse.INVALID
    pt = sys.mm(sys.mm_of(t)).pt
    assert addr // PAGE_SIZE in pt and addr // PAGE_SIZE + 1 not in pt  # third not handled
    assert len(sys.state.responses) == 1


def test_F_05_allocation_failure_answers_failure():
    sys, t, h, p, addr = sva(pri=True)
    sys.iommu_report_device_fault("d", p, addr, PROT_READ, grpid=5, last=1, oom=1)
    assert sys.state.responses[-1] == (0, p, 5, IopfResponse.FAILURE)
    assert not sys.state.iopf[0].groups
    ret = sys.apply(_a("iommu_report_device_fault", dev=0, pasid=p, addr=addr, access=1,
                       grpid=6, last=0, oom=1))
    assert ret == -errno.ENOMEM


def test_F_06_remove_device_answers_pending_once():
    sys, t, h, p, addr = sva(pri=True)
    sys.iommu_report_device_fault("d", p, addr, PROT_READ, grpid=1, last=1)
    sys.iommu_report_device_fault("d", p, addr, PROT_READ, grpid=2, last=1)
    sys.iopf_queue_remove_device("d")
    assert [r[2:] for r in sys.state.responses] == [(1, IopfResponse.INVALID),
                                                    (2, IopfResponse.INVALID)]
    # late worker: its response is a no-op (no second answer).  Since the Jan 2025 leak fix
    # (iopf_free_group in iopf_queue_remove_device) the group it runs is also already freed:
    # a use after free, which invariant F3 reports (kernel-spec F-06 predates the fix).
    assert sys.apply(_a("iopf_handle", dev=0)) == 0
    assert len(sys.state.responses) == 2
    assert sys.state.warnings[-1][0] == Warn.IOPF_GROUP_USE_AFTER_FREE
    with pytest.raises(Exception):
        sys.iommu_report_device_fault("d", p, addr, PROT_READ, grpid=3, last=1)


def test_F_07_flush_before_reuse():
    sys, t, h, p, addr = sva(pri=True)
    sys.iommu_report_device_fault("d", p, addr, PROT_WRITE, grpid=9, last=1)
    mm = sys.mm_of(t)
    sys.iommu_sva_unbind_device(h)  # flushes: handled against mm while still attached
    assert sys.state.responses[-1] == (0, p, 9, IopfResponse.SUCCESS)
    assert addr // PAGE_SIZE in sys.mm(mm).pt
    assert not sys.state.iopf[0].groups
    sys.task_exit(t)  # mm freed, PASID freed
    other = sys.process_create()
    h2 = sys.iommu_sva_bind_device("d", sys.mm_of(other))
    assert sys.iommu_sva_get_pasid(h2) == p  # reused, with nothing of the old owner queued
    assert_invariants(sys)


@pytest.mark.parametrize("trigger", ["munmap", "mprotect", "unbind", "detach", "replace",
                                     "domain_free", "iommu_unmap", "exit"])
def test_no_stale_translation_after_invalidation(trigger):
    sys = machine(DeviceConfig("d", iommu="iommu0", pasid_bits=20, ats=True),
                  DeviceConfig("e", iommu="iommu0", pasid_bits=20, ats=True))
    t = sys.process_create()
    if trigger in ("detach", "replace", "domain_free", "iommu_unmap"):
        dom = sys.iommu_domain_alloc_paging("d")
        sys.iommu_map(dom, 0x10000, 0x80000, 2 * PAGE_SIZE, RW)
        sys.iommu_attach_device_pasid(dom, "d", 5)
        assert sys.dma("d", 5, 0x10000, PROT_READ) == 0x80000
        if trigger == "detach":
            sys.iommu_detach_device_pasid(dom, "d", 5)
        elif trigger == "replace":
            other = sys.iommu_domain_alloc_paging("d")
            sys.iommu_map(other, 0x10000, 0x90000, PAGE_SIZE, RW)
            hid = _fresh_handle(sys, "d")
            sys.iommu_replace_device_pasid(other, "d", 5, hid)
            assert sys.dma("d", 5, 0x10000, PROT_READ) == 0x90000
        elif trigger == "iommu_unmap":
            assert sys.iommu_unmap(dom, 0x10000, PAGE_SIZE) == PAGE_SIZE
            assert sys.apply(_a("dma", dev=0, pasid=5, addr=0x10000, access=1)) == -errno.EFAULT
        else:
            sys.iommu_detach_device_pasid(dom, "d", 5)
            sys.iommu_domain_free(dom)
        assert not check_state(sys.state, "kernel")
        assert not any(k[0] == 0 and k[1] == 5 and k[2] == 0x10 for k in sys.state.atc.keys()) \
            or trigger == "replace"
        return
    h = sys.iommu_sva_bind_device("d", sys.mm_of(t))
    p = sys.iommu_sva_get_pasid(h)
    addr = sys.mmap_anon(t, 1, RW)
    pa = sys.touch(t, addr, PROT_WRITE)
    assert sys.dma("d", p, addr, PROT_WRITE) == pa
    if trigger == "munmap":
        sys.munmap_range(t, addr)
        # the frame goes to another process; the device must not reach it through p
        t2 = sys.process_create()
        a2 = sys.mmap_anon(t2, 1, RW)
        assert sys.touch(t2, a2, PROT_WRITE) == pa
        assert sys.apply(_a("dma", dev=0, pasid=p, addr=addr, access=PROT_WRITE)) == -errno.EFAULT
    elif trigger == "mprotect":
        sys.mprotect(t, addr, PROT_READ)
        assert sys.apply(_a("dma", dev=0, pasid=p, addr=addr, access=PROT_WRITE)) == -errno.EFAULT
        assert sys.dma("d", p, addr, PROT_READ) == pa
    elif trigger == "unbind":
        sys.iommu_sva_unbind_device(h)
        assert sys.apply(_a("dma", dev=0, pasid=p, addr=addr, access=PROT_READ)) == -errno.EFAULT
    else:
        sys.task_exit(t)
        assert sys.apply(_a("dma", dev=0, pasid=p, addr=addr, access=PROT_READ)) == -errno.EIO
    assert not sys.state.breaches
    assert not check_state(sys.state, "kernel")


def _fresh_handle(sys, dev):
    """A caller-owned attach handle (what iommufd allocates)."""
    from pasidsim.state import Handle, HandleKind
    s = sys.state
    hid = s.next_id
    sys.state = s._replace(next_id=hid + 1, handles=s.handles.set(
        hid, Handle(HandleKind.DRIVER, 0, sys.config.device_index(dev), -1, -1)))
    return hid


def test_M_07_enqcmd_descriptor_after_unbind_faults_blocked():
    sys = machine(("d", 20))
    t = sys.process_create()
    fd = portal(sys, t, "d")
    h = sys.iommu_sva_bind_device("d", sys.mm_of(t))
    p = sys.iommu_sva_get_pasid(h)
    sys.iommu_sva_unbind_device(h)
    assert sys.enqcmd(t, "d") == p  # MSR still holds p
    (desc,) = sys.state.inflight.keys()
    assert sys.apply(_a("dma_complete", desc=desc)) == -errno.EFAULT
    assert last_fault(sys)[3] == FaultReason.BLOCKED
    other = sys.process_create()
    h2 = sys.iommu_sva_bind_device("d", sys.mm_of(other))
    assert sys.iommu_sva_get_pasid(h2) != p
    assert fd in sys.state.files


def test_iommu_map_errnos():
    sys = machine(("d", 20))
    dom = sys.iommu_domain_alloc_paging("d")
    from pasidsim.errors import KernelError
    for args, err in [((0x1001, 0x2000, PAGE_SIZE), errno.EINVAL),
                      ((0x1000, 0x2000, 100), errno.EINVAL),
                      ((0x1000, 0x2000, 0), errno.EINVAL)]:
        with pytest.raises(KernelError) as e:
            sys.iommu_map(dom, *args, RW)
        assert e.value.errno == err
    sys.iommu_map(dom, 0x1000, 0x2000, 2 * PAGE_SIZE, RW)
    before = sys.state
    with pytest.raises(KernelError) as e:
        sys.iommu_map(dom, 0x2000, 0x9000, 2 * PAGE_SIZE, RW)
    assert e.value.errno == errno.EEXIST and sys.state == before
    assert sys.iommu_unmap(dom, 0x1000, 4 * PAGE_SIZE) == 2 * PAGE_SIZE
    assert sys.iommu_unmap(dom, 0x1000, PAGE_SIZE) == 0


def test_iotlb_capacity_evicts_oldest():
    sys = machine(DeviceConfig("d", iommu="iommu0", pasid_bits=20),
                  iommus=[IommuUnit("iommu0", iotlb_entries=2)])
    t = sys.process_create()
    h = sys.iommu_sva_bind_device("d", sys.mm_of(t))
    p = sys.iommu_sva_get_pasid(h)
    addr = sys.mmap_anon(t, 3, RW)
    for i in range(3):
        sys.touch(t, addr + i * PAGE_SIZE, PROT_WRITE)
        sys.dma("d", p, addr + i * PAGE_SIZE, PROT_READ)
    pages = sorted(k[3] for k in sys.state.iotlb.keys())
    assert pages == [addr // PAGE_SIZE + 1, addr // PAGE_SIZE + 2]


def test_driver_release_drains_queued_descriptors_before_unbind():
    sys = machine(DeviceConfig("acc", iommu="iommu0", pasid_bits=20))
    sys.device_driver_attach("acc", "uacce")
    t = sys.process_create()
    fd = sys.dev_open(t, "acc")
    h = sys.state.files[fd].handles[0]
    p = sys.iommu_sva_get_pasid(h)
    addr = sys.mmap_anon(t, 1, RW)
    sys.touch(t, addr, PROT_WRITE)
    sys.wq_submit("acc", p, addr, PROT_WRITE)
    assert p in sys.state.pasid_refs and sys.state.pasid_refs[p] == 2
    sys.close(t, fd)
    assert not sys.state.inflight and not sys.state.breaches
    assert p not in sys.state.pasid_refs
    assert_invariants(sys, scope=None)


def test_pending_free_released_by_drain_of_queued_descriptors():
    """Grace period: under the pending-free allocator a PASID freed while a descriptor tagged
    with it is still queued stays allocated (not reusable) until the device drains it."""
    from pasidsim.policy import CURRENT, Allocator
    sys = machine(("d", 20), policy=CURRENT.but(allocator=Allocator.PENDING_FREE))
    p = sys.iommu_alloc_global_pasid("d")
    dom = sys.iommu_domain_alloc_paging("d")
    sys.iommu_map(dom, 0x10000, 0x80000, PAGE_SIZE, RW)
    sys.iommu_attach_device_pasid(dom, "d", p)
    desc = sys.wq_submit("d", p, 0x10000, PROT_WRITE)
    sys.iommu_detach_device_pasid(dom, "d", p)
    sys.iommu_free_global_pasid(p)
    assert p in sys.state.pending_free and p in sys.state.ida
    assert sys.iommu_alloc_global_pasid("d") != p
    assert sys.wq_drain("d", p, abort=1) == 1
    assert p not in sys.state.ida and p not in sys.state.pending_free and desc not in sys.state.inflight


def test_immediate_reuse_without_grace_period_is_what_lowest_free_does():
    sys = machine(("d", 20))
    p = sys.iommu_alloc_global_pasid("d")
    sys.wq_submit("d", p, 0x10000, PROT_WRITE)
    sys.iommu_free_global_pasid(p)
    assert sys.iommu_alloc_global_pasid("d") == p  # today's IDA: safety is by caller ordering


def test_enqcmd_to_a_portal_that_is_not_a_shared_wq_is_not_accepted():
    """Found by the Hypothesis bridge: ENQCMD to gpu0's amdgpu mapping was queued as a
    descriptor there, and the #GP path then broke A3q — a false counterexample.  A device
    whose driver has no shared work queue does not accept the deferrable write (ZF=1,
    -EAGAIN); the #GP fixup that ran first keeps IA32_PASID set."""
    from pasidsim.machines import default_config
    from pasidsim.policy import CURRENT
    from pasidsim.state import MSR_IA32_PASID_VALID
    from pasidsim.system import System
    sys = System(default_config(), CURRENT)
    for name, drv in (("dsa0", "idxd"), ("gpu0", "amdgpu")):
        if sys.state.devs[sys.config.device_index(name)].driver < 0:
            sys.device_driver_attach(name, drv)
    t = sys.process_create()
    q = sys.dev_open(t, "dsa0")  # binds the mm: it gets a PASID
    g = sys.dev_open(t, "gpu0")
    sys.mmap(t, g)
    before = dict(sys.state.inflight)
    assert sys.apply(_a("enqcmd", tid=t, dev=sys.config.device_index("gpu0"))) == -errno.EAGAIN
    assert dict(sys.state.inflight) == before  # nothing queued on the GPU
    pasid = sys.state.mms[sys.mm_of(t)].pasid
    assert sys.state.tasks[t].msr == pasid | MSR_IA32_PASID_VALID  # the #GP fixup stays
    assert not check_state(sys.state)
    sys.mmap(t, q)
    assert sys.enqcmd(t, "dsa0") == pasid  # the shared WQ takes it
