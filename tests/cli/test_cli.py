"""The ``pasidsim`` command: help for every command, exit codes, outputs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pasidsim.cli import main
from pasidsim.scenario import builtin_scenarios


def invoke(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("cmd", [[]] + [[c] for c in sorted(main.commands)])
def test_help_for_every_command(cmd):
    res = invoke(*cmd, "--help")
    assert res.exit_code == 0 and "Usage:" in res.output


def test_commands_present():
    assert {"demo", "designs", "run", "topology", "scenarios", "schema"} <= set(main.commands)


def test_demo_and_designs_still_work():
    assert invoke("demo").exit_code == 0
    res = invoke("designs")
    assert res.exit_code == 0 and "current" in res.output


def test_scenarios_lists_builtins():
    res = invoke("scenarios")
    assert res.exit_code == 0
    for name in builtin_scenarios():
        assert name in res.output


def test_run_builtin_passes():
    res = invoke("run", "h6-double-bind")
    assert res.exit_code == 0, res.output
    assert "PASS: h6-double-bind on design current" in res.output
    assert "mm_struct" in res.output  # final state tables


def test_run_failing_design_exits_1():
    res = invoke("run", "h6-double-bind", "--design", "E12-no-handle-sharing", "--no-state")
    assert res.exit_code == 1
    assert "FAIL" in res.output and "expected ok, got -EBUSY" in res.output


def test_run_bad_input_exits_2(tmp_path):
    res = invoke("run", "no-such-scenario")
    assert res.exit_code == 2 and "no such file or built-in scenario" in res.stderr
    res = invoke("run", "h6-double-bind", "--design", "nope")
    assert res.exit_code == 2 and "unknown design 'nope'" in res.stderr
    res = invoke("run")
    assert res.exit_code == 2  # click usage error


def test_run_json_is_stable():
    a, b = invoke("run", "h1-fork-exit", "--json"), invoke("run", "h1-fork-exit", "--json")
    assert a.exit_code == 0 and a.stdout == b.stdout
    d = json.loads(a.stdout)
    assert d["schema"] == "pasidsim.trace/1" and d["ok"] is True


def test_run_writes_diagrams(tmp_path):
    mmd, page = tmp_path / "t.mmd", tmp_path / "t.html"
    res = invoke("run", "amdgpu-vm-delayed-free", "--mermaid", str(mmd), "--html", str(page),
                 "--no-state")
    assert res.exit_code == 0
    assert mmd.read_text().startswith("sequenceDiagram")
    assert "<svg" in page.read_text() and "<script" not in page.read_text()


def test_progress_bar_for_long_runs(tmp_path):
    steps = "\n".join("      - dma_fence_create: {}" for _ in range(250))
    f = tmp_path / "long.yaml"
    f.write_text(f"name: long\nactors:\n  - name: K\n    kernel: true\n    program:\n{steps}\n")
    res = invoke("run", str(f), "--no-state")
    assert res.exit_code == 0 and "PASS: long" in res.output


def test_topology_default_machine():
    res = invoke("topology")
    assert res.exit_code == 0
    assert "dsa0" in res.output and "pch" in res.output
    res = invoke("topology", "--json")
    d = json.loads(res.output)
    assert d["machine"] == "default" and d["multi_device_groups"] == 1
    assert d["pasid_widths"] == {"dsa0": 20, "iax0": 20, "dsa1": 20, "iax1": 20, "gpu0": 16}


def test_topology_from_a_dump(tmp_path):
    f = tmp_path / "groups.txt"
    f.write_text("IOMMU Group 1 00:1f.3 Audio device [0403]: Intel Corporation Device [8086:a348]\n"
                 "IOMMU Group 1 00:1f.4 SMBus [0c05]: Intel Corporation Device [8086:a323]\n")
    res = invoke("topology", str(f))
    assert res.exit_code == 0 and "00:1f.3" in res.output
    d = json.loads(invoke("topology", str(f), "--json").output)
    assert d["groups"] == 1 and d["functions"] == 2


def test_topology_bad_dump_exits_2(tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("")
    res = invoke("topology", str(f))
    assert res.exit_code == 2 and "empty.txt:1:" in res.stderr
    res = invoke("topology", str(tmp_path / "missing.txt"))
    assert res.exit_code == 2 and "missing.txt" in res.stderr


def test_schema_command(tmp_path):
    res = invoke("schema")
    assert res.exit_code == 0 and json.loads(res.output)["title"] == "pasidsim scenario"
    res = invoke("schema", "--check")
    assert res.exit_code == 0, res.output
