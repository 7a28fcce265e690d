"""Compiling a validated scenario into a transition system over :class:`RunState`.

The compiled scenario is what both the runner (:mod:`pasidsim.scenario.runner`) and the model
checker drive::

    c = compile_scenario(load_scenario("h1.yaml"))
    rs = c.initial()
    while not c.quiescent(rs):
        ref = c.enabled(rs)[0]
        rs, event = c.apply(rs, ref)

Actors are numbered: 0 is the ``setup`` pseudo-actor (kernel context: boot-time driver probes,
the start of every declared process actor, then the file's ``setup`` steps) and runs alone
until it is done; then the file's actors and the children spawned by ``fork``/``clone`` steps
(in the order they appear in the file); :attr:`CompiledScenario.hw_actor` (= number of actors)
is the ``hw`` pseudo-actor whose steps are the hardware events of
``pasidsim.ops.enabled_events(state)`` (only with ``hardware: true``).

An actor can take its next step when its program is not finished, its task exists (process
actors; a killed process's actors are blocked for good) and every ``$name`` the step uses is
bound — a step waits for the value it needs.  A failed expectation or a library usage error
does not stop anything: it is recorded in the :class:`Event`.

Failure injection (:mod:`pasidsim.fault`): a step written with ``fail: POINT[#n]`` makes its
call fail at the ``n``-th time it passes that fault point; the ordinal the kernel model needs
(``Action.fail``) is found when the step runs, by running the unfailed call once and reading
:func:`pasidsim.fault.trail`.  A call that never passes the point is a step error.  The model
checker explores the other failures itself: :meth:`CompiledScenario.fault_branches` says how
many points a step's call passes, and ``StepRef(actor, fail=k)`` takes the step with its
``k``-th point failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

from .. import fault
from ..config import Config
from ..designs import DESIGNS
from ..errors import ModelUsageError, fmt_ret
from ..policy import Policy
from ..locking import KTHREAD_CTX, key_name
from ..state import Granularity, MmState, Static, SystemState, Work, initial_state
from ..step import IN_PROGRESS, OP_BY_NAME, OPS, Action, call_stack, kernel_continue, step
from .loader import LoadedScenario, Locator, ScenarioError
from .schema import FAULT_KINDS, Expect, FailSpec, Ref, Scenario, StateCheck

UNBOUND = -(1 << 62)  # value of a binding not made yet
CONST, REF, SELF_TID, SELF_MM = range(4)


class StepRef(NamedTuple):
    """An enabled step: ``actor`` index; ``hw`` is the hardware :class:`Action` when ``actor``
    is the hw pseudo-actor, else ``()``; ``fail``: 0, or ``k`` to take the actor's step with
    the ``k``-th fault point its call passes failing (an injected failure, explored by the
    model checker; see :meth:`CompiledScenario.fault_branches`)."""

    actor: int
    hw: tuple = ()
    fail: int = 0


class RunState(NamedTuple):
    """Everything that changes while a scenario runs (immutable, hashable, stable hash: ints,
    tuples and the :class:`SystemState`).  ``pcs``: per actor, index of its next step;
    ``tids``: per actor, its task id (0 = kernel actor or not spawned yet); ``binds``: per
    name of :attr:`CompiledScenario.names`, the bound value or :data:`UNBOUND`."""

    sys: SystemState
    pcs: tuple
    tids: tuple
    binds: tuple


class Event(NamedTuple):
    """What one applied step did.  ``pc``: index in the actor's program (-1 for hw);
    ``action``: the kernel call made (None when it could not be built; ``action.fail`` > 0
    for an injected failure); ``ret``: its return; ``ok``: every expectation and check held;
    ``failures``: messages; ``error``: why the step could not be taken — a library usage
    error, or a ``fail:`` point the call never passes (the step then changed nothing but its
    program counter); ``fault``: ``(FaultPoint value, n)`` when the call was made to fail at
    the ``n``-th time it passed that point, else ``()``; ``progress``: at ``lock`` granularity,
    where the actor's call stopped when it has not returned yet (``ret`` is then
    :data:`~pasidsim.step.IN_PROGRESS`), else ``""``; ``locks``: the locks held after the step,
    ``(lock name, holder actor name)`` pairs."""

    actor: int
    pc: int
    action: Action | None
    ret: int
    ok: bool
    failures: tuple = ()
    error: str = ""
    fault: tuple = ()
    progress: str = ""
    locks: tuple = ()


class Arg(NamedTuple):
    """A compiled step argument: ``kind`` CONST / REF / SELF_TID / SELF_MM and its value."""

    kind: int
    value: int


class CStep(NamedTuple):
    """A compiled step.  ``bind``: name slot of ``as:`` (-1); ``spawn``: actor index whose
    task is the return value (-1); ``needs``: name slots that must be bound; ``path``: its
    YAML path (``("machine",)`` / ``("actors",)`` for the boot probes and process starts the
    compiler adds, which are not in the file); ``fail``: the step's ``fail:``
    (:class:`~pasidsim.scenario.schema.FailSpec`) or None."""

    op: int
    args: tuple
    expect: Expect | None
    expect_slot: int
    bind: int
    spawn: int
    check: tuple | None
    needs: tuple
    note: str
    path: tuple
    line: int
    fail: FailSpec | None = None

    @property
    def in_file(self) -> bool:
        """Written in the scenario file (not a boot probe or process start)."""
        return len(self.path) > 1


class ActorInfo(NamedTuple):
    """An actor: its name, whether it runs in kernel context, its compiled program."""

    name: str
    kernel: bool
    program: tuple


_PREDICATES: dict[str, Callable[[SystemState], bool]] = {
    "pasid_allocated": lambda s: s.ida.allocated > 0,
    "all_pasids_free": lambda s: s.ida.allocated == 0,
    "all_exited": lambda s: len(s.tasks) == 0,
    "mm_exited_while_bound": lambda s: any(m.state == MmState.EXITED and m.sva_domains
                                           for m in s.mms.values()),
    "group_user_owned": lambda s: any(g.owner for g in s.groups),
    "amdgpu_free_pending": lambda s: len(s.amdgpu_pending) > 0,
    "enqcmd_activated": lambda s: any(t.pasid_activated for t in s.tasks.values()),
}


class CompiledScenario:
    """A scenario ready to run: see the module docstring.

    Attributes: ``model`` (:class:`Scenario`), ``source``, ``config``, ``policy``,
    ``actors`` (:class:`ActorInfo`, index 0 = setup), ``names`` (binding names, indexing
    :attr:`RunState.binds`), ``order`` (actor indices or None), ``hardware``, ``sometimes``
    (``(name, predicate(RunState) -> bool)``), ``expect_final`` (compiled check or None),
    ``final_violations`` (expected count or None), ``hw_actor``, ``inject_faults`` (the model
    checker explores injected failures; may be set after compiling), ``expect_warn``
    (frozenset of :class:`~pasidsim.errors.Warn` values the scenario provokes on purpose).
    """

    def __init__(self, model: Scenario, source: str, config: Config, policy: Policy) -> None:
        self.model, self.source, self.config, self.policy = model, source, config, policy
        self.actors: tuple[ActorInfo, ...] = ()
        self.names: tuple[str, ...] = ()
        self.order: tuple[int, ...] | None = None
        self.hardware = model.hardware
        self.scripted = model.scripted
        self.inject_faults = model.inject_faults
        self.granularity = Granularity[model.granularity.upper()]
        self.expect_warn: frozenset[int] = frozenset(model.expect_warn)
        self.sometimes: tuple = ()
        self.expect_final: tuple | None = None
        self.final_violations: int | None = None
        self.aliases: dict[str, str] = {}
        from ..ops import enabled_events
        self._hw_events = enabled_events

    def __reduce__(self):
        """Pickle as the scenario's text, its location, its policy and the settings that may
        be changed after compiling: the step models are pydantic classes made at run time,
        which pickle cannot name, so another process (a Ray worker) compiles the text again
        (the same text and policy compile to the same initial state and steps).  TypeError
        for a scenario built in code rather than loaded from text."""
        loc = getattr(self.model, "_locator", None)
        text = getattr(self.model, "_text", None)
        if text is None or loc is None:
            raise TypeError("a compiled scenario pickles only when it was loaded from text "
                            "(load_text / load_scenario)")
        # absolute: a worker may run in another directory (machine files are found beside
        # the scenario)
        path = None if loc.path is None else Path(loc.path).resolve()
        return _recompile, (text, loc.source, path, self.policy,
                            {"granularity": self.granularity, "hardware": self.hardware,
                             "inject_faults": self.inject_faults})

    @property
    def hw_actor(self) -> int:
        return len(self.actors)

    def actor_name(self, i: int) -> str:
        return "hw" if i == self.hw_actor else self.actors[i].name

    # -- the transition system -------------------------------------------------------------
    def initial(self) -> RunState:
        """The state before the first step: the machine at boot, nothing run."""
        n = len(self.actors)
        return RunState(initial_state(self.config, self.policy, self.granularity), (0,) * n,
                        (0,) * n, (UNBOUND,) * len(self.names))

    def ctx(self, rs: RunState, i: int) -> int:
        """The execution context of actor ``i``'s kernel calls: its task id, or a kernel
        thread id for a kernel actor (and the setup actor)."""
        return rs.tids[i] or KTHREAD_CTX + i

    def runnable(self, rs: RunState, i: int) -> bool:
        """Can actor ``i`` take its next step in ``rs``?  An actor whose call is in progress
        (``lock`` granularity, or hung) can when the lock it sleeps on is free."""
        if rs.sys.kthreads:
            th = rs.sys.kthreads.get(self.ctx(rs, i))
            if th is not None:
                return not th.wait or th.wait not in rs.sys.locks
        a = self.actors[i]
        pc = rs.pcs[i]
        if pc >= len(a.program):
            return False
        if not a.kernel and rs.tids[i] not in rs.sys.tasks:
            return False
        return all(rs.binds[k] != UNBOUND for k in a.program[pc].needs)

    def enabled(self, rs: RunState) -> list[StepRef]:
        """The steps that can be taken next, in a deterministic order: the setup actor alone
        while it has work, else every runnable actor in index order, then (``hardware:
        true``) the hardware events of ``pasidsim.ops.enabled_events``."""
        if self.runnable(rs, 0):
            return [StepRef(0)]
        out = [StepRef(i) for i in range(1, len(self.actors)) if self.runnable(rs, i)]
        if self.hardware and self._hw_events is not None:
            out += [StepRef(self.hw_actor, a) for a in self._hw_events(rs.sys)]
        return out

    def done(self, rs: RunState) -> bool:
        """Every actor finished its program."""
        return all(pc >= len(a.program) for pc, a in zip(rs.pcs, self.actors))

    def quiescent(self, rs: RunState) -> bool:
        """No actor can take a step (finished, killed, or waiting for a binding that can
        no longer come); hardware events do not count."""
        return not any(self.runnable(rs, i) for i in range(len(self.actors)))

    def status(self, rs: RunState, i: int) -> str:
        """Why actor ``i`` is where it is: finished / runnable / not started / ... ."""
        a = self.actors[i]
        th = rs.sys.kthreads.get(self.ctx(rs, i)) if rs.sys.kthreads else None
        if th is not None:
            where = self.progress(rs.sys, self.ctx(rs, i))
            if th.wait and th.wait in rs.sys.locks:
                return f"blocked in {where}"
            return f"in {where}"
        if rs.pcs[i] >= len(a.program):
            return "finished"
        if not a.kernel and not rs.tids[i]:
            return "not started"
        if not a.kernel and rs.tids[i] not in rs.sys.tasks:
            return f"task {rs.tids[i]} exited with {len(a.program) - rs.pcs[i]} step(s) left"
        waiting = [self.names[k] for k in a.program[rs.pcs[i]].needs if rs.binds[k] == UNBOUND]
        return f"waiting for ${', $'.join(waiting)}" if waiting else "runnable"

    def action(self, rs: RunState, actor: int, cs: CStep) -> Action:
        """The kernel call of step ``cs`` of ``actor`` with its arguments resolved."""
        vals = []
        for kind, v in cs.args:
            if kind == CONST:
                vals.append(v)
            elif kind == REF:
                vals.append(rs.binds[v])
            elif kind == SELF_TID:
                vals.append(rs.tids[actor])
            else:
                t = rs.sys.tasks.get(rs.tids[actor])
                if t is None:
                    raise ModelUsageError(f"actor {self.actors[actor].name!r} has no task")
                vals.append(t.mm)
        return Action(cs.op, tuple(vals))

    def fault_branches(self, rs: RunState, ref: StepRef) -> int:
        """How many fault points the call of step ``ref`` passes in ``rs`` when nothing fails:
        the failures ``StepRef(actor, fail=k)``, ``k = 1..n``, the checker may inject.  0 for
        hardware events, operations that are not kernel calls or process events, steps the
        compiler added (boot probes, process starts), steps with their own ``fail:`` and
        calls that cannot be made."""
        if ref.actor == self.hw_actor or ref.fail:
            return 0
        cs = self.actors[ref.actor].program[rs.pcs[ref.actor]]
        if cs.fail is not None or not cs.in_file or OPS[cs.op].kind not in FAULT_KINDS:
            return 0
        if self.granularity != Granularity.CALL:
            return 0  # injected failures are explored at call granularity (README)
        try:
            _s, ret = step(rs.sys, self.action(rs, ref.actor, cs), self.ctx(rs, ref.actor))
        except ModelUsageError:
            return 0
        return 0 if ret == IN_PROGRESS else fault.points_passed()

    def _fail_ordinal(self, rs: RunState, action: Action, spec: FailSpec) -> int:
        """The ordinal ``k`` (``Action.fail``) of the ``spec.nth`` passage of ``spec.point``
        by ``action`` in ``rs`` (one unfailed run of the whole call).  Raises ModelUsageError
        naming the points it does pass when it never passes that one ``nth`` times."""
        s = rs.sys
        if s.static.granularity != Granularity.CALL:
            s = s._replace(static=Static(self.config, self.policy, Granularity.CALL))
        step(s, action)
        trail = fault.trail()
        seen = 0
        for k, p in enumerate(trail, 1):
            if p == spec.point:
                seen += 1
                if seen == spec.nth:
                    return k
        passed = ", ".join(p.name for p in trail) or "none"
        times = "" if spec.nth == 1 else f" {spec.nth} times"
        raise ModelUsageError(f"fail: {spec.text}: the call never passes fault point "
                              f"{fault.FaultPoint(spec.point).name}{times} here (points it "
                              f"passes: {passed})")

    def apply(self, rs: RunState, ref: StepRef) -> tuple[RunState, Event]:
        """Take step ``ref`` (one of :meth:`enabled`, or one of its failure variants
        ``ref._replace(fail=k)``, ``1 <= k <=`` :meth:`fault_branches`): returns the next
        state and the :class:`Event`.  Never raises for kernel errors, failed expectations
        or steps that cannot be taken (those are recorded in the event)."""
        if ref.actor == self.hw_actor:
            try:
                s2, ret = step(rs.sys, ref.hw)
            except ModelUsageError as e:
                return rs, Event(ref.actor, -1, ref.hw, 0, False, (str(e),), str(e))
            return rs._replace(sys=s2), Event(ref.actor, -1, ref.hw, ret, True)
        i = ref.actor
        pc = rs.pcs[i]
        cs = self.actors[i].program[pc]
        pcs = rs.pcs[:i] + (pc + 1,) + rs.pcs[i + 1:]
        action = None
        injected: tuple = ()
        ctx = self.ctx(rs, i)
        th = rs.sys.kthreads.get(ctx) if rs.sys.kthreads else None
        try:
            if th is not None:  # the actor's call in progress goes on
                action = Action(th.op, th.args, th.fail)
                s2, ret = kernel_continue(rs.sys, ctx)
            else:
                action = self.action(rs, i, cs)
                if ref.fail:
                    action = action._replace(fail=ref.fail)
                elif cs.fail is not None:
                    action = action._replace(fail=self._fail_ordinal(rs, action, cs.fail))
                s2, ret = step(rs.sys, action, ctx)
            if ret == IN_PROGRESS:
                return rs._replace(sys=s2), Event(i, pc, action, ret, True,
                                                  progress=self.progress(s2, ctx),
                                                  locks=self.lock_holders(rs, s2))
            if action.fail and self.granularity == Granularity.CALL:
                trail = fault.trail()
                if len(trail) < action.fail:
                    raise ModelUsageError(f"fail point {action.fail} requested but the call "
                                          f"passes only {len(trail)}")
                point = trail[action.fail - 1]
                injected = (int(point), trail[:action.fail].count(point))
        except ModelUsageError as e:
            msg = f"{OPS[cs.op].name}: {e}"
            return rs._replace(pcs=pcs), Event(i, pc, action, 0, False, (msg,), msg)
        binds, tids = rs.binds, rs.tids
        if cs.bind >= 0:
            binds = binds[:cs.bind] + (ret,) + binds[cs.bind + 1:]
        if cs.spawn >= 0 and ret > 0:
            tids = tids[:cs.spawn] + (ret,) + tids[cs.spawn + 1:]
        rs2 = RunState(s2, pcs, tids, binds)
        failures = self._expectation(rs2, cs, ret)
        if cs.check is not None:
            failures += tuple(f"check: {m}" for m in self.check(rs2, cs.check))
        locks = self.lock_holders(rs2, s2) if s2.locks else ()
        return rs2, Event(i, pc, action, ret, not failures, failures, "", injected, "", locks)

    def progress(self, s: SystemState, ctx: int) -> str:
        """Where the call in progress of ``ctx`` stands: ``iommu_sva_unbind_device@2 >
        ...``, what it holds and what it sleeps on."""
        th = s.kthreads.get(ctx)
        if th is None:
            return ""
        stack = " > ".join(f"{n}@{pc}" for n, pc in call_stack(s, ctx))
        if th.ret != IN_PROGRESS:  # the call returned; its task work runs before user space
            work = ", ".join(f"{Work(w[0]).name.lower()}{w[1:]}" for w in th.pending)
            stack = (f"task work of {OPS[th.op].name}: {stack}" if stack else
                     f"{OPS[th.op].name} done, task work pending: {work}")
        elif not stack:
            stack = f"{OPS[th.op].name} (not started)"
        out = stack
        if th.held:
            out += " holding " + ", ".join(key_name(k) for k in th.held)
        if th.wait:
            out += f", sleeping on {key_name(th.wait)}"
        return out

    def lock_holders(self, rs: RunState, s: SystemState) -> tuple:
        """``(lock name, holder)`` of every lock held in ``s``, holders named as actors."""
        names = {}
        for i in range(len(self.actors)):
            names[self.ctx(rs, i)] = self.actors[i].name
        return tuple((key_name(k), names.get(c, f"context {c}"))
                     for k, c in sorted(s.locks.items()))

    def _expectation(self, rs: RunState, cs: CStep, ret: int) -> tuple:
        e = cs.expect
        if e is None:
            return ()
        if e.kind == "ok":
            good = ret >= 0
        elif e.kind == "error":
            good = ret < 0
        elif e.kind == "any":
            good = True
        elif e.kind == "ref":
            good = ret == rs.binds[cs.expect_slot]
        else:
            good = ret == e.value
        return () if good else (f"expected {e.text}, got {fmt_ret(ret)}",)

    def check(self, rs: RunState, ccheck: tuple) -> list[str]:
        """Evaluate a compiled :class:`StateCheck` ``(model, groups, slots)``; returns the
        failed assertions (a ``$name`` no step has bound yet fails its assertion)."""
        model, groups, slots = ccheck

        def value(v):
            if not isinstance(v, Ref):
                return v
            got = rs.binds[slots[v.name]]
            return None if got == UNBOUND else got
        return model.failures(rs.sys, value, groups)

    def describe(self, rs: RunState, ref: StepRef) -> str:
        """``A: dev_open(tid=5, dev=dsa0)`` for an enabled step."""
        if ref.actor == self.hw_actor:
            return f"hw: {ref.hw!r}"
        cs = self.actors[ref.actor].program[rs.pcs[ref.actor]]
        try:
            return f"{self.actors[ref.actor].name}: {self.action(rs, ref.actor, cs)!r}"
        except ModelUsageError as e:
            return f"{self.actors[ref.actor].name}: {OPS[cs.op].name} ({e})"


def _recompile(text: str, source: str, path, policy: Policy, attrs: dict) -> "CompiledScenario":
    """Unpickle a :class:`CompiledScenario` (see its ``__reduce__``)."""
    from .loader import load_text
    c = compile_scenario(load_text(text, source, path), policy=policy)
    for k, v in attrs.items():
        setattr(c, k, v)
    return c


def compile_scenario(scenario: Scenario | LoadedScenario, *, policy: Policy | None = None,
                     design: str | None = None) -> CompiledScenario:
    """Compile a validated scenario.

    Args:
        scenario: a :class:`Scenario` (from :func:`~pasidsim.scenario.loader.load_scenario`'s
            ``.model``) or the :class:`LoadedScenario` itself.
        policy: run on this design instead of the file's ``design`` + ``policy_overrides``.
        design: a design name to use instead of the file's (overrides still apply).
    Returns: a :class:`CompiledScenario`.
    Raises: :class:`ScenarioError` located in the file for names the machine does not have
        (devices, drivers, groups), an unusable machine, or an unknown ``design``.
    """
    model = scenario.model if isinstance(scenario, LoadedScenario) else scenario
    loc: Locator = getattr(model, "_locator", None) or Locator("<scenario>", {})
    config, aliases = _config(model, loc)
    if policy is None:
        if design is not None and design not in DESIGNS:
            raise ScenarioError(loc.source, 0, "design",
                                f"unknown design {design!r}; known: {', '.join(DESIGNS)}")
        policy = _policy(model, design)
    c = CompiledScenario(model, loc.source, config, policy)
    c.aliases = aliases
    _Builder(c, model, loc).build()
    return c


def _config(model: Scenario, loc: Locator) -> tuple[Config, dict]:
    from ..machines import machine_config
    from ..topology.model import TopologyError
    base = loc.path.parent if loc.path is not None else None
    try:
        return machine_config(model.machine, base)
    except TopologyError as e:
        raise loc.error(("machine", "topology"), f"cannot import topology: {e}") from None
    except ScenarioError as e:
        raise loc.error(("machine",), f"machine file {e}") from None
    except ModelUsageError as e:
        raise loc.error(("machine",) + getattr(e, "at", ()), str(e)) from None


def _policy(model: Scenario, design: str | None) -> Policy:
    base = DESIGNS[design or model.design]
    changes = {k: v for k, v in model.policy_overrides.model_dump().items() if v is not None}
    if not changes:
        return base
    label = ",".join(f"{k}={getattr(v, 'name', v)}" for k, v in sorted(changes.items()))
    return base.but(name=f"{base.name}+{label}", **changes)


class _Builder:
    """Turns the validated model into actors and compiled steps."""

    def __init__(self, c: CompiledScenario, model: Scenario, loc: Locator) -> None:
        self.c, self.model, self.loc = c, model, loc
        self.slots: dict[str, int] = {}
        self.actor_ix: dict[str, int] = {"setup": 0}
        self.plan: list[tuple] = []  # (name, kernel, program model list, base path)

    def slot(self, name: str) -> int:
        return self.slots.setdefault(name, len(self.slots))

    def build(self) -> None:
        m, c = self.model, self.c
        for i, a in enumerate(m.actors):
            self._plan(a.name, a.kernel, a.program, ("actors", i, "program"))
        for name, kernel, *_ in self.plan:
            if not kernel:
                self.slot(name)
        setup = list(self._boot()) if m.probe_drivers else []
        for name, kernel, *_ in self.plan:
            if not kernel and name in {a.name for a in m.actors}:
                setup.append(CStep(OP_BY_NAME["process_create"].code, (), None, -1,
                                   self.slot(name), self.actor_ix[name], None, (),
                                   f"start process {name}", ("actors",), 0))
        setup += [self._step(st, ("setup", j), True) for j, st in enumerate(m.setup)]
        actors = [ActorInfo("setup", True, tuple(setup))]
        for name, kernel, program, base in self.plan:
            actors.append(ActorInfo(name, kernel, tuple(
                self._step(st, base + (j,), kernel) for j, st in enumerate(program))))
        c.actors = tuple(actors)
        c.names = tuple(sorted(self.slots, key=self.slots.get))
        if m.order is not None:
            c.order = tuple(c.hw_actor if n == "hw" else self.actor_ix[n] for n in m.order)
        c.sometimes = tuple((n, self._predicate(n)) for n in m.sometimes)
        if m.expect_final is not None:
            c.expect_final = self._check(m.expect_final, ("expect_final",))
            c.final_violations = m.expect_final.violations

    def _plan(self, name, kernel, program, base) -> None:
        self.actor_ix[name] = len(self.plan) + 1
        self.plan.append((name, kernel, program, base))
        for j, st in enumerate(program):
            child = getattr(st.args, "program", None)
            if child is not None:
                self._plan(st.args.bind, False, child, base + (j, type(st).TAG, "program"))

    def _boot(self):
        cfg = self.c.config
        code = OP_BY_NAME["device_driver_attach"].code
        for i, d in enumerate(cfg.devices):
            if d.driver is not None:
                yield CStep(code, (Arg(CONST, i), Arg(CONST, cfg.driver_index(d.driver))),
                            None, -1, -1, -1, None, (), f"boot: probe {d.driver}", ("machine",),
                            0)

    def _name(self, kind: str, v, at: tuple) -> int:
        cfg, aliases = self.c.config, self.c.aliases
        if isinstance(v, int):
            n = {"dev": len(cfg.devices), "drv": len(cfg.drivers), "group": len(cfg.groups)}[kind]
            if v >= n:
                what = {"dev": "device", "drv": "driver", "group": "group"}[kind]
                raise self.loc.error(at, f"{what} index {v} out of range (0..{n - 1})")
            return v
        v = aliases.get(v, v)
        try:
            if kind == "dev":
                return cfg.device_index(v)
            if kind == "drv":
                return cfg.driver_index(v)
            if any(g.name == v for g in cfg.groups):
                return cfg.group_index(v)
            g = cfg.device_group[cfg.device_index(v)]
            if g < 0:
                raise self.loc.error(at, f"device {v!r} has no IOMMU group")
            return g
        except ModelUsageError:
            pool = {"dev": [d.name for d in cfg.devices], "drv": [d.name for d in cfg.drivers],
                    "group": [g.name for g in cfg.groups]}[kind] + list(aliases)
            import difflib
            near = difflib.get_close_matches(str(v), pool, n=3)
            what = {"dev": "device", "drv": "driver", "group": "group or device"}[kind]
            hint = f"; did you mean {', '.join(near)}?" if near else \
                f"; the machine has: {', '.join(pool[:12])}"
            raise self.loc.error(at, f"unknown {what} {v!r}{hint}") from None

    def _step(self, st, path: tuple, kernel: bool) -> CStep:
        op = OP_BY_NAME[type(st).OP]
        tag, a = type(st).TAG, st.args
        at = path + (tag,)
        args, needs = [], []
        for p, d in zip(op.params, op.defaults):
            v = getattr(a, p)
            if v is None or v == "self":
                if v is None and p != "tid":
                    args.append(Arg(CONST, int(d)))
                else:
                    args.append(Arg(SELF_TID if p == "tid" else SELF_MM, 0))
            elif isinstance(v, Ref):
                # slot(): a name another actor binds later in the file is not compiled yet
                args.append(Arg(REF, self.slot(v.name)))
                needs.append(self.slot(v.name))
            elif p in ("dev", "drv", "group"):
                args.append(Arg(CONST, self._name(p, v, at + (p,))))
            else:
                args.append(Arg(CONST, int(v)))
        exp, eslot = a.expect, -1
        if exp is not None and exp.kind == "ref":
            eslot = self.slot(exp.ref)
            needs.append(eslot)
        check = self._check(a.check, at + ("check",)) if a.check is not None else None
        if check is not None:
            needs += list(check[2].values())
        spawn = self.actor_ix[a.bind] if getattr(a, "program", None) is not None else -1
        return CStep(op.code, tuple(args), exp, eslot, self.slot(a.bind) if a.bind else -1,
                     spawn, check, tuple(sorted(set(needs))), a.note or "", path,
                     self.loc.resolve(path)[1], getattr(a, "fail", None))

    def _check(self, chk: StateCheck, at: tuple) -> tuple:
        groups = {name: self._name("group", name, at + ("groups", name))
                  for name in (chk.groups or {})}
        refs = {}
        for key in type(chk).model_fields:
            val = getattr(chk, key)
            if isinstance(val, list):
                refs.update((v.name, self.slot(v.name)) for v in val if isinstance(v, Ref))
        return chk, groups, refs

    def _predicate(self, name: str):
        if name == "programs_done":
            return self.c.done
        fn = _PREDICATES[name]
        return lambda rs: fn(rs.sys)


__all__ = ["compile_scenario", "CompiledScenario", "RunState", "StepRef", "Event", "CStep",
           "ActorInfo", "UNBOUND"]
