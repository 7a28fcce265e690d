"""Soundness gates of the symmetry reduction (:mod:`pasidsim.check.symmetry`).

For every built-in scenario on today's design and every historical design on its scenario:
the canonical forms of all states reachable without reduction are exactly the canonical
forms of the states the reduced search visits; verdicts, violated invariants, the depth of the
first violation of each property and the unreached goals are the same; counterexamples found
with symmetry replay and are as short as without.  Plus unit tests of ``canonical`` itself.
"""

from __future__ import annotations

import importlib
import sys
from collections import deque
from pathlib import Path

import pytest

from pasidsim.check.history import HISTORY
from pasidsim.check.model import ModelView
from pasidsim.check.pasid_model import ScenarioModel, violation_name
from pasidsim.check.runner import check_scenario
from pasidsim.check.search import explore
from pasidsim.check.symmetry import _ID_RETURNS, _VALUE_RETURNS
from pasidsim.scenario import builtin_scenarios
from pasidsim.scenario.compile import StepRef, compile_scenario
from pasidsim.scenario.loader import load_scenario, load_text
from pasidsim.state import Granularity
from pasidsim.step import OPS

BUILTIN = builtin_scenarios()
#: ``name@lock``: the scenario checked at lock granularity (pasidsim.step)
CASES = [(n, "current", None) for n in sorted(BUILTIN)] + \
    [(h.scenario + ("@lock" if h.granularity == "lock" else ""), h.design, h.breaks)
     for h in HISTORY] + \
    [(n + "@lock", "current", None) for n in ("hist-io_mm-mm-exit", "h1-fork-exit",
                                              "dsa-shared-wq-threads")]
IDS = [f"{n}-{d}" for n, d, _ in CASES]
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def _compiled(name, design):
    name, _, gran = name.partition("@")
    c = compile_scenario(load_scenario(BUILTIN[name]), design=design)
    if gran:
        c.granularity = Granularity[gran.upper()]
    return c


def _reachable(model):
    """Every reachable state with its BFS depth, by a plain BFS over actions/step that keeps
    whole states (no fingerprints: immune to hash collisions), and the ground truth: the
    depth of the first violation of each property and the goals never reached."""
    view = ModelView(model)
    seen = {s: 0 for s in model.initial_states()}
    todo = deque(seen)
    firsts, goals = {}, set()
    while todo:
        s = todo.popleft()
        acts = model.actions(s)
        failures, gs, _n = view.evaluate(s, acts)
        for name, _msg, _kind in failures:
            firsts.setdefault(name, seen[s])
        goals.update(gs)
        for a in acts:
            t = model.step(s, a)
            if t not in seen:
                seen[t] = seen[s] + 1
                todo.append(t)
    unreached = [g for i, g in enumerate(view.goal_names) if i not in goals]
    return seen, firsts, unreached


def _firsts(result):
    return {v.name: v.depth for v in result.violations}


def _gate(c):
    """Reduced search == canonical image of the full state space, and the same verdicts, at
    both granularities (at lock granularity the calls in progress are renamed too: their
    arguments, frames' locals, task work, lock holders)."""
    model = ScenarioModel(c, symmetry=True)
    sym = model.symmetry
    assert sym.reason is None, sym.reason
    full, firsts, unreached = _reachable(model)
    canon = {model.canonical(s) for s in full}
    visited = []
    red = explore(model, symmetry=True, stop_at_first=False, on_state=visited.append)
    assert {model.canonical(s) for s in visited} == canon
    assert red.states == len(visited) == len(canon) <= len(full)
    assert _firsts(red) == firsts
    assert red.sometimes_unreached == unreached
    assert red.verdict == ("violation" if firsts else "pass")
    for s in list(full)[:300]:  # idempotent, and a valid state of the same class
        k = model.canonical(s)
        assert model.canonical(k) == k
        assert k.rs.sys.next_id >= sym.base
    assert sym.fallbacks == 0
    return model, full, red


@pytest.mark.parametrize("name,design,breaks", CASES, ids=IDS)
def test_reduced_search_visits_exactly_the_canonical_classes(name, design, breaks):
    model, full, red = _gate(_compiled(name, design))
    plain = explore(ScenarioModel(model.compiled), stop_at_first=False)
    assert plain.states == len(full)
    assert (red.verdict, _firsts(red)) == (plain.verdict, _firsts(plain))


def _procs(n, body, extra=""):
    return "".join(f"  - name: P{i}\n    program:\n" + body.replace("#", str(i))
                   for i in range(1, n + 1)) + extra


#: symmetric stress scenarios: bindings, mmaps, ENQCMD descriptors and drains, a pending
#: driver remove, forked children, amdgpu fences and IH-ring faults, threads
STRESS = {
    "swq-remove": (2, True, """      - open: {dev: dsa0, as: q#}
      - mmap: {fd: $q#}
      - enqcmd: {dev: dsa0}
      - close: {fd: $q#}
      - exit: {}
""", """  - name: admin
    kernel: true
    program:
      - device_release_driver: {dev: dsa0}
"""),
    "fork": (2, False, """      - open: {dev: dsa0, as: q#}
      - fork: {as: C#, program: [{close: {fd: $q#}}, {exit: {}}]}
      - exit: {}
""", ""),
    "gpu": (2, True, """      - open: {dev: gpu0, as: vm#}
      - amdgpu_cs_submit: {fd: $vm#, as: f#}
      - amdgpu_vm_fault: {fd: $vm#}
      - close: {fd: $vm#}
      - exit: {}
""", ""),
    "threads": (1, True, """      - open: {dev: dsa0, as: q}
      - mmap: {fd: $q}
      - clone: {as: T1, program: [{enqcmd: {dev: dsa0}}, {exit: {}}]}
      - clone: {as: T2, program: [{enqcmd: {dev: dsa0}}, {exit: {}}]}
      - exit: {}
""", ""),
}
DESIGNS = ("current", "E6-mmput-free", "E0-io_mm", "H7-iommu_mm-aliased", "amdgpu-lowest")


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("name", sorted(STRESS))
def test_symmetric_stress_scenarios(name, design):
    n, hw, body, extra = STRESS[name]
    text = f"name: {name}\nmachine: default\nhardware: {str(hw).lower()}\nactors:\n" + \
        _procs(n, body, extra)
    model, full, red = _gate(compile_scenario(load_text(text, name), design=design))
    if n > 1:
        assert model.symmetry.classes and 3 * red.states < len(full)


@pytest.mark.parametrize("name,design,breaks", CASES, ids=IDS)
def test_verdict_invariant_and_counterexample_length_are_unchanged(name, design, breaks):
    c = _compiled(name, design)
    plain = check_scenario(c, expected=breaks)
    red = check_scenario(c, expected=breaks, symmetry=True)
    assert (red.verdict, red.invariant, red.kind) == (plain.verdict, plain.invariant, plain.kind)
    assert len(red.refs) == len(plain.refs)
    assert red.ok == plain.ok
    assert red.states <= plain.states
    if red.refs:  # the trace found under symmetry replays on actual states to the violation
        assert red.invariant in red.broken
        model = ScenarioModel(c)
        st = model.initial_states()[0]
        for ref in red.refs:
            assert ref in model.actions(st)
            st = model.step(st, ref)
        res = explore(ScenarioModel(c), symmetry=False, stop_at_first=True)
        assert violation_name(res) == plain.invariant


def test_standard_benchmark_is_reduced_tenfold():
    from bench_check import STANDARD
    c = compile_scenario(load_text(STANDARD, "<bench>"))
    plain = check_scenario(c, max_states=None, max_seconds=None)
    red = check_scenario(c, max_states=None, max_seconds=None, symmetry=True)
    assert plain.verdict == red.verdict == "Always"
    assert plain.states >= 10 * red.states, (plain.states, red.states)
    assert ScenarioModel(c, symmetry=True).symmetry.classes == [[1, 2, 3]]


def _after(c, refs):
    model = ScenarioModel(c, symmetry=True)
    st = model.initial_states()[0]
    while model.actions(st) == [StepRef(0)]:  # setup runs alone
        st = model.step(st, StepRef(0))
    for a in refs:
        st = model.step(st, StepRef(a))
    return model, st


TWO = """
name: two-orders
machine: default
actors:
  - name: A
    program:
      - open: {dev: nic0, as: f}
      - iommufd_ctx_create: {as: ctx}
  - name: B
    program:
      - fork: {as: K, program: [{exit: {}}]}
      - dma_fence_create: {as: fence}
"""


def test_same_objects_created_in_another_order_canonicalise_equal():
    c = compile_scenario(load_text(TWO, "<two>"))
    m, x = _after(c, [1, 2, 1, 2])
    _, y = _after(c, [2, 2, 1, 1])
    assert x != y and x.rs.sys.next_id == y.rs.sys.next_id
    assert m.canonical(x) == m.canonical(y)
    assert m.canonical(m.canonical(x)) == m.canonical(x)
    assert m.canonical(x).rs.sys.fingerprint() == m.canonical(y).rs.sys.fingerprint()


def test_interchangeable_processes_canonicalise_equal():
    from bench_check import STANDARD
    c = compile_scenario(load_text(STANDARD, "<bench>"))
    m, x = _after(c, [1, 1, 2])
    _, y = _after(c, [2, 2, 3])
    _, z = _after(c, [1, 2, 2])
    assert m.canonical(x) == m.canonical(y)
    assert m.canonical(x) != m.canonical(z)  # P1 then P2 bound first: other PASIDs, not equal


def test_calls_in_progress_canonicalise_equal_at_lock_granularity():
    """At lock granularity a process caught inside its open (a frame holding its new file,
    before ``uacce->mutex``) is interchangeable with its twin caught at the same point: the
    frames and the call's arguments are renamed with the process."""
    from bench_check import STANDARD
    c = compile_scenario(load_text(STANDARD, "<bench>"))
    c.granularity = Granularity.LOCK
    m, x = _after(c, [1])  # P1's open(acc0) looked the device up, stops before the mutex
    _, y = _after(c, [2])
    _, z = _after(c, [1, 2])  # P1 and P2 both inside their opens: not the same class
    for st in (x, y, z):
        assert st.rs.sys.kthreads
    assert x != y
    assert m.canonical(x) == m.canonical(y)
    assert m.canonical(m.canonical(x)) == m.canonical(x)
    assert m.canonical(x) != m.canonical(z)
    assert m.symmetry.fallbacks == 0


def test_lock_granularity_standard_configuration_is_reduced_tenfold():
    """The two-process standard configuration at lock granularity: symmetry gives the same
    verdict in at least 10x fewer states (before the calls in progress were renamed, every
    state with one was its own representative: 2,773 states against 8,653, 3x)."""
    from bench_check import _QUICK
    c = compile_scenario(load_text(_QUICK, "<bench>"))
    plain = check_scenario(c, max_states=None, max_seconds=None, granularity="lock")
    red = check_scenario(c, max_states=None, max_seconds=None, granularity="lock",
                         symmetry=True)
    assert plain.verdict == red.verdict == "Always"
    assert plain.states >= 10 * red.states, (plain.states, red.states)


REMOVE = """
name: remove-order
machine: default
actors:
  - name: A
    program:
      - open: {dev: nic0}
  - name: B
    program:
      - open: {dev: nic0}
      - exit: {}
  - name: admin
    kernel: true
    program:
      - device_release_driver: {dev: nic0}
"""


def test_file_order_is_kept_while_a_driver_remove_may_run():
    c = compile_scenario(load_text(REMOVE, "<remove>"))
    m, x = _after(c, [1, 2])
    _, y = _after(c, [2, 1])
    kx, ky = m.canonical(x), m.canonical(y)
    assert kx != ky  # the remove would tear the two files down in another order

    def order(k):  # which actor's file has the lower id
        s = k.rs.sys
        return [s.procs[s.tasks[k.rs.tids[a]].pid].files[0] for a in (1, 2)]
    assert (order(kx)[0] < order(kx)[1]) == (order(x)[0] < order(x)[1])
    assert (order(ky)[0] < order(ky)[1]) == (order(y)[0] < order(y)[1])
    _, x2 = _after(c, [1, 2, 3])  # once the remove ran, file order no longer matters
    _, y2 = _after(c, [2, 1, 3])
    assert m.canonical(x2) == m.canonical(y2)


def test_mixed_kinds_switch_symmetry_off():
    text = TWO.replace("dma_fence_create: {as: fence}", "close: {fd: 99}")
    c = compile_scenario(load_text(text, "<const>"))
    model = ScenarioModel(c, symmetry=True)
    assert "constant id" in model.symmetry.reason
    _, st = _after(c, [1])
    assert model.canonical(st) == st


def test_every_operation_has_a_return_kind():
    names = {op.name for op in OPS}
    assert names <= _ID_RETURNS | _VALUE_RETURNS, names - (_ID_RETURNS | _VALUE_RETURNS)
    assert not _ID_RETURNS & _VALUE_RETURNS


def test_cli_symmetry_option(tmp_path):
    import json

    from click.testing import CliRunner

    from pasidsim.cli import main
    cells = {}
    for flag in ("--no-symmetry", "--symmetry"):
        res = CliRunner().invoke(main, ["check", "h1-fork-exit", "--design", "E6-mmput-free",
                                        flag, "--json", "--out", str(tmp_path)])
        assert res.exit_code == 1, res.output
        cells[flag] = json.loads(res.stdout)["cells"][0]
    plain, red = cells["--no-symmetry"], cells["--symmetry"]
    assert (red["verdict"], red["invariant"], len(red["trace"])) == \
        (plain["verdict"], plain["invariant"], len(plain["trace"])) == ("Sometimes", "A3", 12)


def _identical(n: int) -> str:
    """``n`` identical processes that open one accelerator and exit (the scaling benchmark's
    ``n`` x 1 configuration)."""
    return ("name: identical\ndesign: current\nmachine:\n  iommus: [{name: dmar0, ops: "
            "intel-iommu}]\n  devices:\n    - {name: acc0, iommu: dmar0, pasid_bits: 20, ats: "
            "true, pri: true, driver: uacce}\n  drivers:\n    - {name: uacce, kind: uacce}\n"
            "actors:\n" + _procs(n, "      - open: {dev: acc0, expect: ok}\n      - exit: {}\n"))


def _orbit_key(model, cs):
    """A class invariant by brute force: the least hash over every permutation of the whole
    class (what the search tried, up to 720 of them, before ties were the only ones
    permuted)."""
    from itertools import permutations as perms
    sym = model.symmetry
    (cl,) = sym.classes
    best = None
    for img in perms(cl):
        ao, so = list(range(sym.n)), list(range(sym.nslots))
        for pos, r in zip(cl, img):
            for a, a2 in zip(sym.trees[pos], sym.trees[r]):
                ao[a] = a2
            for k, k2 in zip(sym.slots[pos], sym.slots[r]):
                so[k] = k2
        h = hash(sym._relabel(cs.rs, tuple(ao), tuple(so)))
        best = h if best is None else min(best, h)
    return best


def test_sorting_by_summaries_reduces_as_much_as_trying_every_permutation():
    c = compile_scenario(load_text(_identical(4), "<4x1>"))
    model = ScenarioModel(c, symmetry=True)
    assert model.symmetry.classes == [[1, 2, 3, 4]]
    full, _firsts, _unreached = _reachable(ScenarioModel(c))
    setup = model.symmetry.setup_len
    orbits = {_orbit_key(model, s) if s.rs.pcs[0] >= setup else hash(s) for s in full}
    red = explore(model, symmetry=True, stop_at_first=False)
    assert red.verdict == "pass"
    assert red.states == len(orbits) < len(full) // 20


def test_eight_identical_processes_form_one_class_without_a_permutation_cliff():
    c = compile_scenario(load_text(_identical(8), "<8x1>"))
    model = ScenarioModel(c, symmetry=True)
    assert model.symmetry.classes == [list(range(1, 9))]
    # the same progress by other processes is one state: P1 and P2 bound vs P7 and P8 bound
    m, x = _after(c, [1, 2])
    _, y = _after(c, [8, 7])
    assert x != y and m.canonical(x) == m.canonical(y)
    _, z = _after(c, [1, 1])  # P1 opened and exited: not the same as two opened
    assert m.canonical(z) != m.canonical(x)
    assert m.canonical(m.canonical(x)) == m.canonical(x)


def test_seven_identical_processes_are_exhausted_under_symmetry():
    c = compile_scenario(load_text(_identical(7), "<7x1>"))
    res = check_scenario(c, max_states=None, max_seconds=None, symmetry=True)
    assert res.verdict == "Always" and res.ok
    # without reduction 5 processes already take 9,898 states; the classes of 7 are a few
    # hundred: each reachable multiset of program points and PASID assignments once
    assert res.states < 1000


def test_gone_members_are_not_permuted_unless_an_id_of_theirs_is_still_named():
    """Processes that exited and own nothing keep index order (one candidate, not 4! orders);
    a dead task id still named in the state (a warning here) brings the permutations back,
    so two states that differ only by which gone process is named are one class."""
    from pasidsim.errors import Warn
    c = compile_scenario(load_text(_identical(4), "<4x1>"))
    m, st = _after(c, [1, 1, 2, 2, 3, 3, 4, 4])  # each opens and exits
    sym = m.symmetry
    assert not st.rs.sys.tasks
    perms, watch = sym._orders(st.rs)
    assert len(perms) == 1 and set(st.rs.tids[1:]) <= watch
    named = [st._replace(rs=st.rs._replace(sys=st.rs.sys._replace(
        warnings=((Warn.USE_AFTER_FREE, st.rs.tids[i], 0),)))) for i in (1, 2)]
    assert named[0] != named[1]
    assert m.canonical(named[0]) == m.canonical(named[1])
    assert m.canonical(named[0]) != m.canonical(st)
    assert sym.fallbacks == 0


def test_a_full_canonical_memo_starts_again_and_the_search_is_unchanged(monkeypatch):
    """The memo of canonical fingerprints (``ModelView.fingerprint``) is bounded: cleared
    when full, it gives the unbounded search's states, transitions and verdict."""
    import pasidsim.check.model as model_mod
    c = compile_scenario(load_text(_identical(5), "<5x1>"))
    whole = check_scenario(c, max_states=None, max_seconds=None, symmetry=True)
    monkeypatch.setattr(model_mod, "CANON_MEMO", 7)
    small = check_scenario(c, max_states=None, max_seconds=None, symmetry=True)
    assert (small.verdict, small.states, small.transitions) == \
        (whole.verdict, whole.states, whole.transitions) == ("Always", 69, 192)


def test_every_kernel_function_with_a_preemption_point_has_a_frame_layout():
    """A kernel function (``locking.KFunc``) of the model with more than one section can be
    caught between two steps at lock granularity; symmetry must know which of its locals
    hold ids (``_FRAME_KINDS``), covering at least ``(ret, *params)``.  A function added
    without one would silently leave its states unreduced."""
    importlib.import_module("pasidsim.step")  # builds every operation's KFunc
    from pasidsim.check.symmetry import _FRAME_KINDS
    from pasidsim.locking import DO, KFUNCS
    model = []
    for f in KFUNCS.values():
        if len(f.code) == 1 and f.code[0].op == DO:
            continue  # one section: alive between steps only waiting at its start
        a = f.code[0].a
        if getattr(a[1] if type(a) is tuple else a, "__module__", "").startswith("pasidsim."):
            model.append(f)
    assert {f.name for f in model} >= {"__fput", "dev_open", "iommu_sva_bind_device",
                                       "iommu_sva_unbind_device", "uacce_fops_open"}
    for f in model:
        assert f.name in _FRAME_KINDS, f.name
        assert len(_FRAME_KINDS[f.name]) >= 1 + len(f.params), f.name


#: a uacce accelerator removed (``device_release_driver``, a kernel actor) while two
#: interchangeable processes open and release queues on it, at lock granularity: calls caught
#: in ``dev_open``, ``uacce_fops_open``, ``__fput``, ``uacce_fops_release`` and
#: ``iommu_sva_unbind_device`` (809 states)
UACCE_REMOVE = """name: uacce-remove-under-opens
machine:
  iommus: [{name: smmu0, ops: arm-smmu-v3}]
  devices:
    - {name: zip0, iommu: smmu0, pasid_bits: 16, driver: hisi_zip}
  drivers:
    - {name: hisi_zip, kind: uacce}
actors:
""" + _procs(2, """      - open: {dev: zip0, as: q#}
      - exit: {}
""", """  - name: admin
    kernel: true
    program:
      - device_release_driver: {dev: zip0}
""")
#: kernel functions of ``_FRAME_KINDS`` never caught between two steps in today's model:
#: ``iommu_sva_bind_device``'s only preemption point is its first lock (as an operation it
#: stops before it starts; drivers call it inside a section), and uacce's remove runs
#: ``uacce_put_queue`` inside its own section
NEVER_BETWEEN_STEPS = {"iommu_sva_bind_device", "uacce_put_queue"}


def test_canonical_states_step_like_the_states_they_stand_for():
    """The frame layouts of symmetry (``_FRAME_KINDS``, declared by hand: which locals of a
    call in progress hold ids) are checked on states where calls are caught in each of those
    functions: the canonical form of every reachable state has the successors of the state
    it stands for, up to symmetry, and fails the same invariants; and the reduced search
    visits exactly the canonical classes.  A local given the wrong kind fails here (measured:
    ``uacce_fops_release``'s file taken for a value)."""
    from pasidsim.check.pasid_model import sys_state
    from pasidsim.check.symmetry import _FRAME_KINDS
    from pasidsim.locking import KFUNCS
    uacce = compile_scenario(load_text(UACCE_REMOVE, "uacce-remove"))
    uacce.granularity = Granularity.LOCK
    caught: set = set()
    for c in (uacce, _compiled("dsa-shared-wq-threads@lock", "current")):
        model, full, _red = _gate(c)
        view = ModelView(model)
        for s in full:
            caught.update(KFUNCS[f.fn].name for kt in sys_state(s.rs).kthreads.values()
                          for f in kt.frames)
            k = model.canonical(s)
            assert {model.canonical(model.step(s, a)) for a in model.actions(s)} == \
                {model.canonical(model.step(k, a)) for a in model.actions(k)}
            assert [f[0] for f in view.evaluate(s, model.actions(s))[0]] == \
                [f[0] for f in view.evaluate(k, model.actions(k))[0]]
    assert caught & set(_FRAME_KINDS) == set(_FRAME_KINDS) - NEVER_BETWEEN_STEPS
