"""`pasidsim run`: a step that cannot run is a failure at its line, never a silent no-op; and
the run judges what the checker judges on its one interleaving (failure atomicity, leaks at
the end)."""

from __future__ import annotations

from click.testing import CliRunner

from pasidsim.cli import main
from pasidsim.scenario import compile_scenario, load_text, run_scenario


def _run(text: str):
    return run_scenario(compile_scenario(load_text(text, "t.yaml")))


def test_a_call_that_fails_without_expect_is_a_failure_at_its_line():
    res = _run("name: t\nactors:\n  - name: A\n    program:\n"
               "      - open: {dev: smbus}\n      - exit: {}\n")
    assert not res.ok
    f = res.failures[0]
    assert (f.where, f.line) == ("A step 1", 5)
    assert "dev_open returned -ENODEV and the step has no `expect`" in f.message
    # written as intended, it is fine
    for exp in ("error", "-ENODEV"):
        res = _run("name: t\nactors:\n  - name: A\n    program:\n"
                   f"      - open: {{dev: smbus, expect: {exp}}}\n      - exit: {{}}\n")
        assert res.ok, res.failures


def test_a_step_whose_call_cannot_be_made_is_a_failure_at_its_line():
    res = _run("name: t\nactors:\n  - name: K\n    kernel: true\n    program:\n"
               "      - task_exit: {tid: 999}\n")
    assert [(f.line, f.where) for f in res.failures] == [(6, "K step 1")]
    assert "task_exit" in res.failures[0].message


def test_an_order_entry_that_cannot_run_is_a_failure_at_its_line():
    res = _run("name: t\nactors:\n  - name: A\n    program:\n      - exit: {}\n"
               "order: [A, A]\n")
    assert [(f.where, f.line) for f in res.failures] == [("order[1]", 6)]


def test_a_fail_point_the_call_never_passes_is_a_failure_at_its_line():
    text = ("name: t\nactors:\n  - name: A\n    program:\n"
            "      - close: {fd: 3, fail: HANDLE_ALLOC, expect: error}\n      - exit: {}\n")
    res = _run(text)
    assert [(f.where, f.line) for f in res.failures] == [("A step 1", 5)]
    assert "never passes fault point HANDLE_ALLOC" in res.failures[0].message


def test_the_run_reports_leaks_at_its_end():
    text = """
name: t
actors:
  - name: K
    kernel: true
    program:
      - iommu_alloc_global_pasid: {dev: dsa0, expect: 1, note: "never freed"}
"""
    res = _run(text)
    assert [(v.name, v.message) for v in res.violations] == [
        ("quiescence", "PASID 1 is allocated but no mm or IOASID owns it")]


def test_run_cli_reports_a_step_that_cannot_run_with_file_and_line(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("name: t\nactors:\n  - name: A\n    program:\n"
                 "      - open: {dev: smbus}\n      - exit: {}\n")
    r = CliRunner().invoke(main, ["run", str(p), "--no-state"], env={"COLUMNS": "200"})
    assert r.exit_code == 1
    assert f"{p}:5: A step 1" in r.output and "no `expect`" in r.output


def test_a_hardware_event_s_error_is_its_outcome_not_a_failure():
    """A DMA that faults returns -errno: the device did what the scenario asked."""
    res = _run("name: t\nactors:\n  - name: dev\n    kernel: true\n    program:\n"
               "      - dma: {dev: dsa0, pasid: 1, addr: 0x1000, access: 1}\n")
    assert res.events[-1].ret < 0
    assert res.ok, res.failures
