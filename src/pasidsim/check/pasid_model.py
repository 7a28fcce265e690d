"""The PASID subsystem as a model for the search engine.

A compiled scenario (:mod:`pasidsim.scenario.compile`) gives the initial run state, the actor
steps and hardware events enabled in a state, and how to apply one — all on the one
:func:`pasidsim.step.step` that users call.  This module wraps it as a
:class:`~pasidsim.check.model.Model`:

- ``always``: every state invariant of :mod:`pasidsim.invariants` (both scopes: scenario actors
  are the callers whose conformance is being checked; ``W``, no kernel WARN, ignores the WARNs
  the scenario lists in ``expect_warn``), plus the transition invariants, failure atomicity
  (``ATOMIC``), the scenario's step expectations (``EXPECT``) and steps that cannot be taken
  (``STEP``: a usage error of the model, a ``fail:`` point the call never passes), evaluated
  on each transition and carried into the next state as indices (:class:`CheckState`);
- ``at quiescence``: :func:`pasidsim.invariants.quiescence_leaks` (``quiescence``), actors
  waiting forever, and the scenario's ``expect_final`` (``expect_final``);
- ``sometimes``: the scenario's reachability goals (``CompiledScenario.sometimes``), so that a
  vacuous model is caught;
- ``canonical`` (with ``symmetry=True``): the id-relabelling and actor-permutation symmetry of
  :mod:`pasidsim.check.symmetry`, used by ``explore(..., symmetry=True)``;
- ``actor``/``independent``/``alphabet``/``visible`` (with ``por=True``): the static
  independence relation of :mod:`pasidsim.check.por`, used by ``explore(..., por=True)``.

Failure injection (``inject_faults``: the scenario's field or ``pasidsim check
--inject-faults``): every enabled step of a kernel call or process event written in the file
is also taken failing at each fault point its call passes (``StepRef(actor, fail=k)``,
``k = 1..`` :meth:`~pasidsim.scenario.compile.CompiledScenario.fault_branches`), as another
transition.  A failed call must leave no trace: failure atomicity holds for it as for any
failed call, and its branch runs on to quiescence, where leaks are caught.  The scenario's
expectations describe the calls succeeding, so the actor whose call was failed stops there
(a process exits, as a careful program does on an error; a kernel actor gives up, and then the
leaks of what it had allocated are its own and not judged), and on a path with an injected
failure (from that
step on) ``EXPECT``, ``STEP`` and ``expect_final`` are not judged — every invariant, ``ATOMIC``,
leak and deadlock is (:attr:`CheckState.injected`).  A scenario's own ``fail:`` steps are part
of its script and judged as usual.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..invariants import (STATE_INVARIANTS, TRANSITION_INVARIANTS, atomicity_broken,
                          quiescence_leaks, unexpected_warning)
from ..step import OPS, Action, step
from .model import Goal, Invariant

#: Names of the transition-level checks, indexed by what CheckState.last stores.
TRANSITION_CHECKS: tuple[str, ...] = tuple(i.name for i in TRANSITION_INVARIANTS) + (
    "ATOMIC", "EXPECT", "STEP")
_ATOMIC = len(TRANSITION_INVARIANTS)
_EXPECT = _ATOMIC + 1
_STEP = _ATOMIC + 2
TRANSITION_TITLES = {i.name: i.title for i in TRANSITION_INVARIANTS}
TRANSITION_TITLES["ATOMIC"] = "a failed call leaves the state unchanged"
TRANSITION_TITLES["EXPECT"] = "every step returns what the scenario expects"
TRANSITION_TITLES["STEP"] = "every step of the scenario can be taken"

#: Every name a verdict can give: state invariants, transition checks, ``quiescence`` (a
#: leak, or an actor waiting forever), ``expect_final``, ``deadlock`` (the engine's: no
#: enabled action in a non-quiescent state).
PROPERTY_NAMES: tuple[str, ...] = tuple(i.name for i in STATE_INVARIANTS) + \
    TRANSITION_CHECKS + ("quiescence", "expect_final", "deadlock")


class CheckState(NamedTuple):
    """A run state plus the transition checks the step into it violated (indices into
    :data:`TRANSITION_CHECKS`) and whether a failure was injected on the path to it (then
    expectations are no longer judged: module docstring)."""

    rs: Any
    last: tuple = ()
    injected: bool = False
    abandoned: bool = False  # a kernel actor gave up after an injected failure (see step)


def sys_state(rs):
    """The SystemState inside a scenario run state."""
    return rs.sys


class ScenarioModel:
    """A :class:`~pasidsim.check.model.Model` over a compiled scenario.

    Args:
        compiled: a compiled scenario (``initial``, ``enabled``, ``apply``, ``quiescent``).
        sometimes: extra ``(name, predicate(run_state) -> bool)`` goals besides the
            scenario's own.
        check_expectations: report a step whose return differs from the scenario's ``expect``.
        exclude: invariant names not to check (e.g. ``("W",)``; default none).
        symmetry: enable :meth:`canonical` (:class:`~pasidsim.check.symmetry.Symmetry`);
            without it ``canonical`` is the identity.
        por: provide the partial-order-reduction hooks (:class:`~pasidsim.check.por.PartialOrder`);
            ``por_reason`` then says why POR is off for this scenario (None: available).
            Without it the hooks are absent and ``explore(..., por=True)`` refuses the model.
    """

    def __init__(self, compiled, *, sometimes=(), check_expectations=True, exclude=(),
                 symmetry=False, por=False):
        self.compiled = compiled
        self.inject_faults = bool(getattr(compiled, "inject_faults", False))
        sometimes = tuple(sometimes)
        self.por_reason = "por=False"
        if por and getattr(compiled, "granularity", 0):
            # the static independence relation knows nothing of locks: two actors' steps
            # may block each other; POR stays off (sound) at lock granularity
            self.por_reason = "lock granularity"
        elif por:
            from .por import PartialOrder
            po = self.partial_order = PartialOrder(compiled, visible_all=bool(sometimes))
            self.por_reason = po.reason
            if po.reason is None:
                self.actor, self.independent = po.actor, po.independent
                self.alphabet, self.visible = po.alphabet, po.visible
        self.symmetry = None
        if symmetry:
            from .symmetry import Symmetry
            self.symmetry = Symmetry(compiled)
        # a scenario whose expectations hold only in its scripted order is checked for
        # invariants and leaks only
        self.check_expectations = check_expectations and not getattr(compiled, "scripted", False)
        invs = []
        allowed = frozenset(getattr(compiled, "expect_warn", ()))
        for inv in STATE_INVARIANTS:
            if inv.name in exclude:
                continue
            check = inv.check
            if inv.name == "W":
                check = _warn_check(allowed)
            invs.append(Invariant(inv.name, _state_check(check, inv.when == "between")))
        invs.append(Invariant("transition", _transition_check))
        self.invariants = tuple(invs)
        goals = tuple(getattr(compiled, "sometimes", ())) + tuple(sometimes)
        self.sometimes = tuple(Goal(n, _goal(fn)) for n, fn in goals)

    # -- Model protocol -------------------------------------------------------------------
    def initial_states(self):
        return [CheckState(self.compiled.initial())]

    def actions(self, cs: CheckState):
        """The enabled steps; with fault injection each step is followed by its failures
        ``ref._replace(fail=k)``, ``k = 1..fault_branches``."""
        c = self.compiled
        refs = c.enabled(cs.rs)
        if not self.inject_faults:
            return refs
        out = []
        for ref in refs:
            out.append(ref)
            n = c.fault_branches(cs.rs, ref)
            out.extend(ref._replace(fail=k) for k in range(1, n + 1))
        return out

    def step(self, cs: CheckState, ref) -> CheckState:
        rs2, ev = self.compiled.apply(cs.rs, ref)
        s0, s1 = sys_state(cs.rs), sys_state(rs2)
        action, ret = ev.action, ev.ret
        bad = []
        for i, inv in enumerate(TRANSITION_INVARIANTS):
            if inv.check(s0, action, ret, s1):
                bad.append(i)
        # failure atomicity: judged on a call that started and returned in this step (at lock
        # granularity other contexts may run between the steps of one call)
        if action is not None and isinstance(ret, int) and ret < 0 and atomicity_broken(
                s0, action, ret, s1, whole=not ev.progress and not (
                    s0.kthreads and ref.actor < len(self.compiled.actors)
                    and self.compiled.ctx(cs.rs, ref.actor) in s0.kthreads)):
            bad.append(_ATOMIC)
        injected = cs.injected or bool(getattr(ref, "fail", 0))
        if not injected:
            if ev.error:
                bad.append(_STEP)
            elif self.check_expectations and not ev.ok:
                bad.append(_EXPECT)
        abandoned = cs.abandoned
        if getattr(ref, "fail", 0):  # the k-th point fired: the caller sees its error
            rs2, gave_up = self._bail_out(rs2, ref.actor)
            abandoned = abandoned or gave_up
        return CheckState(rs2, tuple(bad), injected, abandoned)

    def _bail_out(self, rs, i: int):
        """An actor's call failed by injection: its program, written for calls that succeed,
        stops there.  A process handles the error as a careful program does: it exits (every
        thread, through ``task_exit``), so the kernel must release everything it held; any
        leak left at quiescence is the kernel's.  An actor that calls the kernel API directly
        (a kernel actor, or a process actor standing in for a driver: its program has kernel
        calls such as ``iommu_sva_bind_device``) just stops: what it allocated before is its
        own leak, so leaks are not judged on that path (``abandoned``); invariants and
        failure atomicity still are.  Returns ``(run state, abandoned)``."""
        c = self.compiled
        a = c.actors[i]
        rs = rs._replace(pcs=rs.pcs[:i] + (len(a.program),) + rs.pcs[i + 1:])
        if a.kernel or any(OPS[cs.op].kind == "kernel" for cs in a.program
                           if getattr(cs, "op", None) is not None):
            return rs, True
        s = sys_state(rs)
        t = s.tasks.get(rs.tids[i])
        if t is None:
            return rs, False
        for tid in reversed(s.procs[t.pid].threads):
            s, _ = step(s, Action.of("task_exit", tid=tid))
        return rs._replace(sys=s), False

    def is_quiescent(self, cs: CheckState) -> bool:
        """No actor can move and (with hardware events) the hardware is idle."""
        if not self.compiled.quiescent(cs.rs):
            return False
        if self.compiled.hardware:
            from ..ops import enabled_events
            return not enabled_events(sys_state(cs.rs))
        return True

    def at_quiescence(self, cs: CheckState):
        """Actors stuck forever waiting for a value no step will bind (a deadlock of the
        scenario's programs), leaks, then the scenario's ``expect_final`` as
        ``("expect_final", message)``.  ``expect_final`` is not judged for a ``scripted``
        scenario (it describes the scripted order, like its steps' expectations), nor on a
        path with an injected failure; its ``violations`` count is a property of one run, not
        of a state: the checker reports every violation anyway."""
        c = self.compiled
        for i in range(1, len(c.actors)):
            status = c.status(cs.rs, i)
            # after an injected failure the failing actor stopped: actors waiting for a value
            # it would have bound wait for good by construction, not by a kernel bug
            if status.startswith("waiting") and not cs.injected:
                return f"deadlock: actor {c.actor_name(i)} is {status} and nothing can bind it"
        leak = None if cs.abandoned else quiescence_leaks(sys_state(cs.rs))
        if leak is not None:
            return leak
        if c.expect_final is not None and self.check_expectations and not cs.injected:
            bad = c.check(cs.rs, c.expect_final)
            if bad:
                return "expect_final", "; ".join(bad)
        return None

    def canonical(self, cs: CheckState) -> CheckState:
        """The representative of ``cs``'s symmetry class (identity without ``symmetry``)."""
        sym = self.symmetry
        return cs if sym is None else sym.canonical(cs)


def _warn_check(allowed: frozenset):
    def check(s):
        return unexpected_warning(s, allowed)
    return check


def _state_check(fn, between: bool = False):
    if between:
        def check_between(cs: CheckState):
            s = sys_state(cs.rs)
            return None if s.kthreads else fn(s)
        return check_between

    def check(cs: CheckState):
        return fn(sys_state(cs.rs))
    return check


def _transition_check(cs: CheckState):
    if not cs.last:
        return None
    name = TRANSITION_CHECKS[cs.last[0]]
    return f"{name}: {TRANSITION_TITLES[name]}"


def _goal(fn):
    def holds(cs: CheckState) -> bool:
        return bool(fn(cs.rs))
    return holds


def violation_name(result) -> str | None:
    """The invariant a result's violation names (transition checks by their own name)."""
    v = result.violation
    if v is None:
        return None
    if v.name == "transition":
        return v.message.split(":", 1)[0]
    return v.name
