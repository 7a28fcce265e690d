"""Checking scenarios against designs: one cell, a matrix, reports.

:func:`check_scenario` explores every interleaving of a scenario's actors (and, with
``hardware``, of the hardware's completions, page-request handling and fence signals) on one
design and returns a :class:`Cell`; :func:`check_matrix` does it for scenarios × designs.
Verdicts are herd7-style: **Always** (every reachable state satisfies every property),
**Sometimes** (a reachable state violates one: the shortest counterexample is kept) and
**Never** (the initial state already violates one), with state counts; **Bounded** when a
bound stopped the search before it was exhaustive.  A cell is *as expected* (:attr:`Cell.ok`)
when its outcome is its :class:`~pasidsim.check.expected.Expected` entry (``check/expected/``;
none: it must pass).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..report.itf import named, object_names
from ..state import Granularity
from .expected import PASS, Expected
from .pasid_model import TRANSITION_CHECKS, ScenarioModel, sys_state, violation_name
from .search import explore



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
    trace: list = field(default_factory=list)  # [(actor name, call text, ret text)]
    rets: list = field(default_factory=list)  # the trace's kernel return values (None: running)
    refs: list = field(default_factory=list)  # the StepRefs of the counterexample
    unreached: list = field(default_factory=list)  # sometimes-goals never reached
    expected: Expected | None = None  # what this design must do here (None: pass)
    broken: list = field(default_factory=list)  # every property the violating state breaks
    documented: bool = False  # a row of HISTORY: the design's documented breakage
    levels: list = field(default_factory=list)  # distinct states per BFS level (depth)

    @property
    def ok(self) -> bool:
        """The outcome is the expected one (:meth:`Expected.matches`; no entry: the cell
        must pass, every goal reached)."""
        exp = self.expected or PASS
        return exp.matches(self.verdict, self.invariant, self.broken, self.unreached)

    def to_json(self) -> dict:
        exp = self.expected or PASS
        return {"scenario": self.scenario, "design": self.design, "verdict": self.verdict,
                "states": self.states, "transitions": self.transitions,
                "elapsed": round(self.elapsed, 4), "invariant": self.invariant,
                "kind": self.kind, "message": self.message, "expected": exp.breaks,
                "expected_unreached": list(exp.unreached), "ok": self.ok,
                "documented": self.documented, "unreached": self.unreached,
                "length": len(self.refs), "levels": list(self.levels),
                "trace": [{"actor": a, "call": c, "ret_text": r, "ret": ret}
                          for (a, c, r), ret in zip(self.trace, self.rets)]}


def check_scenario(compiled, *, scenario_name: str = "", design_name: str = "",
                   sometimes=(), strategy: str = "bfs", max_states: int | None = 200_000,
                   max_depth: int | None = None, max_seconds: float | None = 120.0,
                   workers: int = 1, expected: Expected | str | None = None,
                   symmetry: bool = False, por: bool = False,
                   inject_faults: bool | None = None, documented: bool = False,
                   granularity: str | None = None, on_progress=None,
                   ray_address: str | None = None, swarm: int = 0,
                   checkpoint: str | None = None, resume: str | None = None) -> Cell:
    """Explore a compiled scenario and summarise the outcome as a :class:`Cell`.

    ``expected``: what the cell must give (:class:`~pasidsim.check.expected.Expected`; a
    property name means ``Expected(breaks=name)``; None: it must pass); it only sets
    :attr:`Cell.ok`.  ``inject_faults``: explore injected failures (None: as the scenario
    says, ``compiled.inject_faults``).  ``documented``: mark the cell as a HISTORY row.

    ``symmetry``: identify states equal up to object ids and interchangeable actors
    (:mod:`pasidsim.check.symmetry`); verdicts and counterexample lengths are unchanged,
    ``states`` counts symmetry classes.

    ``granularity``: ``"call"`` or ``"lock"`` (None: as the scenario says); see
    :mod:`pasidsim.step`.

    ``por``: partial-order reduction (:mod:`pasidsim.check.por`) where the scenario allows it
    (not with ``hardware: true``: then it is silently off, see ``ScenarioModel.por_reason``).

    ``on_progress``: called with a :class:`~pasidsim.check.search.Progress` now and then by
    a serial search (``workers == 1``).

    ``workers`` > 1: level-parallel BFS on that many Ray actors (:mod:`.parallel`; results
    identical to the serial search), on a local Ray runtime or the cluster at
    ``ray_address``.

    ``swarm`` > 0: instead of one exhaustive search, that many randomized depth-first searches
    each within ``max_states``/``max_depth``/``max_seconds`` (:mod:`.swarm`; as Ray tasks when
    ``workers`` > 1): a violation found is real but its counterexample not necessarily
    shortest; finding none is "Bounded" unless one search covered every state.

    ``checkpoint`` / ``resume``: a serial search saved to / resumed from that file
    (:class:`~pasidsim.check.search.Checkpoint`; ValueError for a file that is not a
    checkpoint of this cell)."""
    if isinstance(expected, str):
        expected = Expected(breaks=expected)
    if granularity is not None:
        compiled.granularity = Granularity[granularity.upper()]
    if inject_faults is not None:
        compiled.inject_faults = inject_faults
    model = ScenarioModel(compiled, sometimes=sometimes, symmetry=symmetry, por=por)
    por = por and model.por_reason is None
    t0 = time.perf_counter()
    if swarm > 0:
        from functools import partial

        from .swarm import swarm as run_swarm
        result = run_swarm(partial(ScenarioModel, compiled, sometimes=tuple(sometimes),
                                   symmetry=symmetry, por=por), swarm,
                           max_states=max_states, max_depth=max_depth,
                           max_seconds=max_seconds, symmetry=symmetry, por=por,
                           workers=workers, address=ray_address)
    elif workers > 1:
        from functools import partial

        from .parallel import explore_parallel
        result = explore_parallel(partial(ScenarioModel, compiled, sometimes=tuple(sometimes),
                                          symmetry=symmetry, por=por),
                                  workers=workers, strategy=strategy, max_states=max_states,
                                  max_depth=max_depth, max_seconds=max_seconds,
                                  symmetry=symmetry, por=por, address=ray_address)
    else:
        result = explore(model, strategy=strategy, max_states=max_states, max_depth=max_depth,
                         max_seconds=max_seconds, symmetry=symmetry, por=por,
                         on_progress=on_progress, checkpoint=checkpoint, resume=resume)
    elapsed = time.perf_counter() - t0
    levels = list(getattr(result, "states_per_level", []))
    cell = Cell(scenario_name, design_name, "Always", result.states, result.transitions,
                elapsed, expected=expected, unreached=list(result.sometimes_unreached),
                documented=documented, levels=levels)
    v = result.violation
    if v is not None:
        cell.verdict = "Never" if not v.trace else "Sometimes"
        cell.invariant = violation_name(result)
        cell.message = v.message
        cell.kind = v.kind
        cell.refs = list(v.trace)
        names: dict = {}
        cell.trace = describe_trace(compiled, v.trace, cell.rets, names)
        cell.message = named(cell.message, names)
        cell.broken = broken_at(compiled, v.trace, cell.invariant, v.states[-1])
    elif result.verdict == "bounded":
        cell.verdict = "Bounded"
        cell.message = result.message
    return cell


def broken_at(compiled, refs, first: str | None, last=None) -> list:
    """Every property broken in the last state of a counterexample (``refs`` from the initial
    state), ``first`` (the one the search reported) first: the state invariants (``W`` as the
    checker judges it), the transition checks of the last step, and, in a quiescent state,
    the quiescence properties.  ``last``: the :class:`~.pasid_model.CheckState` the search
    replayed (it carries the transition checks and the injection flag); without it the
    trace is replayed here."""
    model = ScenarioModel(compiled)
    if last is None:
        last = model.initial_states()[0]
        for ref in refs:
            last = model.step(last, ref)
    names = [inv.name for inv in model.invariants if inv.check(last) is not None]
    names = [n for n in names if n != "transition"]
    names += [TRANSITION_CHECKS[i] for i in last.last]
    if model.is_quiescent(last):
        got = model.at_quiescence(last)
        if got is not None:
            names.append(got[0] if isinstance(got, tuple) else "quiescence")
    out = [first] if first else []
    return out + [n for n in names if n not in out]


def describe_trace(compiled, refs, rets: list | None = None,
                   names: dict | None = None) -> list:
    """Replay a counterexample and describe each step as (actor, call, ret text); an injected
    failure shows in the call: ``iommu_sva_bind_device(dev=dsa0, mm=2) [fail HANDLE_ALLOC
    -ENOMEM]``.  ``rets``, when given, gets each step's kernel return value appended (an
    int; None for a call that has not returned or a step that is no call); ``names``, when
    given, gets the names of the objects met (:func:`~pasidsim.report.itf.object_names`,
    first name kept)."""
    from ..report.text import action_text, ret_text
    from ..scenario.trace import fault_text, lock_text
    rs = compiled.initial()
    out = []
    for ref in refs:
        rs2, ev = compiled.apply(rs, ref)
        actor = compiled.actor_name(ev.actor)
        call = action_text(sys_state(rs), ev.action) if ev.action is not None else str(ref)
        if ev.fault:
            call += f" [{fault_text(ev.fault)}]"
        if ev.progress:
            call += f" … stopped in {ev.progress}"
        if ev.locks:
            call += f" {{locks: {lock_text(ev)}}}"
        out.append((actor, call, ret_text(ev.ret) if isinstance(ev.ret, int) else str(ev.ret)))
        if rets is not None:
            rets.append(ev.ret if isinstance(ev.ret, int) and not ev.progress else None)
        rs = rs2
        if names is not None:
            for k, name in object_names(compiled, rs).items():
                names.setdefault(k, name)
    return out
