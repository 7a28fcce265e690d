"""Locks, deadlocks and sleeping in atomic context on toy kernels with known answers.

The toy kernel functions are :class:`~pasidsim.locking.KFunc` code tables run by the same
interpreter as the PASID model's (``pasidsim.step.start_call`` / ``kernel_continue``, lock
granularity), explored by the same search; the properties are the model's own L1 (no cycle
of lock waits) and L2 (no sleeping lock in atomic context).
"""

from __future__ import annotations

import pytest

from pasidsim.check.model import FunctionModel, Invariant
from pasidsim.check.search import explore
from pasidsim.config import Config, DeviceConfig, IommuUnit
from pasidsim.invariants import (l1_no_deadlock, l2_no_sleep_in_atomic,
                                 l3_consistent_irq_lock_usage, quiescence_leaks)
from pasidsim.locking import (CtxKind, Do, LockClass, KFunc, Lock, LockKind, Unlock, acquire, begin, end, key_name,
                              lock_key, release)
from pasidsim.policy import CURRENT
from pasidsim.state import Granularity, initial_state
from pasidsim.step import IN_PROGRESS, kernel_continue, runnable, start_call

CFG = Config.build(iommus=[IommuUnit("iommu0")], devices=[DeviceConfig("d0", iommu="iommu0")])
A = lock_key(64, 0, LockKind.MUTEX)
B = lock_key(65, 0, LockKind.MUTEX)
SPIN = lock_key(66, 0, LockKind.SPIN)


def _const(key):
    return lambda s, loc: key


def _nested(name, outer, inner):
    """``lock(outer); lock(inner); unlock(inner); unlock(outer)``."""
    return KFunc(name, (), (Lock(_const(outer)), Lock(_const(inner)), Unlock(_const(inner)),
                            Unlock(_const(outer))))


AB = _nested("take_a_then_b", A, B)
BA = _nested("take_b_then_a", B, A)
SPIN_THEN_MUTEX = _nested("spin_then_mutex", SPIN, A)
MUTEX_THEN_SPIN = _nested("mutex_then_spin", A, SPIN)


def _model(*funcs):
    """Actor i calls ``funcs[i]`` once, as context i + 1; every interleaving of their
    preemption points.  State: (SystemState, started flags)."""
    s0 = initial_state(CFG, CURRENT, Granularity.LOCK)

    def actions(st):
        s, started = st
        out = []
        for i in range(len(funcs)):
            if not started[i]:
                out.append(("start", i))
            elif i + 1 in s.kthreads and runnable(s, i + 1):
                out.append(("continue", i))
        return out

    def step(st, a):
        s, started = st
        kind, i = a
        if kind == "start":
            s, _ = start_call(s, funcs[i], (), i + 1)
            started = started[:i] + (True,) + started[i + 1:]
        else:
            s, _ = kernel_continue(s, i + 1)
        return s, started

    def quiet(st):
        return all(st[1]) and not st[0].kthreads

    return FunctionModel(
        initial_states=lambda: [(s0, (False,) * len(funcs))], actions=actions, step=step,
        invariants=(Invariant("L1", lambda st: l1_no_deadlock(st[0])),
                    Invariant("L2", lambda st: l2_no_sleep_in_atomic(st[0]))),
        is_quiescent=quiet, at_quiescence=lambda st: quiescence_leaks(st[0]))


def test_abba_deadlock_is_found_with_its_cycle():
    res = explore(_model(AB, BA))
    assert res.verdict == "violation"
    v = res.violation
    assert v.name == "L1", v.message
    assert "deadlock" in v.message and key_name(A) in v.message and key_name(B) in v.message
    s, _ = v.states[-1]
    assert {th.wait for th in s.kthreads.values()} == {A, B}  # each sleeps on the other's
    assert dict(s.locks) == {A: 1, B: 2} or dict(s.locks) == {A: 2, B: 1}
    assert len(v.trace) == 4  # shortest: each takes its first lock, then blocks on the other


def test_a_correctly_ordered_pair_never_deadlocks():
    res = explore(_model(AB, AB), stop_at_first=False)
    assert res.verdict == "pass", res.message
    assert res.states > 4  # they did interleave: one waits while the other holds A


def test_mutex_taken_under_a_spinlock_is_flagged():
    res = explore(_model(SPIN_THEN_MUTEX))
    assert res.verdict == "violation" and res.violation.name == "L2", res.message
    assert key_name(A) in res.violation.message


def test_spinlock_taken_under_a_mutex_is_not_flagged():
    res = explore(_model(MUTEX_THEN_SPIN), stop_at_first=False)
    assert res.verdict == "pass", res.message


def test_self_deadlock_is_a_cycle_of_one_at_both_granularities():
    twice = KFunc("take_a_twice", (), (Lock(_const(A)), Do(lambda s, loc: (acquire(s, A), loc)),
                                       Unlock(_const(A))))
    for gran in Granularity:
        s = initial_state(CFG, CURRENT, gran)
        s, ret = start_call(s, twice, (), 7)
        assert ret == IN_PROGRESS
        assert s.kthreads[7].wait == A and s.locks.get(A) == 7
        assert "self-deadlock" in l1_no_deadlock(s)
        assert not runnable(s, 7)
        assert "blocked forever" in quiescence_leaks(s)


def test_lock_held_across_preemption_points_is_data():
    s = initial_state(CFG, CURRENT, Granularity.LOCK)
    s, ret = start_call(s, AB, (), 1)  # takes A, stops before taking B
    assert ret == IN_PROGRESS and dict(s.locks) == {A: 1} and s.kthreads[1].held == (A,)
    s, ret = start_call(s, BA, (), 2)  # takes B
    s, ret = kernel_continue(s, 1)  # sleeps on B
    assert s.kthreads[1].wait == B and not runnable(s, 1) and runnable(s, 2)


def test_section_blocked_by_another_contexts_lock_waits_at_its_start():
    s = initial_state(CFG, CURRENT, Granularity.LOCK)
    s, _ = start_call(s, AB, (), 1)  # holds A across a preemption point
    inner = KFunc("section_taking_a", (), (Do(lambda s, loc: (release(acquire(s, A), A), loc)),))
    s2, ret = start_call(s, inner, (), 2)
    assert ret == IN_PROGRESS and s2.kthreads[2].wait == A and s2.kthreads[2].frames[0].pc == 0


@pytest.mark.parametrize("gran", list(Granularity))
def test_sleeping_in_atomic_is_judged_only_at_lock_granularity(gran):
    """Call granularity is the earlier model: no L2 there (README)."""
    s = initial_state(CFG, CURRENT, gran)
    s, ret = start_call(s, SPIN_THEN_MUTEX, (), 1)
    while ret == IN_PROGRESS:
        s, ret = kernel_continue(s, 1)
    assert (l2_no_sleep_in_atomic(s) is not None) == (gran == Granularity.LOCK)


def test_unlock_of_a_lock_not_held_is_an_internal_error():
    from pasidsim.errors import ModelInternalError
    s = initial_state(CFG, CURRENT, Granularity.CALL)
    begin(1, 0)
    try:
        with pytest.raises(ModelInternalError):
            release(s, A)
    finally:
        end()


def _irq_free_model(irqsave: bool):
    """A task takes spinlock SPIN (plainly, or with spin_lock_irqsave), an IRQ handler takes
    it too: lockdep's IRQ usage rule."""
    task = KFunc("task_takes_spin", (), (Do(lambda s, loc: (
        release(acquire(s, SPIN, irqsave=irqsave), SPIN), loc)),))
    irq = KFunc("irq_takes_spin", (), (Do(lambda s, loc: (release(acquire(s, SPIN), SPIN), loc)),))
    s = initial_state(CFG, CURRENT, Granularity.LOCK)
    s, _ = start_call(s, task, (), 1)
    s, _ = start_call(s, irq, (), 2, kind=CtxKind.IRQ)
    return s


def test_spinlock_taken_in_irq_and_with_interrupts_on_is_flagged():
    assert "inconsistent lock state" in l3_consistent_irq_lock_usage(_irq_free_model(False))


def test_spinlock_taken_irqsave_outside_irq_context_is_not_flagged():
    assert l3_consistent_irq_lock_usage(_irq_free_model(True)) is None


def test_system_facade_raises_kernel_deadlock_for_a_hung_call_state_unchanged():
    """H2 (bind holds mm_users) on an SMMUv3 whose notifier release takes the unbind lock:
    the last unbind's mmput runs the release inside unbind, which hangs (call granularity)."""
    from pasidsim.config import DriverConfig
    from pasidsim.designs import DESIGNS
    from pasidsim.errors import KernelDeadlock
    from pasidsim.system import System
    cfg = Config.build(iommus=[IommuUnit("smmu0", ops="arm-smmu-v3",
                                         release_takes_sva_lock=True)],
                       devices=[DeviceConfig("zip0", iommu="smmu0", pasid_bits=16)],
                       drivers=[DriverConfig("hisi_zip", kind="uacce")])
    sys = System(cfg, DESIGNS["H2-mmget-bind"])
    sys.device_driver_attach("zip0", "hisi_zip")
    a = sys.process_create()
    sys.dev_open(a, "zip0")
    before = sys.state
    with pytest.raises(KernelDeadlock) as e:
        sys.task_exit(a)
    assert "self-deadlock" in str(e.value) and "iommu_sva_lock" in str(e.value)
    assert sys.state is before and e.value.state.kthreads
    today = System(cfg)
    today.device_driver_attach("zip0", "hisi_zip")
    b = today.process_create()
    today.dev_open(b, "zip0")
    today.task_exit(b)  # today: unbind's mmdrop never runs __mmput, no hang
    assert not today.state.kthreads and not today.state.files


def _usage(kinds_irqsave):
    """Spinlock SPIN taken once by each ``(context kind, irqsave)``, at lock granularity."""
    s = initial_state(CFG, CURRENT, Granularity.LOCK)
    for i, (kind, irqsave) in enumerate(kinds_irqsave, 1):
        f = KFunc(f"take_spin_{i}", (), (Do(lambda s, loc, irqsave=irqsave: (
            release(acquire(s, SPIN, irqsave=irqsave), SPIN), loc)),))
        s, _ = start_call(s, f, (), i, kind=kind)
    return s


@pytest.mark.parametrize("uses,flagged", [
    ([(CtxKind.TASK, False)], False),  # only ever taken with interrupts on: consistent
    ([(CtxKind.TASK, False), (CtxKind.TASK, False)], False),
    ([(CtxKind.IRQ, False), (CtxKind.IRQ, False)], False),  # only in IRQ context
    ([(CtxKind.EXCEPTION, False), (CtxKind.IRQ, False)], False),  # #GP: interrupts are off
    ([(CtxKind.TASK, True), (CtxKind.IRQ, False)], False),  # spin_lock_irqsave
    ([(CtxKind.IRQ, False), (CtxKind.TASK, False)], True),  # either order
    ([(CtxKind.WORKER, False), (CtxKind.IRQ, False)], True),
])
def test_lockdep_irq_usage_rule(uses, flagged):
    s = _usage(uses)
    assert (l3_consistent_irq_lock_usage(s) is not None) == flagged
    from pasidsim.errors import Warn
    assert sum(1 for w in s.warnings if w[0] == Warn.INCONSISTENT_LOCK_STATE) == int(flagged)


def test_call_granularity_call_waiting_on_a_hung_context_runs_whole_when_freed():
    """At call granularity a call that needs a lock a hung context holds waits, and runs to
    its return in one step once the lock is free (never stopping at a preemption point)."""
    s = initial_state(CFG, CURRENT, Granularity.CALL)
    s, _ = start_call(s, KFunc("hang_holding_a", (), (Lock(_const(A)), Do(
        lambda s, loc: (acquire(s, A), loc)))), (), 1)
    assert s.locks.get(A) == 1
    s, ret = start_call(s, AB, (), 2)
    assert ret == IN_PROGRESS and s.kthreads[2].wait == A and not runnable(s, 2)
    s = s._replace(locks=s.locks.delete(A), kthreads=s.kthreads.delete(1))  # A freed
    assert runnable(s, 2)
    s, ret = kernel_continue(s, 2)
    assert ret == 0 and not s.kthreads and not s.locks


def test_lockdep_usage_is_not_state_a_failed_call_must_restore():
    """amdgpu-idr-preload: an allocation that fails -ENOSPC after the lock was seen in IRQ
    context records the inconsistent usage (L3) but is still a failed, atomic call."""
    from pasidsim.designs import DESIGNS
    from pasidsim.errors import ENOSPC
    from pasidsim.step import Action, step
    s = initial_state(CFG, DESIGNS["amdgpu-idr-preload"], Granularity.LOCK)
    s, p = step(s, Action.of("amdgpu_pasid_alloc", bits=1), 1)  # the only PASID of width 1
    assert p == 1
    s = s._replace(lock_usage=s.lock_usage.set(lock_key(LockClass.AMDGPU_PASID_LOCK), 1))  # as if seen in IRQ only
    s0 = s
    s1, ret = step(s, Action.of("amdgpu_pasid_alloc", bits=1), 1)
    assert ret == -ENOSPC
    assert l3_consistent_irq_lock_usage(s1) is not None
    assert s1.fingerprint_nowarn() == s0.fingerprint_nowarn()


def test_kfunc_indices_do_not_depend_on_import_order():
    """A KFrame holds its function's index, and states cross processes (Ray workers import
    pasidsim's modules in another order than the coordinator): the index of every kernel
    function is the same whatever the import order."""
    import subprocess
    import sys
    code = ("import importlib, sys\n"
            "for m in sys.argv[1:]: importlib.import_module(m)\n"
            "from pasidsim.locking import KFUNCS\n"
            "print(sorted((f.name, i) for i, f in KFUNCS.items()))\n")
    mods = ["pasidsim.drivers.idxd", "pasidsim.iommufd", "pasidsim.system", "pasidsim.sva",
            "pasidsim.check.runner"]
    runs = [subprocess.run([sys.executable, "-c", code, *order], capture_output=True,
                           text=True, check=True).stdout for order in (mods, mods[::-1])]
    assert runs[0] == runs[1] and runs[0].count("(") > 50


def test_a_context_with_a_call_in_progress_is_a_usage_error_naming_ctx():
    """A caller driving step()/kernel_continue() by hand: a second call on a context whose
    call is in progress, or continuing a context with none, is the caller's misuse
    (ModelUsageError naming ``ctx``), not a model bug (ModelInternalError)."""
    from pasidsim.errors import ModelUsageError
    s = initial_state(CFG, CURRENT, Granularity.LOCK)
    s, ret = start_call(s, SPIN_THEN_MUTEX, (), 1)
    assert ret == IN_PROGRESS
    with pytest.raises(ModelUsageError, match="ctx=1"):
        start_call(s, SPIN_THEN_MUTEX, (), 1)
    with pytest.raises(ModelUsageError, match="ctx=2: .*no call in progress"):
        kernel_continue(s, 2)
