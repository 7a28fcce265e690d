"""The simulator drives the model's one ``step``: determinism, online invariant stop with a
replayable scenario, metrics that follow the model, and a comparison of designs whose order
matches the model checker's verdicts."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from pasidsim.check.runner import check_scenario
from pasidsim.cli import main
from pasidsim.scenario import compile_scenario, load_scenario
from pasidsim.scenario.loader import load_text
from pasidsim.scenario.runner import run_scenario
from pasidsim.sim import engine
from pasidsim.sim.engine import COLUMNS, Simulation, simulate
from pasidsim.sim.replay import replay_yaml


def _same(a, b) -> bool:
    return all(x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
               for ra, rb in zip(a, b) for x, y in zip(ra, rb)) and len(a) == len(b)


def test_same_seed_same_series(gpu_workload):
    a = simulate(gpu_workload)
    b = simulate(gpu_workload)
    assert a.rows and _same(a.rows, b.rows)
    assert list(a.log) == list(b.log)  # the very same steps, in the same order
    assert a.summary["misattributed"] == b.summary["misattributed"]


def test_other_seed_other_series(gpu_workload):
    a = simulate(gpu_workload)
    c = simulate(gpu_workload.variant(seed=6))
    assert not _same(a.rows, c.rows)


def test_designs_see_the_same_workload(gpu_workload):
    """Same seed on two designs: the same processes, jobs and faults (per-process random
    streams), only the kernel's answers differ."""
    a = simulate(gpu_workload, design="amdgpu-lowest")
    b = simulate(gpu_workload, design="current")
    for key in ("processes", "faults", "allocations"):
        assert a.summary[key] == b.summary[key], key


def test_every_step_goes_through_step(gpu_workload, monkeypatch):
    """The simulator has no model of its own: count the calls of pasidsim.step.step."""
    calls = []
    real = engine.step

    def spy(s, a, ctx=0):
        calls.append(a.op)
        return real(s, a, ctx)

    monkeypatch.setattr(engine, "step", spy)
    res = simulate(gpu_workload.variant(processes=40))
    assert len(calls) == res.summary["events"] > 40 * 4
    names = {engine.OPS[op].name for op in calls}
    assert {"process_create", "dev_open", "amdgpu_cs_submit", "dma_fence_signal", "close",
            "task_exit", "amdgpu_vm_fault", "amdgpu_ih_process"} <= names


def test_metrics_follow_the_state(gpu_workload):
    res = simulate(gpu_workload.variant(design="current"))
    assert res.rows[-1][COLUMNS.index("processes_live")] == 0
    assert res.rows[-1][COLUMNS.index("amdgpu_pasids")] == 0  # every PASID freed at the end
    assert max(res.column("amdgpu_pasids")) > 0
    assert res.summary["allocations"] == 300
    assert res.summary["stopped"] == "end" and not res.violation_counts


def test_violation_stops_and_replays(gpu_workload, tmp_path):
    sim = Simulation(gpu_workload, violations="stop")
    res = sim.run()
    v = res.violation
    assert v is not None and v.invariant == "A4"
    assert res.summary["stopped"] == "violation"
    assert res.summary["events"] == v.event + 1  # stopped at the step that broke it
    text = replay_yaml(sim, res)
    path = tmp_path / "v.yaml"
    path.write_text(text)
    c = compile_scenario(load_scenario(path))
    run = run_scenario(c)
    assert not run.failures, run.failures  # every step ran as in the simulation
    assert sum(1 for e in run.events if e.actor != 0) == len(c.order)  # setup aside
    first = run.violations[0]
    assert first.name == "A4" and first.event == len(run.events) - 1
    # and through the command line, as the user would
    r = CliRunner().invoke(main, ["run", str(path), "--no-state"])
    assert r.exit_code == 1 and "A4" in r.output  # an invariant broke: status 1


def test_minimized_replay_is_smaller_and_breaks_the_same_invariant(gpu_workload, tmp_path):
    """--minimize: delta debugging over the processes, then the hardware steps; every
    step still runs as written and the same invariant breaks."""
    import yaml

    from pasidsim.sim.replay import minimize_replay, replay_breaks, replay_scenario
    sim = Simulation(gpu_workload, violations="stop")
    res = sim.run()
    full = replay_scenario(sim, res)
    small = minimize_replay(full, "A4", max_runs=200)
    procs = [a for a in small["actors"] if a["name"] != "irq"]
    assert 2 <= len(procs) < len([a for a in full["actors"] if a["name"] != "irq"])
    assert len(small["order"]) < len(full["order"])
    assert "Minimized by delta debugging" in small["description"]
    assert replay_breaks(small, "A4") and not replay_breaks(small, "I2")
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small, sort_keys=False))
    run = run_scenario(compile_scenario(load_scenario(path)))
    assert not run.failures and [v.name for v in run.violations] == ["A4"]
    # one process fewer (any of them) no longer breaks it: 1-minimal over processes
    from pasidsim.sim.replay import sub_scenario
    names = {a["name"] for a in procs}
    assert not any(replay_breaks(sub_scenario(small, names - {n}), "A4") for n in names)


def test_counted_violations_go_on(gpu_workload):
    res = simulate(gpu_workload, violations="count")
    assert res.summary["stopped"] == "end"
    assert res.violation_counts["A4"] == res.summary["misattributed"] > 1
    assert res.violation.invariant == "A4"


def test_max_events(gpu_workload):
    res = simulate(gpu_workload, max_events=500)
    assert res.summary["events"] == 500 and res.summary["stopped"] == "max_events"


def test_sva_stale_descriptor_and_replay(sva_workload, tmp_path):
    sim = Simulation(sva_workload, violations="stop")
    res = sim.run()
    assert res.violation is not None and res.violation.invariant == "I2"
    path = tmp_path / "sva.yaml"
    path.write_text(replay_yaml(sim, res))
    run = run_scenario(compile_scenario(load_scenario(path)))
    assert not run.failures
    assert any(x.name == "I2" and x.event == len(run.events) - 1 for x in run.violations)


def test_full_check_finds_state_invariant_earlier(sva_workload):
    """With a full state check every step, A3q (a PASID free while a descriptor tagged with
    it is queued) is seen before the stale descriptor completes into the next mm (I2)."""
    res = simulate(sva_workload, violations="stop", full_check_every=1)
    assert res.violation.invariant == "A3q"
    late = simulate(sva_workload, violations="stop")
    assert late.violation.invariant == "I2" and late.violation.event > res.violation.event


@pytest.mark.parametrize("scenario,designs", [
    ("hist-amdgpu-ih-reuse", ("amdgpu-lowest", "current")),
])
def test_comparison_orders_designs_as_the_checker(gpu_workload, scenario, designs):
    """The checker explores every interleaving of the small scenario; the simulator runs
    thousands of processes.  Designs the checker finds broken show misattributed faults in
    the simulation; those it proves correct show none."""
    c0 = load_scenario(next(p for p in _scenarios() if p.stem == scenario))
    verdict = {}
    for d in designs:
        cell = check_scenario(compile_scenario(c0, design=d), design_name=d)
        verdict[d] = cell.invariant
    sim = {d: simulate(gpu_workload, design=d).summary["misattributed"] for d in designs}
    assert verdict["amdgpu-lowest"] == "A4" and verdict["current"] is None
    assert sim["amdgpu-lowest"] > 0 and sim["current"] == 0
    broken_by_checker = sorted(designs, key=lambda d: verdict[d] is None)
    broken_by_sim = sorted(designs, key=lambda d: -sim[d])
    assert broken_by_checker == broken_by_sim


def test_sva_allocators_ordered(sva_workload):
    """E0 frees the PASID at mm exit with descriptors queued: lowest-free hands it to the
    next process at once (stale DMA into its mm), pending-free keeps it until the queued
    descriptors completed (none)."""
    got = {a: simulate(sva_workload.variant(policy_overrides={"allocator": a})
                       ).summary["foreign_dma"] for a in ("LOWEST", "PENDING_FREE")}
    assert got["LOWEST"] > 0 and got["PENDING_FREE"] == 0


def _scenarios():
    from importlib import resources
    root = resources.files("pasidsim").joinpath("scenarios")
    from pathlib import Path
    return [Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")]


def test_load_text_of_replay_is_a_scenario(gpu_workload):
    sim = Simulation(gpu_workload, violations="stop")
    res = sim.run()
    loaded = load_text(replay_yaml(sim, res), "r.yaml")
    assert loaded.model.design == "amdgpu-lowest"
    assert loaded.model.order[-1] == "irq"  # the interrupt handler charged the stale fault


def test_page_requests_reach_the_iopf_worker_late(monkeypatch):
    """sva-iopf: descriptors on untouched pages send page requests; the IOPF worker
    (iopf_handle, a hardware action of the model) handles them pr_latency later; today's
    design flushes them at unbind, so nothing breaks."""
    from pasidsim.sim.workload import load_workload
    calls = []
    real = engine.step

    def spy(s, a, ctx=0):
        calls.append(engine.OPS[a.op].name)
        return real(s, a, ctx)

    monkeypatch.setattr(engine, "step", spy)
    res = simulate(load_workload("sva-iopf").variant(processes=150))
    assert res.summary["page_requests"] > 10
    assert 0 < calls.count("iopf_handle") <= res.summary["page_requests"]
    assert max(res.column("iopf_depth")) >= 1
    assert not res.violation_counts
    no_pr = simulate(load_workload("sva-iopf").variant(processes=150, contexts=[
        dict(load_workload("sva-iopf").data["contexts"][0], pr_prob=0)]))
    assert no_pr.summary["page_requests"] == 0


def test_narrow_pasid_space_exhausts(sva_workload):
    """A 2-bit PASID space (PASIDs 1..3) behind 4 queues: the fourth bind fails -ENOSPC
    while 3 PASIDs are in use; the 20-bit space never runs out."""
    from pasidsim.sim.runs import apply_param
    from pasidsim.sim.workload import validate_workload
    base = sva_workload.variant(design="current", policy_overrides={},
                                lifetime={"dist": "exponential", "mean": 40})
    narrow = validate_workload(apply_param(base.data, "pasid_bits", 2), base.locator)
    a, b = simulate(narrow), simulate(base)
    assert a.summary["alloc_failures"] > 0 and a.summary["max_pasids"] == 3
    assert b.summary["alloc_failures"] == 0


def test_scoped_transition_check_sees_the_actors_mm(sva_workload):
    """The online transition invariants are evaluated on the acting task and its mm only:
    an mm PASID change (M1t) made by the acting task is caught, one of another task is
    outside the scope (the full check at the end of a run covers state invariants only)."""
    sim = Simulation(sva_workload.variant(processes=3, design="current",
                                          policy_overrides={}), violations="count")
    sim.run()
    s = sim.s
    tid, task = next((t, x) for t, x in s.tasks.items()) if s.tasks else (None, None)
    if tid is None:  # every process exited: make one that is bound
        from pasidsim.step import Action
        s, tid = engine.step(s, Action(engine.C_CREATE, ()))
        s, _fd = engine.step(s, Action(engine.C_OPEN, (tid, 0)), tid)
        task = s.tasks[tid]
    mm = s.mms[task.mm]
    assert mm.pasid != engine.IOMMU_PASID_INVALID
    changed = s._replace(mms=s.mms.set(task.mm, mm._replace(pasid=mm.pasid + 1)))
    a = engine.Action(engine.C_CLOSE, (tid, 0))
    sim.counts.clear()
    sim._transition(s, a, 0, changed, tid, engine.C_CLOSE, 0)
    assert sim.counts == {"M1t": 1}
    sim.counts.clear()
    sim._transition(s, a, 0, changed, tid + 1000, engine.C_CLOSE, 0)  # someone else's step
    assert sim.counts == {}
