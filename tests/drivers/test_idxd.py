"""idxd (DSA/IAA) plug-in: open binds, release drains the PASID *then* unbinds, remove drains
every open file and leaves the unbind to its release; dedicated queues take one client."""

from __future__ import annotations

import pytest

from pasidsim import hooks
from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.errors import EBUSY, KernelError, Warn
from pasidsim.invariants import o1_owner_cnt
from pasidsim.system import System


@pytest.fixture
def dsa():
    cfg = Config.build(iommus=[IommuUnit("dmar0")],
                       devices=[DeviceConfig("dsa0", iommu="dmar0", pasid_bits=20),
                                DeviceConfig("dwq0", iommu="dmar0", pasid_bits=20)],
                       drivers=[DriverConfig("idxd", kind="idxd"),
                                DriverConfig("idxd-dwq", kind="idxd-dwq")])
    sys = System(cfg)
    sys.device_driver_attach("dsa0", "idxd")
    sys.device_driver_attach("dwq0", "idxd-dwq")
    return sys


@pytest.fixture
def stops(monkeypatch):
    """Record every device_stop_pasid call with what was attached at that moment."""
    calls = []
    real = hooks.device_stop_pasid

    def spy(s, dev, pasid):
        g = s.config.device_group[dev]
        attached = any(p == pasid for p, _d, _h in s.groups[g].pasid_array)
        calls.append((dev, pasid, attached, pasid in s.ida))
        return real(s, dev, pasid)

    monkeypatch.setattr(hooks, "device_stop_pasid", spy)
    return calls


def test_open_binds_and_mmap_is_dontcopy(dsa):
    a = dsa.process_create()
    fd = dsa.dev_open(a, "dsa0")
    h = dsa.state.files[fd].handles[0]
    assert dsa.iommu_sva_get_pasid(h) == 1
    vma = dsa.mmap(a, fd)
    assert [v.dontcopy for v in dsa.state.mms[dsa.mm_of(a)].vmas if v.id == vma] == [True]


def test_release_drains_before_unbind(dsa, stops):
    a = dsa.process_create()
    fd = dsa.dev_open(a, "dsa0")
    dsa.mmap(a, fd)
    dsa.enqcmd(a, "dsa0")  # a descriptor in flight on PASID 1
    assert len(dsa.state.inflight) == 1
    dsa.task_exit(a)
    assert stops == [(0, 1, True, True)]  # drained while PASID 1 was still attached
    assert not dsa.state.inflight and not dsa.state.handles and 1 not in dsa.state.ida


def test_shared_queue_double_open_shares_the_bond(dsa, stops):
    a = dsa.process_create()
    f1, f2 = dsa.dev_open(a, "dsa0"), dsa.dev_open(a, "dsa0")
    h = dsa.state.files[f1].handles[0]
    assert dsa.state.files[f2].handles == (h,) and dsa.state.handles[h].users == 2
    dsa.close(a, f1)
    assert stops == [(0, 1, True, True)] and dsa.state.handles[h].users == 1


def test_remove_drains_but_leaves_the_bonds_to_the_files_release(dsa, stops):
    """cdev.c ``idxd_user_drv_remove()`` → device.c ``idxd_drv_disable_wq()`` drains and
    disables the queue ("Clients has claim on wq") but never touches the open files: their
    SVA bonds stay until each file's own release (``idxd_cdev_release``), which still runs
    with idxd's ``file_operations`` after the driver is gone.  Read in v6.6 to v7.0-rc."""
    a, b = dsa.process_create(), dsa.process_create()
    dsa.dev_open(a, "dsa0")
    dsa.dev_open(b, "dsa0")
    dsa.device_release_driver("dsa0")
    assert [(d, p, att) for d, p, att, _ in stops] == [(0, 1, True), (0, 2, True)]
    assert len(dsa.state.handles) == 2 and dsa.state.devs[0].driver == -1
    dsa.task_exit(a)
    dsa.task_exit(b)  # idxd's release (the file's f_op): drain again, then unbind
    assert not dsa.state.handles and dsa.state.ida.allocated == 0


def test_pci_unbind_under_open_files_warns_and_keeps_owner_cnt(dsa):
    """[I] (read, not run): unbinding idxd's PCI driver while its cdev files are open leaves
    their PASIDs in the group's ``pasid_array`` when ``__device_release_driver`` runs the
    bus's ``dma_cleanup`` (``pci_dma_cleanup`` → ``iommu_device_unuse_default_domain``):
    ``WARN_ON(!group->owner_cnt || !xa_empty(&group->pasid_array))`` fires and ``owner_cnt``
    is not decremented.  A new probe is refused -EBUSY while the files are open, and the count
    stays one too high after they close (invariant O1)."""
    a = dsa.process_create()
    dsa.dev_open(a, "dsa0")
    g = dsa.config.device_group[0]
    assert dsa.state.groups[g].owner_cnt == 1
    dsa.device_release_driver("dsa0")
    assert dsa.state.warnings[-1][0] == Warn.UNUSE_DEFAULT_DOMAIN
    assert dsa.state.groups[g].owner_cnt == 1 and o1_owner_cnt(dsa.state)  # no driver bound
    with pytest.raises(KernelError) as e:
        dsa.device_driver_attach("dsa0", "idxd")  # PASIDs still attached
    assert e.value.errno == EBUSY
    dsa.task_exit(a)
    assert not dsa.state.groups[g].pasid_array and dsa.state.groups[g].owner_cnt == 1
    dsa.device_driver_attach("dsa0", "idxd")
    assert dsa.state.groups[g].owner_cnt == 2 and o1_owner_cnt(dsa.state)  # leaked for good


def test_dedicated_queue_has_one_client(dsa):
    a, b = dsa.process_create(), dsa.process_create()
    fd = dsa.dev_open(a, "dwq0")
    assert dsa.apply(dsa_action("dev_open", tid=b, dev=1)) == -EBUSY
    dsa.close(a, fd)
    assert dsa.dev_open(b, "dwq0") > 0


def test_bind_error_fails_the_open():
    cfg = Config.build(iommus=[IommuUnit("i0")], devices=[DeviceConfig("old", iommu="i0")],
                       drivers=[DriverConfig("idxd", kind="idxd")])
    sys = System(cfg)
    sys.device_driver_attach("old", "idxd")
    a = sys.process_create()
    from pasidsim.errors import ENOSPC
    assert sys.apply(dsa_action("dev_open", tid=a, dev=0)) == -ENOSPC  # no PASID capability
    assert not sys.state.files


@pytest.mark.parametrize("drains", [True, False])
def test_e0_mm_exit_honours_mm_exit_drains(drains, stops):
    """E0: with ``mm_exit_drains`` the callback drains the PASID while it is still attached
    and the PASID is freed with nothing queued; without, the callback returns at once and the
    PASID goes back to the IDR with the descriptor still queued (seed 002)."""
    from pasidsim.designs import DESIGNS
    cfg = Config.build(iommus=[IommuUnit("dmar0")],
                       devices=[DeviceConfig("dsa0", iommu="dmar0", pasid_bits=20)],
                       drivers=[DriverConfig("idxd", kind="idxd", mm_exit_drains=drains)])
    sys = System(cfg, DESIGNS["E0-io_mm"])
    sys.device_driver_attach("dsa0", "idxd")
    a = sys.process_create()
    fd = sys.dev_open(a, "dsa0")
    sys.mmap(a, fd)
    assert sys.enqcmd(a, "dsa0") == 1
    sys.task_exit(a)
    assert 1 not in sys.state.ida  # E0: removed from the IDR at mm exit either way
    from pasidsim.errors import Warn
    if drains:
        # drained by mm_exit while PASID 1 was attached and allocated; release finds no bond
        assert stops == [(0, 1, True, True)] and not sys.state.inflight
        assert sys.state.warnings == ()
    else:
        assert stops == [] and [d.pasid for d in sys.state.inflight.values()] == [1]
        # mm_exit returned -EBUSY: dev_WARN "possible leak of PASID" (device 0, PASID 1)
        assert sys.state.warnings == ((Warn.MM_EXIT_LEAK, 0, 1),)


def dsa_action(name, **kw):
    from pasidsim.step import Action
    return Action.of(name, **kw)


def test_idxd_enable_system_pasid_and_its_failures():
    """init.c ``idxd_enable_system_pasid()``: ``iommu_get_domain_for_dev`` NULL → -EPERM;
    ``iommu_alloc_global_pasid`` INVALID → -ENOSPC; else the device's current domain is
    attached at the new PASID.  The probe only warns on failure ("No in-kernel DMA with
    PASID"); ``idxd_disable_system_pasid()`` at remove detaches and frees it."""
    from pasidsim.drivers.idxd import idxd_enable_system_pasid
    from pasidsim.errors import ENOSPC, EPERM
    cfg = Config.build(iommus=[IommuUnit("dmar0")],
                       devices=[DeviceConfig("dsa0", iommu="dmar0", pasid_bits=20),
                                DeviceConfig("nocap", iommu="dmar0"),
                                DeviceConfig("bare", iommu=None)],
                       drivers=[DriverConfig("idxd", kind="idxd", system_pasid=True)])
    sys = System(cfg)
    s0 = sys.state
    assert idxd_enable_system_pasid(s0, 2) == (s0, -EPERM)  # no IOMMU: no domain
    assert idxd_enable_system_pasid(s0, 1) == (s0, -ENOSPC)  # no PASID capability
    for dev in ("dsa0", "nocap", "bare"):
        sys.device_driver_attach(dev, "idxd")  # every probe succeeds
    assert sys.state.devs[0].kernel_pasid == 1 and 1 in sys.state.ida
    g = cfg.device_group[0]
    assert sys.state.groups[g].pasid_array == ((1, sys.state.groups[g].default_domain, 0),)
    assert sys.state.devs[1].kernel_pasid == 0 and sys.state.devs[2].kernel_pasid == 0
    sys.device_release_driver("dsa0")
    assert 1 not in sys.state.ida and not sys.state.groups[g].pasid_array
    assert not sys.state.warnings and sys.state.groups[g].owner_cnt == 0
