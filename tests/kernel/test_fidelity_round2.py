"""Fidelity round 2 (issue 11): behaviours an independent review found wrong or missing.

Each test is named after the kernel function or the seed design it checks and cites the source
it follows; errnos are exact and failed calls leave the state unchanged.
"""

from __future__ import annotations

import pytest

from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.designs import get_policy as design
from pasidsim.errors import (EAGAIN, EBUSY, EEXIST, EINVAL, ENODEV, ENOENT, ENOMEM, ENOSPC,
                             EOPNOTSUPP, EPERM, ERANGE, Warn)
from pasidsim.invariants import b1_no_bug_on
from pasidsim.iopf import IopfResponse
from pasidsim.policy import CURRENT
from pasidsim.state import (IFD_AUTO_DOMAIN, IOMMU_PASID_INVALID, MSR_IA32_PASID_VALID,
                            DomainType, IfdKind, PasidEntryMode)
from pasidsim.step import Action
from pasidsim.system import System

from tests.helpers import do


@pytest.fixture
def ifd() -> System:
    cfg = Config.build(
        iommus=[IommuUnit("mock"), IommuUnit("other", ops="arm-smmu-v3")],
        devices=[DeviceConfig("a", iommu="mock", group="G", pasid_bits=20),
                 DeviceConfig("b", iommu="mock", group="G", pasid_bits=20),
                 DeviceConfig("p", iommu="mock", pasid_bits=20, ats=True, pri=True),
                 DeviceConfig("q", iommu="mock", pasid_bits=3),
                 DeviceConfig("w0", iommu="mock", pasid_bits=0, pasid_cap=True),
                 DeviceConfig("n", iommu="mock", pasid_bits=0),
                 DeviceConfig("arm", iommu="other", pasid_bits=20)],
        drivers=[])
    return System(cfg)


def ctx(sys: System, *devs: str):
    ictx = do(sys, "iommufd_ctx_create")
    idevs = [do(sys, "iommufd_device_bind", ictx=ictx, dev=d) for d in devs]
    ioas = do(sys, "iommufd_ioas_alloc", ictx=ictx)
    assert min(idevs, default=1) > 0 and ioas > 0
    return ictx, idevs, ioas


# -- drivers/iommu/iommufd/device.c --------------------------------------------------------------

def test_iommufd_hw_pagetable_attach_checks_device_already_attached_before_compat(ifd):
    """device.c ``iommufd_hw_pagetable_attach``: ``xa_insert(&attach->device_array, ...)``
    (-EBUSY) and ``old_hwpt != hwpt`` (-EINVAL) come before ``iommufd_hwpt_pasid_compat``,
    which runs only on the group's first attach at the PASID."""
    _, (ia, ib), ioas = ctx(ifd, "a", "b")
    hc = do(ifd, "iommufd_hwpt_alloc", ioas=ioas, dev="a", pasid_compat=1)
    hplain = do(ifd, "iommufd_hwpt_alloc", ioas=ioas, dev="a", pasid_compat=0)
    assert do(ifd, "iommufd_device_attach", idev=ia, pasid=1, pt_id=hc) == 0
    # the same device again, with a non-compatible hwpt: "already attached" wins (was -EINVAL)
    assert do(ifd, "iommufd_device_attach", idev=ia, pasid=1, pt_id=hplain) == -EBUSY
    # the other device of the group, another hwpt: the group is on hc at PASID 1
    assert do(ifd, "iommufd_device_attach", idev=ib, pasid=1, pt_id=hplain) == -EINVAL
    assert do(ifd, "iommufd_device_attach", idev=ib, pasid=1, pt_id=hc) == 0
    assert ifd.state.ifd[hc].users == 3  # the context's reference + two attached devices


def test_iommufd_device_change_pt_object_kinds(ifd):
    """device.c ``iommufd_device_change_pt``: ``iommufd_get_object(..., IOMMUFD_OBJ_ANY)``
    fails -ENOENT (no object, another context's, a kernel domain); an object that is neither
    a hwpt nor an IOAS is -EINVAL (``default: destroy_hwpt = ERR_PTR(-EINVAL)``)."""
    ictx, (ip,), ioas = ctx(ifd, "p")
    fq = do(ifd, "iommufd_fault_alloc", ictx=ictx)
    other = do(ifd, "iommufd_ctx_create")
    ioas2 = do(ifd, "iommufd_ioas_alloc", ictx=other)
    assert do(ifd, "iommufd_device_attach", idev=ip, pasid=0, pt_id=fq) == -EINVAL
    assert do(ifd, "iommufd_device_replace", idev=ip, pasid=0, pt_id=fq) == -EINVAL
    assert do(ifd, "iommufd_device_attach", idev=ip, pasid=0, pt_id=ioas2) == -ENOENT
    assert do(ifd, "iommufd_device_attach", idev=ip, pasid=0, pt_id=99999) == -ENOENT
    default = ifd.group("p").default_domain
    assert do(ifd, "iommufd_device_attach", idev=ip, pasid=0, pt_id=default) == -ENOENT


def test_iommufd_device_auto_get_domain(ifd):
    """device.c ``iommufd_device_auto_get_domain``: attach by IOAS id reuses a compatible
    automatic hwpt of that IOAS or allocates one (flags 0); it is freed with its last
    attachment; an IOAS with hwpts cannot be destroyed (main.c ``iommufd_destroy``,
    ``refcount_dec_if_one`` → -EBUSY)."""
    ictx, (ia, ip, iarm), ioas = ctx(ifd, "a", "p", "arm")
    assert do(ifd, "iommufd_device_attach", idev=ia, pasid=0, pt_id=ioas) == 0
    autos = [k for k, o in ifd.state.ifd.items() if o.flags & IFD_AUTO_DOMAIN]
    assert len(autos) == 1 and ifd.group("G").domain == autos[0]
    assert do(ifd, "iommufd_device_attach", idev=ip, pasid=0, pt_id=ioas) == 0  # reused
    assert ifd.group("p").domain == autos[0]
    assert do(ifd, "iommufd_device_attach", idev=iarm, pasid=0, pt_id=ioas) == 0  # another IOMMU
    autos2 = [k for k, o in ifd.state.ifd.items() if o.flags & IFD_AUTO_DOMAIN]
    assert len(autos2) == 2
    assert do(ifd, "iommufd_destroy", obj_id=ioas) == -EBUSY
    assert do(ifd, "iommufd_destroy", obj_id=autos[0]) == -EBUSY
    # automatic hwpts are never PASID-compatible: an IOAS at a PASID fails, nothing is left
    before = dict(ifd.state.ifd)
    assert do(ifd, "iommufd_device_attach", idev=ip, pasid=1, pt_id=ioas) == -EINVAL
    assert dict(ifd.state.ifd) == before
    for idev in (ia, ip, iarm):
        assert do(ifd, "iommufd_device_detach", idev=idev, pasid=0) == 0
    assert not any(o.flags & IFD_AUTO_DOMAIN for o in ifd.state.ifd.values())
    assert not any(d == autos[0] for d in ifd.state.domains)
    assert do(ifd, "iommufd_destroy", obj_id=ioas) == 0
    assert do(ifd, "iommufd_destroy", obj_id=ioas) == -ENOENT


def test_iommufd_device_replace_to_ioas_frees_the_old_automatic_hwpt(ifd):
    """``iommufd_device_do_replace`` moves the hwpt references; ``iommufd_hw_pagetable_put``
    destroys an automatic hwpt left without attachments."""
    _, (ip,), ioas = ctx(ifd, "p")
    h = do(ifd, "iommufd_hwpt_alloc", ioas=ioas, dev="p", pasid_compat=0)
    assert do(ifd, "iommufd_device_attach", idev=ip, pasid=0, pt_id=ioas) == 0
    auto = ifd.group("p").domain
    assert do(ifd, "iommufd_device_replace", idev=ip, pasid=0, pt_id=h) == 0
    assert auto not in ifd.state.ifd and ifd.state.ifd[h].users == 2
    assert do(ifd, "iommufd_device_replace", idev=ip, pasid=0, pt_id=h) == 0  # no-op


def test_iommufd_hwpt_alloc_pt_id_kinds(ifd):
    """hw_pagetable.c ``iommufd_hwpt_alloc``: a missing ``pt_id`` or one that is neither an
    IOAS, a paging hwpt nor a vIOMMU is -EINVAL (the object is no longer allocated from any
    id); a nested parent needs NEST_PARENT (-EINVAL); NEST_PARENT with a fault id, or asked
    of a nested hwpt, is -EOPNOTSUPP; a fault id that names no fault object is -ENOENT."""
    ictx, (ia,), ioas = ctx(ifd, "a")
    fq = do(ifd, "iommufd_fault_alloc", ictx=ictx)
    plain = do(ifd, "iommufd_hwpt_alloc", ioas=ioas, dev="a", pasid_compat=1)
    assert do(ifd, "iommufd_hwpt_alloc", ioas=fq, dev="a") == -EINVAL
    assert do(ifd, "iommufd_hwpt_alloc", ioas=ictx, dev="a") == -EINVAL
    assert do(ifd, "iommufd_hwpt_alloc", ioas=99999, dev="a") == -EINVAL
    assert do(ifd, "iommufd_hwpt_alloc", ioas=plain, dev="a") == -EINVAL  # not NEST_PARENT
    assert do(ifd, "iommufd_hwpt_alloc", ioas=ioas, dev="a", nest_parent=1,
              fault_id=fq) == -EOPNOTSUPP
    assert do(ifd, "iommufd_hwpt_alloc", ioas=ioas, dev="a", fault_id=ioas) == -ENOENT
    parent = do(ifd, "iommufd_hwpt_alloc", ioas=ioas, dev="a", pasid_compat=0, nest_parent=1)
    assert do(ifd, "iommufd_hwpt_alloc", ioas=parent, dev="a", nest_parent=1) == -EOPNOTSUPP
    assert do(ifd, "iommufd_hwpt_alloc", ioas=parent, dev="arm") == -EINVAL  # other IOMMU


def test_iommufd_nested_hwpt_at_a_pasid(ifd):
    """Nested hwpts (``iommufd_hwpt_nested_alloc``, ``iommufd_viommu_alloc_hwpt_nested``) can
    be attached at a PASID when allocated with ``IOMMU_HWPT_ALLOC_PASID``; DMA translates
    through the parent's stage 2; the parent and the vIOMMU stay while nested hwpts hold
    them (-EBUSY)."""
    _, (ia,), ioas = ctx(ifd, "q")
    parent = do(ifd, "iommufd_hwpt_alloc", ioas=ioas, dev="q", pasid_compat=1, nest_parent=1)
    plain = do(ifd, "iommufd_hwpt_alloc", ioas=ioas, dev="q", pasid_compat=1)
    assert do(ifd, "iommufd_viommu_alloc", dev="q", hwpt=plain) == -EINVAL
    assert do(ifd, "iommufd_viommu_alloc", dev="q", hwpt=ioas) == -ENOENT
    viommu = do(ifd, "iommufd_viommu_alloc", dev="q", hwpt=parent)
    n1 = do(ifd, "iommufd_hwpt_alloc", ioas=viommu, dev="q", pasid_compat=1)
    n0 = do(ifd, "iommufd_hwpt_alloc", ioas=parent, dev="q", pasid_compat=0)
    assert ifd.state.domains[n1].type == DomainType.NESTED
    assert ifd.state.domains[n1].parent == parent
    assert do(ifd, "iommufd_device_attach", idev=ia, pasid=2, pt_id=n0) == -EINVAL
    assert do(ifd, "iommufd_device_attach", idev=ia, pasid=2, pt_id=n1) == 0
    assert do(ifd, "iommu_map", domain=parent, iova=0x5000, paddr=0x9000, size=4096) == 0
    q = ifd.config.device_index("q")
    assert ifd.apply(Action.of("dma", dev=q, pasid=2, addr=0x5010)) == 0x9010
    assert do(ifd, "iommu_unmap", domain=parent, iova=0x5000, size=4096) == 4096
    assert ifd.apply(Action.of("dma", dev=q, pasid=2, addr=0x5010)) < 0  # no stale IOTLB hit
    assert do(ifd, "iommufd_destroy", obj_id=viommu) == -EBUSY
    assert do(ifd, "iommufd_destroy", obj_id=parent) == -EBUSY
    assert do(ifd, "iommufd_device_detach", idev=ia, pasid=2) == 0
    for oid in (n1, viommu, n0, parent):
        assert do(ifd, "iommufd_destroy", obj_id=oid) == 0


def test_iommufd_get_hw_info_out_max_pasid_log2(ifd):
    """device.c ``iommufd_get_hw_info``: ``out_max_pasid_log2 = ilog2(max_pasids)``, 0 without
    PASID support (and for a capability of width 0: one PASID)."""
    _, idevs, _ = ctx(ifd, "p", "q", "n", "w0")
    assert [do(ifd, "iommufd_get_hw_info", idev=i) for i in idevs] == [20, 3, 0, 0]
    assert do(ifd, "iommufd_get_hw_info", idev=99999) == -ENOENT


def test_iommufd_fault_queue_read_respond_and_auto_response(ifd):
    """eventq.c: faults of a hwpt allocated with a fault id are delivered to that fault
    object (``iommufd_fault_iopf_handler``), read with a cookie, answered by cookie
    (``iommufd_fault_fops_write``: an unknown cookie or code is -EINVAL), and groups still
    pending at detach are answered INVALID (``iommufd_auto_response_faults``)."""
    ictx, (ip,), ioas = ctx(ifd, "p")
    p = ifd.config.device_index("p")
    fq = do(ifd, "iommufd_fault_alloc", ictx=ictx)
    h = do(ifd, "iommufd_hwpt_alloc", ioas=ioas, dev="p", pasid_compat=1, fault_id=fq)
    assert ifd.state.ifd[fq].users == 2 and ifd.state.ifd[fq].kind == IfdKind.FAULT
    assert do(ifd, "iommufd_destroy", obj_id=fq) == -EBUSY
    assert do(ifd, "iommufd_device_attach", idev=ip, pasid=1, pt_id=h) == 0
    assert do(ifd, "iommufd_fault_fops_read", fault=fq) == -EAGAIN
    # a DMA to an unmapped IOVA: a page request that reaches the fault queue, not the kernel
    assert ifd.apply(Action.of("dma", dev=p, pasid=1, addr=0x4000)) < 0
    assert len(ifd.state.ifd[fq].faults) == 1 and not ifd.state.responses
    cookie = do(ifd, "iommufd_fault_fops_read", fault=fq)
    assert cookie > 0
    assert do(ifd, "iommufd_fault_fops_write", fault=fq, cookie=cookie, code=2) == -EINVAL
    assert do(ifd, "iommufd_fault_fops_write", fault=fq, cookie=cookie + 1000, code=0) == -EINVAL
    assert do(ifd, "iommufd_fault_fops_write", fault=fq, cookie=cookie, code=0) == 0
    assert ifd.state.responses[-1] == (p, 1, 0, int(IopfResponse.SUCCESS))
    assert do(ifd, "iommufd_fault_fops_write", fault=fq, cookie=cookie, code=0) == -EINVAL
    # another fault, left unanswered: the detach answers it INVALID
    assert do(ifd, "iommu_report_device_fault", dev=p, pasid=1, addr=0x6000, grpid=5) == 0
    assert do(ifd, "iommufd_device_detach", idev=ip, pasid=1) == 0
    assert ifd.state.responses[-1] == (p, 1, 5, int(IopfResponse.INVALID))
    assert not ifd.state.ifd[fq].faults
    assert do(ifd, "iommufd_destroy", obj_id=h) == 0
    assert do(ifd, "iommufd_destroy", obj_id=fq) == 0


# -- drivers/pci/ats.c pci_max_pasids() --------------------------------------------------------

def test_pci_max_pasids_width_zero_is_one_pasid():
    """drivers/pci/ats.c ``pci_max_pasids()`` returns ``1 << width``: a PASID capability of
    width 0 is one PASID (max_pasids 1), not "no PASID".  In a group, such a device is not
    skipped like one without the capability: every PASID attach to the group fails -EINVAL
    (drivers/iommu/iommu.c ``iommu_attach_device_pasid``: ``pasid >= max_pasids``), and its
    own SVA bind finds no PASID in [1, 0] (-ENOSPC)."""
    cfg = Config.build(
        iommus=[IommuUnit("mock")],
        devices=[DeviceConfig("a", iommu="mock", group="G", pasid_bits=20),
                 DeviceConfig("w0", iommu="mock", group="G", pasid_cap=True),
                 DeviceConfig("b", iommu="mock", group="H", pasid_bits=20),
                 DeviceConfig("nocap", iommu="mock", group="H"),
                 DeviceConfig("solo", iommu="mock", pasid_cap=True)],
        drivers=[])
    assert cfg.max_pasids == (1 << 20, 1, 1 << 20, 0, 1)
    sys = System(cfg)
    for dev, want in (("a", -EINVAL), ("b", 0)):
        d = do(sys, "iommu_domain_alloc_paging", dev=dev, pasid_compat=1)
        assert do(sys, "iommu_attach_device_pasid", domain=d, dev=dev, pasid=1, handle=0) == want
    pid = do(sys, "process_create")
    ret = do(sys, "iommu_sva_bind_device", dev="solo", mm=sys.mm_of(pid))
    assert ret == -ENOSPC
    with pytest.raises(Exception, match="pasid_cap"):
        DeviceConfig("x", pasid_bits=4, pasid_cap=False)


# -- arch/x86/kernel/process_64.c prctl_enable_tagged_addr() ------------------------------------

def _x86() -> System:
    return System(Config.build(iommus=[IommuUnit("dmar0")],
                               devices=[DeviceConfig("dsa0", iommu="dmar0", pasid_bits=20,
                                                     ats=True, pri=True)],
                               drivers=[]))


def test_prctl_enable_tagged_addr_lock_is_sticky():
    """``MM_CONTEXT_LOCK_LAM`` is set by ``copy_thread()`` for a CLONE_VM clone and by
    ``mm_enable_lam()``, and never cleared: an enable fails -EBUSY after any thread was cloned
    (even one that has exited) and a second enable fails -EBUSY; a PASID (without
    ARCH_FORCE_TAGGED_SVA) is checked first (-EINVAL)."""
    sys = _x86()
    pid = do(sys, "process_create")
    t2 = do(sys, "clone_thread", tid=pid)
    assert do(sys, "task_exit", tid=t2) == 0
    assert len(sys.state.procs[pid].threads) == 1
    assert do(sys, "arch_prctl_enable_tagged_addr", tid=pid) == -EBUSY
    other = do(sys, "process_create")
    assert do(sys, "arch_prctl_enable_tagged_addr", tid=other) == 0
    assert do(sys, "arch_prctl_enable_tagged_addr", tid=other) == -EBUSY
    third = do(sys, "process_create")
    assert do(sys, "iommu_sva_bind_device", dev=0, mm=sys.mm_of(third)) > 0
    do(sys, "clone_thread", tid=third)
    assert do(sys, "arch_prctl_enable_tagged_addr", tid=third) == -EINVAL


# -- E0: the 2018 io_mm RFC (seed 002) ------------------------------------------------------------

def _e0_system() -> System:
    cfg = Config.build(iommus=[IommuUnit("dmar0")],
                       devices=[DeviceConfig("dsa0", iommu="dmar0", pasid_bits=20, ats=True, pri=True,
                                             driver="idxd")],
                       drivers=[DriverConfig("idxd", kind="idxd")])
    sys = System(cfg, design("E0-io_mm"))
    assert do(sys, "device_driver_attach", dev=0, drv=0) == 0  # boot probe
    return sys


def test_E0_io_mm_pasid_freed_at_last_unbind_while_the_process_lives():
    """RFC ``io_mm_detach_locked`` → ``io_mm_put_locked``: the io_mm's kref drops to 0 with
    its last bond and ``io_mm_release`` removes the PASID from the IDR at once."""
    sys = _e0_system()
    pid = do(sys, "process_create")
    mm = sys.mm_of(pid)
    h = do(sys, "iommu_sva_bind_device", dev=0, mm=mm)
    pasid = sys.mm(mm).pasid
    assert pasid != IOMMU_PASID_INVALID and sys.pasid_allocated(pasid)
    assert do(sys, "iommu_sva_unbind_device", handle=h, invariants=False) == 0  # M1t by design
    assert sys.mm(mm).pasid == IOMMU_PASID_INVALID and not sys.pasid_allocated(pasid)
    # today's design keeps it until __mmdrop
    now = System(sys.config, CURRENT)
    pid = do(now, "process_create")
    h = do(now, "iommu_sva_bind_device", dev=0, mm=now.mm_of(pid))
    assert do(now, "iommu_sva_unbind_device", handle=h) == 0
    assert now.mm(now.mm_of(pid)).pasid != IOMMU_PASID_INVALID


def test_E0_mm_exit_called_while_the_pasid_still_translates(monkeypatch):
    """RFC ``iommu_notifier_release``: the drivers' ``mm_exit`` callbacks run first, while
    the PASID entry is still installed; then the bonds are detached and the PASID freed."""
    from pasidsim.drivers import idxd
    seen = []
    orig = idxd.IdxdDriver.mm_exit

    def spy(self, s, dev, handle):
        h = s.handles[handle]
        seen.append(s.pasid_table.get((dev, h.pasid)))
        return orig(self, s, dev, handle)

    monkeypatch.setattr(idxd.IdxdDriver, "mm_exit", spy)
    sys = _e0_system()
    pid = do(sys, "process_create")
    assert do(sys, "dev_open", tid=pid, dev=0) > 0
    pasid = sys.mm(sys.mm_of(pid)).pasid
    assert do(sys, "task_exit", tid=pid) == 0
    assert seen and seen[0][1] == PasidEntryMode.TRANSLATE
    assert not sys.pasid_allocated(pasid)


# -- mm/mmu_notifier.c: BUG_ON(atomic_read(&mm->mm_users) <= 0) -----------------------------------

def test_mmu_notifier_register_on_an_exited_mm_is_a_kernel_bug():
    """Binding an mm whose ``mm_users`` is 0 (the process exited; the caller holds only
    ``mm_count``) reaches ``mmu_notifier_register()``'s BUG_ON when a new SVA domain registers
    its notifier (a device behind another IOMMU driver, whose SVA domain cannot be shared):
    invariant B1 says so."""
    cfg = Config.build(iommus=[IommuUnit("dmar0"), IommuUnit("smmu0", ops="arm-smmu-v3")],
                       devices=[DeviceConfig("d0", iommu="dmar0", pasid_bits=20, ats=True,
                                             pri=True),
                                DeviceConfig("d1", iommu="smmu0", pasid_bits=20)],
                       drivers=[])
    sys = System(cfg)
    pid = do(sys, "process_create")
    mm = sys.mm_of(pid)
    assert do(sys, "iommu_sva_bind_device", dev=0, mm=mm) > 0  # the SVA domain holds mm_count
    assert do(sys, "task_exit", tid=pid) == 0
    assert sys.mm(mm).mm_users == 0
    assert b1_no_bug_on(sys.state) is None
    do(sys, "iommu_sva_bind_device", dev=1, mm=mm, invariants=False)  # B1 on purpose
    assert (Warn.MMU_NOTIFIER_REGISTER_BUG, mm, 1) in sys.state.warnings
    assert "mmu_notifier_register" in b1_no_bug_on(sys.state)


# -- E3/E4: the ENQCMD IPI era (v5.10-v5.12) -------------------------------------------------------

def test_E4_clone_after_bind_inherits_ia32_pasid():
    """v5.10 ``fpu__copy()`` copied the XSAVE image and ``update_pasid()`` at every switch-in
    loaded ``mm->pasid``: a thread cloned after the bind runs ENQCMD without a #GP.  Today
    (``fpu_clone``: "Children never inherit PASID state") it starts clean and takes the
    #GP fixup."""
    for name, inherited in (("E4-unbind-free", True), ("current", False)):
        sys = System(_x86().config, design(name))
        pid = do(sys, "process_create")
        mm = sys.mm_of(pid)
        assert do(sys, "iommu_sva_bind_device", dev=0, mm=mm, invariants=False) > 0  # E4: X3
        t2 = do(sys, "clone_thread", tid=pid, invariants=name == "current")
        t = sys.state.tasks[t2]
        pasid = sys.mm(mm).pasid
        assert (t.msr == pasid | MSR_IA32_PASID_VALID) is inherited
        assert t.pasid_activated is inherited


# -- failing driver callbacks: the core's revert paths -------------------------------------------

def test_iommu_replace_device_pasid_err_revert_restores_the_old_domain():
    """drivers/iommu/iommu.c ``__iommu_set_group_pasid(domain, group, pasid, old)``: when a
    device's ``set_dev_pasid`` fails, the devices already switched go back to ``old``
    (``err_revert``) and ``iommu_replace_device_pasid`` returns the error, state unchanged."""
    from pasidsim import fault
    from pasidsim.fault import FaultPoint
    from pasidsim.step import step
    cfg = Config.build(iommus=[IommuUnit("u")],
                       devices=[DeviceConfig("a", iommu="u", pasid_bits=20, group="g"),
                                DeviceConfig("b", iommu="u", pasid_bits=20, group="g")],
                       drivers=[])
    sys = System(cfg)
    _ictx, (ia, _ib), ioas = ctx(sys, "a", "b")
    h1 = do(sys, "iommufd_hwpt_alloc", ioas=ioas, dev="a", pasid_compat=1)
    h2 = do(sys, "iommufd_hwpt_alloc", ioas=ioas, dev="a", pasid_compat=1)
    assert do(sys, "iommufd_device_attach", idev=ia, pasid=5, pt_id=h1) == 0
    s0 = sys.state
    act = Action.of("iommufd_device_replace", idev=ia, pasid=5, pt_id=h2)
    s_ok, ret = step(s0, act)
    assert ret == 0 and {s_ok.pasid_table[(0, 5)][0], s_ok.pasid_table[(1, 5)][0]} == {h2}
    points = fault.trail()
    assert points.count(FaultPoint.SET_DEV_PASID) == 2
    k = len(points)  # the second device's set_dev_pasid: the first is reverted to h1
    s1, ret = step(s0, act._replace(fail=k))
    assert ret < 0 and s1 == s0
    assert {s1.pasid_table[(0, 5)][0], s1.pasid_table[(1, 5)][0]} == {h1}


def test_uacce_fops_open_out_with_bond_unbinds_when_get_queue_fails():
    """drivers/misc/uacce/uacce.c ``uacce_fops_open``: ``get_queue`` fails → ``goto
    out_with_bond``: the SVA bond is unbound; the open fails with the driver's errno; today
    the mm keeps the PASID its first bind allocated (it lives until ``__mmdrop``)."""
    from pasidsim import fault
    from pasidsim.fault import FaultPoint
    from pasidsim.step import step
    cfg = Config.build(iommus=[IommuUnit("dmar0")],
                       devices=[DeviceConfig("acc", iommu="dmar0", pasid_bits=20, ats=True,
                                             pri=True, driver="uacce")],
                       drivers=[DriverConfig("uacce", kind="uacce")])
    sys = System(cfg)
    assert do(sys, "device_driver_attach", dev=0, drv=0) == 0
    pid = do(sys, "process_create")
    s0 = sys.state
    act = Action.of("dev_open", tid=pid, dev=0)
    s_ok, fd = step(s0, act)
    assert fd > 0
    k = fault.trail().index(FaultPoint.UACCE_GET_QUEUE) + 1
    s1, ret = step(s0, act._replace(fail=k))
    assert ret == -EBUSY
    assert not s1.handles and not s1.files
    mm = s1.tasks[pid].mm
    assert s1.mms[mm].pasid != IOMMU_PASID_INVALID and not s1.mms[mm].sva_domains


# -- seed designs made selectable ------------------------------------------------------------------

def _dsa_system(design_name: str) -> System:
    cfg = Config.build(iommus=[IommuUnit("dmar0")],
                       devices=[DeviceConfig("dsa0", iommu="dmar0", pasid_bits=20, ats=True,
                                             pri=True, driver="idxd")],
                       drivers=[DriverConfig("idxd", kind="idxd", mm_exit_drains=False)])
    sys = System(cfg, design(design_name))
    assert do(sys, "device_driver_attach", dev=0, drv=0) == 0
    return sys


def test_E5_enqcmd_disabled_gp_is_sigsegv():
    """v5.13 9bfecd058339 "x86/cpufeatures: Force disable X86_FEATURE_ENQCMD": no #GP fixup,
    an ENQCMD without a valid IA32_PASID is a plain #GP (SIGSEGV) even with the mm bound."""
    for name, want in (("E5-enqcmd-disabled", -14), ("current", 1)):
        sys = _dsa_system(name)
        pid = do(sys, "process_create")
        fd = do(sys, "dev_open", tid=pid, dev=0)
        assert do(sys, "mmap", tid=pid, fd=fd) > 0
        assert sys.apply(Action.of("enqcmd", tid=pid, dev=0)) == want


def test_koenig_explicit_unbind_keeps_the_pasid_until_the_driver_unbinds():
    """Seed 002 (König): at mm exit the driver is told (``mm_exit``) but the bond and its PASID
    stay, the entry non-present ("a dummy root page directory"), until the driver's explicit
    unbind; E0 frees the PASID at mm exit even when the callback could not drain."""
    for name, kept in (("koenig-explicit-unbind", True), ("E0-io_mm", False)):
        sys = _dsa_system(name)
        pid = do(sys, "process_create")
        mm = sys.mm_of(pid)
        fd = do(sys, "dev_open", tid=pid, dev=0)
        pasid = sys.mm(mm).pasid
        # a second process keeps the file (and the bond) open past A's exit
        other = do(sys, "fork", tid=pid)
        assert do(sys, "task_exit", tid=pid) == 0
        assert sys.pasid_allocated(pasid) is kept
        if kept:
            assert sys.state.pasid_table[(0, pasid)][1] == PasidEntryMode.QUIESCED
            assert not sys.state.warnings  # a callback that cannot drain yet is no leak
        assert do(sys, "task_exit", tid=other) == 0  # the last close: drain, then unbind
        assert not sys.pasid_allocated(pasid)
        assert fd > 0


def test_attach_device_owner_cnt_rule_of_seed_003():
    """Gunthorpe (seed 003): ``iommu_attach_device`` on a multi-device group succeeds when the
    caller's driver is its only DMA user (``owner_cnt == 1``) and
    ``iommu_device_use_default_domain`` then blocks the sibling's driver (-EBUSY); today
    (drivers/iommu/iommu.c ``iommu_attach_device``: ``list_count_nodes(&group->devices) != 1``)
    the attach is -EINVAL."""
    cfg = Config.build(iommus=[IommuUnit("u")],
                       devices=[DeviceConfig("hda", iommu="u", group="pch"),
                                DeviceConfig("smbus", iommu="u", group="pch")],
                       drivers=[DriverConfig("snd", kind="dma-api"),
                                DriverConfig("i801", kind="dma-api")])
    for name, attach, probe in (("current", -EINVAL, 0), ("attach-device-owner-cnt", 0, -EBUSY)):
        sys = System(cfg, design(name))
        assert do(sys, "device_driver_attach", dev=0, drv=0) == 0
        dom = do(sys, "iommu_domain_alloc_paging", dev="hda")
        assert do(sys, "iommu_attach_device", domain=dom, dev="hda") == attach
        assert do(sys, "device_driver_attach", dev=1, drv=1) == probe


# -- drivers/pci/ats.c: PASID capability control --------------------------------------------------

def test_pci_enable_pasid_errnos_in_kernel_order():
    """drivers/pci/ats.c ``pci_enable_pasid()``: a VF returns 0 iff its PF has PASID enabled
    (-EINVAL otherwise); already enabled → WARN, -EBUSY; no End-End TLP prefix, no capability,
    ACS RR|UF not on the path, an unsupported feature → -EINVAL.  ``pci_disable_pasid()`` WARNs
    when not enabled; a VF's is a no-op.  The queries read the PF's capability for a VF and
    fail -EINVAL without one; ``pci_pasid_status`` reports the enabled features."""
    from pasidsim.pci import PCI_PASID_CAP_EXEC, PCI_PASID_CAP_PRIV
    cfg = Config.build(
        iommus=[IommuUnit("u")],
        devices=[DeviceConfig("pf", iommu="u", pasid_bits=8, pasid_features=PCI_PASID_CAP_EXEC),
                 DeviceConfig("vf", iommu="u", physfn="pf"),
                 DeviceConfig("notlp", iommu="u", pasid_bits=8, eetlp_prefix=False),
                 DeviceConfig("nocap", iommu="u"),
                 DeviceConfig("noacs", iommu="u", pasid_bits=8, acs_path=False)],
        drivers=[])
    assert cfg.max_pasids[1] == 1 << 8  # the VF's limit is its PF's
    sys = System(cfg)
    assert do(sys, "pci_enable_pasid", dev="vf") == -EINVAL  # the PF is not enabled
    assert do(sys, "pci_enable_pasid", dev="notlp") == -EINVAL
    assert do(sys, "pci_enable_pasid", dev="nocap") == -EINVAL
    assert do(sys, "pci_enable_pasid", dev="noacs") == -EINVAL
    assert do(sys, "pci_enable_pasid", dev="pf", features=PCI_PASID_CAP_PRIV) == -EINVAL
    assert do(sys, "pci_enable_pasid", dev="pf", features=PCI_PASID_CAP_EXEC) == 0
    assert do(sys, "pci_pasid_status", dev="vf") == PCI_PASID_CAP_EXEC
    assert do(sys, "pci_enable_pasid", dev="vf") == 0
    before = sys.state
    assert sys.apply(Action.of("pci_enable_pasid", dev=0)) == -EBUSY
    assert sys.state.warnings[-1][0] == Warn.PCI_PASID_ENABLED
    assert sys.state.fingerprint_nowarn() == before.fingerprint_nowarn()
    assert do(sys, "pci_pasid_features", dev="vf") == PCI_PASID_CAP_EXEC
    assert do(sys, "pci_max_pasids", dev="pf") == 256
    assert do(sys, "pci_max_pasids", dev="nocap") == -EINVAL
    assert do(sys, "pci_pasid_features", dev="nocap") == -EINVAL
    assert do(sys, "pci_pasid_status", dev="nocap") == -EINVAL
    assert do(sys, "pci_disable_pasid", dev="vf") == 0
    assert do(sys, "pci_pasid_status", dev="pf") == PCI_PASID_CAP_EXEC  # the VF's was a no-op
    assert do(sys, "pci_disable_pasid", dev="pf") == 0
    assert do(sys, "pci_pasid_status", dev="pf") == 0
    assert sys.apply(Action.of("pci_disable_pasid", dev=0)) == 0
    assert sys.state.warnings[-1][0] == Warn.PCI_PASID_NOT_ENABLED
    with pytest.raises(Exception, match="physfn"):
        Config.build(iommus=[IommuUnit("u")], devices=[DeviceConfig("vf", iommu="u", physfn="nope")])


# -- drivers/misc/uacce/uacce.c --------------------------------------------------------------------

def _uacce(sva: bool = True) -> tuple[System, int]:
    cfg = Config.build(iommus=[IommuUnit("smmu0", ops="arm-smmu-v3")],
                       devices=[DeviceConfig("zip0", iommu="smmu0", pasid_bits=16,
                                             driver="hisi_zip")],
                       drivers=[DriverConfig("hisi_zip", kind="uacce", uacce_sva=sva)])
    sys = System(cfg)
    assert do(sys, "device_driver_attach", dev=0, drv=0) == 0
    return sys, do(sys, "process_create")


def test_uacce_fops_unl_ioctl_queue_states():
    """``uacce_fops_unl_ioctl``: a ZOMBIE queue is -ENXIO for every command;
    ``uacce_start_queue`` needs INIT (-EINVAL); ``uacce_put_queue`` stops a started queue
    (the device stops DMA on the PASID) and leaves a ZOMBIE with its bond; an unknown command
    without ``ops->ioctl`` is -EINVAL; not a uacce file: -ENOTTY; not open: -EBADF."""
    from pasidsim.drivers.uacce import UACCE_CMD_PUT_Q, UACCE_CMD_START_Q
    from pasidsim.errors import EBADF, ENXIO
    sys, pid = _uacce()
    fd = do(sys, "dev_open", tid=pid, dev=0)
    assert do(sys, "uacce_fops_unl_ioctl", tid=pid, fd=fd + 100, cmd=UACCE_CMD_START_Q) == -EBADF
    assert do(sys, "uacce_fops_unl_ioctl", tid=pid, fd=fd, cmd=0x5799) == -EINVAL
    assert do(sys, "uacce_fops_unl_ioctl", tid=pid, fd=fd, cmd=UACCE_CMD_START_Q) == 0
    assert do(sys, "uacce_fops_unl_ioctl", tid=pid, fd=fd, cmd=UACCE_CMD_START_Q) == -EINVAL
    assert do(sys, "uacce_fops_unl_ioctl", tid=pid, fd=fd, cmd=UACCE_CMD_PUT_Q) == 0
    assert len(sys.state.handles) == 1  # the bond stays until release
    for cmd in (UACCE_CMD_START_Q, UACCE_CMD_PUT_Q, 0x5799):
        assert do(sys, "uacce_fops_unl_ioctl", tid=pid, fd=fd, cmd=cmd) == -ENXIO
    assert do(sys, "mmap", tid=pid, fd=fd, pgoff=0) == -ENXIO
    assert do(sys, "close", tid=pid, fd=fd) == 0 and not sys.state.handles


def test_uacce_fops_open_after_remove_is_einval():
    """uacce.c ``uacce_fops_open``: the device is looked up (``xa_load``), then
    ``mutex_lock(&uacce->mutex)``; ``uacce_remove`` takes the same mutex and clears
    ``uacce->parent``, so an open that looked the device up before the remove and gets the
    mutex after it fails -EINVAL (``if (!uacce->parent)``), and its file is discarded.  Lock
    granularity: the open stops at its mutex, the unbind runs, the open continues."""
    from pasidsim.state import Granularity, initial_state
    from pasidsim.step import IN_PROGRESS, kernel_continue, step
    sys, _pid = _uacce()
    s = initial_state(sys.config, CURRENT, Granularity.LOCK)
    s, ret = step(s, Action.of("device_driver_attach", dev=0, drv=0))
    assert ret == 0
    s, tid = step(s, Action.of("process_create"))
    s, ret = step(s, Action.of("dev_open", tid=tid, dev=0), ctx=tid)
    assert ret == IN_PROGRESS and len(s.files) == 1  # looked up, waiting for uacce->mutex
    s, ret = step(s, Action.of("device_release_driver", dev=0))
    assert ret == 0 and s.devs[0].driver == -1
    s, ret = kernel_continue(s, tid)
    assert ret == -EINVAL and not s.files and not s.handles
    assert not s.procs[s.tasks[tid].pid].files


def test_uacce_vma_close_clears_the_region():
    """``uacce_vma_close``: munmap of a region's mapping clears ``q->qfrs[vm_pgoff]``, so the
    region can be mapped again (before: -EEXIST); the other region is untouched."""
    from pasidsim.errors import EEXIST
    sys, pid = _uacce()
    fd = do(sys, "dev_open", tid=pid, dev=0)
    v0 = do(sys, "mmap", tid=pid, fd=fd, pgoff=0)
    assert do(sys, "mmap", tid=pid, fd=fd, pgoff=1) > 0
    assert do(sys, "mmap", tid=pid, fd=fd, pgoff=0) == -EEXIST
    assert do(sys, "munmap", tid=pid, vma=v0) == 0
    assert do(sys, "mmap", tid=pid, fd=fd, pgoff=1) == -EEXIST
    assert do(sys, "mmap", tid=pid, fd=fd, pgoff=0) > 0


def test_uacce_file_keeps_its_file_operations_after_remove():
    """The file keeps ``file->f_op`` (uacce's) after ``uacce_remove``: the queue is put
    (ZOMBIE) and unbound, so an ioctl or mmap of the still-open file is -ENXIO
    (``uacce_fops_unl_ioctl``/``uacce_fops_mmap`` on a zombie queue), not "no driver", and
    the file's release still runs uacce's (nothing left to undo)."""
    from pasidsim.drivers.uacce import UACCE_CMD_START_Q
    from pasidsim.errors import ENXIO
    sys, pid = _uacce()
    fd = do(sys, "dev_open", tid=pid, dev=0)
    assert do(sys, "device_release_driver", dev=0) == 0
    assert not sys.state.handles and sys.state.files[fd].drv == 0
    assert do(sys, "uacce_fops_unl_ioctl", tid=pid, fd=fd, cmd=UACCE_CMD_START_Q) == -ENXIO
    assert do(sys, "mmap", tid=pid, fd=fd, pgoff=0) == -ENXIO
    assert do(sys, "close", tid=pid, fd=fd) == 0 and fd not in sys.state.files


def test_uacce_fops_mmap_regions():
    """``uacce_fops_mmap``: ``vm_pgoff >= UACCE_MAX_REGION`` → -EINVAL; a region mapped once
    (``q->qfrs[type]``) → -EEXIST; MMIO and DUS each map once."""
    from pasidsim.errors import EEXIST
    sys, pid = _uacce()
    fd = do(sys, "dev_open", tid=pid, dev=0)
    assert do(sys, "mmap", tid=pid, fd=fd, pgoff=2) == -EINVAL
    assert do(sys, "mmap", tid=pid, fd=fd, pgoff=0) > 0
    assert do(sys, "mmap", tid=pid, fd=fd, pgoff=0) == -EEXIST
    assert do(sys, "mmap", tid=pid, fd=fd, pgoff=1) > 0


def test_uacce_bind_queue_without_uacce_dev_sva():
    """``uacce_bind_queue``: ``if (!(uacce->flags & UACCE_DEV_SVA)) return 0``: the queue is
    opened with no bond and the opener's mm gets no PASID."""
    sys, pid = _uacce(sva=False)
    fd = do(sys, "dev_open", tid=pid, dev=0)
    assert fd > 0 and not sys.state.handles
    assert sys.mm(sys.mm_of(pid)).pasid == IOMMU_PASID_INVALID


# -- drivers/iommu/iommu-sva-lib.c iommu_sva_alloc_pasid() (v5.11-v6.1) ----------------------------

def test_iommu_sva_alloc_pasid_E4_refcounted_and_v5_18_range_quirk():
    """E4 (v5.11-v5.17): ``[min, max]`` inclusive for an existing PASID, each call an
    ``ioasid_get``, ``iommu_sva_free_pasid`` puts and the last put frees it.  v5.18 (E6 and
    after): no reference, and the existing PASID is checked against ``[min, max)``: a PASID
    equal to ``max`` is allocated and then refused -EOVERFLOW with the same range."""
    from pasidsim.errors import EOVERFLOW
    cfg = _x86().config
    sys = System(cfg, design("E4-unbind-free"))
    mm = sys.mm_of(do(sys, "process_create"))
    assert do(sys, "iommu_sva_alloc_pasid", mm=mm, min=0, max=5) == -EINVAL
    assert do(sys, "iommu_sva_alloc_pasid", mm=mm, min=5, max=4) == -EINVAL
    assert do(sys, "iommu_sva_alloc_pasid", mm=mm, min=3, max=3) == 0
    assert sys.mm(mm).pasid == 3
    assert do(sys, "iommu_sva_alloc_pasid", mm=mm, min=3, max=3) == 0  # inclusive: 3 <= 3
    assert do(sys, "iommu_sva_alloc_pasid", mm=mm, min=4, max=9) == -EOVERFLOW
    assert do(sys, "iommu_sva_free_pasid", mm=mm) == 0
    assert sys.pasid_allocated(3)  # one reference left
    assert do(sys, "iommu_sva_free_pasid", mm=mm, invariants=False) == 0  # E4 frees: M1t
    assert not sys.pasid_allocated(3) and sys.mm(mm).pasid == IOMMU_PASID_INVALID

    now = System(cfg, design("current"))
    mm = now.mm_of(do(now, "process_create"))
    assert do(now, "iommu_sva_alloc_pasid", mm=mm, min=3, max=3) == 0
    assert now.mm(mm).pasid == 3
    assert do(now, "iommu_sva_alloc_pasid", mm=mm, min=3, max=3) == -EOVERFLOW  # the quirk
    assert do(now, "iommu_sva_free_pasid", mm=mm) == 0 and now.pasid_allocated(3)
    other = now.mm_of(do(now, "process_create"))
    assert do(now, "iommu_sva_alloc_pasid", mm=other, min=3, max=3) == -ENOMEM



# -- drivers/iommu/intel: iopf_for_domain_set() ---------------------------------------------------

def test_intel_iopf_for_domain_set_needs_pri():
    """v6.16+ VT-d ``set_dev_pasid`` → ``iopf_for_domain_replace()`` →
    ``intel_iommu_enable_iopf()``: ``if (!info->pri_enabled) return -ENODEV``.  A domain with an
    ``iopf_handler`` (SVA; an iommufd hwpt with a fault object) cannot be attached to a device
    with PASID but no PRI; a plain paging domain can; arm-smmu-v3 accepts the SVA domain (no
    PCIe PRI path: the device runs without IOPF).  ``IommuUnit.iopf_requires_pri`` (set on the
    built-in machine's VT-d units) selects the v6.16+ VT-d behaviour."""
    cfg = Config.build(
        iommus=[IommuUnit("dmar0", iopf_requires_pri=True),
                IommuUnit("smmu0", ops="arm-smmu-v3")],
        devices=[DeviceConfig("nopri", iommu="dmar0", pasid_bits=20, ats=True),
                 DeviceConfig("withpri", iommu="dmar0", pasid_bits=20, ats=True, pri=True),
                 DeviceConfig("armnopri", iommu="smmu0", pasid_bits=20)],
        drivers=[])
    sys = System(cfg)
    mm = sys.mm_of(do(sys, "process_create"))
    nopri = cfg.device_index("nopri")
    # a failed bind keeps the mm's PASID (today's iommu_alloc_mm_data ran first)
    assert sys.apply(Action.of("iommu_sva_bind_device", dev=nopri, mm=mm)) == -ENODEV
    assert not sys.state.handles
    assert do(sys, "iommu_sva_bind_device", dev="withpri", mm=mm) > 0
    assert do(sys, "iommu_sva_bind_device", dev="armnopri", mm=mm) > 0
    ictx, (inp,), ioas = ctx(sys, "nopri")
    fq = do(sys, "iommufd_fault_alloc", ictx=ictx)
    hf = do(sys, "iommufd_hwpt_alloc", ioas=ioas, dev="nopri", pasid_compat=1, fault_id=fq)
    hp = do(sys, "iommufd_hwpt_alloc", ioas=ioas, dev="nopri", pasid_compat=1)
    assert do(sys, "iommufd_device_attach", idev=inp, pasid=7, pt_id=hf) == -ENODEV
    assert do(sys, "iommufd_device_attach", idev=inp, pasid=7, pt_id=hp) == 0
    assert do(sys, "iommufd_device_replace", idev=inp, pasid=7, pt_id=hf) == -ENODEV


# -- seed 003: iommu_attach_device_shared() / iommu_detach_device_shared() --------------------------

def test_iommu_attach_device_shared_counts_users_of_one_private_domain():
    """Seed 003 (v4 07/13): the drivers of a multi-device group that own it for a private
    domain share one attachment: the first call attaches the group, a second with the same
    domain counts, another domain is -EBUSY, an unowned group -EPERM; the last detach puts
    the group back on its core (blocking) domain; a detach too many WARNs."""
    cfg = Config.build(iommus=[IommuUnit("u")],
                       devices=[DeviceConfig("a", iommu="u", group="G"),
                                DeviceConfig("b", iommu="u", group="G")], drivers=[])
    sys = System(cfg)
    d1 = do(sys, "iommu_domain_alloc_paging", dev="a")
    d2 = do(sys, "iommu_domain_alloc_paging", dev="a")
    assert do(sys, "iommu_attach_device_shared", domain=d1, dev="a") == -EPERM
    assert do(sys, "iommu_group_claim_dma_owner", group=0, owner=77) == 0
    blocking = sys.group("G").blocking_domain
    assert do(sys, "iommu_attach_device_shared", domain=d1, dev="a") == 0
    assert do(sys, "iommu_attach_device_shared", domain=d1, dev="b") == 0
    assert do(sys, "iommu_attach_device_shared", domain=d2, dev="b") == -EBUSY
    assert sys.group("G").domain == d1 and sys.group("G").attach_cnt == 2
    assert do(sys, "iommu_detach_device_shared", domain=d1, dev="a") == 0
    assert sys.group("G").domain == d1
    assert do(sys, "iommu_detach_device_shared", domain=d1, dev="b") == 0
    assert sys.group("G").domain == blocking and sys.group("G").attach_cnt == 0
    assert do(sys, "iommu_detach_device_shared", domain=d1, dev="b") == 0
    assert sys.state.warnings[-1][0] == Warn.DETACH_WRONG_DOMAIN


# -- drivers/iommu/intel: the per-device iopf_refcount (v6.16+) -------------------------------------

def _vtd_pri() -> System:
    cfg = Config.build(
        iommus=[IommuUnit("dmar0", iopf_requires_pri=True)],
        devices=[DeviceConfig("d", iommu="dmar0", pasid_bits=20, ats=True, pri=True)],
        drivers=[])
    return System(cfg)


def test_intel_iommu_enable_iopf_counts_domains_and_registers_the_queue_once():
    """intel/iommu.c ``intel_iommu_enable_iopf()``: ``if (info->iopf_refcount) {
    info->iopf_refcount++; return 0; }`` else ``iopf_queue_add_device()`` and a count of 1;
    ``intel_iommu_disable_iopf()``: ``if (--info->iopf_refcount) return;`` else
    ``iopf_queue_remove_device()``.  The fault queue exists exactly while a domain with an
    ``iopf_handler`` is attached to the device, and the device leaves it with its last one."""
    sys = _vtd_pri()
    assert 0 not in sys.state.iopf  # not registered at probe any more
    m1 = sys.mm_of(do(sys, "process_create"))
    t2 = do(sys, "process_create")
    m2 = sys.mm_of(t2)
    h1 = do(sys, "iommu_sva_bind_device", dev="d", mm=m1)
    assert sys.state.iopf[0].registered and sys.state.iopf[0].refcount == 1
    h2 = do(sys, "iommu_sva_bind_device", dev="d", mm=m2)
    assert sys.state.iopf[0].refcount == 2
    addr = do(sys, "mmap_anon", tid=t2, npages=1)
    p2 = sys.state.mms[m2].pasid
    assert do(sys, "iommu_report_device_fault", dev="d", pasid=p2, addr=addr, grpid=1,
              last=0) == 0  # a partial request of mm 2
    assert do(sys, "iommu_sva_unbind_device", handle=h1) == 0
    assert sys.state.iopf[0].refcount == 1 and sys.state.iopf[0].partial  # still registered
    assert do(sys, "iommu_sva_unbind_device", handle=h2) == 0
    assert 0 not in sys.state.iopf  # the last one: removed, its partial request dropped
    # no fault queue: a LAST request is answered INVALID at once (F-03) and refused
    assert sys.apply(Action.of("iommu_report_device_fault", dev=0, pasid=p2, addr=addr,
                               grpid=2)) == -EINVAL


def test_intel_iommu_enable_iopf_busy_when_registered_by_hand():
    """``intel_iommu_enable_iopf()`` → ``iopf_queue_add_device()``: ``if
    (rcu_dereference_check(param->fault_param, ...)) ret = -EBUSY``: a device a caller put in
    the fault queue itself cannot take an SVA domain (the attach fails and changes nothing)."""
    sys = _vtd_pri()
    assert do(sys, "iopf_queue_add_device", dev="d") == 0
    mm = sys.mm_of(do(sys, "process_create"))
    # (a failed bind keeps the mm's PASID: iommu_alloc_mm_data ran first)
    assert sys.apply(Action.of("iommu_sva_bind_device", dev=0, mm=mm)) == -EBUSY
    assert not sys.state.handles and not sys.state.pasid_table
    assert sys.state.iopf[0].refcount == 0


def test_intel_iopf_refcount_outlives_a_queue_removal_by_hand():
    """``info->iopf_refcount`` lives in ``device_domain_info``, not in the fault queue: after a
    caller's own ``iopf_queue_remove_device`` a further SVA attach only counts (no -EBUSY, no
    re-registration: reports stay refused), and the detaches drop the count without a WARN
    (the last one's ``iopf_queue_remove_device`` finds nothing to remove)."""
    sys = _vtd_pri()
    m1 = sys.mm_of(do(sys, "process_create"))
    m2 = sys.mm_of(do(sys, "process_create"))
    h1 = do(sys, "iommu_sva_bind_device", dev="d", mm=m1)
    assert do(sys, "iopf_queue_remove_device", dev="d") == 0
    q = sys.state.iopf[0]
    assert not q.registered and q.refcount == 1
    h2 = do(sys, "iommu_sva_bind_device", dev="d", mm=m2)
    assert not sys.state.iopf[0].registered and sys.state.iopf[0].refcount == 2
    assert do(sys, "iommu_sva_unbind_device", handle=h2) == 0
    assert do(sys, "iommu_sva_unbind_device", handle=h1) == 0
    assert 0 not in sys.state.iopf and not sys.state.warnings


def test_intel_iommu_disable_iopf_without_a_count_warns():
    """``intel_iommu_disable_iopf()``: ``if (WARN_ON(!info->pri_enabled ||
    !info->iopf_refcount)) return;`` -- recorded, nothing else changes."""
    from pasidsim.iopf import intel_iommu_disable_iopf
    sys = _vtd_pri()
    s = intel_iommu_disable_iopf(sys.state, 0)
    assert s.warnings == ((Warn.IOPF_DISABLE_UNBALANCED, 0, 0),)
    assert s._replace(warnings=()) == sys.state


def test_blocking_domain_set_dev_pasid_drains_before_leaving_the_fault_queue():
    """intel/iommu.c ``blocking_domain_set_dev_pasid()`` since f0b9d31c6edd ("iommu/vt-d: Fix
    UAF on sva unbind with pending IOPFs"): ``intel_pasid_tear_down_entry()`` (which drains the
    page requests) *then* ``iopf_for_domain_remove()``: a group queued at unbind is handled
    while the domain is attached.  In v6.16 as released (17fce9d2336d, design
    ``vtd-iopf-remove-first``) the removal came first: ``iopf_queue_remove_device()`` answered
    the group INVALID and freed it (``iopf_free_group``, io-pgfault.c since the Jan 2025 leak
    fix) while its work item was still queued, and the worker then ran it: "refcount_t:
    underflow; use-after-free", invariant F3."""
    for policy, code, uaf in ((CURRENT, IopfResponse.SUCCESS, False),
                              (design("vtd-iopf-remove-first"), IopfResponse.INVALID, True)):
        cfg = _vtd_pri().config
        sys = System(cfg, policy)
        t = do(sys, "process_create")
        mm = sys.mm_of(t)
        h = do(sys, "iommu_sva_bind_device", dev="d", mm=mm)
        addr = do(sys, "mmap_anon", tid=t, npages=1)
        pasid = sys.state.mms[mm].pasid
        assert do(sys, "iommu_report_device_fault", dev="d", pasid=pasid, addr=addr, grpid=1) == 0
        assert do(sys, "iommu_sva_unbind_device", handle=h, invariants=False) == 0
        assert [r[2:] for r in sys.state.responses] == [(1, code)]
        stale = sys.state.iopf[0].stale if 0 in sys.state.iopf else ()
        assert bool(stale) == uaf
        if uaf:
            assert do(sys, "iopf_handle", dev="d", invariants=False) == 0
            assert sys.state.warnings[-1][0] == Warn.IOPF_GROUP_USE_AFTER_FREE
            assert len(sys.state.responses) == 1  # no second response: freed memory


def test_iopf_queue_remove_device_frees_the_groups_it_answers():
    """io-pgfault.c ``iopf_queue_remove_device()`` (since 2025's "Fix potential memory leak"):
    each pending group is answered INVALID once and freed (``iopf_free_group``); a worker that
    still had it queued runs on freed memory.  The caller flushes first
    (``iopf_queue_flush_dev``), then nothing is left to free."""
    sys = System(Config.build(iommus=[IommuUnit("u")],
                              devices=[DeviceConfig("d", iommu="u", pasid_bits=20, ats=True,
                                                    pri=True)], drivers=[]))
    t = do(sys, "process_create")
    h = do(sys, "iommu_sva_bind_device", dev="d", mm=sys.mm_of(t))
    addr = do(sys, "mmap_anon", tid=t, npages=1)
    pasid = sys.state.mms[sys.mm_of(t)].pasid
    assert do(sys, "iommu_report_device_fault", dev="d", pasid=pasid, addr=addr, grpid=1) == 0
    assert do(sys, "iopf_queue_flush_dev", dev="d") == 0
    assert do(sys, "iommu_report_device_fault", dev="d", pasid=pasid, addr=addr, grpid=2) == 0
    assert do(sys, "iopf_queue_remove_device", dev="d") == 0
    assert [r[2:] for r in sys.state.responses] == [(1, IopfResponse.SUCCESS),
                                                    (2, IopfResponse.INVALID)]
    assert do(sys, "iopf_handle", dev="d", invariants=False) == 0
    assert sys.state.warnings[-1] == (Warn.IOPF_GROUP_USE_AFTER_FREE, 0, pasid)
    assert len(sys.state.responses) == 2  # the freed group is not answered again
    assert h > 0


# -- seed 002 / E0: the 2018 RFC's iommu_sva_device_init() ------------------------------------------

def test_iommu_sva_device_init_errnos_and_bind_before_init():
    """The io_mm RFC's ``iommu_sva_device_init(dev, features, max_pasid, mm_exit)`` (kernel-spec
    §2.12, read in Kenneth-Lee/linux-kernel-warpdrive drivers/iommu/iommu-sva.c): no domain →
    -ENODEV; a feature bit other than ``IOMMU_SVA_FEAT_IOPF`` → -EINVAL; a second init →
    -EEXIST.  ``__iommu_sva_bind_device``: no param → -EINVAL; an existing io_mm PASID outside
    the device's range → -ERANGE.  The function does not exist in today's kernel."""
    cfg = Config.build(iommus=[IommuUnit("u")],
                       devices=[DeviceConfig("d", iommu="u", pasid_bits=20),
                                DeviceConfig("narrow", iommu="u", pasid_bits=20),
                                DeviceConfig("bare", iommu=None)], drivers=[])
    assert do(System(cfg), "iommu_sva_device_init", dev="d") == -EOPNOTSUPP  # today
    sys = System(cfg, design("E0-io_mm"))
    mm = sys.mm_of(do(sys, "process_create"))
    assert do(sys, "iommu_sva_bind_device", dev="d", mm=mm) == -EINVAL  # before init
    assert do(sys, "iommu_sva_device_init", dev="bare") == -ENODEV
    assert do(sys, "iommu_sva_device_init", dev="d", features=2) == -EINVAL
    assert do(sys, "iommu_sva_device_init", dev="d", features=1) == 0
    assert sys.state.devs[0].sva_param == (1, 1, (1 << 20) - 1)
    assert do(sys, "iommu_sva_device_init", dev="d") == -EEXIST
    assert do(sys, "iommu_sva_device_init", dev="narrow", max_pasid=1) == 0
    # mm 2 takes PASID 1, mm 3 PASID 2: outside narrow's [1, 1]
    assert do(sys, "iommu_sva_bind_device", dev="narrow", mm=mm) > 0
    other = sys.mm_of(do(sys, "process_create"))
    assert do(sys, "iommu_sva_bind_device", dev="narrow", mm=other) == -ENOSPC
    assert do(sys, "iommu_sva_bind_device", dev="d", mm=other) > 0
    assert sys.state.mms[other].pasid == 2
    assert do(sys, "iommu_sva_bind_device", dev="narrow", mm=other) == -ERANGE
    assert do(sys, "iommu_sva_device_shutdown", dev="narrow") == 0
    assert do(sys, "iommu_sva_device_shutdown", dev="narrow") == -ENODEV


def test_e0_sva_drivers_declare_the_device_at_probe():
    """E0: an SVA driver's probe calls ``iommu_sva_device_init`` (``IOMMU_SVA_FEAT_IOPF`` for a
    device with PRI) and its remove ``iommu_sva_device_shutdown``; a DMA-API driver does not."""
    cfg = Config.build(iommus=[IommuUnit("u")],
                       devices=[DeviceConfig("acc", iommu="u", pasid_bits=20, ats=True, pri=True),
                                DeviceConfig("nic", iommu="u", pasid_bits=20)],
                       drivers=[DriverConfig("uacce", kind="uacce"),
                                DriverConfig("net", kind="dma-api")])
    sys = System(cfg, design("E0-io_mm"))
    assert do(sys, "device_driver_attach", dev="acc", drv=0) == 0
    assert do(sys, "device_driver_attach", dev="nic", drv=1) == 0
    assert sys.state.devs[0].sva_param == (1, 1, (1 << 20) - 1)
    assert sys.state.devs[1].sva_param == ()
    assert do(sys, "device_release_driver", dev="acc") == 0
    assert sys.state.devs[0].sva_param == ()


# -- seed 003: the DMA-owner enum series v4 as posted (dma-owner-enum-v4) ---------------------------

def test_dma_owner_enum_v4_set_and_release():
    """v4 01/13 ``iommu_group_set_dma_owner()``: ``if (group->owner_cnt && (group->dma_owner
    != owner || group->owner_cookie != owner_cookie)) -EBUSY``, else ``owner_cnt++``: DMA-API
    users share the group without a domain or PASID check; a user owner (VFIO) with the same
    cookie counts again.  05/13: the first user claim detaches the group to NULL (no blocking
    domain in that era); the release re-attaches the default domain, but with a domain still
    attached it only WARNs (``WARN_ON(group->domain)``) and leaves it (O4)."""
    from pasidsim.invariants import o4_unowned_default
    cfg = Config.build(iommus=[IommuUnit("u")],
                       devices=[DeviceConfig("a", iommu="u", group="G"),
                                DeviceConfig("b", iommu="u", group="G")],
                       drivers=[DriverConfig("k", kind="dma-api")])
    sys = System(cfg, design("dma-owner-enum-v4"))
    g = sys.group("G")
    default = g.default_domain
    assert do(sys, "device_driver_attach", dev="a", drv=0) == 0
    assert do(sys, "device_driver_attach", dev="b", drv=0) == 0
    assert sys.group("G").owner_cnt == 2
    assert do(sys, "iommu_group_claim_dma_owner", group=0, owner=7) == -EBUSY  # E8: -EPERM
    assert do(sys, "device_release_driver", dev="a") == 0
    assert do(sys, "device_release_driver", dev="b") == 0
    assert do(sys, "iommu_group_claim_dma_owner", group=0, owner=7) == 0
    assert sys.group("G").domain == 0  # detached to NULL: DMA blocked
    assert do(sys, "iommu_group_claim_dma_owner", group=0, owner=7) == 0  # same cookie: counts
    assert do(sys, "iommu_group_claim_dma_owner", group=0, owner=8) == -EBUSY
    assert sys.group("G").owner_cnt == 2
    assert do(sys, "device_driver_attach", dev="a", drv=0) == -EBUSY  # user-owned
    d = do(sys, "iommu_domain_alloc_paging", dev="a")
    assert do(sys, "iommu_attach_group", domain=d, group=0) == 0
    assert do(sys, "iommu_group_release_dma_owner", group=0) == 0  # owner_cnt 2 -> 1
    assert do(sys, "iommu_group_release_dma_owner", group=0, invariants=False) == 0
    assert sys.state.warnings[-1][0] == Warn.RELEASE_DMA_OWNER
    assert sys.group("G").owner_cnt == 0 and sys.group("G").domain == d != default
    assert o4_unowned_default(sys.state)  # unowned, still on the user's domain
    # with the user domain detached first (as VFIO does), the default domain comes back
    sys2 = System(cfg, design("dma-owner-enum-v4"))
    assert do(sys2, "iommu_group_claim_dma_owner", group=0, owner=7) == 0
    d2 = do(sys2, "iommu_domain_alloc_paging", dev="a")
    assert do(sys2, "iommu_attach_group", domain=d2, group=0) == 0
    assert do(sys2, "iommu_detach_group", domain=d2, group=0) == 0
    assert sys2.group("G").domain == 0
    assert do(sys2, "iommu_group_release_dma_owner", group=0) == 0
    assert sys2.group("G").domain == sys2.group("G").default_domain and not sys2.state.warnings
