"""Running a compiled scenario once, deterministically.

Scheduling: the setup pseudo-actor runs first; then the entries of the file's ``order`` (one
step of the named actor each; ``hw`` = the first enabled hardware event); then round-robin over
the actors in index order, starting after the last actor that ran and skipping those that
cannot run (finished, killed, or waiting for a ``$name``).  Hardware events run only when
``order`` names ``hw``.

After every step the state invariants of :mod:`pasidsim.invariants` (all scopes; ``W``
ignores the scenario's ``expect_warn``), the transition invariants and failure atomicity
(``ATOMIC``: a failed call of an atomic operation leaves the state unchanged, WARNs aside) are
checked; each distinct violation is reported once, where it first appears.  A run that ends
quiescent (no actor can move, no hardware event pending) is checked for leaks too
(``quiescence``, :func:`pasidsim.invariants.quiescence_leaks`), as the model checker does.

A step that cannot run is a failure at its line, never a silent no-op: an ``order`` entry
naming an actor that cannot move, a step whose call cannot be made (a usage error of the
model, a ``fail:`` point the call never passes), and a kernel call or process event that
returns ``-errno`` when the step has no ``expect`` (write ``expect: error`` or the errno when
the failure is intended; a step with ``fail:`` expects its failure; a hardware event's
return -- a DMA that faults -- is its outcome, not a failure to run).  Nothing stops the run:
failed expectations, failed checks, steps that cannot run and violations are all collected in
the :class:`RunResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import fmt_ret
from ..invariants import quiescence_leaks, step_violations
from ..step import OPS
from .compile import CompiledScenario, Event, RunState, StepRef
from .schema import FAULT_KINDS


@dataclass(frozen=True)
class Failure:
    """A failed expectation.  ``event``: index into :attr:`RunResult.events` (None for
    ``expect_final`` and ``order`` problems); ``line``: line in the scenario file (0 if
    unknown); ``where``: ``"A step 3"``, ``"expect_final"``, ``"order[2]"``."""

    event: int | None
    where: str
    line: int
    message: str


@dataclass(frozen=True)
class Violation:
    """An invariant violated after event ``event`` (first appearance)."""

    event: int
    name: str
    message: str


@dataclass
class RunResult:
    """The outcome of :func:`run_scenario`.

    Attributes: ``compiled``; ``events`` (in order); ``final`` (:class:`RunState`);
    ``failures``; ``violations``; ``unfinished`` (``(actor name, status)`` of actors that
    did not finish their program).  ``ok``: no failure, and no invariant violation unless the
    scenario counts them (``expect_final: {violations: N}``, checked as a failure);
    ``exit_code``: 0 ok, 1 otherwise.
    """

    compiled: CompiledScenario
    events: list[Event] = field(default_factory=list)
    final: RunState | None = None
    failures: list[Failure] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    unfinished: list[tuple[str, str]] = field(default_factory=list)
    states: list[RunState] = field(default_factory=list)  # with keep_states: before event 1, after each

    @property
    def ok(self) -> bool:
        return not self.failures and (not self.violations
                                      or self.compiled.final_violations is not None)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def step_line(self, ev: Event) -> int:
        """The scenario line of the step behind ``ev`` (0 for hw events and boot steps)."""
        if ev.pc < 0:
            return 0
        return self.compiled.actors[ev.actor].program[ev.pc].line

    def step_note(self, ev: Event) -> str:
        return "" if ev.pc < 0 else self.compiled.actors[ev.actor].program[ev.pc].note


def total_steps(c: CompiledScenario) -> int:
    """Number of program steps in the scenario (an upper bound on a run's length without
    hardware events)."""
    return sum(len(a.program) for a in c.actors) + len(c.order or ())


def run_scenario(c: CompiledScenario, *, on_event: Callable[[int, Event], None] | None = None,
                 check_invariants: bool = True, max_steps: int = 1_000_000,
                 keep_states: bool = False) -> RunResult:
    """Run ``c`` once (see the module docstring) and return the :class:`RunResult`.

    Args:
        on_event: called as ``on_event(index, event)`` after each step (progress display).
        check_invariants: check the invariants after every step.
        max_steps: safety bound on the number of steps.
        keep_states: keep the run state before the first event and after each one in
            ``RunResult.states`` (for ITF traces and diffs; states share structure, so this
            costs little).
    """
    res = RunResult(c)
    rs = c.initial()
    if keep_states:
        res.states.append(rs)
    order = list(c.order or ())
    oi, last = 0, 0
    seen: set[tuple[str, str]] = set()
    while len(res.events) < max_steps:
        en = c.enabled(rs)
        prog = [r for r in en if r.actor != c.hw_actor]
        if prog and prog[0].actor == 0:
            ref = prog[0]
        elif oi < len(order):
            want, oi = order[oi], oi + 1
            cands = [r for r in en if r.actor == want]
            if not cands:
                why = "no hardware event is pending" if want == c.hw_actor else \
                    c.status(rs, want)
                res.failures.append(Failure(None, f"order[{oi - 1}]", _order_line(c, oi - 1),
                                            f"actor {c.actor_name(want)!r} cannot run: {why}"))
                continue
            ref = cands[0]
        elif prog:
            ref = min(prog, key=lambda r: (r.actor <= last, r.actor))
        else:
            break
        if ref.actor != c.hw_actor:
            last = ref.actor
        before = rs
        rs, ev = c.apply(rs, ref)
        idx = len(res.events)
        res.events.append(ev)
        if keep_states:
            res.states.append(rs)
        for msg in ev.failures:
            res.failures.append(Failure(idx, _where(c, ev), res.step_line(ev), msg))
        msg = _unexpected_error(c, ev)
        if msg:
            res.failures.append(Failure(idx, _where(c, ev), res.step_line(ev), msg))
        if check_invariants:
            whole = not ev.progress and not (  # the call started and returned in this step
                ref.actor != c.hw_actor and before.sys.kthreads
                and c.ctx(before, ref.actor) in before.sys.kthreads)
            found = step_violations(before.sys, ev.action, ev.ret, rs.sys, c.expect_warn, whole)
            for name, msg in found:
                if (name, msg) not in seen:
                    seen.add((name, msg))
                    res.violations.append(Violation(idx, name, msg))
        if on_event is not None:
            on_event(idx, ev)
    res.final = rs
    if check_invariants and _quiescent(c, rs):
        leak = quiescence_leaks(rs.sys)
        if leak:
            res.violations.append(Violation(len(res.events) - 1, "quiescence", leak))
    _final_checks(c, res)
    return res


def _quiescent(c: CompiledScenario, rs: RunState) -> bool:
    """No actor can move and no hardware event is pending."""
    if not c.quiescent(rs):
        return False
    events = c._hw_events
    return events is None or not events(rs.sys)


def _unexpected_error(c: CompiledScenario, ev: Event) -> str:
    """The failure of a step written without ``expect`` (nor ``fail:``) whose kernel call or
    process event returned ``-errno``: it did not run, and nothing in the file said that was
    fine."""
    if ev.pc < 0 or ev.error or not isinstance(ev.ret, int) or ev.ret >= 0 or ev.progress:
        return ""
    cs = c.actors[ev.actor].program[ev.pc]
    if cs.expect is not None or cs.fail is not None or not cs.in_file or \
            OPS[cs.op].kind not in FAULT_KINDS:
        return ""
    return (f"{OPS[cs.op].name} returned {fmt_ret(ev.ret)} and the step has no `expect`: a "
            "call that fails did not run (write `expect: error` or the errno if intended)")


def _where(c: CompiledScenario, ev: Event) -> str:
    if ev.pc < 0:
        return "hw"
    return f"{c.actors[ev.actor].name} step {ev.pc + 1}"


def _order_line(c: CompiledScenario, i: int) -> int:
    loc = getattr(c.model, "_locator", None)
    return loc.resolve(("order", i))[1] if loc is not None else 0


def _final_checks(c: CompiledScenario, res: RunResult) -> None:
    loc = getattr(c.model, "_locator", None)
    line = loc.resolve(("expect_final",))[1] if loc is not None else 0
    if c.expect_final is not None:
        for msg in c.check(res.final, c.expect_final):
            res.failures.append(Failure(None, "expect_final", line, msg))
    if c.final_violations is not None and len(res.violations) != c.final_violations:
        names = ", ".join(sorted({v.name for v in res.violations})) or "none"
        res.failures.append(Failure(None, "expect_final", line,
                                    f"violations: expected {c.final_violations}, got "
                                    f"{len(res.violations)} ({names})"))
    for i in range(1, len(c.actors)):
        status = c.status(res.final, i)
        if status != "finished":
            res.unfinished.append((c.actors[i].name, status))


def run_file(spec: str, *, design: str | None = None, **kwargs) -> RunResult:
    """Load (a path or a built-in name), compile and run a scenario.
    Raises :class:`~pasidsim.scenario.loader.ScenarioError` for bad input."""
    from . import compile_scenario, load_scenario, resolve_scenario
    return run_scenario(compile_scenario(load_scenario(resolve_scenario(spec)), design=design),
                        **kwargs)


__all__ = ["run_scenario", "run_file", "RunResult", "Failure", "Violation", "total_steps",
           "StepRef"]
