"""Fuzz tests of the library: ``System`` and ``step`` (issue #14, item 5).

Random call sequences over every operation of ``pasidsim.step.OPS`` -- through the facade's
methods (by keyword and by position), ``System.call``, ``System.apply``, the views and
``step()`` with hand-built actions -- on several machines and designs, from boot or from the
states the built-in scenarios pass through.  Documented outcomes: an int, a ``KernelError``
(the facade's ``-errno``), a ``KernelDeadlock``, or a ``ModelUsageError`` naming the argument
that leaves the state unchanged.  The regression tests at the end are the crashes found.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from pasidsim.errors import KernelDeadlock, KernelError, ModelInternalError, ModelUsageError
from pasidsim.machines import default_config
from pasidsim.step import OP_BY_NAME, OPS, Action, step
from pasidsim.system import System

from . import harness as h

FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck))

#: Where a sequence starts: a state a built-in scenario passes through, or a machine at boot
#: (deferred: the scenarios run when the first example is drawn, not at collection).
STARTS = st.deferred(lambda: st.sampled_from(sorted(h.scenario_states())
                                             + [name for name, _cfg in h.machines()]))
#: Any argument a caller might pass.
values = (st.integers(-3, 12) | st.integers(-(2 ** 70), 2 ** 70) | st.sampled_from(h.EDGE_INTS)
          | st.none() | st.booleans() | st.floats() | st.text(max_size=6) | st.binary(max_size=2)
          | st.lists(st.integers(), max_size=2) | st.sampled_from(["dsa0", "gpu0", "G0"]))


def _system(start: str, design: str = "current") -> System:
    from pasidsim.designs import DESIGNS
    if start in h.scenario_states():
        cfg, policy, state = h.scenario_states()[start]
        sysm = System(cfg, policy)
        sysm.state = state
        return sysm
    return System(dict(h.machines())[start], DESIGNS[design])


@settings(max_examples=500, **FUZZ)
@given(start=STARTS, design=st.sampled_from(["current", "E4-unbind-free",
                                                              "E0-io_mm", "H7-iommu_mm-aliased",
                                                              "cyclic", "pending-free"]),
       seed=st.integers(0, 2 ** 32 - 1), length=st.sampled_from([10, 40, 80]))
def test_call_sequences(start, design, seed, length):
    """The long run's call sequences (their calls depend on the state they meet)."""
    is_machine = start not in h.scenario_states()
    with h.time_limit(30):
        h.check_library((start, design if is_machine else "", seed, length))


def _outcome(sysm: System, call) -> str:
    before, n = sysm.state, len(sysm.trace)
    try:
        ret = call()
    except KernelError as e:
        assert e.errno > 0
        return "errno"
    except (ModelUsageError, KernelDeadlock) as e:
        assert sysm.state is before and len(sysm.trace) == n, e
        assert "\n" not in str(e)
        return "usage"
    except ModelInternalError as e:
        if h.known_bug(e) is None:
            raise
        return "known"
    assert type(ret) is int
    return "ok"


@settings(max_examples=800, **FUZZ)
@given(start=STARTS, name=st.sampled_from(sorted(OP_BY_NAME)),
       data=st.data())
def test_any_arguments_to_any_operation(start, name, data):
    """Every operation with any argument values, by keyword, by position and through
    ``call``."""
    sysm = _system(start)
    op = OP_BY_NAME[name]
    keys = st.sampled_from(list(op.params) + ["fail", "bogus"])
    kwargs = data.draw(st.dictionaries(keys, values, max_size=len(op.params) + 1), label="kw")
    how = data.draw(st.sampled_from(["method", "positional", "call"]), label="how")
    if how == "method":
        _outcome(sysm, lambda: getattr(sysm, name)(**kwargs))
    elif how == "positional":
        _outcome(sysm, lambda: getattr(sysm, name)(*kwargs.values()))
    else:
        _outcome(sysm, lambda: sysm.call(name, **kwargs))


@settings(max_examples=500, **FUZZ)
@given(start=STARTS,
       op=st.integers(-2, len(OPS) + 2) | st.sampled_from([None, True, 1.0, "dma", 2 ** 70]),
       args=st.lists(values, max_size=8).map(tuple) | st.none() | st.lists(st.integers()),
       fail=st.integers(-1, 3) | st.sampled_from([None, True, 1.5, 2 ** 70]),
       ctx=st.integers(-1, 3) | st.sampled_from([2 ** 40, -(2 ** 63)]))
def test_hand_built_actions(start, op, args, fail, ctx):
    """``step()`` and ``System.apply`` with hand-built, often malformed, actions; their
    ``repr`` too (error messages print them)."""
    sysm = _system(start)
    action = Action(op, args, fail)
    repr(action)
    try:
        s2, ret = step(sysm.state, action, ctx)
    except ModelUsageError as e:
        assert str(e) and "\n" not in str(e)
    except ModelInternalError as e:
        if h.known_bug(e) is None:
            raise
    else:
        assert type(ret) is int
    _outcome(sysm, lambda: sysm.apply(action))


@settings(max_examples=200, **FUZZ)
@given(start=STARTS, which=st.sampled_from(
    ["mm_of", "mm", "group_of", "group", "pasid_allocated"]), arg=values)
def test_views_with_any_argument(start, which, arg):
    sysm = _system(start)
    try:
        getattr(sysm, which)(arg)
    except ModelUsageError as e:
        assert "\n" not in str(e)
    except TypeError as e:
        if h.known_bug(e) is None:
            raise


# -- regressions: crashes the fuzzers found ---------------------------------------------------

@pytest.mark.parametrize("action", [
    Action(None, (1,)), Action(-1, ()), Action(len(OPS), ()), Action(0, None),
    Action(0, [1]), Action(0, (1, 2, 3)), Action("dma", (1,)), Action(True, (1,)),
], ids=["op-None", "op-negative", "op-too-big", "args-None", "args-list", "args-count",
        "op-str", "op-bool"])
def test_regression_malformed_action_repr_and_rejection(action):
    """Found by the fuzzer: ``repr()`` of a hand-built malformed Action (which error messages
    and logs print) raised TypeError/IndexError; ``Action(True, ...)`` passed the check as
    opcode 1 (a bool alias)."""
    text = repr(action)
    assert text.startswith("Action(op=")
    sysm = System(default_config())
    with pytest.raises(ModelUsageError):
        sysm.apply(action)
    with pytest.raises(ModelUsageError):
        step(sysm.state, action)
    if not (type(action.op) is int and 0 <= action.op < len(OPS)):
        with pytest.raises(ModelUsageError, match="not an opcode"):
            action.name  # noqa: B018


def test_repr_of_a_well_formed_action_is_unchanged():
    assert repr(Action.of("fork", tid=3)) == "fork(tid=3)"
    assert repr(Action.of("fork", tid=3, fail=2)) == "fork(tid=3) [fail point 2]"


@pytest.mark.parametrize("call", ["iommu_sva_alloc_pasid", "ioasid_alloc"])
@pytest.mark.parametrize("bound", [1 << 63, (1 << 64) - 1, 1 << 32, -1])
def test_regression_ioasid_t_range_bounds_beyond_32_bits(call, bound):
    """Found by the fuzzer: ``iommu_sva_alloc_pasid(mm, 4, 1 << 63)`` raised OverflowError
    inside the ID allocator (ModelInternalError).  ``min``/``max`` are ``ioasid_t`` (32 bits,
    as in scenario files): a usage error naming the argument."""
    sysm = System(default_config())
    t = sysm.process_create()
    first = sysm.mm_of(t) if call == "iommu_sva_alloc_pasid" else 0
    for kw in ({"min": 4, "max": bound}, {"min": bound, "max": 10}):
        with pytest.raises(ModelUsageError, match=f"{call}: (min|max)={bound} does not fit "
                                                  "ioasid_t"):
            getattr(sysm, call)(first, **kw)
    assert getattr(sysm, call)(first, min=4, max=(1 << 32) - 2) >= 0


@pytest.mark.parametrize("view", ["mm_of", "mm"])
def test_regression_view_with_an_unhashable_id(view):
    """Found by the fuzzer (test_call_sequences, amdgpu-pasid-edges@12): ``mm_of({})`` on a
    machine with a task raised TypeError; an id that is not an int is a usage error."""
    sysm = System(default_config())
    sysm.process_create()
    before = sysm.state
    for bad in ({}, [], True):
        with pytest.raises(ModelUsageError, match=f"{'tid' if view == 'mm_of' else 'mm'}="):
            getattr(sysm, view)(bad)
    assert sysm.state is before


def test_machine_without_drivers_names_the_argument():
    from pasidsim.config import Config, DeviceConfig, IommuUnit
    cfg = Config.build(iommus=[IommuUnit("i0")], devices=[DeviceConfig("d", iommu="i0")])
    with pytest.raises(ModelUsageError, match=r"drv=0 is not a driver of this machine "
                                              r"\(it has no drivers\)"):
        System(cfg).device_driver_attach(0, 0)


def test_regression_ioasid_put_after_its_id_was_freed_by_another_api():
    """Found by the fuzzer (seed 1, library:4349): an IOASID's ID freed through
    ``iommu_free_global_pasid`` (a double free the kernel cannot detect: one IDA), then its
    last ``ioasid_put``: the model raised KeyError; the kernel's ``ida_free`` WARNs, and the
    IOASID record goes."""
    from pasidsim.errors import Warn
    sysm = System(default_config())
    ioasid_set = sysm.ioasid_set_alloc(token=7, quota=2, type=1)
    ident = sysm.ioasid_alloc(ioasid_set, min=1, max=10)
    sysm.iommu_free_global_pasid(ident)
    sysm.ioasid_put(ioasid_set, ident)
    assert sysm.state.warnings[-1] == (Warn.FREE_UNALLOCATED_PASID, ident, 0)
    assert ident not in sysm.state.ioasids and ident not in sysm.state.ida


def _bound_dsa0():
    """A process that opened dsa0 (idxd binds its mm: an SVA domain at its PASID)."""
    cfg = default_config()
    sysm = System(cfg)
    sysm.device_driver_attach("dsa0", cfg.devices[cfg.device_index("dsa0")].driver)
    tid = sysm.process_create()
    sysm.dev_open(tid, "dsa0")
    mm = sysm.state.mms[sysm.mm_of(tid)]
    return sysm, tid, mm.sva_domains[0], mm.pasid


@pytest.mark.parametrize("then", ["task_exit", "execve"])
def test_regression_sva_domain_detached_and_freed_by_a_caller(then):
    """Found by the fuzzer (seed 0, library:4431/4729/6968): a caller detaches the core's SVA
    domain from the bound PASID and frees it -- a misuse the kernel cannot see; the mm still
    lists the domain, so the free is recorded (DOMAIN_USE_AFTER_FREE, invariant D1), the
    record is kept and the exit (or exec) runs instead of raising KeyError."""
    from pasidsim.domain import DOMAIN_IN_USE_SITES
    from pasidsim.errors import Warn
    from pasidsim.invariants import d1_no_domain_freed_in_use
    sysm, tid, dom, pasid = _bound_dsa0()
    sysm.iommu_detach_device_pasid(dom, "dsa0", pasid)
    sysm.iommu_domain_free(dom)
    assert sysm.state.warnings[-1][:2] == (Warn.DOMAIN_USE_AFTER_FREE, dom)
    assert "SVA domains" in DOMAIN_IN_USE_SITES[sysm.state.warnings[-1][2]]
    assert d1_no_domain_freed_in_use(sysm.state)
    getattr(sysm, then)(tid)


def test_regression_attach_with_the_sva_bond_s_handle():
    """Found by the fuzzer (seed 0, library:7508): ``iommu_attach_device_pasid`` given the
    handle of a live SVA bond re-pointed the bond at the caller's DMA domain and the unbind at
    exit raised KeyError.  Only the SVA core attaches a bond's handle: a usage error, state
    unchanged."""
    sysm, tid, dom, pasid = _bound_dsa0()
    handle = next(iter(sysm.state.handles.keys()))
    sysm.iommu_detach_device_pasid(dom, "dsa0", pasid)
    before = sysm.state
    with pytest.raises(ModelUsageError, match="SVA bond"):
        sysm.iommu_attach_device_pasid(1, "dsa0", pasid, handle)
    assert sysm.state is before
    sysm.task_exit(tid)
