"""Checking scenarios against designs: one cell, a matrix, reports.

:func:`check_scenario` explores every interleaving of a scenario's actors (and, with
``hardware``, of the hardware's completions, page-request handling and fence signals) on one
design and returns a :class:`Cell`; :func:`check_matrix` does it for scenarios × designs.
Verdicts are herd7-style: **Always** (every reachable state satisfies every property),
**Sometimes** (a reachable state violates one: the shortest counterexample is kept) and
**Never** (the initial state already violates one), with state counts; **Bounded** when a
bound stopped the search before it was exhaustive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .pasid_model import ScenarioModel, sys_state, violation_name
from .search import explore


# Compiled scenarios hold pydantic step models that do not pickle: workers are forked (they
# inherit the model) where the platform can fork.
import multiprocessing as _mp  # noqa: E402

_MP_CONTEXT = "fork" if "fork" in _mp.get_all_start_methods() else "spawn"


@dataclass
class Cell:
    """The result of checking one scenario on one design."""

    scenario: str
    design: str
    verdict: str  # "Always" | "Sometimes" | "Never" | "Bounded"
    states: int
    transitions: int
    elapsed: float
    invariant: str | None = None
    message: str = ""
    kind: str = ""  # always | quiescence | deadlock
    trace: list = field(default_factory=list)  # [(actor name, call text, ret)]
    refs: list = field(default_factory=list)  # the StepRefs of the counterexample
    unreached: list = field(default_factory=list)  # sometimes-goals never reached
    expected: str | None = None  # the invariant this design is expected to break, if any
    broken: list = field(default_factory=list)  # every invariant the violating state breaks

    @property
    def ok(self) -> bool:
        """Verdict as expected: Always when nothing is expected, else that invariant."""
        if self.expected is None:
            return self.verdict == "Always" and not self.unreached
        return self.verdict in ("Sometimes", "Never") and (
            self.invariant == self.expected or self.expected in self.broken)

    def to_json(self) -> dict:
        return {"scenario": self.scenario, "design": self.design, "verdict": self.verdict,
                "states": self.states, "transitions": self.transitions,
                "elapsed": round(self.elapsed, 4), "invariant": self.invariant,
                "kind": self.kind, "message": self.message, "expected": self.expected,
                "unreached": self.unreached,
                "trace": [{"actor": a, "call": c, "ret": r} for a, c, r in self.trace]}


def check_scenario(compiled, *, scenario_name: str = "", design_name: str = "",
                   sometimes=(), strategy: str = "bfs", max_states: int | None = 200_000,
                   max_depth: int | None = None, max_seconds: float | None = 120.0,
                   workers: int = 1, expected: str | None = None,
                   symmetry: bool = False, por: bool = False) -> Cell:
    """Explore a compiled scenario and summarise the outcome as a :class:`Cell`.

    ``symmetry``: identify states equal up to object ids and interchangeable actors
    (:mod:`pasidsim.check.symmetry`); verdicts and counterexample lengths are unchanged,
    ``states`` counts symmetry classes.

    ``por``: partial-order reduction (:mod:`pasidsim.check.por`) where the scenario allows it
    (not with ``hardware: true``: then it is silently off, see ``ScenarioModel.por_reason``)."""
    model = ScenarioModel(compiled, sometimes=sometimes, symmetry=symmetry, por=por)
    por = por and model.por_reason is None
    t0 = time.perf_counter()
    if workers > 1:
        from functools import partial

        from .parallel import explore_parallel
        result = explore_parallel(partial(ScenarioModel, compiled, sometimes=tuple(sometimes),
                                          symmetry=symmetry, por=por),
                                  workers=workers, strategy=strategy, max_states=max_states,
                                  max_depth=max_depth, max_seconds=max_seconds,
                                  symmetry=symmetry, por=por, context=_MP_CONTEXT)
    else:
        result = explore(model, strategy=strategy, max_states=max_states, max_depth=max_depth,
                         max_seconds=max_seconds, symmetry=symmetry, por=por)
    elapsed = time.perf_counter() - t0
    cell = Cell(scenario_name, design_name, "Always", result.states, result.transitions,
                elapsed, expected=expected, unreached=list(result.sometimes_unreached))
    v = result.violation
    if v is not None:
        cell.verdict = "Never" if not v.trace else "Sometimes"
        cell.invariant = violation_name(result)
        cell.message = v.message
        cell.kind = v.kind
        cell.refs = list(v.trace)
        cell.trace = describe_trace(compiled, v.trace)
        cell.broken = broken_at(compiled, v.trace, cell.invariant)
    elif result.verdict == "bounded":
        cell.verdict = "Bounded"
        cell.message = result.message
    return cell


def broken_at(compiled, refs, first: str | None) -> list:
    """Every invariant (state, transition, quiescence) broken by the last step of a trace."""
    from ..invariants import check_state, check_transition
    from .properties import quiescence_leaks
    rs = compiled.initial()
    prev, action, ret = rs, None, 0
    for ref in refs:
        prev = rs
        rs, ev = compiled.apply(rs, ref)
        action, ret = ev.action, ev.ret
    names = [n for n, _m in check_state(rs.sys)]
    if refs:
        names += [n for n, _m in check_transition(prev.sys, action, ret, rs.sys)]
    if compiled.quiescent(rs) and quiescence_leaks(rs.sys):
        names.append("quiescence")
    out = [first] if first else []
    return out + [n for n in names if n not in out and n != "W"]


def describe_trace(compiled, refs) -> list:
    """Replay a counterexample and describe each step as (actor, call, ret)."""
    from ..report.text import action_text, ret_text
    rs = compiled.initial()
    out = []
    for ref in refs:
        rs2, ev = compiled.apply(rs, ref)
        actor = compiled.actor_name(ev.actor)
        call = action_text(sys_state(rs), ev.action) if ev.action is not None else str(ref)
        out.append((actor, call, ret_text(ev.ret) if isinstance(ev.ret, int) else str(ev.ret)))
        rs = rs2
    return out
