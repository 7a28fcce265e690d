"""Running a compiled scenario once, deterministically.

Scheduling: the setup pseudo-actor runs first; then the entries of the file's ``order`` (one
step of the named actor each; ``hw`` = the first enabled hardware event); then round-robin over
the actors in index order, starting after the last actor that ran and skipping those that
cannot run (finished, killed, or waiting for a ``$name``).  Hardware events run only when
``order`` names ``hw``.

After every step the state invariants of :mod:`pasidsim.invariants` (all scopes) and the
transition invariants are checked; each distinct violation is reported once, where it first
appears.  Nothing stops the run: failed expectations, failed checks, order entries that
cannot run and violations are all collected in the :class:`RunResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..invariants import check_state, check_transition
from .compile import CompiledScenario, Event, RunState, StepRef


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
    did not finish their program).  ``ok``: no failure; ``exit_code``: 0 ok, 1 otherwise.
    """

    compiled: CompiledScenario
    events: list[Event] = field(default_factory=list)
    final: RunState | None = None
    failures: list[Failure] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    unfinished: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

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
                 check_invariants: bool = True, max_steps: int = 1_000_000) -> RunResult:
    """Run ``c`` once (see the module docstring) and return the :class:`RunResult`.

    Args:
        on_event: called as ``on_event(index, event)`` after each step (progress display).
        check_invariants: check the invariants after every step.
        max_steps: safety bound on the number of steps.
    """
    res = RunResult(c)
    rs = c.initial()
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
        for msg in ev.failures:
            res.failures.append(Failure(idx, _where(c, ev), res.step_line(ev), msg))
        if check_invariants:
            found = check_state(rs.sys)
            if ev.action is not None:
                found += check_transition(before.sys, ev.action, ev.ret, rs.sys)
            for name, msg in found:
                if (name, msg) not in seen:
                    seen.add((name, msg))
                    res.violations.append(Violation(idx, name, msg))
        if on_event is not None:
            on_event(idx, ev)
    res.final = rs
    _final_checks(c, res)
    return res


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
