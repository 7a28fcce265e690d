"""What the checker judges besides the invariants: a kernel WARN (W) unless the scenario
expects it, ``expect_final`` at every quiescent terminal state, and steps that cannot be
taken (STEP) — each a verdict with a counterexample like any invariant."""

from __future__ import annotations

from pasidsim.check.runner import check_scenario
from pasidsim.errors import Warn
from pasidsim.scenario import compile_scenario, load_text

DOUBLE_FREE = """
name: double-free
actors:
  - name: K
    kernel: true
    program:
      - iommu_alloc_global_pasid: {dev: dsa0, as: p, expect: 1}
      - iommu_free_global_pasid: {pasid: $p, expect: 0}
  - name: L
    kernel: true
    program:
      - iommu_free_global_pasid: {pasid: $p, expect: 0, note: "a second free: ida_free WARNs"}
"""


def _cell(text: str, **kw):
    c = compile_scenario(load_text(text, "t.yaml"))
    return c, check_scenario(c, scenario_name="t", design_name="current", **kw)


def test_a_kernel_warn_is_a_finding():
    _c, cell = _cell(DOUBLE_FREE)
    assert (cell.verdict, cell.invariant) == ("Sometimes", "W"), cell.message
    assert "free_unallocated_pasid" in cell.message
    assert [call.split("(")[0] for _a, call, _r in cell.trace[-3:]] == [
        "iommu_alloc_global_pasid", "iommu_free_global_pasid", "iommu_free_global_pasid"]


def test_a_warn_the_scenario_expects_is_not_a_finding():
    text = DOUBLE_FREE + "expect_warn: [FREE_UNALLOCATED_PASID]\n"
    c, cell = _cell(text)
    assert c.expect_warn == frozenset({int(Warn.FREE_UNALLOCATED_PASID)})
    assert cell.verdict == "Always", (cell.invariant, cell.message)
    # another WARN is still one
    _c, cell = _cell(DOUBLE_FREE + "expect_warn: [MM_EXIT_LEAK]\n")
    assert cell.invariant == "W"


def test_the_runner_ignores_expected_warns_too():
    from pasidsim.scenario import run_scenario
    c = compile_scenario(load_text(DOUBLE_FREE + "order: [K, K, L]\n", "t.yaml"))
    assert [v.name for v in run_scenario(c).violations] == ["W"]
    c = compile_scenario(load_text(DOUBLE_FREE + "order: [K, K, L]\n"
                                   "expect_warn: [FREE_UNALLOCATED_PASID]\n", "t.yaml"))
    assert run_scenario(c).violations == []


EXIT = """
name: final
actors:
  - name: A
    program:
      - exit: {}
  - name: B
    program:
      - open: {dev: dsa0, as: q, expect: ok}
      - close: {fd: $q, expect: 0}
      - exit: {}
"""


def test_expect_final_is_judged_at_every_quiescent_terminal_state():
    _c, cell = _cell(EXIT + "expect_final: {tasks: 0, mms: 0, pasids_allocated: 0}\n")
    assert cell.verdict == "Always", cell.message
    _c, cell = _cell(EXIT + "expect_final: {tasks: 0, pasids_allocated: 1}\n")
    assert (cell.verdict, cell.invariant, cell.kind) == ("Sometimes", "expect_final",
                                                         "quiescence")
    assert cell.message == "pasids_allocated: expected 1, got 0"
    assert cell.trace[-1][1].startswith("task_exit")  # the run ends there


def test_expect_final_is_not_judged_for_scripted_scenarios():
    text = EXIT + "expect_final: {tasks: 1}\n"
    _c, cell = _cell(text)
    assert cell.invariant == "expect_final"
    _c, cell = _cell(text + "scripted: true\n")
    assert cell.verdict == "Always"


def test_a_step_that_cannot_be_taken_is_a_finding_even_when_scripted():
    text = """
name: stale
scripted: true
actors:
  - name: K
    kernel: true
    program:
      - task_exit: {tid: 999, note: "no such task: the step cannot run"}
"""
    _c, cell = _cell(text)
    assert (cell.verdict, cell.invariant) == ("Sometimes", "STEP"), cell.message
    assert "every step of the scenario can be taken" in cell.message


def test_broken_lists_every_property_of_the_violating_state():
    """``broken`` no longer hides W: the matrix can expect a WARN where another invariant
    breaks first."""
    from pasidsim.scenario import builtin_scenarios, load_scenario
    c = compile_scenario(load_scenario(builtin_scenarios()["hist-io_mm-mm-exit"]),
                         design="E0-io_mm")
    cell = check_scenario(c, design_name="E0-io_mm")
    assert cell.invariant == "A3q" and "W" in cell.broken  # E0's MM_EXIT_LEAK WARN
