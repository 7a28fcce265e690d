"""Checkpoint and resume (``explore(checkpoint=..., resume=...)``, ``pasidsim check
--checkpoint/--resume``): a search interrupted by Ctrl-C, or stopped by a bound, and resumed
gives the uninterrupted search's result."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pasidsim.check.pasid_model import ScenarioModel
from pasidsim.check.search import explore
from pasidsim.cli import main
from pasidsim.scenario import builtin_scenarios
from pasidsim.scenario.compile import compile_scenario
from pasidsim.scenario.loader import load_scenario, load_text

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_check import STANDARD  # noqa: E402


def _model(design="current", name=None):
    if name is None:
        return ScenarioModel(compile_scenario(load_text(STANDARD, "<bench>"), design=design))
    return ScenarioModel(compile_scenario(load_scenario(builtin_scenarios()[name]),
                                          design=design))


def _same(a, b):
    assert (a.verdict, a.states, a.transitions, a.max_depth_reached, a.bound) == \
        (b.verdict, b.states, b.transitions, b.max_depth_reached, b.bound)
    assert a.invariant_counts == b.invariant_counts
    assert a.sometimes_counts == b.sometimes_counts
    assert a.states_per_level == b.states_per_level
    assert [(v.name, v.trace) for v in a.violations] == [(v.name, v.trace) for v in b.violations]


def _interrupt_after(n):
    """An on_progress that sends this process SIGINT (a Ctrl-C) at its n-th report."""
    calls = []

    def on_progress(_p):
        calls.append(1)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGINT)
    return on_progress


@pytest.mark.parametrize("strategy,kw", [("bfs", {}), ("dfs", {}), ("dfs", {"seed": 7}),
                                         ("bfs", {"symmetry": True})])
def test_ctrl_c_saves_and_resume_gives_the_uninterrupted_result(tmp_path, strategy, kw):
    whole = explore(_model(), strategy=strategy, **kw)
    ck = tmp_path / "search.ckpt"
    with pytest.raises(KeyboardInterrupt):
        explore(_model(), strategy=strategy, checkpoint=ck, on_progress=_interrupt_after(2),
                **kw)
    assert ck.exists() and [p.name for p in tmp_path.iterdir()] == ["search.ckpt"]
    resumed = explore(_model(), strategy=strategy, resume=ck, **kw)
    _same(whole, resumed)
    assert whole.states > 512  # the interruption was in the middle of the search


def test_a_bounded_search_resumes_with_a_larger_bound_to_the_same_violations(tmp_path):
    kw = dict(stop_at_first=False)
    whole = explore(_model("E6-mmput-free", "h1-fork-exit"), **kw)
    assert whole.violations
    ck = tmp_path / "h1.ckpt"
    part = explore(_model("E6-mmput-free", "h1-fork-exit"), max_states=40, checkpoint=ck, **kw)
    assert part.bound == "max_states=40" and part.states == 40 < whole.states
    resumed = explore(_model("E6-mmput-free", "h1-fork-exit"), resume=ck, **kw)
    _same(whole, resumed)


def test_resume_refuses_another_model_or_other_options(tmp_path):
    ck = tmp_path / "a.ckpt"
    explore(_model(), max_states=30, checkpoint=ck)
    with pytest.raises(ValueError, match="another model"):
        explore(_model(name="h1-fork-exit"), resume=ck)
    with pytest.raises(ValueError, match="other search options"):
        explore(_model(), resume=ck, symmetry=True)
    (tmp_path / "junk").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        explore(_model(), resume=tmp_path / "junk")


def test_cli_checkpoint_then_resume(tmp_path):
    ckdir = tmp_path / "ck"
    args = ["check", "h1-fork-exit", "--design", "E6-mmput-free", "--json",
            "--out", str(tmp_path / "cex")]
    r = CliRunner().invoke(main, args + ["--max-states", "5", "--checkpoint", str(ckdir)])
    assert r.exit_code == 3, r.output  # bounded: not exhaustive
    assert (ckdir / "h1-fork-exit--E6-mmput-free.ckpt").exists()
    r2 = CliRunner().invoke(main, args + ["--resume", str(ckdir)])
    whole = CliRunner().invoke(main, args)
    assert r2.exit_code == whole.exit_code == 1
    import json
    a, b = json.loads(r2.stdout)["cells"][0], json.loads(whole.stdout)["cells"][0]
    for k in ("verdict", "invariant", "states", "transitions", "trace"):
        assert a[k] == b[k], k
    r3 = CliRunner().invoke(main, args + ["--resume", str(tmp_path / "nowhere")])
    assert r3.exit_code == 2 and "checkpoint" in r3.output


def test_reports_are_written_whole_through_a_rename(tmp_path, monkeypatch):
    """An output file is replaced by a rename of a complete temporary file: a write that
    fails half-way (here: Ctrl-C) leaves the previous file as it was and no temporary."""
    from pasidsim import outfile
    from pasidsim.report import output  # the reports' name for the same writer
    assert output.write_text_atomic is outfile.write_text_atomic
    target = tmp_path / "report.xml"
    target.write_text("previous")
    output.write_text_atomic(target, "new")
    assert target.read_text() == "new"

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt
    monkeypatch.setattr(outfile.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        output.write_text_atomic(target, "half")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.xml"]
