"""Soundness gates of the partial-order reduction (:mod:`pasidsim.check.por`).

For every built-in scenario on today's design, every historical design on its scenario, and
small scenarios with quiet (pure-query) actors on several designs: the verdict, the violated
invariant, the set of properties violated somewhere and the unreached goals are the same with
and without POR; the reduced search reaches exactly the same terminal states (raw states) and
the same valuations of the visible predicates (failing invariants, goals); counterexamples
found with POR replay.  The static claims the relation rests on (a quiet step changes only its
program counter and never fails a transition check; quiet and other steps commute) are
checked on every reachable state.  And POR strictly reduces the demo scenarios.
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path

import pytest

from pasidsim.check.history import HISTORY
from pasidsim.check.model import ModelView
from pasidsim.check.pasid_model import ScenarioModel, violation_name
from pasidsim.check.por import PURE_QUERIES, PartialOrder
from pasidsim.check.runner import check_scenario
from pasidsim.check.search import explore, run_trace
from pasidsim.scenario import builtin_scenarios
from pasidsim.scenario.compile import compile_scenario
from pasidsim.scenario.loader import load_scenario, load_text
from pasidsim.state import Granularity
from pasidsim.step import OP_BY_NAME

BUILTIN = builtin_scenarios()
#: ``name@lock``: the scenario checked at lock granularity (pasidsim.step)
CASES = [(n, "current", None) for n in sorted(BUILTIN)] + \
    [(h.scenario + ("@lock" if h.granularity == "lock" else ""), h.design, h.breaks)
     for h in HISTORY] + \
    [(n + "@lock", "current", None) for n in ("hist-io_mm-mm-exit", "h1-fork-exit",
                                              "dsa-shared-wq-threads")]
IDS = [f"{n}-{d}" for n, d, _ in CASES]
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

#: a kernel monitor and a process that only poll group ownership, beside h1-fork-exit's actors
MONITORS = """
  - name: mon
    kernel: true
    program:
      - vfio_group_get_status: {group: 0, container: 0}
      - iommu_group_dma_owner_claimed: {group: 0}
      - vfio_group_get_status: {group: 0, container: 0}
  - name: Q
    program:
      - iommu_group_dma_owner_claimed: {group: 0}
      - ioasid_find: {set: 0, ident: 1}
"""
H1_BODY = BUILTIN["h1-fork-exit"].read_text().split("actors:\n", 1)[1].split("order:")[0]
DEMO = "name: por-demo\ndesign: current\nmachine: default\nactors:\n" + H1_BODY.rstrip("\n") + \
    "\n" + MONITORS.lstrip("\n") + "sometimes: [mm_exited_while_bound, all_pasids_free]\n"
SMALL = "name: por-small\nmachine: default\nactors:\n" + """  - name: A
    program:
      - open: {dev: dsa0, as: q, expect: ok}
      - close: {fd: $q}
      - exit: {}
""" + MONITORS.lstrip("\n")
DEMOS = {"demo": DEMO, "small": SMALL}
DEMO_DESIGNS = ("current", "E6-mmput-free", "E0-io_mm", "H7-iommu_mm-aliased")


def _compiled(name, design):
    name, _, gran = name.partition("@")
    c = compile_scenario(load_scenario(BUILTIN[name]), design=design)
    if gran:
        c.granularity = Granularity[gran.upper()]
    return c


def _demo(name, design):
    return compile_scenario(load_text(DEMOS[name], name), design=design)


def _full(model):
    """Every reachable state (plain BFS on whole states, no fingerprints)."""
    seen = set(model.initial_states())
    todo = deque(seen)
    while todo:
        s = todo.popleft()
        for a in model.actions(s):
            t = model.step(s, a)
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def _observations(model, states):
    """(terminal states, valuations of the visible predicates) of a set of states."""
    view = ModelView(model)
    terminal, vals = set(), set()
    for s in states:
        acts = model.actions(s)
        failures, goals, _n = view.evaluate(s, acts)
        vals.add((frozenset(f[0] for f in failures), goals))
        if not acts:
            terminal.add(s)
    return terminal, vals


def _gate(c, *, symmetry=False):
    """POR vs no POR on a compiled scenario: same observations, same verdicts."""
    model = ScenarioModel(c, por=True, symmetry=symmetry)
    assert model.por_reason is None, model.por_reason
    full = _full(model)
    visited = []
    red = explore(model, por=True, symmetry=symmetry, stop_at_first=False,
                  on_state=visited.append)
    plain = explore(model, symmetry=symmetry, stop_at_first=False)
    assert red.verdict == plain.verdict
    assert {v.name for v in red.violations} == {v.name for v in plain.violations}
    assert red.sometimes_unreached == plain.sometimes_unreached
    if not symmetry:
        assert set(visited) <= full and len(visited) == red.states
        t_full, v_full = _observations(model, full)
        t_red, v_red = _observations(model, visited)
        assert t_red == t_full
        assert v_red == v_full
    else:
        canon = {model.canonical(s) for s in full}
        t_full, v_full = _observations(model, full)
        t_red, v_red = _observations(model, visited)
        assert {model.canonical(s) for s in t_red} == {model.canonical(s) for s in t_full}
        assert v_red == v_full
        assert {model.canonical(s) for s in visited} <= canon
    for v in red.violations:  # every counterexample found with POR replays
        states = run_trace(model, v.trace)
        view = ModelView(model)
        assert view.fingerprint(states[-1]) == view.fingerprint(v.states[-1])
    first_red = explore(model, por=True, symmetry=symmetry)
    first_plain = explore(model, symmetry=symmetry)
    assert violation_name(first_red) == violation_name(first_plain)
    return model, full, red, plain


@pytest.mark.parametrize("name,design,breaks", CASES, ids=IDS)
def test_builtin_scenarios_same_verdicts(name, design, breaks):
    c = _compiled(name, design)
    plain = check_scenario(c, expected=breaks)
    red = check_scenario(c, expected=breaks, por=True)
    assert (red.verdict, red.invariant, red.kind, red.ok) == \
        (plain.verdict, plain.invariant, plain.kind, plain.ok)
    assert red.states <= plain.states
    if red.refs:
        assert red.invariant in red.broken
        model = ScenarioModel(c)
        run_trace(model, red.refs)
    if c.hardware or c.granularity:  # POR is off there (sound), and says why
        assert ScenarioModel(c, por=True).por_reason is not None
    else:
        _gate(c)


@pytest.mark.parametrize("design", DEMO_DESIGNS)
@pytest.mark.parametrize("name", sorted(DEMOS))
def test_quiet_actors_are_reduced_soundly(name, design):
    c = _demo(name, design)
    po = PartialOrder(c)
    names = [a.name for a in c.actors]
    assert {names[i] for i in po.quiet} == {"mon", "Q"}
    model, full, red, plain = _gate(c)
    assert red.states < plain.states == len(full), (red.states, plain.states)


@pytest.mark.parametrize("name", sorted(DEMOS))
def test_por_with_symmetry(name):
    _gate(_demo(name, "current"), symmetry=True)


@pytest.mark.parametrize("design", ("current", "E6-mmput-free"))
def test_static_claims_hold_on_every_reachable_state(design):
    """A quiet step changes only its pc and never fails a transition check; with any other
    enabled step it commutes on run states, and neither enables nor disables the other."""
    c = _demo("demo", design)
    model = ScenarioModel(c, por=True)
    quiet = model.partial_order.quiet
    for s in _full(model):
        acts = model.actions(s)
        for p in (a for a in acts if a.actor in quiet):
            sp = model.step(s, p)
            assert sp.last == ()
            assert (sp.rs.sys, sp.rs.binds, sp.rs.tids) == (s.rs.sys, s.rs.binds, s.rs.tids)
            for q in (a for a in acts if a.actor != p.actor):
                assert model.independent(p, q) and model.independent(q, p)
                sq = model.step(s, q)
                assert p in model.actions(sq) and q in model.actions(sp)
                pq, qp = model.step(sp, q), model.step(sq, p)
                assert pq.rs == qp.rs
                assert pq.last == sq.last  # q's transition checks do not see p
                assert {a for a in model.actions(sp) if a.actor != p.actor} == \
                    {a for a in acts if a.actor != p.actor}


def test_pure_queries_leave_the_state_unchanged():
    from pasidsim.state import initial_state
    c = _compiled("h1-fork-exit", "current")
    s = initial_state(c.config, c.policy)
    for name, args in (("vfio_group_get_status", (0, 0)), ("iommu_group_dma_owner_claimed", (0,)),
                       ("ioasid_find", (0, 1)), ("ioasid_find", (5, 0))):
        assert name in PURE_QUERIES
        s2, _ret = OP_BY_NAME[name].fn(s, *args)
        assert s2 is s or s2 == s


def test_killable_or_spawned_or_binding_actors_are_not_quiet():
    base = "name: x\nmachine: default\nactors:\n"
    killer = base + MONITORS.lstrip("\n") + """  - name: K
    program:
      - exit: {tid: $Q}
"""
    c = compile_scenario(load_text(killer, "k"))
    names = [a.name for a in c.actors]
    assert {names[i] for i in PartialOrder(c).quiet} == {"mon"}
    forked = base + """  - name: A
    program:
      - fork: {as: B, program: [{vfio_group_get_status: {group: 0, container: 0}}]}
      - vfio_group_get_status: {group: 0, container: 0, as: st}
""" + MONITORS.lstrip("\n")
    c = compile_scenario(load_text(forked, "f"))
    names = [a.name for a in c.actors]
    assert {names[i] for i in PartialOrder(c).quiet} == {"mon", "Q"}  # not B, not A
    expecting = base + """  - name: E
    kernel: true
    program:
      - vfio_group_get_status: {group: 0, container: 0, expect: 1}
"""
    assert not PartialOrder(compile_scenario(load_text(expecting, "e"))).quiet


def test_hardware_and_extra_goals_switch_por_off():
    c = _compiled("hist-amdgpu-ih-reuse", "current")
    model = ScenarioModel(c, por=True)
    assert model.por_reason and getattr(model, "alphabet", None) is None
    with pytest.raises(ValueError):
        explore(model, por=True)
    c = _demo("small", "current")
    m = ScenarioModel(c, por=True, sometimes=(("never", lambda rs: False),))
    assert all(m.visible(a) for a in m.alphabet())
    red = explore(m, por=True, stop_at_first=False)
    assert red.states == explore(ScenarioModel(c), stop_at_first=False).states


def test_standard_benchmark_figures():
    from bench_check import STANDARD
    c = compile_scenario(load_text(STANDARD, "<bench>"))
    plain = check_scenario(c, max_states=None, max_seconds=None)
    red = check_scenario(c, max_states=None, max_seconds=None, por=True)
    assert plain.verdict == red.verdict == "Always"
    assert red.states == plain.states  # no quiet actor: POR gives no reduction here


def test_cli_por_option(tmp_path):
    from click.testing import CliRunner

    from pasidsim.cli import main
    f = tmp_path / "s.yaml"
    f.write_text(SMALL)
    out = CliRunner().invoke(main, ["check", str(f), "--por", "--json"])
    assert out.exit_code == 0, out.output
