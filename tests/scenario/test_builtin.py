"""Every built-in scenario passes on today's kernel; the regression scenarios fail on the
historical design they were written for."""

from __future__ import annotations

import pytest

from pasidsim.scenario import (builtin_scenarios, compile_scenario, load_scenario,
                               resolve_scenario, run_scenario)

BUILTINS = builtin_scenarios()

EXPECTED = {
    "uacce-exit-before-close", "uacce-fork-inherit", "dsa-shared-wq-threads",
    "amdgpu-vm-delayed-free", "two-pasids-one-mm", "vfio-multi-device-group",
    "iommufd-pasid-compat", "h1-fork-exit", "h2-mmget-cycle", "h6-double-bind",
    "h10-bind-into-user-group", "h8-unbind-after-exit", "hist-io_mm-mm-exit",
}


def test_library_is_complete():
    assert EXPECTED <= set(BUILTINS)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_passes_on_current(name):
    loaded = load_scenario(BUILTINS[name])
    assert loaded.model.demonstrates, "each built-in names the behaviour it demonstrates"
    c = compile_scenario(loaded)
    assert c.policy.name.startswith("current")
    res = run_scenario(c)
    assert res.ok, [f"{f.where}: {f.message}" for f in res.failures]
    assert res.exit_code == 0
    assert all(ev.error == "" for ev in res.events)


@pytest.mark.parametrize("name,design,symptom", [
    ("h1-fork-exit", "E6-mmput-free", "A3"),
    ("uacce-fork-inherit", "E6-mmput-free", "A3"),
    ("h2-mmget-cycle", "H2-mmget-bind", "files: expected 0"),
    ("h6-double-bind", "E12-no-handle-sharing", "-EBUSY"),
    ("h10-bind-into-user-group", "pre-E8-bug-on", "expected -EBUSY, got 0"),
    ("h8-unbind-after-exit", "H8-unbind-uaf", "warnings: expected 0, got 1"),
    ("amdgpu-vm-delayed-free", "amdgpu-lowest", "PASID 3 is free"),
    ("hist-io_mm-mm-exit", "E0-io_mm", "A3q"),
])
def test_regression_detected_on_historical_design(name, design, symptom):
    res = run_scenario(compile_scenario(load_scenario(BUILTINS[name]), design=design))
    assert not res.ok
    text = " ".join(f.message for f in res.failures) + " ".join(v.name for v in res.violations)
    assert symptom in text


def test_private_pasid_needs_the_override():
    c = compile_scenario(load_scenario(BUILTINS["two-pasids-one-mm"]))
    assert c.policy.private_pasid and "private_pasid=True" in c.policy.name
    from pasidsim.designs import DESIGNS
    res = run_scenario(compile_scenario(load_scenario(BUILTINS["two-pasids-one-mm"]),
                                        policy=DESIGNS["current"]))
    assert any("expected ok, got -EINVAL" in f.message for f in res.failures)


def test_resolve_by_name_and_path(tmp_path):
    assert resolve_scenario("h1-fork-exit") == BUILTINS["h1-fork-exit"]
    assert resolve_scenario("h1-fork-exit.yaml") == BUILTINS["h1-fork-exit"]
    f = tmp_path / "x.yaml"
    f.write_text("name: x\n")
    assert resolve_scenario(str(f)) == f
    from pasidsim.scenario import ScenarioError
    with pytest.raises(ScenarioError, match="no such file or built-in scenario"):
        resolve_scenario("no-such-scenario")
