"""The model checker on the PASID subsystem: historical designs, built-in scenarios,
counterexamples that replay, serial/parallel equality, and the `pasidsim check` command."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pasidsim.check.history import HISTORY
from pasidsim.check.runner import check_scenario
from pasidsim.cli import main
from pasidsim.scenario import builtin_scenarios
from pasidsim.scenario.compile import compile_scenario
from pasidsim.scenario.loader import load_scenario

BUILTIN = builtin_scenarios()


def _check(name, design, **kw):
    c = compile_scenario(load_scenario(BUILTIN[name]), design=design)
    return c, check_scenario(c, scenario_name=name, design_name=design, **kw)


def _gran(case):
    return {"granularity": case.granularity}


@pytest.mark.parametrize("case", HISTORY, ids=[f"{h.design}-{h.scenario}" for h in HISTORY])
def test_historical_design_breaks_as_on_the_list_and_current_passes(case):
    _c, bad = _check(case.scenario, case.design, expected=case.breaks, **_gran(case))
    assert bad.verdict == "Sometimes", bad.message
    assert case.breaks in bad.broken, (bad.invariant, bad.broken, bad.message)
    assert bad.trace and bad.refs
    _c, good = _check(case.scenario, "current", **_gran(case))
    assert good.verdict == "Always", (good.invariant, good.message)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_scenario_passes_on_current(name):
    _c, cell = _check(name, "current")
    assert cell.verdict == "Always", (cell.invariant, cell.message, cell.trace)
    assert cell.states > 1


@pytest.mark.parametrize("drains", [True, False])
def test_e0_mm_exit_breaks_a3q_only_when_the_callback_does_not_drain(drains):
    """Seed 002: E0 frees the PASID at mm exit.  With an mm_exit that waits until the device
    is done (JPB's contract, ``mm_exit_drains: true``) nothing is queued on it any more; with
    one that cannot wait (a GPU's queues; the mm release path must not block) a descriptor is
    still queued on a reusable PASID (A3q), and may complete into the next owner (I2)."""
    from pasidsim.scenario.loader import load_text
    path = BUILTIN["hist-io_mm-mm-exit"]
    text = path.read_text()
    assert "mm_exit_drains: false" in text
    text = text.replace("mm_exit_drains: false", f"mm_exit_drains: {str(drains).lower()}")
    c = compile_scenario(load_text(text, str(path)), design="E0-io_mm")
    assert c.config.drivers[0].mm_exit_drains is drains
    cell = check_scenario(c, design_name="E0-io_mm")
    if drains:
        assert cell.verdict == "Always", (cell.invariant, cell.message, cell.trace)
    else:
        assert cell.verdict == "Sometimes" and cell.invariant == "A3q", cell.message
        assert [(who, call.split("(")[0]) for who, call, _ret in cell.trace[-4:]] == [
            ("A", "dev_open"), ("A", "mmap"), ("A", "enqcmd"), ("A", "task_exit")]


def test_counterexample_file_replays_with_run(tmp_path):
    from pasidsim.check.cli_check import counterexample_yaml
    from pasidsim.scenario.runner import run_scenario
    c, cell = _check("h1-fork-exit", "E6-mmput-free")
    path = tmp_path / "cex.yaml"
    path.write_text(counterexample_yaml(cell, c, BUILTIN["h1-fork-exit"].read_text()))
    res = run_scenario(compile_scenario(load_scenario(path)))
    names = {v[1] if isinstance(v, tuple) else str(v) for v in res.violations}
    assert any("A3" in str(v) for v in res.violations), names
    assert res.exit_code == 1


def test_bfs_counterexample_is_no_longer_than_dfs():
    _c, bfs = _check("h1-fork-exit", "E6-mmput-free", strategy="bfs")
    _c, dfs = _check("h1-fork-exit", "E6-mmput-free", strategy="dfs")
    assert bfs.verdict == dfs.verdict == "Sometimes"
    assert len(bfs.refs) <= len(dfs.refs)


def test_bounds_give_a_bounded_verdict():
    _c, cell = _check("dsa-shared-wq-threads", "current", max_states=50)
    assert cell.verdict == "Bounded" and "NOT exhaustive" in cell.message


def test_a_bounded_search_says_not_exhaustive_and_exits_3(tmp_path):
    """An inconclusive (bounded) search is not a violation: the table says "not exhaustive"
    (no ✗) and ``pasidsim check`` exits 3; a real failure beside it still exits 1."""
    from click.testing import CliRunner

    from pasidsim.cli import main
    r = CliRunner().invoke(main, ["check", "dsa-shared-wq-threads", "--max-states", "50"],
                           terminal_width=200)
    assert r.exit_code == 3, r.output
    assert "not exhaustive" in r.output and "✗" not in r.output.split("A = Always")[0]
    junit = tmp_path / "j.xml"
    r = CliRunner().invoke(main, ["check", "dsa-shared-wq-threads", "--max-states", "50",
                                  "--junit", str(junit)], terminal_width=200)
    assert r.exit_code == 3
    from junitparser import Failure, JUnitXml
    (suite,) = JUnitXml.fromfile(str(junit))
    (case,) = suite
    assert suite.failures == 1 and isinstance(case.result[0], Failure)
    assert case.result[0].type == "Bounded" and "not exhaustive" in case.result[0].message
    r = CliRunner().invoke(main, ["check", "h1-fork-exit", "--design", "E6-mmput-free",
                                  "--max-states", "100000", "--out", str(tmp_path / "cex")],
                           terminal_width=200)
    assert r.exit_code == 1  # a violation is found before the bound


def test_serial_and_parallel_results_are_identical():
    c = compile_scenario(load_scenario(BUILTIN["h1-fork-exit"]), design="E6-mmput-free")
    c.hardware = True
    serial = check_scenario(c, workers=1)
    parallel = check_scenario(c, workers=2)
    assert (serial.verdict, serial.states, serial.invariant, serial.refs) == \
        (parallel.verdict, parallel.states, parallel.invariant, parallel.refs)


@pytest.mark.parametrize("name,design,symmetry", [
    ("uacce-fork-inherit", "current", False),
    ("uacce-fork-inherit", "current", True),
    ("hist-enqcmd-thread-pool", "H5-task-refcount", False),
    ("hist-enqcmd-thread-pool", "H5-task-refcount", True),
])
def test_parallel_workers_own_pasid_states_with_serial_results(name, design, symmetry):
    """The workers take over from the first level (min_level=1) and ship states to each
    other; every count, the first violation and its replayed trace are the serial ones."""
    import functools

    from pasidsim.check.parallel import explore_parallel
    from pasidsim.check.pasid_model import ScenarioModel
    from pasidsim.check.search import explore

    c = compile_scenario(load_scenario(BUILTIN[name]), design=design)
    factory = functools.partial(ScenarioModel, c, symmetry=symmetry)
    serial = explore(factory(), symmetry=symmetry, stop_at_first=False)
    par = explore_parallel(factory, workers=2, min_level=1, symmetry=symmetry,
                           stop_at_first=False)
    assert (serial.verdict, serial.states, serial.transitions, serial.max_depth_reached) == \
        (par.verdict, par.states, par.transitions, par.max_depth_reached)
    assert serial.invariant_counts == par.invariant_counts
    assert [(v.name, v.trace) for v in serial.violations] == \
        [(v.name, v.trace) for v in par.violations]
    assert (serial.verdict == "violation") == (design != "current")


def test_cli_check_all_as_expected_and_reports(tmp_path):
    r = CliRunner().invoke(main, ["check", "--json", "--out", str(tmp_path / "cex"),
                                  "--junit", str(tmp_path / "j.xml"),
                                  "--html", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    cells = {(c["scenario"], c["design"]): c for c in data["cells"]}
    own = {(h.scenario, h.design) for h in HISTORY  # each scenario at its own granularity
           if h.granularity == load_scenario(BUILTIN[h.scenario]).model.granularity}
    for h in HISTORY:
        if (h.scenario, h.design) in own:  # the lock rows of call scenarios: their own test
            assert cells[(h.scenario, h.design)]["verdict"] == "Sometimes"
        assert cells[(h.scenario, h.design)]["documented"] == ((h.scenario, h.design) in own)
    assert all(c["verdict"] == "Always" for c in data["cells"] if c["design"] == "current")
    # JUnit agrees with the matrix: no failure on a clean result; each documented breakage
    # of a historical design is a pass that carries its counterexample
    from junitparser import JUnitXml
    (suite,) = JUnitXml.fromfile(str(tmp_path / "j.xml"))
    assert suite.tests == len(data["cells"]) and suite.failures == 0 and suite.errors == 0
    cases = {(c.classname, c.name): c for c in suite}
    for (scen, design), c in cells.items():
        if c["documented"]:
            assert cases[(scen, design)].is_passed
            assert f"expected violation of {c['invariant']}" in cases[(scen, design)].system_out
    assert "<svg" in (tmp_path / "r.html").read_text()
    assert data["counterexamples"]


def test_cli_check_one_file_exit_codes(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["check", "h1-fork-exit", "--out", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(main, ["check", "h1-fork-exit", "--design", "E6-mmput-free",
                               "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "A3" in bad.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nactors: [{name: A, program: [{frobnicate: {}}]}]\n")
    err = runner.invoke(main, ["check", str(broken)])
    assert err.exit_code == 2 and "broken.yaml:2" in err.output


def test_actor_waiting_forever_is_reported_as_deadlock():
    from pasidsim.scenario.loader import load_text
    text = """
name: stuck
machine: default
actors:
  - name: A
    program:
      - enqcmd: {dev: dsa0, expect: -EFAULT, note: "no portal mapped: SIGSEGV kills A"}
      - open: {dev: dsa0, as: p, note: "never runs"}
  - name: B
    kernel: true
    program:
      - iommu_free_global_pasid: {pasid: $p}
"""
    c = compile_scenario(load_text(text, "stuck.yaml"))
    cell = check_scenario(c)
    assert cell.verdict == "Sometimes" and cell.kind == "quiescence"
    assert "deadlock: actor B is waiting for $p" in cell.message


@pytest.mark.parametrize("width", [80, 120, 400])
def test_check_matrix_fits_the_terminal_and_names_every_cell(width):
    """Narrow terminals get the designs split over several tables; no scenario name or
    verdict is cut, and the legend names every abbreviated design."""
    from rich.console import Console

    from pasidsim.check.cli_check import matrix_legend, matrix_tables
    from pasidsim.check.runner import Cell
    from pasidsim.designs import DESIGNS, SHORT_NAMES

    designs = list(DESIGNS)
    scenarios = sorted(BUILTIN)
    cells = [Cell(s, d, "Always", 1000 + i, 0, 0.0) for i, (s, d) in
             enumerate((s, d) for s in scenarios for d in designs)]
    cells[-1] = Cell(scenarios[-1], designs[-1], "Sometimes", 5, 0, 0.0, invariant="quiescence",
                     refs=list(range(21)))
    console = Console(width=width, record=True, color_system=None)
    tables = matrix_tables(cells, scenarios, designs, width)
    for t in tables:
        console.print(t)
    console.print(matrix_legend(designs))
    out = console.export_text()
    assert max(len(line) for line in out.splitlines()) <= width
    assert (len(tables) > 1) == (width < 200)
    for s in scenarios:
        assert out.count(f" {s} ") == len(tables)
    for c in cells[:-1]:
        assert f"A {c.states}" in out
    assert "S quiescence@21" in out
    labels = {SHORT_NAMES.get(d, d) for d in designs}
    assert len(labels) == len(designs)  # column labels are unambiguous
    for d in designs:
        if SHORT_NAMES.get(d, d) != d:
            assert f"{SHORT_NAMES[d]} = {d}" in " ".join(out.split())


def test_cli_check_matrix_with_workers_is_the_serial_matrix(tmp_path):
    """--workers checks the matrix's cells side by side; the results and the counterexample
    files are the serial ones."""
    def run(workers, out):
        r = CliRunner().invoke(main, ["check", "--json", "--design", "current", "--design",
                                      "E6-mmput-free", "--design", "H7-iommu_mm-aliased",
                                      "--workers", str(workers), "--out", str(out)])
        assert r.exit_code == 0, r.output
        data = json.loads(r.stdout)
        for c in data["cells"]:
            c.pop("elapsed")
        return data, {p.name: p.read_text() for p in out.iterdir()}

    serial, serial_files = run(1, tmp_path / "one")
    parallel, parallel_files = run(2, tmp_path / "two")
    assert parallel["cells"] == serial["cells"]
    assert parallel_files == serial_files and serial_files


@pytest.mark.parametrize("opname", ["[/x]", "[bold]zz"])
def test_check_bad_input_goes_to_stderr_verbatim_with_status_2(tmp_path, opname):
    """A message that looks like rich markup is printed as written (no MarkupError traceback,
    no tag silently eaten), on stderr, with exit status 2 (issue #14)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\ndemonstrates: x\ndesign: current\nmachine: default\n"
                   f"actors:\n  - name: A\n    program:\n      - \"{opname}\": {{}}\n")
    r = CliRunner().invoke(main, ["check", str(bad), "--out", str(tmp_path)])
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    assert f"unknown operation '{opname}'" in r.stderr
    assert "bad.yaml:8" in r.stderr


def test_lock_granularity_matrix_as_expected_and_today_passes(tmp_path):
    """The whole built-in matrix at lock granularity: every cell as expected (the lock
    overlays of check/expected/lock/), today's design passing every scenario, and the lock
    rows of HISTORY found and marked."""
    r = CliRunner().invoke(main, ["check", "--granularity", "lock", "--json",
                                  "--out", str(tmp_path / "cex")])
    assert r.exit_code == 0, r.output[-3000:]
    cells = {(c["scenario"], c["design"]): c for c in json.loads(r.stdout)["cells"]}
    assert all(c["verdict"] == "Always" for (s, d), c in cells.items() if d == "current")
    for h in HISTORY:
        if h.granularity == "lock":
            c = cells[(h.scenario, h.design)]
            assert c["documented"] and c["invariant"] == h.breaks, c


@pytest.mark.parametrize("case", [h for h in HISTORY if h.granularity == "lock"],
                         ids=[f"{h.design}-{h.scenario}" for h in HISTORY
                              if h.granularity == "lock"])
def test_lock_row_counterexample_replays_with_the_lock_holders(case, tmp_path):
    r = CliRunner().invoke(main, ["check", case.scenario, "--design", case.design,
                                  "--granularity", "lock", "--out", str(tmp_path)])
    assert r.exit_code == 1, r.output
    files = list(tmp_path.glob("*.yaml"))
    assert len(files) == 1
    text = files[0].read_text()
    assert "granularity: lock" in text
    run = CliRunner().invoke(main, ["run", str(files[0])], env={"COLUMNS": "250"})
    assert "locks held" in run.output
    assert case.breaks in run.output, run.output[-2000:]


def test_injected_failures_at_lock_granularity_are_refused_not_ignored(tmp_path):
    r = CliRunner().invoke(main, ["check", "h1-fork-exit", "--granularity", "lock",
                                  "--inject-faults", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "call granularity only" in r.output
    f = tmp_path / "x.yaml"
    f.write_text("name: x\nmachine: default\ngranularity: lock\ninject_faults: true\n"
                 "actors:\n  - name: A\n    program:\n      - exit: {}\n")
    r = CliRunner().invoke(main, ["check", str(f), "--out", str(tmp_path)])
    assert r.exit_code == 2 and f"{f}:4: inject_faults:" in r.output


def test_states_per_level_add_up_and_serial_equals_parallel():
    """Each distinct state is counted once, at the BFS level where it was first reached; the
    Ray search counts the same levels."""
    c = compile_scenario(load_scenario(BUILTIN["uacce-fork-inherit"]))
    serial = check_scenario(c)
    assert sum(serial.levels) == serial.states and serial.levels[0] == 1
    assert len(serial.levels) == max(i for i, n in enumerate(serial.levels) if n) + 1
    parallel = check_scenario(c, workers=2)
    assert parallel.levels == serial.levels
    reduced = check_scenario(c, symmetry=True)
    assert sum(reduced.levels) == reduced.states < serial.states


def test_cli_check_plot(tmp_path):
    pic = tmp_path / "levels.png"
    r = CliRunner().invoke(main, ["check", "uacce-fork-inherit", "--symmetry", "--plot",
                                  str(pic), "--out", str(tmp_path / "cex")])
    assert r.exit_code == 0, r.output
    assert pic.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "levels.svg"
    r = CliRunner().invoke(main, ["check", "uacce-fork-inherit", "--plot", str(svg),
                                  "--out", str(tmp_path / "cex")])
    assert r.exit_code == 0 and "<svg" in svg.read_text()
    r = CliRunner().invoke(main, ["check", "uacce-fork-inherit", "--plot", str(tmp_path / "x.gif")])
    assert r.exit_code == 2 and "must be .png, .svg or .pdf" in r.output
