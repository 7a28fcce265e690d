"""idxd (DSA/IAA) plug-in: open binds, release drains the PASID *then* unbinds, remove does
the same for every open file; dedicated queues take one client."""

from __future__ import annotations

import pytest

from pasidsim import hooks
from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.errors import EBUSY
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


def test_remove_tears_down_every_open_file(dsa, stops):
    a, b = dsa.process_create(), dsa.process_create()
    dsa.dev_open(a, "dsa0")
    dsa.dev_open(b, "dsa0")
    dsa.device_release_driver("dsa0")
    assert [(d, p, att) for d, p, att, _ in stops] == [(0, 1, True), (0, 2, True)]
    assert not dsa.state.handles and all(not f.handles for f in dsa.state.files.values())
    dsa.task_exit(a)
    dsa.task_exit(b)  # release after remove: no driver, nothing to do
    assert dsa.state.ida.allocated == 0 and not dsa.state.warnings


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
