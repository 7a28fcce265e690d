"""Checking on Ray (issue #12): swarm verification, the level-parallel BFS's deadline, and
``pasidsim check --ray/--swarm``.  Serial == parallel equality is in test_search.py and
test_pasid_check.py (their parallel searches run on a local Ray runtime)."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from click.testing import CliRunner

from pasidsim.check.parallel import explore_parallel
from pasidsim.check.pasid_model import ScenarioModel
from pasidsim.check.search import explore, run_trace
from pasidsim.check.swarm import swarm
from pasidsim.cli import main
from pasidsim.scenario import builtin_scenarios
from pasidsim.scenario.compile import compile_scenario
from pasidsim.scenario.loader import load_scenario

from . import toys


def _factory(name, design):
    c = compile_scenario(load_scenario(builtin_scenarios()[name]), design=design)
    return functools.partial(ScenarioModel, c)


def test_swarm_finds_a_real_violation_serially_and_on_ray():
    factory = _factory("h1-fork-exit", "E6-mmput-free")
    shortest = explore(factory())
    for workers in (1, 2):
        res = swarm(factory, 4, max_states=5_000, workers=workers)
        assert res.verdict == "violation"
        v = res.violation
        assert v.name == shortest.violation.name
        assert v.depth >= shortest.violation.depth  # depth first: not always the shortest
        assert run_trace(factory(), v.trace) == v.states  # it replays


def test_swarm_members_differ_and_a_complete_member_proves_the_pass():
    factory = functools.partial(toys.counters_model, 4, 5)
    full = explore(factory())
    orders = []
    for seed in (1, 2):
        seen: list = []
        explore(factory(), strategy="dfs", seed=seed, max_states=50, on_state=seen.append)
        orders.append(seen)
    assert orders[0] != orders[1]  # each member dives elsewhere
    small = swarm(factory, 3, max_states=50)
    assert small.verdict == "bounded" and "NOT exhaustive" in small.message
    big = swarm(factory, 2, max_states=None)
    assert big.verdict == full.verdict == "pass" and big.states == full.states


def test_a_worker_stops_inside_its_level_when_the_deadline_has_passed():
    """The deadline is checked between a worker's states, not only between levels: a worker
    whose deadline has passed expands nothing, ships nothing and says so (None)."""
    import time

    from pasidsim.check.model import ModelView
    from pasidsim.check.parallel import _Owner
    view = ModelView(toys.counters_model(3, 3))
    owner = _Owner(view, 0, 2, False)
    (s,) = view.initial_states()
    fp = view.fingerprint(s)
    owner.adopt([(fp, (None, 0), s)])
    assert owner.level(0, [(fp, (None, 0))], [fp], True, False,
                       deadline=time.time() - 1) is None
    assert owner.outgoing == [None, None]
    owner.adopt([(fp, (None, 0), s)])
    done = owner.level(0, [(fp, (None, 0))], [fp], True, False, deadline=time.time() + 60)
    assert done is not None and len(done[0][2]) == 3  # three successors, when in time


def _owned_levels(view, n: int) -> list[tuple[set, int]]:
    """Run ``n`` in-process :class:`_Owner` s level by level, batches handed over as Ray would
    (without Ray): each level's fingerprints and transitions."""
    from pasidsim.check import parallel
    owners = [parallel._Owner(view, w, n, False) for w in range(n)]
    pending, seen = [], set()
    for i, s in enumerate(view.initial_states()):
        fp = view.fingerprint(s)
        if fp not in seen:
            seen.add(fp)
            pending.append((fp, (None, i)))
            owners[fp % n].adopt([(fp, (None, i), s)])
    levels = []
    for depth in range(100):
        if not pending:
            return levels
        fps = [fp for fp, _ in pending]
        replies = [o.level(depth, [t for t in pending if t[0] % n == w], fps, True, False)
                   for w, o in enumerate(owners)]
        for o in owners:
            assert len(o.mine.states) < parallel.CHUNK  # the rest are sealed: bytes
            for peer, batch in enumerate(o.outgoing):
                if batch is not None:
                    assert all(type(blob) is bytes for _, blob in batch)
                    owners[peer].incoming.append(batch)
        nxt, transitions = [], 0
        for w, reply in enumerate(replies):
            todo = [t for t in pending if t[0] % n == w]
            for (pfp, _), (_, _, items, _) in zip(todo, reply):
                transitions += len(items)
                for ai, fp in items:
                    if fp not in seen:
                        seen.add(fp)
                        nxt.append((fp, (pfp, ai)))
        levels.append((set(fps), transitions))
        pending = nxt
    raise AssertionError("no end")


def _serial_levels(view) -> list[tuple[set, int]]:
    level = {view.fingerprint(s): s for s in view.initial_states()}
    seen, levels = set(level), []
    while level:
        nxt, transitions = {}, 0
        for s in level.values():
            acts = view.actions(s)
            for _, t, fp in view.successors(s, acts, range(len(acts))):
                transitions += 1
                if fp not in seen:
                    seen.add(fp)
                    nxt[fp] = t
        levels.append((set(level), transitions))
        level = nxt
    return levels


def test_workers_hold_their_states_in_chunks_and_find_the_serial_levels(monkeypatch):
    """A worker keeps its states pickled and compressed, a few to a chunk; with chunks of 3
    states (many chunks, most levels split across them) two workers find every level of the
    serial BFS, with its transitions, and hold fewer than a chunk of unpickled states between
    levels."""
    from pasidsim.check import parallel
    from pasidsim.check.model import ModelView
    monkeypatch.setattr(parallel, "CHUNK", 3)
    view = ModelView(_factory("h1-fork-exit", "current")())
    serial = _serial_levels(view)
    assert len(serial) > 5 and max(len(fps) for fps, _ in serial) > 3 * 2
    assert _owned_levels(view, 2) == serial


def test_chunks_of_states_whose_class_pickle_cannot_name_go_through_cloudpickle():
    from typing import NamedTuple

    from pasidsim.check.parallel import _dumps, _loads

    class Local(NamedTuple):  # not importable by name: the standard pickle refuses it
        a: int
        b: tuple

    states = [Local(1, (2, 3)), Local(4, ())]
    back = _loads(_dumps(states))
    assert [tuple(x) for x in back] == [tuple(x) for x in states]
    assert type(back[0]).__name__ == "Local"


def test_parallel_search_honours_the_deadline_inside_a_level():
    from pasidsim.check.parallel import ray_runtime
    ray_runtime(None, 2)  # started beforehand: on a loaded machine a cold start took the budget
    factory = functools.partial(toys.counters_model, 7, 9)  # 10 million states
    res = explore_parallel(factory, workers=2, min_level=1, max_seconds=8.0)
    assert res.verdict == "bounded" and res.bound == "max_seconds"
    assert 0 < res.states < 10 ** 7
    assert res.elapsed < 8.0 + 20  # stopped inside a level, not at its end (minutes later)


def test_cli_ray_and_swarm(tmp_path):
    base = ["check", "--json", "--design", "current", "--design", "E6-mmput-free"]
    serial = CliRunner().invoke(main, base + ["--out", str(tmp_path / "a")])
    on_ray = CliRunner().invoke(main, base + ["--ray", "--out", str(tmp_path / "b")])
    assert serial.exit_code == on_ray.exit_code == 0, on_ray.output
    a, b = (json.loads(r.stdout)["cells"] for r in (serial, on_ray))
    for c in a + b:
        c.pop("elapsed")
    assert a == b
    r = CliRunner().invoke(main, ["check", "h1-fork-exit", "--design", "E6-mmput-free",
                                  "--swarm", "3", "--max-states", "3000", "--json",
                                  "--out", str(tmp_path / "c")])
    assert r.exit_code == 1 and json.loads(r.stdout)["cells"][0]["invariant"] == "A3"
    r = CliRunner().invoke(main, ["check", "dsa-shared-wq-threads", "--swarm", "2",
                                  "--max-states", "20", "--out", str(tmp_path / "d")])
    assert r.exit_code == 3, r.output  # nothing found, nothing proven
    r = CliRunner().invoke(main, ["check", "h1-fork-exit", "--swarm", "-1"])
    assert r.exit_code == 2


#: the designs no historical case uses, each on scenarios where its verdict differs from
#: today's design (tests/golden/check_verdicts.json; pending-free differs nowhere: the
#: amdgpu scenarios it is about)
_OTHER_DESIGNS = [
    ("bind-handle-sharing", "E1-singleton-group"),
    ("driver-unbind-open-files", "E1-singleton-group"),
    ("enqcmd-thread-fixup", "E15-x86-sva-disabled"),
    ("dsa-shared-wq-threads", "E15-x86-sva-disabled"),
    ("h1-fork-exit", "cyclic"), ("sva-global-pasid-reuse", "cyclic"),
    ("hist-amdgpu-ih-reuse", "pending-free"), ("amdgpu-pasid-edges", "pending-free")]


def _cases():
    from pasidsim.check.history import HISTORY
    names = sorted(builtin_scenarios())
    return [(n, "current", None) for n in names] + \
        [(h.scenario, h.design, h.granularity) for h in HISTORY] + \
        [(n, d, None) for n, d in _OTHER_DESIGNS]


def test_the_ray_gate_covers_every_scenario_and_every_design():
    from pasidsim.designs import DESIGNS
    cases = _cases()
    assert {n for n, _d, _g in cases} == set(builtin_scenarios())
    assert {d for _n, d, _g in cases} == set(DESIGNS)


def test_ray_bfs_gives_the_serial_verdict_on_every_builtin_scenario_and_design():
    """Every built-in scenario on today's design, every historical design on its own
    scenario and the other designs on two scenarios each (:data:`_OTHER_DESIGNS`), with the
    Ray actors in charge from the first level (min_level=1): the verdict, the distinct
    states, the transitions and the violation (name and counterexample length) are the
    serial search's, with and without symmetry."""
    from pasidsim.state import Granularity
    for name, design, gran in _cases():
        c = compile_scenario(load_scenario(builtin_scenarios()[name]), design=design)
        if gran:
            c.granularity = Granularity[gran.upper()]
        sym = name.startswith("h")  # a share of the cases with symmetry as well
        factory = functools.partial(ScenarioModel, c, symmetry=sym)
        serial = explore(factory(), symmetry=sym)
        par = explore_parallel(factory, workers=2, min_level=1, symmetry=sym)
        got = (par.verdict, par.states, par.transitions,
               par.violation and (par.violation.name, par.violation.depth))
        want = (serial.verdict, serial.states, serial.transitions,
                serial.violation and (serial.violation.name, serial.violation.depth))
        assert got == want, (name, design)


def test_a_compiled_scenario_with_a_relative_machine_file_unpickles_in_another_directory(
        tmp_path, monkeypatch):
    """Workers compile a scenario again from its text; a machine file named relative to the
    scenario is found whatever the worker's working directory."""
    import pickle
    import shutil

    src = tmp_path / "proj"
    src.mkdir()
    shutil.copy(Path(__import__("pasidsim").__file__).parent / "data" / "default_machine.yaml",
                src / "m.yaml")
    (src / "s.yaml").write_text("name: rel\nmachine: m.yaml\nactors:\n  - name: P\n    "
                                "program:\n      - open: {dev: nic0}\n")
    monkeypatch.chdir(src)
    c = compile_scenario(load_scenario("s.yaml"))
    blob = pickle.dumps(c)
    monkeypatch.chdir(tmp_path)  # elsewhere: s.yaml and m.yaml are not here
    c2 = pickle.loads(blob)
    assert hash(c2.initial()) == hash(c.initial()) and c2.source == "s.yaml"


def test_the_scale_benchmark_measures_ray_against_serial_in_fresh_processes():
    """``benchmarks/bench_scale.py``'s Ray comparison (each side a fresh process): the same
    verdict, states and transitions, and a peak memory for the process and each worker, and
    their memory before the search (it crashed on an import that had moved, unnoticed, since
    nothing ran it)."""
    bench = str(Path(__file__).resolve().parents[2] / "benchmarks")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    from bench_check import STANDARD
    from bench_scale import _child
    serial, par = _child(1, STANDARD), _child(2, STANDARD)
    for r in (serial, par):
        assert (r["verdict"], r["states"], r["transitions"]) == ("pass", 1160, 2460)
        assert r["rss"] > 10 * 2**20
    assert serial["workers_rss"] == [] and len(par["workers_rss"]) == 2
    assert all(x > 10 * 2**20 for x in par["workers_rss"]) and par["ray"] > 0
    # what the search grew by: peaks against the memory before it (idle workers' too)
    assert serial["idle"] == [] and len(par["idle"]) == 2
    assert all(10 * 2**20 < i <= w for i, w in zip(par["idle"], par["workers_rss"]))
    assert all(10 * 2**20 < r["base"] <= r["rss"] for r in (serial, par))
