"""Failure injection in the checker and in scenarios (pasidsim.fault): every kernel call and
process event is also explored failing at each fault point it passes; a failed call must
leave no trace (ATOMIC) and its branch runs on to quiescence (leaks); counterexamples carry
the failure as `fail: POINT` and replay with `pasidsim run`.

The toy tests use ``leaky_alloc``: ``iommu_alloc_global_pasid`` wrapped so that it passes one
fault point *after* allocating and, when that point fails, returns the error without freeing
the PASID — the unwind bug the checker must find.  The ``bind`` tests use the kernel model's
own fault points in ``iommu_sva_bind_device``.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from pasidsim import fault
from pasidsim import step as step_mod
from pasidsim.check.cli_check import counterexample_yaml
from pasidsim.check.pasid_model import ScenarioModel
from pasidsim.check.runner import check_scenario
from pasidsim.cli import main
from pasidsim.errors import errname
from pasidsim.fault import FaultPoint, fault_point
from pasidsim.scenario import compile_scenario, load_scenario, load_text, run_scenario
from pasidsim.scenario.trace import event_rows

LEAKY = """
name: leaky
inject_faults: true
actors:
  - name: K
    kernel: true
    program:
      - iommu_alloc_global_pasid: {dev: dsa0, as: p, expect: 1}
      - iommu_free_global_pasid: {pasid: $p, expect: 0}
expect_final: {pasids_allocated: 0, warnings: 0}
"""


@pytest.fixture
def leaky_alloc():
    """iommu_alloc_global_pasid with a buggy unwind at a HANDLE_ALLOC fault point."""
    op = step_mod.OP_BY_NAME["iommu_alloc_global_pasid"]
    orig = op.fn

    def leaky(s, dev):
        s2, ret = orig(s, dev)
        err = fault_point(FaultPoint.HANDLE_ALLOC)
        return (s2, err) if err else (s2, ret)

    step_mod.OPS[op.code] = dataclasses.replace(op, fn=leaky)
    try:
        yield op
    finally:
        step_mod.OPS[op.code] = op


def _compiled(text: str, name: str = "t.yaml", **kw):
    return compile_scenario(load_text(text, name), **kw)


def test_each_call_is_also_explored_failing_at_each_point_it_passes(leaky_alloc):
    c = _compiled(LEAKY)
    m = ScenarioModel(c)
    cs = m.initial_states()[0]
    while m.actions(cs)[0].actor == 0:  # boot
        assert len(m.actions(cs)) == 1
        cs = m.step(cs, m.actions(cs)[0])
    acts = m.actions(cs)
    # the allocation's own IDA_ALLOC, then the wrapper's HANDLE_ALLOC
    assert [(r.actor, r.fail) for r in acts] == [(1, 0), (1, 1), (1, 2)]
    assert c.fault_branches(cs.rs, acts[0]) == 2
    assert fault.trail() == (FaultPoint.IDA_ALLOC, FaultPoint.HANDLE_ALLOC)
    clean, bad = m.step(cs, acts[1]), m.step(cs, acts[2])
    assert clean.injected and not clean.last  # the allocator's failure changes nothing
    assert bad.injected and bad.last  # ATOMIC: the failed call changed the state
    # without injection the toy passes
    c.inject_faults = False
    assert [(r.actor, r.fail) for r in ScenarioModel(c).actions(cs)] == [(1, 0)]
    assert check_scenario(c).verdict == "Always"


def test_an_injected_failure_that_leaves_a_trace_is_found(leaky_alloc):
    c = _compiled(LEAKY)
    cell = check_scenario(c, design_name="current")
    assert (cell.verdict, cell.invariant) == ("Sometimes", "ATOMIC"), cell.message
    assert cell.refs[-1].fail == 2
    assert cell.trace[-1] == ("K", "iommu_alloc_global_pasid(dev=dsa0) [fail HANDLE_ALLOC "
                              "-ENOMEM]", "-ENOMEM")
    # the same scenario, asked from outside
    plain = _compiled(LEAKY.replace("inject_faults: true\n", ""))
    assert check_scenario(plain).verdict == "Always"
    assert check_scenario(plain, inject_faults=True).invariant == "ATOMIC"


def test_expectations_are_not_judged_after_an_injected_failure(leaky_alloc):
    """An atomic failure whose branch goes on: the next step frees $p = -ENOMEM or
    IOMMU_PASID_INVALID (a WARN, which the scenario expects here) — the invariants still judge
    the branch, but not the scenario's `expect`s written for the call succeeding."""
    op = leaky_alloc

    def clean(s, dev):
        err = fault_point(FaultPoint.HANDLE_ALLOC)
        return (s, err) if err else op.fn(s, dev)

    step_mod.OPS[op.code] = dataclasses.replace(op, fn=clean)  # the fixture restores it
    text = LEAKY.replace("expect_final: {pasids_allocated: 0, warnings: 0}",
                         "expect_warn: [FREE_UNALLOCATED_PASID, FREE_INVALID_PASID]\n"
                         "expect_final: {pasids_allocated: 0, warnings: 0}")
    cell = check_scenario(_compiled(text))
    assert cell.verdict == "Always", (cell.invariant, cell.message, cell.trace)
    assert cell.states > check_scenario(_compiled(text), inject_faults=False).states


def test_counterexample_file_carries_the_failure_and_replays(leaky_alloc, tmp_path):
    c = _compiled(LEAKY)
    cell = check_scenario(c, design_name="current")
    text = counterexample_yaml(cell, c, LEAKY)
    assert "fail: HANDLE_ALLOC" in text and "inject_faults" not in text
    path = tmp_path / "cex.yaml"
    path.write_text(text)
    loaded = load_scenario(path)
    step0 = loaded.model.actors[0].program[0].args
    assert step0.fail.text == "HANDLE_ALLOC" and step0.expect is None
    res = run_scenario(compile_scenario(loaded))
    assert res.exit_code == 1
    assert "ATOMIC" in [v.name for v in res.violations]
    rows = [r for r in event_rows(res) if r.actor == "K"]
    assert rows[0].call == "iommu_alloc_global_pasid(dev=dsa0) [fail HANDLE_ALLOC -ENOMEM]"
    assert rows[0].ret == "-ENOMEM"
    # the checker finds it again in the file (its `fail:` is part of the script)
    again = check_scenario(compile_scenario(loaded), inject_faults=False)
    assert again.invariant == "ATOMIC"
    # and `pasidsim run` shows it
    r = CliRunner().invoke(main, ["run", str(path), "--no-state"], env={"COLUMNS": "200"})
    assert r.exit_code == 1 and "[fail HANDLE_ALLOC -ENOMEM]" in r.output


def test_cli_inject_faults_flag(leaky_alloc, tmp_path):
    p = tmp_path / "leaky.yaml"
    p.write_text(LEAKY.replace("inject_faults: true\n", ""))
    runner = CliRunner()
    ok = runner.invoke(main, ["check", str(p), "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(main, ["check", str(p), "--inject-faults", "--json",
                               "--out", str(tmp_path / "o")])
    assert bad.exit_code == 1
    data = json.loads(bad.stdout)
    assert data["cells"][0]["invariant"] == "ATOMIC"
    saved = (tmp_path / "o" / "leaky--current.yaml").read_text()
    assert "fail: HANDLE_ALLOC" in saved


def test_no_partial_order_reduction_with_injection():
    c = _compiled(LEAKY)
    assert ScenarioModel(c, por=True).por_reason.startswith("fault injection")


# -- the kernel model's own fault points ------------------------------------------------------

BIND = """
name: one-bind
actors:
  - name: A
    program:
      - iommu_sva_bind_device: {dev: dsa0, mm: self, as: h, expect: ok}
      - iommu_sva_unbind_device: {handle: $h}
      - exit: {}
expect_final: {pasids_allocated: 0, mms: 0, bonds: 0, warnings: 0}
"""

#: the points a bind of a fresh mm passes (drivers/iommu/iommu-sva.c, iommu.c)
BIND_POINTS = {FaultPoint.IOMMU_MM_ALLOC, FaultPoint.IDA_ALLOC, FaultPoint.HANDLE_ALLOC,
               FaultPoint.DOMAIN_ALLOC_SVA, FaultPoint.PASID_ARRAY_INSERT,
               FaultPoint.SET_DEV_PASID}


def _at_bind(c):
    rs = c.initial()
    while c.enabled(rs)[0].actor == 0:
        rs, _ev = c.apply(rs, c.enabled(rs)[0])
    return rs, c.enabled(rs)[0]


def test_a_bind_of_a_fresh_mm_has_a_branch_per_fault_point():
    c = _compiled(BIND)
    rs, ref = _at_bind(c)
    n = c.fault_branches(rs, ref)
    assert set(fault.trail()) >= BIND_POINTS, fault.trail()
    assert n == len(fault.trail()) >= len(BIND_POINTS)
    refs = ScenarioModel(_compiled(BIND + "inject_faults: true\n")).actions(
        ScenarioModel(c).initial_states()[0]._replace(rs=rs))
    assert [r.fail for r in refs] == list(range(n + 1))


def test_today_s_bind_unwinds_every_injected_failure():
    """Every failure of the bind leaves no leak and no trace, and the failed open's branch
    reaches quiescence clean (today's design)."""
    plain = check_scenario(_compiled(BIND))
    cell = check_scenario(_compiled(BIND + "inject_faults: true\n"))
    assert cell.verdict == "Always", (cell.invariant, cell.message, cell.trace)
    assert cell.states > plain.states and cell.transitions > plain.transitions


@pytest.mark.parametrize("point", sorted(BIND_POINTS, key=int), ids=lambda p: p.name)
def test_a_scripted_bind_failure_runs_and_shows_in_the_trace(point):
    err = f"-{errname(fault.ERRNO[point])}"
    text = f"""
name: failed-bind
actors:
  - name: A
    program:
      - iommu_sva_bind_device: {{dev: dsa0, mm: self, fail: {point.name}, expect: {err}}}
      - exit: {{}}
expect_final: {{pasids_allocated: 0, mms: 0, bonds: 0, warnings: 0, violations: 0}}
"""
    res = run_scenario(_compiled(text))
    assert res.ok, res.failures
    row = next(r for r in event_rows(res) if r.call.startswith("iommu_sva_bind_device"))
    assert row.call.endswith(f"[fail {point.name} {err}]"), row.call
    assert row.ret == err
    assert check_scenario(_compiled(text)).verdict == "Always"


def test_fail_names_the_nth_passage_of_a_point(leaky_alloc):
    """``fail: POINT#n`` is the n-th time the call passes POINT: here a call that passes
    HANDLE_ALLOC twice (the compiler finds the ordinal from the unfailed run's trail)."""
    op = leaky_alloc

    def twice(s, dev):
        for _ in range(2):
            err = fault_point(FaultPoint.HANDLE_ALLOC)
            if err:
                return s, err
        return op.fn(s, dev)

    step_mod.OPS[op.code] = dataclasses.replace(op, fn=twice)  # the fixture restores it
    text = """
name: twice
actors:
  - name: K
    kernel: true
    program:
      - iommu_alloc_global_pasid: {dev: dsa0, fail: "HANDLE_ALLOC#2", expect: -ENOMEM}
"""
    res = run_scenario(_compiled(text))
    assert res.ok, res.failures
    ev = next(e for e in res.events if e.actor == 1)
    assert ev.action.fail == 2 and ev.fault == (int(FaultPoint.HANDLE_ALLOC), 2)
    assert event_rows(res)[-1].call.endswith("[fail HANDLE_ALLOC#2 -ENOMEM]")
    res = run_scenario(_compiled(text.replace("#2", "#3")))
    assert "never passes fault point HANDLE_ALLOC 3 times" in res.failures[0].message


def test_checker_reports_a_fail_point_the_call_never_passes():
    text = """
name: no-such-point
actors:
  - name: A
    program:
      - close: {fd: 3, fail: HANDLE_ALLOC, expect: error}
      - exit: {}
"""
    cell = check_scenario(_compiled(text))
    assert (cell.verdict, cell.invariant) == ("Sometimes", "STEP"), cell.message


@pytest.mark.parametrize("name,design", [("h1-fork-exit", "current"),
                                         ("h1-fork-exit", "E1-singleton-group")])
def test_injection_composes_with_symmetry_and_workers(name, design):
    """Symmetry gives the same verdict and counterexample length on fewer states; parallel
    BFS gives the serial result exactly."""
    from pasidsim.scenario import builtin_scenarios
    c = compile_scenario(load_scenario(builtin_scenarios()[name]), design=design)
    serial = check_scenario(c, inject_faults=True)
    sym = check_scenario(c, inject_faults=True, symmetry=True)
    par = check_scenario(c, inject_faults=True, workers=2)
    assert (sym.verdict, sym.invariant, len(sym.refs)) == \
        (serial.verdict, serial.invariant, len(serial.refs))
    assert sym.states <= serial.states
    assert (par.verdict, par.invariant, par.states, par.transitions, par.refs) == \
        (serial.verdict, serial.invariant, serial.states, serial.transitions, serial.refs)


# -- the acceptance case: a removed unwind step is found, today's unwinds are complete ---------

UACCE_OPEN = """
name: uacce-open-close
inject_faults: true
machine:
  name: kunpeng-zip
  iommus:
    - {name: smmu0, ops: arm-smmu-v3}
  devices:
    - {name: zip0, iommu: smmu0, pasid_bits: 16, driver: hisi_zip}
  drivers:
    - {name: hisi_zip, kind: uacce}
actors:
  - name: A
    program:
      - open: {dev: zip0, as: q, expect: ok}
      - mmap: {fd: $q, expect: ok}
      - close: {fd: $q, expect: 0}
      - exit: {}
"""


def _check_uacce_open():
    compiled = compile_scenario(load_text(UACCE_OPEN, "uacce-open-close.yaml"))
    return check_scenario(compiled, scenario_name="uacce-open-close", design_name="current")


def test_injected_failures_of_a_uacce_open_leave_no_leak_today():
    """Every fault point of uacce's open (the bind's allocations, get_queue) fails in turn;
    the process then exits (as a program does on an error) and nothing is left behind."""
    cell = _check_uacce_open()
    assert cell.verdict == "Always", (cell.invariant, cell.message)
    assert cell.transitions > 0


def test_removing_the_open_unwind_of_the_bond_is_found_as_a_leak(monkeypatch):
    """uacce_fops_open without ``out_with_bond: uacce_unbind_queue``: when get_queue fails
    the bond stays (its handle, SVA domain and mm_count reference): a leak at quiescence,
    reached only through the injected get_queue failure."""
    from pasidsim.drivers.uacce import UacceDriver
    monkeypatch.setattr(UacceDriver, "unbind_queue", lambda self, s, handle: s)
    cell = _check_uacce_open()
    assert cell.verdict == "Sometimes"
    assert cell.invariant == "quiescence", (cell.invariant, cell.message)
    assert any("UACCE_GET_QUEUE" in call for _actor, call, _ret in cell.trace), cell.trace
