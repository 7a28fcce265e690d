"""The facade's methods show the kernel function's parameters (not ``*args, **kwargs``)."""

from __future__ import annotations

import inspect

import pytest

from pasidsim.errors import ModelUsageError
from pasidsim.examples import demo_config as default_config
from pasidsim.step import OPS
from pasidsim.system import System


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_method_has_the_operations_signature(op):
    sig = inspect.signature(getattr(System, op.name))
    names = list(sig.parameters)
    assert names[0] == "self"
    assert tuple(names[1:]) == op.params
    for p, d in zip(op.params, op.defaults):
        assert sig.parameters[p].default == d


def test_bind_signature_names_devices_by_name_or_index():
    sig = inspect.signature(System.iommu_sva_bind_device)
    assert str(sig) == ("(self, dev: 'int | str', mm: 'int', drvdata: 'int' = 0, "
                        "flags: 'int' = 0) -> 'int'")


def test_positional_and_keyword_calls_agree_and_misuse_is_refused():
    a, b = System(default_config()), System(default_config())
    assert a.process_create() == b.process_create()
    with pytest.raises(ModelUsageError):
        a.fork(1, tid=1)  # given twice
    with pytest.raises(ModelUsageError):
        a.fork(1, 2)  # too many


@pytest.mark.parametrize("name,kwargs", [
    ("dev_open", {"dev": 99}),
    ("dev_open", {"dev": -1}),
    ("device_driver_attach", {"dev": 0, "drv": 99}),
    ("iommu_group_claim_dma_owner", {"group": -1, "owner": 1}),
    ("iommu_device_use_default_domain", {"dev": 10**6}),
])
def test_an_index_out_of_range_is_refused_and_changes_nothing(name, kwargs):
    """``dev=-1`` must not act on the last device (Python's negative index), nor a large
    index raise IndexError from deep inside the model: the facade refuses it, state
    untouched."""
    s = System(default_config())
    tid = s.process_create()
    if name == "dev_open":
        kwargs = dict(kwargs, tid=tid)
    before = s.state
    with pytest.raises(ModelUsageError, match=next(iter(k for k in kwargs if k != "tid"))):
        s.call(name, **kwargs)
    assert s.state is before


def test_a_hand_built_action_with_wrong_arguments_is_refused():
    from pasidsim.step import Action
    s = System(default_config())
    before = s.state
    for bad in (Action(10**4, ()), Action(0, (1, 2, 3, 4, 5, 6, 7, 8, 9)),
                Action(OPS.index(next(o for o in OPS if o.name == "dev_open")), ("x", 0))):
        with pytest.raises(ModelUsageError):
            s.apply(bad)
    assert s.state is before


@pytest.mark.parametrize("design", ["current", "E4-unbind-free"])
def test_gp_on_an_unknown_task_is_misuse_under_every_design(design):
    """Issue #14: under a design without the #GP fixup (E4: MSRs by IPI) the unknown task
    surfaced as a KeyError."""
    from pasidsim.designs import get_policy
    s = System(default_config(), get_policy(design))
    before = s.state
    with pytest.raises(ModelUsageError, match="task 999"):
        s.exc_general_protection(999)
    assert s.state is before


@pytest.mark.parametrize("attach,site", [("default", 1), ("pasid", 4)])
def test_freeing_a_domain_in_use_is_recorded_for_d1_and_dma_still_works(attach, site):
    """#14: freeing a group's attached default domain returned 0 and a later DMA crashed
    with KeyError.  The kernel does not check either: the free is recorded as
    DOMAIN_USE_AFTER_FREE (invariant D1 reports it), the record is kept because the IOMMU
    still walks it, and nothing else changes."""
    from pasidsim.config import Config, DeviceConfig, IommuUnit
    from pasidsim.errors import Warn
    from pasidsim.invariants import d1_no_domain_freed_in_use
    from pasidsim.step import Action
    from pasidsim.system import System
    cfg = Config.build(iommus=[IommuUnit("dmar0")],
                       devices=[DeviceConfig("d0", iommu="dmar0", pasid_bits=20)])
    sys = System(cfg)
    dom = 1  # the group's default domain
    if attach == "pasid":
        dom = sys.apply(Action.of("iommu_domain_alloc_paging", dev=0))
        assert sys.apply(Action.of("iommu_attach_device_pasid", domain=dom, dev=0,
                                   pasid=5)) == 0
    before = sys.state
    assert d1_no_domain_freed_in_use(before) is None
    assert sys.apply(Action.of("iommu_domain_free", domain=dom)) == 0
    after = sys.state
    assert after.warnings == before.warnings + ((Warn.DOMAIN_USE_AFTER_FREE, dom, site),)
    assert after._replace(warnings=before.warnings) == before and dom in after.domains
    assert f"iommu_domain {dom} freed while still" in d1_no_domain_freed_in_use(after)
    assert isinstance(sys.apply(Action.of("dma", dev=0, pasid=0, addr=0x1000)), int)
    if attach == "pasid":
        sys.apply(Action.of("iommu_detach_device_pasid", domain=dom, dev=0, pasid=5))
        n = len(sys.state.warnings)
        assert sys.apply(Action.of("iommu_domain_free", domain=dom)) == 0
        assert dom not in sys.state.domains and len(sys.state.warnings) == n
