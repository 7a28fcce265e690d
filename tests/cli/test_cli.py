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
    assert d["schema"] == "pasidsim.run/2" and d["ok"] is True
    # kernel return values are JSON integers beside their text
    opens = [e for e in d["events"] if e["op"] == "dev_open"]
    assert opens and all(type(e["ret"]) is int and e["ret"] > 0 for e in opens)
    assert all(e["ret_text"] == str(e["ret"]) for e in opens)
    assert [e["ret_text"] for e in d["events"] if e["ret"] == 0][:1] == ["0"]


def test_json_outputs_follow_their_published_schemas(tmp_path):
    """`pasidsim schema --output run|check` prints the shipped schema of each JSON output;
    both outputs carry the same version number in their tag and parse as their pydantic
    models (extra or missing fields would fail)."""
    from pasidsim.report.schemas import (OUTPUT_VERSION, CheckOutput, RunOutput,
                                         output_schema_path)
    for kind in ("run", "check"):
        res = invoke("schema", "--output", kind)
        assert res.exit_code == 0
        assert res.output == output_schema_path(kind).read_text(encoding="utf-8")
        assert json.loads(res.output)["additionalProperties"] is False
    run = json.loads(invoke("run", "h8-unbind-after-exit", "--design", "H8-unbind-uaf",
                            "--json").stdout)
    RunOutput.model_validate(run)
    assert run["ok"] is False and run["violations"][0]["invariant"] == "M9"
    res = invoke("check", "h8-unbind-after-exit", "--design", "H8-unbind-uaf", "--json",
                 "--out", str(tmp_path))
    check = json.loads(res.stdout)
    CheckOutput.model_validate(check)
    assert {run["schema"], check["schema"]} == {f"pasidsim.run/{OUTPUT_VERSION}",
                                                f"pasidsim.check/{OUTPUT_VERSION}"}
    (cell,) = check["cells"]
    # a scenario checked by name must pass: the violation is a failure, as the exit status
    assert cell["verdict"] == "Sometimes" and cell["invariant"] == "M9"
    assert cell["ok"] is False and check["ok"] is False and res.exit_code == 1
    assert all(type(s["ret"]) is int for s in cell["trace"] if s["ret"] is not None)
    assert len(cell["trace"]) == cell["length"] > 0


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


def test_schema_command(tmp_path, monkeypatch):
    res = invoke("schema")
    assert res.exit_code == 0 and json.loads(res.output)["title"] == "pasidsim scenario"
    res = invoke("schema", "--check")
    assert res.exit_code == 0, res.output
    # a stale shipped output schema makes --check fail and names it
    from pasidsim.report import schemas
    stale, real = tmp_path / "stale.json", schemas.output_schema_path
    stale.write_text("{}\n")
    monkeypatch.setattr(schemas, "output_schema_path",
                        lambda kind: stale if kind == "check" else real(kind))
    res = invoke("schema", "--check")
    assert res.exit_code == 1 and "stale.json is out of date" in res.stderr


def test_ctrl_c_exits_130_with_whole_outputs(tmp_path):
    """Ctrl-C in the middle of the matrix: one line, status 130 (not click's "Aborted!" and
    1, a violation's status), no traceback, and no half-written output file."""
    import os
    import signal
    import subprocess
    import sys
    import time
    junit = tmp_path / "j.xml"
    junit.write_text("previous\n")
    proc = subprocess.Popen([sys.executable, "-m", "pasidsim", "check", "--out",
                             str(tmp_path / "cex"), "--junit", str(junit)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, COLUMNS="200"))
    time.sleep(6)  # well into the matrix (it takes minutes)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err and "Traceback" not in err and "Aborted" not in err
    assert junit.read_text() == "previous\n"  # the old report, whole
    assert not list(tmp_path.glob("**/*.tmp*")) and not list(tmp_path.glob("**/.*"))


def test_run_exits_1_on_an_invariant_violation_unless_the_scenario_counts_it(tmp_path):
    """`pasidsim run` used to exit 0 when an invariant broke but every `expect` held (here:
    a domain freed while still attached, D1), which a script would take for a pass."""
    text = """
name: free-attached
actors:
  - name: K
    kernel: true
    program:
      - iommu_domain_alloc_paging: {dev: dsa0, as: d}
      - iommu_attach_device_pasid: {domain: $d, dev: dsa0, pasid: 5, expect: 0}
      - iommu_domain_free: {domain: $d, expect: 0}
      - iommu_detach_device_pasid: {domain: $d, dev: dsa0, pasid: 5}
"""
    path = tmp_path / "free.yaml"
    path.write_text(text)
    res = CliRunner().invoke(main, ["run", str(path), "--no-state"])
    assert res.exit_code == 1 and "D1" in res.output
    counted = tmp_path / "counted.yaml"
    counted.write_text(text + "expect_final: {violations: 2}\n")  # D1 and its WARN
    assert CliRunner().invoke(main, ["run", str(counted), "--no-state"]).exit_code == 0


def test_a_scenario_s_checker_bounds_are_the_defaults_and_options_win(tmp_path):
    """`checker:` in a scenario file sets `pasidsim check FILE`'s bounds and reductions; an
    option on the command line wins."""
    from pasidsim.scenario import builtin_scenarios as _b
    text = _b()["uacce-fork-inherit"].read_text()
    path = tmp_path / "bounded.yaml"
    path.write_text(text + "\nchecker: {max_states: 3, symmetry: true}\n")
    res = CliRunner().invoke(main, ["check", str(path), "--json", "--out", str(tmp_path)])
    assert res.exit_code == 3, res.output  # bounded at 3 states: inconclusive
    (cell,) = json.loads(res.stdout)["cells"]
    assert cell["verdict"] == "Bounded" and cell["states"] <= 4
    res = CliRunner().invoke(main, ["check", str(path), "--json", "--max-states", "200000",
                                    "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\nchecker: {max_states: 0}\n")
    res = CliRunner().invoke(main, ["check", str(bad)])
    assert res.exit_code == 2 and "checker" in res.stderr and "max_states" in res.stderr
