"""``pasidsim demo`` judges its steps as ``pasidsim run`` judges the same steps as a scenario.

The demo once checked transition invariants without the action, so the #GP fixup's own write
of IA32_PASID looked like a remote write (a false X3 on today's design).  Here the demo's calls
through :class:`~pasidsim.system.System` and the same calls as a scenario
(:data:`pasidsim.examples.DEMO_SCENARIO`) must break exactly the same kernel invariants, on
today's design and on historical designs that do break some."""

from __future__ import annotations

import pytest

from pasidsim.designs import DESIGNS
from pasidsim.examples import DEMO_SCENARIO, demo_steps, lifecycle_demo
from pasidsim.invariants import INVARIANTS_BY_NAME
from pasidsim.scenario.compile import compile_scenario
from pasidsim.scenario.loader import load_text
from pasidsim.scenario.runner import run_scenario


def _kernel(names) -> set[str]:
    return {n for n in names if n in INVARIANTS_BY_NAME and INVARIANTS_BY_NAME[n].scope == "kernel"}


@pytest.mark.parametrize("design", ["current", "E4-unbind-free", "E6-mmput-free", "H8-unbind-uaf",
                                    "H5-task-refcount", "E0-io_mm"])
def test_demo_and_scenario_agree(design):
    _sys, rows, _info = demo_steps(DESIGNS[design])
    demo = _kernel(n for _call, _ret, bad in rows for n, _m in bad)
    text = DEMO_SCENARIO.replace("design: current", f"design: {design}")
    res = run_scenario(compile_scenario(load_text(text, "<demo>")))
    assert _kernel(v.name for v in res.violations) == demo
    if design == "current":
        assert demo == set()


def test_demo_on_today_design_reports_no_violation():
    from rich.console import Console
    console = Console(record=True, width=200)
    for r in lifecycle_demo():
        console.print(r)
    out = console.export_text()
    assert "VIOLATES" not in out and "#GP fixup loads IA32_PASID = 1" in out


def test_demo_on_e4_shows_the_ipi_write():
    _sys, rows, _info = demo_steps(DESIGNS["E4-unbind-free"])
    names = [n for _c, _r, bad in rows for n, _m in bad]
    assert "X3" in names  # the IPI era writes other tasks' IA32_PASID at bind (H4)
