"""Tests of the generic model-checking engine on toy models with known state spaces."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from pasidsim.check import (FunctionModel, Invariant, NondeterminismError, Result, explore,
                            explore_parallel, run_trace)

from . import toys


def terminal_states(model: Any, **kwargs: Any) -> tuple[Result, set]:
    """Explore and collect the reachable states without enabled actions."""
    found: set = set()
    res = explore(model, on_state=lambda s: found.add(s) if not model.actions(s) else None, **kwargs)
    return res, found


# -- the lost-update race ------------------------------------------------------------------


def test_counter_has_13_states_and_8_up_to_symmetry() -> None:
    full = explore(toys.counter_model())
    sym = explore(toys.counter_model(), symmetry=True)
    assert (full.verdict, full.states) == ("pass", 13)
    assert (sym.verdict, sym.states) == ("pass", 8)
    assert full.max_depth_reached == 4


def test_counter_goals_and_invariant_status() -> None:
    res = explore(toys.counter_model())
    assert res.passed and res.sometimes_unreached == []
    assert res.sometimes_counts == {"lost update": 1, "all increments": 2}
    assert res.status("counter <= threads") == "Always"
    assert res.status("lost update") == "Sometimes"
    assert res.invariant_counts == {"counter <= threads": 13}
    assert "Always" in res.summary()


def test_lost_update_counterexample_is_shortest_and_replays() -> None:
    res = explore(toys.counter_model(forbid_lost_update=True))
    v = res.violation
    assert res.verdict == "violation" and v is not None
    assert (v.name, v.kind, v.depth) == ("no lost update", "always", 4)
    assert v.trace[:2] == [("read", 0), ("read", 1)]
    model = toys.counter_model()
    assert run_trace(model, v.trace) == v.states
    assert v.states[-1][1] == 1


# -- shortest counterexamples, DFS, replay -------------------------------------------------


def test_bfs_gives_the_shortest_counterexample_dfs_some_counterexample() -> None:
    model = toys.shortcut_model()
    bfs = explore(model, strategy="bfs")
    dfs = explore(model, strategy="dfs")
    assert bfs.violation is not None and dfs.violation is not None
    assert bfs.violation.trace == [10, 11, 12]
    assert dfs.violation.depth >= bfs.violation.depth
    assert dfs.violation.trace == [20, 21, 22, 23, 24, 12]
    for res in (bfs, dfs):
        assert res.violation is not None
        states = run_trace(model, res.violation.trace)
        assert states == res.violation.states and states[-1] == 12


def test_initial_states_are_checked() -> None:
    model = FunctionModel(initial_states=lambda: [1, 7], actions=lambda s: [], step=lambda s, a: s,
                          invariants=[Invariant.always("not 7", lambda s: s != 7)])
    res = explore(model)
    assert res.verdict == "violation" and res.violation is not None
    assert res.violation.trace == [] and res.violation.states == [7]


def test_replay_detects_nondeterminism() -> None:
    with pytest.raises(NondeterminismError, match="not deterministic"):
        explore(toys.nondeterministic_model())


def test_run_trace_rejects_disabled_actions() -> None:
    with pytest.raises(ValueError, match="not enabled"):
        run_trace(toys.shortcut_model(), [10, 12])


# -- bounds --------------------------------------------------------------------------------


def test_max_states_gives_bounded_verdict() -> None:
    res = explore(toys.counter_model(), max_states=5)
    assert res.verdict == "bounded" and res.states == 5
    assert "NOT exhaustive" in res.message and res.bound == "max_states=5"
    assert explore(toys.counter_model(), max_states=13).verdict == "pass"


def test_max_depth_gives_bounded_verdict() -> None:
    res = explore(toys.counter_model(), max_depth=2)
    assert res.verdict == "bounded" and res.max_depth_reached == 2
    assert "NOT exhaustive" in res.message
    assert res.states == 1 + 2 + 3  # depths 0, 1, 2
    assert explore(toys.counter_model(), max_depth=4).verdict == "pass"
    assert explore(toys.counter_model(), max_depth=2, strategy="dfs").verdict == "bounded"


def test_max_seconds_gives_bounded_verdict() -> None:
    res = explore(toys.counters_model(5, 9), max_seconds=0.05)
    assert res.verdict == "bounded" and res.bound == "max_seconds"
    assert 0 < res.states < 10 ** 5


def test_violation_wins_over_bound_and_stop_at_first_false_collects_all() -> None:
    res = explore(toys.counter_model(forbid_lost_update=True), stop_at_first=False)
    assert res.verdict == "violation" and res.states == 13
    assert [v.name for v in res.violations] == ["no lost update"]
    assert res.invariant_counts["no lost update"] == 12
    assert res.status("no lost update") == "Sometimes"


# -- deadlock and quiescence ---------------------------------------------------------------


def test_deadlock_is_reported() -> None:
    res = explore(toys.dining_model())
    v = res.violation
    assert res.verdict == "violation" and v is not None
    assert (v.kind, v.name, v.depth) == ("deadlock", "deadlock", 2)
    assert v.trace == [("lock", 1), ("lock", 2)]
    assert explore(toys.dining_model(same_order=True)).verdict == "pass"


def test_quiescent_leak_is_reported() -> None:
    res = explore(toys.leak_model())
    v = res.violation
    assert v is not None and v.kind == "quiescence" and "leak" in v.message
    assert v.trace == ["alloc", "return_early"]


def test_unreached_sometimes_goal_is_reported() -> None:
    res = explore(toys.unreachable_goal_model())
    assert res.verdict == "pass" and not res.passed
    assert res.sometimes_unreached == ["reaches 5"]
    assert "never reached: reaches 5" in res.message
    assert res.status("reaches 5") == "Never"


# -- reductions: soundness gates -----------------------------------------------------------

POR_MODELS = [
    functools.partial(toys.counter_model, 2), functools.partial(toys.counter_model, 3),
    functools.partial(toys.counter_model, 2, True),
    functools.partial(toys.processes_model, 3, 2), functools.partial(toys.processes_model, 4, 3),
    functools.partial(toys.processes_model, 4, 3, True), toys.cycle_model,
    functools.partial(toys.ring_model, 2, 3), functools.partial(toys.ring_model, 3, 3, 1),
]


def _same_verdicts(a: Result, b: Result) -> None:
    assert a.verdict == b.verdict
    assert [(v.name, v.kind) for v in a.violations] == [(v.name, v.kind) for v in b.violations]
    assert a.sometimes_unreached == b.sometimes_unreached


@pytest.mark.parametrize("factory", POR_MODELS)
@pytest.mark.parametrize("strategy", ["bfs", "dfs"])
def test_por_preserves_verdicts_and_terminal_states(factory: Any, strategy: str) -> None:
    full, full_end = terminal_states(factory(), strategy=strategy, stop_at_first=False)
    red, red_end = terminal_states(factory(), strategy=strategy, stop_at_first=False, por=True)
    _same_verdicts(full, red)
    assert full_end == red_end
    assert red.states <= full.states
    if full.violation is not None and strategy == "bfs":
        assert red.violation is not None
        assert run_trace(factory(), red.violation.trace) == red.violation.states


def test_por_reduces_independent_processes() -> None:
    full = explore(toys.processes_model(4, 3))
    red = explore(toys.processes_model(4, 3), por=True)
    assert full.states == 4 ** 4
    assert red.states < full.states / 5
    assert explore(toys.counter_model(), por=True).states == 13  # racing threads: no reduction


def test_por_cycle_proviso_lets_other_actors_run() -> None:
    res = explore(toys.cycle_model(), por=True)
    assert res.passed and res.sometimes_counts["process 1 done"] > 0


@pytest.mark.parametrize("seed", range(40))
def test_por_on_random_models_preserves_visible_behaviour(seed: int) -> None:
    def run(por: bool, strategy: str) -> tuple[Result, set, set]:
        seen: set = set()
        ends: set = set()
        model = toys.random_model(seed)

        def visit(s: Any) -> None:
            seen.add(toys.observation(seed, s))
            if not model.actions(s):
                ends.add(s)
        res = explore(model, por=por, strategy=strategy, stop_at_first=False, on_state=visit)
        return res, seen, ends

    for strategy in ("bfs", "dfs"):
        full, full_obs, full_end = run(False, strategy)
        red, red_obs, red_end = run(True, strategy)
        _same_verdicts(full, red)
        assert full_obs == red_obs
        assert full_end == red_end


def test_por_needs_its_hooks_and_a_complete_alphabet() -> None:
    with pytest.raises(ValueError, match="por=True"):
        explore(toys.shortcut_model(), por=True)
    with pytest.raises(ValueError, match="symmetry=True"):
        explore(toys.shortcut_model(), symmetry=True)
    base = toys.processes_model(2, 2)
    bad = FunctionModel(**{**base.__dict__, "alphabet": lambda: [("inc", 0, 0)]})
    with pytest.raises(ValueError, match="alphabet"):
        explore(bad, por=True)


SYM_MODELS = [
    functools.partial(toys.counter_model, 2), functools.partial(toys.counter_model, 3),
    functools.partial(toys.counter_model, 3, True), functools.partial(toys.processes_model, 3, 2),
    functools.partial(toys.counters_model, 3, 3), functools.partial(toys.counters_model, 3, 3, 5),
]


@pytest.mark.parametrize("factory", SYM_MODELS)
def test_symmetry_preserves_verdicts(factory: Any) -> None:
    full = explore(factory())
    sym = explore(factory(), symmetry=True)
    _same_verdicts(full, sym)
    assert sym.states <= full.states
    if full.violation is not None:
        assert sym.violation is not None and sym.violation.depth == full.violation.depth
        assert run_trace(factory(), sym.violation.trace) == sym.violation.states
    if factory().alphabet is not None:  # symmetry and partial-order reduction together
        _same_verdicts(full, explore(factory(), symmetry=True, por=True))


# -- parallel == serial --------------------------------------------------------------------


def _identical(a: Result, b: Result) -> None:
    assert (a.verdict, a.states, a.transitions, a.max_depth_reached, a.bound) == \
        (b.verdict, b.states, b.transitions, b.max_depth_reached, b.bound)
    assert a.sometimes_counts == b.sometimes_counts and a.invariant_counts == b.invariant_counts
    assert [(v.name, v.trace, v.states) for v in a.violations] == \
        [(v.name, v.trace, v.states) for v in b.violations]


PARALLEL_CASES = [
    (functools.partial(toys.counters_model, 4, 5, 12), {}),
    (functools.partial(toys.counters_model, 4, 5, 12), {"stop_at_first": False, "symmetry": True}),
    (functools.partial(toys.counter_model, 3, True), {}),
    (functools.partial(toys.processes_model, 5, 3), {"por": True}),
    (functools.partial(toys.ring_model, 3, 3, 1), {"por": True}),
    (functools.partial(toys.ring_model, 3, 3, 1), {"por": True, "stop_at_first": False}),
    (toys.named_model, {}),
    (functools.partial(toys.counters_model, 4, 5), {"max_states": 700}),
    (functools.partial(toys.counters_model, 4, 5, 30), {"max_depth": 7}),
]


@pytest.mark.parametrize("factory,kwargs", PARALLEL_CASES)
def test_parallel_bfs_is_identical_to_serial(factory: Any, kwargs: dict) -> None:
    order_serial: list = []
    order_parallel: list = []
    serial = explore(factory(), on_state=order_serial.append, **kwargs)
    par = explore_parallel(factory, workers=2, min_level=4, on_state=order_parallel.append, **kwargs)
    _identical(serial, par)
    assert order_serial == order_parallel


def test_parallel_bfs_expands_the_serial_representative_of_a_symmetry_class() -> None:
    serial = explore(toys.representative_model(), symmetry=True)
    assert serial.violation is not None and serial.violation.trace == ["a", "x", "go"]
    par = explore_parallel(toys.representative_model, workers=2, min_level=1, symmetry=True)
    _identical(serial, par)


def test_parallel_falls_back_to_serial_and_reraises_model_errors() -> None:
    res = explore_parallel(functools.partial(toys.counter_model, 2), workers=1)
    assert res.states == 13
    small = explore_parallel(functools.partial(toys.counter_model, 2), workers=2)  # tiny levels
    _identical(res, small)
    with pytest.raises(ZeroDivisionError, match="boom"):
        explore_parallel(toys.exploding_model, workers=2, min_level=2)
    with pytest.raises(ValueError, match="bfs"):
        explore_parallel(toys.cycle_model, workers=2, strategy="dfs")
