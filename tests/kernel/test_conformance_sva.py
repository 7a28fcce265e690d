"""Conformance scenarios S-*, M-*, X-* (kernel-spec §8) on today's design."""

import errno

import pytest

from pasidsim.config import DeviceConfig, IommuUnit
from pasidsim.errors import KernelError
from pasidsim.policy import CURRENT
from pasidsim.state import (IOMMU_PASID_INVALID, MSR_IA32_PASID_VALID, DomainType, MmState,
                            PasidEntryMode)

from ..conftest import assert_invariants, machine, portal


def _slot(sys, dev, pasid):
    g = sys.group_of(dev)
    for p, dom, h in sys.state.groups[g].pasid_array:
        if p == pasid:
            return dom, h
    return None


def test_S_01_basic():
    sys = machine(("d", 20))
    mm = sys.mm_of(sys.process_create())
    h = sys.iommu_sva_bind_device("d", mm)
    p = sys.iommu_sva_get_pasid(h)
    assert p >= 1
    dom, hh = _slot(sys, "d", p)
    assert hh == h and sys.state.domains[dom].type == DomainType.SVA
    assert sys.state.pasid_table[(0, p)] == (dom, PasidEntryMode.TRANSLATE)
    assert_invariants(sys)
    sys.iommu_sva_unbind_device(h)
    assert _slot(sys, "d", p) is None and dom not in sys.state.domains
    assert (0, p) not in sys.state.pasid_table
    assert sys.mm(mm).pasid == p and p in sys.state.ida  # kept until __mmdrop
    assert_invariants(sys)


def test_S_02_double_bind_same_dev_mm():
    sys = machine(("d", 20))
    mm = sys.mm_of(sys.process_create())
    h1 = sys.iommu_sva_bind_device("d", mm)
    h2 = sys.iommu_sva_bind_device("d", mm)
    assert h1 == h2 and sys.state.handles[h1].users == 2
    p = sys.iommu_sva_get_pasid(h1)
    sys.iommu_sva_unbind_device(h1)
    assert _slot(sys, "d", p) == (sys.state.handles[h2].domain, h2)
    sys.iommu_sva_unbind_device(h2)
    assert _slot(sys, "d", p) is None and not sys.state.handles


def test_S_02_E12_before_handle_sharing_fix():
    sys = machine(("d", 20), policy=CURRENT.but(name="E12-pre", handle_sharing=False))
    mm = sys.mm_of(sys.process_create())
    sys.iommu_sva_bind_device("d", mm)
    with pytest.raises(KernelError) as e:
        sys.iommu_sva_bind_device("d", mm)
    assert e.value.errno == errno.EBUSY


def test_S_03_two_devices_share_a_domain():
    sys = machine(("d1", 20), ("d2", 20))
    mm = sys.mm_of(sys.process_create())
    h1 = sys.iommu_sva_bind_device("d1", mm)
    h2 = sys.iommu_sva_bind_device("d2", mm)
    assert h1 != h2
    assert sys.iommu_sva_get_pasid(h1) == sys.iommu_sva_get_pasid(h2)
    dom = sys.state.handles[h1].domain
    assert sys.state.handles[h2].domain == dom and sys.state.domains[dom].users == 2
    assert sys.mm(mm).sva_domains == (dom,) and sys.mm(mm).mm_count == 2
    sys.iommu_sva_unbind_device(h1)
    assert sys.state.domains[dom].users == 1
    sys.iommu_sva_unbind_device(h2)
    assert dom not in sys.state.domains and sys.mm(mm).mm_count == 1


def test_S_04_two_iommu_instances():
    iommus = [IommuUnit("X", ops="intel-iommu"), IommuUnit("Y", ops="arm-smmu-v3")]
    sys = machine(DeviceConfig("d1", iommu="X", pasid_bits=20),
                  DeviceConfig("d2", iommu="Y", pasid_bits=20), iommus=iommus)
    mm = sys.mm_of(sys.process_create())
    sys.iommu_sva_bind_device("d1", mm)
    sys.iommu_sva_bind_device("d2", mm)
    assert len(sys.mm(mm).sva_domains) == 2 and sys.mm(mm).mm_count == 3
    d1 = sys.mm(mm).sva_domains[0]
    with pytest.raises(KernelError) as e:  # X's domain on Y's device: incompatible ops
        sys.iommu_attach_device_pasid(d1, "d2", 77)
    assert e.value.errno == errno.EINVAL
    assert_invariants(sys)


def test_S_05_multi_device_group():
    sys = machine(DeviceConfig("d1", pasid_bits=20, group="G", iommu="iommu0"),
                  DeviceConfig("d2", pasid_bits=20, group="G", iommu="iommu0"),
                  DeviceConfig("e1", pasid_bits=20, group="H", iommu="iommu0"),
                  DeviceConfig("e3", pasid_bits=0, group="H", iommu="iommu0"))
    mm = sys.mm_of(sys.process_create())
    h1 = sys.iommu_sva_bind_device("d1", mm)
    p = sys.iommu_sva_get_pasid(h1)
    assert (0, p) in sys.state.pasid_table and (1, p) in sys.state.pasid_table
    h2 = sys.iommu_sva_bind_device("d2", mm)
    assert h2 == h1 and sys.state.handles[h1].users == 2 and sys.state.handles[h1].dev == 0
    sys.iommu_sva_bind_device("e1", mm)
    assert (2, p) in sys.state.pasid_table and (3, p) not in sys.state.pasid_table
    assert_invariants(sys)


def test_S_06_group_member_limit():
    sys = machine(DeviceConfig("d1", pasid_bits=20, group="G", iommu="iommu0"),
                  DeviceConfig("d2", pasid_bits=3, group="G", iommu="iommu0"),  # 8 PASIDs
                  DeviceConfig("x", pasid_bits=20, iommu="iommu0"))
    for _ in range(8):
        sys.iommu_alloc_global_pasid("x")  # PASIDs 1..8 taken
    mm = sys.mm_of(sys.process_create())
    with pytest.raises(KernelError) as e:
        sys.iommu_sva_bind_device("d1", mm)
    assert e.value.errno == errno.EINVAL
    assert sys.mm(mm).pasid == 9  # kept (M-06)
    sys2 = machine(DeviceConfig("d1", pasid_bits=20, group="G", iommu="iommu0"),
                   DeviceConfig("d2", pasid_bits=3, group="G", iommu="iommu0"),
                   DeviceConfig("x", pasid_bits=20, iommu="iommu0"))
    sys2.iommu_alloc_global_pasid("x")
    sys2.iommu_alloc_global_pasid("x")
    mm2 = sys2.mm_of(sys2.process_create())
    h = sys2.iommu_sva_bind_device("d1", mm2)
    assert sys2.iommu_sva_get_pasid(h) == 3


def test_S_09_no_sva_support_keeps_pasid():
    sys = machine(("d", 20), iommus=[IommuUnit("iommu0", sva=False)])
    mm = sys.mm_of(sys.process_create())
    with pytest.raises(KernelError) as e:
        sys.iommu_sva_bind_device("d", mm)
    assert e.value.errno == errno.EOPNOTSUPP
    assert sys.mm(mm).pasid == 1 and 1 in sys.state.ida
    assert not sys.mm(mm).sva_domains and sys.mm(mm).mm_count == 1


def test_S_11_no_group():
    sys = machine(DeviceConfig("d", iommu=None, pasid_bits=20))
    mm = sys.mm_of(sys.process_create())
    before = sys.state
    with pytest.raises(KernelError) as e:
        sys.iommu_sva_bind_device("d", mm)
    assert e.value.errno == errno.ENODEV and sys.state == before


def test_M_01_exit_while_bound():
    sys = machine(("d", 20))
    t = sys.process_create()
    mm = sys.mm_of(t)
    h = sys.iommu_sva_bind_device("d", mm)  # the driver's bond, held by an fd elsewhere
    p = sys.iommu_sva_get_pasid(h)
    sys.task_exit(t)
    rec = sys.mm(mm)
    assert rec.state == MmState.EXITED and rec.mm_users == 0 and rec.mm_count == 1
    assert sys.state.pasid_table[(0, p)][1] == PasidEntryMode.QUIESCED
    assert p in sys.state.ida
    assert_invariants(sys)
    sys.iommu_sva_unbind_device(h)
    assert sys.mm(mm) is None  # __mmdrop ran inside unbind
    assert p not in sys.state.ida
    assert_invariants(sys)


def test_M_04_fork_gives_fresh_mm():
    sys = machine(("d", 20))
    parent = sys.process_create()
    hp = sys.iommu_sva_bind_device("d", sys.mm_of(parent))
    p = sys.iommu_sva_get_pasid(hp)
    child = sys.fork(parent)
    cmm = sys.mm_of(child)
    assert cmm != sys.mm_of(parent) and sys.mm(cmm).pasid == IOMMU_PASID_INVALID
    hc = sys.iommu_sva_bind_device("d", cmm)
    p2 = sys.iommu_sva_get_pasid(hc)
    assert p2 != p
    sys.iommu_sva_unbind_device(hp)
    sys.task_exit(parent)
    assert p not in sys.state.ida and p2 in sys.state.ida
    assert_invariants(sys)


def test_M_06_failed_bind_keeps_pasid():
    iommus = [IommuUnit("a"), IommuUnit("b", sva=False)]
    sys = machine(DeviceConfig("nosva", iommu="b", pasid_bits=20),
                  DeviceConfig("ok", iommu="a", pasid_bits=20), iommus=iommus)
    mm = sys.mm_of(sys.process_create())
    with pytest.raises(KernelError):
        sys.iommu_sva_bind_device("nosva", mm)
    p = sys.mm(mm).pasid
    assert p == 1
    h = sys.iommu_sva_bind_device("ok", mm)
    assert sys.iommu_sva_get_pasid(h) == p


def test_M_07_enqcmd_after_unbind():
    sys = machine(("d", 20))
    t = sys.process_create()
    portal(sys, t, "d")
    mm = sys.mm_of(t)
    h = sys.iommu_sva_bind_device("d", mm)
    p = sys.iommu_sva_get_pasid(h)
    assert sys.enqcmd(t, "d") == p
    sys.iommu_sva_unbind_device(h)
    assert sys.state.tasks[t].msr == p | MSR_IA32_PASID_VALID
    other = sys.mm_of(sys.process_create())
    h2 = sys.iommu_sva_bind_device("d", other)
    assert sys.iommu_sva_get_pasid(h2) != p
    assert p in sys.state.ida
    assert_invariants(sys)


def test_X_01_first_enqcmd_fixes_up():
    sys = machine(("d", 20))
    t = sys.process_create()
    portal(sys, t, "d")
    h = sys.iommu_sva_bind_device("d", sys.mm_of(t))
    p = sys.iommu_sva_get_pasid(h)
    assert not sys.state.tasks[t].pasid_activated
    assert sys.enqcmd(t, "d") == p
    task = sys.state.tasks[t]
    assert task.pasid_activated and task.msr == p | MSR_IA32_PASID_VALID


def test_X_02_unrelated_gp_is_sigsegv():
    sys = machine(("d", 20))
    t = sys.process_create()
    portal(sys, t, "d")
    sys.iommu_sva_bind_device("d", sys.mm_of(t))
    sys.enqcmd(t, "d")
    with pytest.raises(KernelError) as e:
        sys.exc_general_protection(t)
    assert e.value.errno == errno.EFAULT
    assert t not in sys.state.tasks and t not in sys.state.procs  # killed by SIGSEGV


def test_X_03_no_pasid_sigsegv():
    sys = machine(("d", 20))
    t = sys.process_create()
    portal(sys, t, "d")
    with pytest.raises(KernelError) as e:
        sys.enqcmd(t, "d")
    assert e.value.errno == errno.EFAULT and t not in sys.state.tasks


def test_X_04_new_thread_takes_its_own_gp():
    sys = machine(("d", 20))
    t = sys.process_create()
    portal(sys, t, "d")
    h = sys.iommu_sva_bind_device("d", sys.mm_of(t))
    p = sys.iommu_sva_get_pasid(h)
    sys.enqcmd(t, "d")
    t2 = sys.clone_thread(t)
    assert not sys.state.tasks[t2].pasid_activated and sys.state.tasks[t2].msr == 0
    assert sys.mm(sys.mm_of(t)).mm_users == 2
    assert sys.enqcmd(t2, "d") == p and sys.state.tasks[t2].pasid_activated


def test_X_05_fork_child_has_no_pasid():
    sys = machine(("d", 20))
    t = sys.process_create()
    portal(sys, t, "d")
    sys.iommu_sva_bind_device("d", sys.mm_of(t))
    sys.enqcmd(t, "d")
    c = sys.fork(t)
    assert sys.state.tasks[c].msr == 0 and not sys.state.tasks[c].pasid_activated
    with pytest.raises(KernelError) as e:
        sys.enqcmd(c, "d")
    assert e.value.errno == errno.EFAULT
    c2 = sys.fork(t)
    h = sys.iommu_sva_bind_device("d", sys.mm_of(c2))
    assert sys.enqcmd(c2, "d") == sys.iommu_sva_get_pasid(h)


def test_uacce_fd_inherited_across_fork_keeps_pasid_until_last_close():
    """H1 on today's kernel: the child's inherited fd keeps the bond; the PASID survives the
    parent's exit and is freed only when the last reference to the mm goes."""
    sys = machine(("acc", 20))
    sys.device_driver_attach("acc", "uacce")
    parent = sys.process_create()
    pmm = sys.mm_of(parent)
    fd = sys.dev_open(parent, "acc")
    p = sys.iommu_sva_get_pasid(sys.state.files[fd].handles[0])
    sys.mmap(parent, fd)
    child = sys.fork(parent)
    sys.task_exit(parent)
    assert sys.mm(pmm).state == MmState.EXITED and p in sys.state.ida
    assert sys.state.pasid_table[(0, p)][1] == PasidEntryMode.QUIESCED
    assert_invariants(sys, scope=None)
    sys.task_exit(child)
    assert sys.mm(pmm) is None and p not in sys.state.ida and not sys.state.files
    assert_invariants(sys, scope=None)


def test_S_08_lam_mm():
    sys = machine(("d", 20))
    t = sys.process_create()
    mm = sys.mm_of(t)
    sys.arch_prctl_enable_tagged_addr(t)
    before = sys.state
    with pytest.raises(KernelError) as e:
        sys.iommu_sva_bind_device("d", mm)
    assert e.value.errno == errno.EBUSY and sys.state == before
    sys.arch_prctl_force_tagged_sva(t)
    h = sys.iommu_sva_bind_device("d", mm)
    assert sys.iommu_sva_get_pasid(h) == 1
    # LAM cannot be enabled on an mm that already has a PASID (unless forced)
    t2 = sys.process_create()
    sys.iommu_sva_bind_device("d", sys.mm_of(t2))
    with pytest.raises(KernelError) as e:
        sys.arch_prctl_enable_tagged_addr(t2)
    assert e.value.errno == errno.EINVAL
    t3 = sys.process_create()
    sys.clone_thread(t3)
    with pytest.raises(KernelError) as e:
        sys.arch_prctl_enable_tagged_addr(t3)
    assert e.value.errno == errno.EBUSY


def test_S_13_pci_reset_fence():
    sys = machine(DeviceConfig("d1", iommu="iommu0", group="G", pasid_bits=20, ats=True),
                  DeviceConfig("d2", iommu="iommu0", group="G", pasid_bits=20, ats=True))
    m1 = sys.mm_of(sys.process_create())
    h = sys.iommu_sva_bind_device("d1", m1)
    p = sys.iommu_sva_get_pasid(h)
    sys.pci_dev_reset_iommu_prepare("d1")
    assert (0, p) not in sys.state.pasid_table and (1, p) in sys.state.pasid_table
    assert sys.group("G").recovery_cnt == 1 and sys.group("G").pasid_array  # retained
    m2 = sys.mm_of(sys.process_create())
    before = sys.state.fingerprint_nowarn()
    with pytest.raises(KernelError) as e:
        sys.iommu_sva_bind_device("d2", m2)
    assert e.value.errno == errno.EBUSY
    assert sys.state.fingerprint_nowarn() != before  # the mm keeps its new PASID (M-06)
    sys.pci_dev_reset_iommu_prepare("d1")  # nested
    sys.pci_dev_reset_iommu_done("d1")
    assert sys.group("G").recovery_cnt == 1
    sys.pci_dev_reset_iommu_done("d1")
    assert sys.group("G").recovery_cnt == 0 and (0, p) in sys.state.pasid_table
    assert sys.iommu_sva_bind_device("d2", m2) > 0
    assert_invariants(sys)


def test_S_10_x86_sva_disabled_E15():
    from pasidsim.designs import DESIGNS
    sys = machine(("d", 20), policy=DESIGNS["E15-x86-sva-disabled"])
    mm = sys.mm_of(sys.process_create())
    with pytest.raises(KernelError) as e:
        sys.iommu_sva_bind_device("d", mm)
    assert e.value.errno == errno.EOPNOTSUPP and sys.mm(mm).pasid == IOMMU_PASID_INVALID
    e16 = machine(("d", 20))  # E16+: allowed again
    assert e16.iommu_sva_bind_device("d", e16.mm_of(e16.process_create())) > 0


def test_M_08_kva_invalidation_reaches_every_sva_mm():
    sys = machine(DeviceConfig("d", iommu="iommu0", pasid_bits=20, ats=True))
    assert sys.iommu_sva_invalidate_kva_range() == 0  # no SVA mm: nothing to do
    t = sys.process_create()
    h = sys.iommu_sva_bind_device("d", sys.mm_of(t))
    p = sys.iommu_sva_get_pasid(h)
    addr = sys.mmap_anon(t, 1, 3)
    sys.touch(t, addr, 2)
    sys.dma("d", p, addr, 1)
    assert sys.state.atc and sys.state.iotlb
    assert sys.iommu_sva_invalidate_kva_range() == 1
    assert not sys.state.atc and not sys.state.iotlb
    sys.iommu_sva_unbind_device(h)
    assert sys.iommu_sva_invalidate_kva_range() == 0


def test_S_12_legacy_singleton_group_E1():
    from pasidsim.designs import DESIGNS
    sys = machine(DeviceConfig("d1", iommu="iommu0", group="G", pasid_bits=20),
                  DeviceConfig("d2", iommu="iommu0", group="G", pasid_bits=20),
                  DeviceConfig("solo", iommu="iommu0", pasid_bits=20),
                  policy=DESIGNS["E1-singleton-group"])
    mm = sys.mm_of(sys.process_create())
    with pytest.raises(KernelError) as e:
        sys.iommu_sva_bind_device("d1", mm)
    assert e.value.errno == errno.EINVAL and sys.mm(mm).pasid == IOMMU_PASID_INVALID
    assert sys.iommu_sva_bind_device("solo", mm) > 0


def test_M10_two_devices_of_one_iommu_share_the_mms_sva_domain():
    """iommu_sva_bind_device walks iommu_mm->sva_domains first: a second device behind a
    compatible IOMMU joins the mm's domain (users 2); invariant M10 flags a state where the
    same mm has two domains for one IOMMU driver (the walk skipped)."""
    from pasidsim.invariants import m10_one_sva_domain_per_iommu
    sys = machine(("a", 20), ("b", 20))
    mm = sys.mm_of(sys.process_create())
    ha, hb = sys.iommu_sva_bind_device("a", mm), sys.iommu_sva_bind_device("b", mm)
    pasid = sys.mm(mm).pasid
    (da, _), (db, _) = _slot(sys, "a", pasid), _slot(sys, "b", pasid)
    assert da == db and sys.state.domains[da].users == 2
    assert m10_one_sva_domain_per_iommu(sys.state) is None
    s = sys.state
    twin = max(s.domains) + 1  # the state a bind that allocated a second domain would leave
    g = sys.group_of("b")
    arr = tuple((p, twin if p == pasid else d, h) for p, d, h in s.groups[g].pasid_array)
    groups = s.groups[:g] + (s.groups[g]._replace(pasid_array=arr),) + s.groups[g + 1:]
    bad = s._replace(domains=s.domains.set(twin, s.domains[da]), groups=groups)
    assert "two SVA domains" in m10_one_sva_domain_per_iommu(bad)
    sys.iommu_sva_unbind_device(ha), sys.iommu_sva_unbind_device(hb)
