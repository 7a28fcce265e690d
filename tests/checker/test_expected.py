"""Expected verdicts (check/expected/<scenario>.yaml): complete, consistent with HISTORY,
loaded with located errors, and used by `pasidsim check` to judge every cell."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pasidsim.check.expected import (PASS, Expected, ExpectedError, expected_dir,
                                     expected_for, load_expected)
from pasidsim.check.history import HISTORY
from pasidsim.check.runner import Cell
from pasidsim.cli import main
from pasidsim.designs import DESIGNS
from pasidsim.scenario import builtin_scenarios, load_scenario

BUILTIN = builtin_scenarios()


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_scenario_has_an_expected_file_of_existing_designs(name):
    path = expected_dir() / f"{name}.yaml"
    assert path.is_file(), f"no expected verdicts for built-in scenario {name}: {path}"
    entries = load_expected(path)  # raises for an unknown design, property or goal
    goals = set(load_scenario(BUILTIN[name]).model.sometimes)
    for design, exp in entries.items():
        assert design in DESIGNS
        assert exp.why
        assert set(exp.unreached) <= goals, (design, exp.unreached, goals)


def test_every_expected_file_is_a_builtin_scenario():
    for path in expected_dir().glob("*.yaml"):
        assert path.stem in BUILTIN, f"{path.name} names no built-in scenario"


@pytest.mark.parametrize("case", HISTORY, ids=[f"{h.design}-{h.scenario}" for h in HISTORY])
def test_history_rows_are_the_expected_files_diagonal(case):
    exp = expected_for(case.scenario, case.granularity).get(case.design)
    assert exp is not None, f"HISTORY row {case} not in expected/{case.scenario}.yaml"
    assert exp.breaks == case.breaks
    assert "current" not in expected_for(case.scenario, case.granularity), \
        "today's design must pass"


@pytest.mark.parametrize("text,line,field,message", [
    ("current:\n  breaks: A3\n  why: x\nE99-nope:\n  breaks: A3\n  why: y\n", 4, "E99-nope",
     "unknown design 'E99-nope'"),
    ("E6-mmput-free:\n  breaks: A33\n  why: x\n", 2, "E6-mmput-free.breaks",
     "unknown property 'A33'"),
    ("E6-mmput-free:\n  breaks: A3\n", 1, "E6-mmput-free.why", "required field is missing"),
    ("E6-mmput-free:\n  breaks: A3\n  why: x\n  because: y\n", 4, "E6-mmput-free.because",
     "unknown field 'because'"),
    ("E6-mmput-free:\n  why: nothing\n", 1, "E6-mmput-free", "expects `breaks` and/or"),
    ("E6-mmput-free:\n  unreached: [somewhere]\n  why: x\n", 2, "E6-mmput-free.unreached",
     "unknown sometimes-goal 'somewhere'"),
    ("E6-mmput-free: A3\n", 1, "E6-mmput-free", "expected a mapping"),
    ("- E6-mmput-free\n", 1, "", "expected a mapping of design names"),
    ("E6-mmput-free:\n  breaks: [A3\n", 3, "", "YAML syntax error"),
])
def test_bad_expected_file_is_a_located_error(tmp_path, text, line, field, message):
    p = tmp_path / "x.yaml"
    p.write_text(text)
    with pytest.raises(ExpectedError) as e:
        load_expected(p)
    assert (e.value.line, e.value.field) == (line, field), str(e.value)
    assert message in e.value.message
    assert str(e.value).startswith(f"{p}:{line}: ")


def test_warn_is_accepted_as_the_name_of_invariant_w(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("E0-io_mm:\n  breaks: WARN\n  why: MM_EXIT_LEAK\n")
    assert load_expected(p)["E0-io_mm"].breaks == "W"


@pytest.mark.parametrize("exp,verdict,invariant,broken,unreached,ok", [
    (PASS, "Always", None, [], [], True),
    (PASS, "Always", None, [], ["programs_done"], False),  # a goal unreached
    (PASS, "Sometimes", "A3", ["A3"], [], False),
    (PASS, "Bounded", None, [], [], False),
    (Expected("A3"), "Sometimes", "A3", ["A3"], [], True),
    (Expected("A3"), "Never", "A3", ["A3"], [], True),
    (Expected("A3"), "Sometimes", "M9", ["M9", "A3"], [], True),  # broken in that state too
    (Expected("A3"), "Sometimes", "M9", ["M9"], [], False),
    (Expected("A3"), "Always", None, [], [], False),  # an expected break must happen
    (Expected("A3", ("programs_done",)), "Sometimes", "A3", ["A3"], [], False),
    (Expected("A3", ("programs_done",)), "Sometimes", "A3", ["A3"], ["programs_done"], True),
    (Expected(None, ("programs_done",)), "Always", None, [], ["programs_done"], True),
    (Expected(None, ("programs_done",)), "Always", None, [], [], False),
])
def test_a_cell_is_ok_iff_its_outcome_is_exactly_the_expected_one(exp, verdict, invariant,
                                                                  broken, unreached, ok):
    cell = Cell("s", "d", verdict, 10, 10, 0.0, invariant=invariant, broken=broken,
                unreached=unreached, expected=None if exp is PASS else exp)
    assert cell.ok is ok


def test_cli_marks_any_cell_not_as_expected_and_exits_1(monkeypatch, tmp_path):
    """A cell whose verdict differs from its expected file is ✗ in any column (here
    today's design) and makes `pasidsim check` exit 1."""
    import pasidsim.check.cli_check as cli_check
    real = cli_check.expected_for

    def wrong(scenario, granularity=None):
        got = dict(real(scenario, granularity))
        if scenario == "h6-double-bind":
            got["current"] = Expected("A3", why="deliberately wrong")
        return got

    monkeypatch.setattr(cli_check, "expected_for", wrong)
    r = CliRunner().invoke(main, ["check", "--design", "current", "--design",
                                  "E12-no-handle-sharing", "--out", str(tmp_path)],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 1, r.output
    assert "✗ expected A3" in r.output
    assert "h6-double-bind × current" in r.output  # listed as not as expected
    assert "✓" in r.output  # the documented E12 breakage still is
    r = CliRunner().invoke(main, ["check", "--json", "--design", "current",
                                  "--out", str(tmp_path)])
    cells = {c["scenario"]: c for c in json.loads(r.stdout)["cells"]}
    assert r.exit_code == 1 and not cells["h6-double-bind"]["ok"]
    assert cells["h6-double-bind"]["expected"] == "A3"
    assert all(c["ok"] for s, c in cells.items() if s != "h6-double-bind")
