"""Workload files: located errors (file:line: field: message), like scenario files."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pasidsim.cli import main
from pasidsim.scenario.loader import ScenarioError
from pasidsim.sim.engine import Simulation
from pasidsim.sim.workload import builtin_workloads, load_workload, load_workload_text

from .conftest import GPU


def _err(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as e:
        Simulation(load_workload_text(text, "w.yaml"), record=False)
    return e.value


def _line(text: str, marker: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if marker in ln)


@pytest.mark.parametrize("old,new,marker,field,words", [
    ("seed: 5", "seed: five", "seed:", "seed", "integer"),
    ("design: amdgpu-lowest", "design: no-such", "design:", "design",
     "unknown design 'no-such'"),
    ("fault_prob: 0.3", "fault_prob: 1.5", "fault_prob", "contexts[0].fault_prob",
     "less than or equal"),
    ("dev: gpu0", "dev: gpu9", "dev:", "contexts[0].dev", "unknown device 'gpu9'"),
    ("dev: gpu0", "dev: dsa0", "dev:", "contexts[0].dev", "amdgpu driver"),
    ("kind: gpu_vm", "kind: cpu_vm", "kind:", "contexts[0].kind", "gpu_vm"),
    ("lifetime: {dist: exponential, mean: 10}", "lifetime: {dist: uniform, mean: 10}",
     "lifetime:", "lifetime.dist", "needs max"),
    ("lifetime: {dist: exponential, mean: 10}", "lifetime: {dist: exponential, mean: -1}",
     "lifetime:", "lifetime.mean", "greater than or equal"),
    ("sample_every: 10", "sample_every: 10\nbogus: 1", "bogus", "bogus", "unknown field"),
    ("ih_latency: {dist: exponential, mean: 2}",
     "ih_latency: {dist: exponential, mean: 2, max: 1, min: 3}", "ih_latency",
     "contexts[0].ih_latency.max", "below min"),
])
def test_located_errors(old, new, marker, field, words):
    assert old in GPU
    text = GPU.replace(old, new)
    line = _line(text, marker)
    e = _err(text)
    assert (e.line, e.field) == (line, field), str(e)
    assert words in e.message
    assert str(e).startswith(f"w.yaml:{line}: {field}: ")


def test_sva_fields_rejected_on_gpu_only_options():
    text = GPU.replace("kind: gpu_vm", "kind: sva_wq").replace("fault_prob: 0.3",
                                                                "fault_prob: 0.3\n    grace: 1")
    e = _err(text)
    assert e.field == "contexts[0].fault_prob" and "gpu_vm contexts only" in e.message


def test_bad_yaml_is_located():
    e = _err(GPU.replace("seed: 5", "seed: [5"))
    assert e.line >= 3


def test_every_builtin_workload_validates():
    names = builtin_workloads()
    assert {"amdgpu-ih", "gpu-churn", "sva-dwq"} <= set(names)
    for n in names:
        Simulation(load_workload(n), record=False)


def test_cli_bad_workload_exit_2_one_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(GPU.replace("    dev: gpu0", "    dev: gpu9"))
    r = CliRunner().invoke(main, ["simulate", str(p), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines() if hasattr(r, "stderr") else r.output.strip().splitlines()
    line = _line(GPU, "dev: gpu0")
    assert len(lines) == 1 and f"{p}:{line}: contexts[0].dev: unknown device 'gpu9'" in lines[0]
    assert "Traceback" not in r.output


@pytest.mark.parametrize("args,words", [
    (["--sweep", "grace"], "PARAM=V1,V2"),
    (["--sweep", "pasid_bits=16,20"], "amdgpu asks for 16-bit"),
    (["--sweep", "fault_prob=0.1,7"], "contexts[0].fault_prob"),
    (["--compare", "current,nope"], "unknown design 'nope'"),
])
def test_cli_bad_sweep_or_compare(tmp_path, args, words):
    p = tmp_path / "w.yaml"
    p.write_text(GPU)
    r = CliRunner().invoke(main, ["simulate", str(p), "--out", str(tmp_path / "o"), *args])
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output


def test_missing_file_exit_2(tmp_path):
    r = CliRunner().invoke(main, ["simulate", str(tmp_path / "none.yaml")])
    assert r.exit_code == 2 and "cannot read" in r.output


def test_schema_and_list():
    import json
    r = CliRunner().invoke(main, ["simulate", "--schema"])
    assert r.exit_code == 0
    schema = json.loads(r.output)
    assert {"contexts", "arrival", "lifetime", "design", "machine"} <= set(schema["properties"])
    r = CliRunner().invoke(main, ["simulate", "--list"])
    assert r.exit_code == 0 and "amdgpu-ih" in r.output and "sva-dwq" in r.output
