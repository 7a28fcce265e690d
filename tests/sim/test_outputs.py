"""Outputs, comparisons and sweeps of ``pasidsim simulate``: CSV series and summary, plots,
sweep parameters, Ray workers giving the serial results."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from pasidsim.cli import main
from pasidsim.sim.engine import COLUMNS
from pasidsim.sim.runs import SweepError, apply_param, parse_sweep, plan, run_jobs

from .conftest import GPU, SVA


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_compare_writes_series_summary_plots_and_replay(tmp_path):
    w = tmp_path / "w.yaml"
    w.write_text(GPU.replace("processes: 300", "processes: 120"))
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["simulate", str(w), "--compare", "amdgpu-lowest,current",
                                  "--violations", "stop", "--out", str(out)])
    assert r.exit_code == 0, r.output
    lowest = _rows(out / "series-amdgpu-lowest.csv")
    assert list(lowest[0]) == list(COLUMNS)
    summary = {row["design"]: row for row in _rows(out / "summary.csv")}
    assert summary["amdgpu-lowest"]["stopped"] == "violation"
    assert summary["current"]["stopped"] == "end"
    assert int(summary["current"]["misattributed"]) == 0
    assert (out / "violation-amdgpu-lowest.yaml").exists()
    assert not (out / "violation-current.yaml").exists()
    assert (out / "overview.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "amdgpu_pasids.png").exists()
    rr = CliRunner().invoke(main, ["run", str(out / "violation-amdgpu-lowest.yaml"),
                                   "--no-state"])
    assert rr.exit_code == 1 and "A4" in rr.output


def test_sweep_plots_metric_against_parameter(tmp_path):
    w = tmp_path / "w.yaml"
    w.write_text(GPU.replace("processes: 300", "processes: 150"))
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["simulate", str(w), "--sweep", "grace=0,20", "--plot",
                                  "svg", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = _rows(out / "summary.csv")
    assert [row["grace"] for row in rows] == ["0", "20"]
    mis = [int(row["misattributed"]) for row in rows]
    assert mis[0] > 0 and mis[1] == 0  # a long grace period keeps the stale faults harmless
    assert (out / "sweep-misattributed.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_strict_exit_1_on_violation(tmp_path):
    w = tmp_path / "w.yaml"
    w.write_text(GPU.replace("processes: 300", "processes: 100"))
    r = CliRunner().invoke(main, ["simulate", str(w), "--strict", "--plot", "none",
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 1


def test_apply_param_shortcuts():
    from pasidsim.scenario.loader import parse_yaml
    data, _ = parse_yaml(SVA, "s.yaml")
    d = apply_param(data, "pasid_bits", 16)
    assert {x["pasid_bits"] for x in d["machine"]["devices"]} == {16}
    assert {x["pasid_bits"] for x in data["machine"]["devices"]} == {20}  # a copy
    d = apply_param(data, "allocator", "CYCLIC")
    assert d["policy_overrides"] == {"allocator": "CYCLIC"}
    d = apply_param(data, "job_duration.mean", 7)
    assert d["contexts"][0]["job_duration"]["mean"] == 7
    d = apply_param(data, "ih_latency.mean", 3)  # absent: becomes a mapping
    assert d["contexts"][0]["ih_latency"] == {"mean": 3}
    d = apply_param(data, "arrival.mean", 4)
    assert d["arrival"]["mean"] == 4
    with pytest.raises(SweepError):
        apply_param(data, "contexts.5.grace", 1)
    assert parse_sweep("allocator=LOWEST, CYCLIC") == ("allocator", ["LOWEST", "CYCLIC"])
    assert parse_sweep("grace=0,1.5") == ("grace", [0, 1.5])


def test_ray_workers_give_the_serial_results(sva_workload):
    jobs = plan(sva_workload, ["E0-io_mm", "current"], [("allocator", ["LOWEST"])],
                record=False)
    serial = [r.summary for r, _ in run_jobs(jobs)]
    par = [r.summary for r, _ in run_jobs(jobs, workers=2)]
    keys = ("events", "foreign_dma", "allocations", "reuses", "violations")
    assert [{k: s[k] for k in keys} for s in serial] == [{k: s[k] for k in keys} for s in par]
    assert serial[0]["foreign_dma"] > 0 and serial[1]["foreign_dma"] == 0


def test_minimize_flag_writes_the_reduced_replay(tmp_path):
    w = tmp_path / "w.yaml"
    w.write_text(GPU.replace("processes: 300", "processes: 120"))
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["simulate", str(w), "--design", "amdgpu-lowest",
                                  "--violations", "stop", "--minimize", "--plot", "none",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    (path,) = out.glob("violation-*.yaml")
    text = path.read_text()
    assert "Minimized by delta debugging" in text
    rr = CliRunner().invoke(main, ["run", str(path), "--no-state"])
    assert rr.exit_code == 1 and "A4" in rr.output and "expectation(s) failed" not in rr.output
