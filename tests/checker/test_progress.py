"""Live progress of a search, as TLC reports it: distinct states, transitions, depth, queue
and elapsed time, now and then while the search runs and once at its end."""

from __future__ import annotations

from click.testing import CliRunner

from pasidsim.check import search
from pasidsim.check.cli_check import progress_text
from pasidsim.check.runner import check_scenario
from pasidsim.cli import main
from pasidsim.scenario import builtin_scenarios
from pasidsim.scenario.compile import compile_scenario
from pasidsim.scenario.loader import load_scenario


def test_progress_reports_grow_and_end_at_the_result(monkeypatch):
    monkeypatch.setattr(search, "PROGRESS_EVERY", 16)
    c = compile_scenario(load_scenario(builtin_scenarios()["dsa-shared-wq-threads"]))
    seen = []
    cell = check_scenario(c, max_states=None, max_seconds=None, on_progress=seen.append)
    assert len(seen) >= 3  # several live reports, then the final one
    assert [p.states for p in seen] == sorted(p.states for p in seen)
    assert [p.transitions for p in seen] == sorted(p.transitions for p in seen)
    last = seen[-1]
    assert (last.states, last.transitions, last.queue) == (cell.states, cell.transitions, 0)
    assert all(p.elapsed >= 0 for p in seen)
    text = progress_text("dsa-shared-wq-threads × current", last)
    assert f"{cell.states:,} distinct states" in text and "states/s" in text


def test_check_prints_a_summary_line():
    r = CliRunner().invoke(main, ["check", "h6-double-bind"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "checked 1 cell(s): " in r.output and "distinct states" in r.output
