"""The pytest plugin (pasidsim.pytest_plugin): scenario files collected as test items.

Each test writes a small project with ``pytester`` and runs pytest on it in-process; the
plugin is the one installed through the ``pytest11`` entry point.
"""

from __future__ import annotations

import importlib.metadata

import pytest

# imported here, before pytester snapshots sys.modules, so that each in-process run does not
# import (and build the scenario schema) again
import pasidsim.check.cli_check  # noqa: F401
import pasidsim.pytest_plugin  # noqa: F401
import pasidsim.scenario  # noqa: F401

pytest_plugins = ["pytester"]

# A opens a DSA queue (idxd binds A's mm), forks B, which inherits the fd, and exits.
FORK_EXIT = """\
name: fork-exit
design: {design}
actors:
  - name: A
    program:
      - open: {{dev: dsa0, as: q, expect: ok}}
      - fork:
          as: B
          program:
            - exit: {{}}
      - exit: {{}}
order: [A, A, A, B]
{extra}"""


def _write(pytester, name: str, design: str = "current", extra: str = "") -> None:
    pytester.path.joinpath(name).write_text(FORK_EXIT.format(design=design, extra=extra))


def _run(pytester, *args):
    # the inner session needs neither Hypothesis's plugin (its terminal summary alone takes
    # seconds there) nor pytest-benchmark's
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                              "-p", "no:benchmark", "-rA", *args)


def test_entry_point_registered():
    eps = importlib.metadata.entry_points(group="pytest11")
    assert any(e.name == "pasidsim" and e.value == "pasidsim.pytest_plugin" for e in eps)


def test_passing_scenario_gives_a_run_and_a_check_item(pytester):
    _write(pytester, "scenario_ok.yaml",
           extra="expect_final: {pasids_allocated: 0, mms: 0, violations: 0}\n")
    res = _run(pytester, "-v")
    res.assert_outcomes(passed=2)
    res.stdout.fnmatch_lines(["*scenario_ok.yaml::run PASSED*",
                              "*scenario_ok.yaml::check PASSED*"])


def test_violating_scenario_fails_with_the_invariant_and_its_line(pytester):
    # E6 (v5.18-rc1) frees A's PASID in __mmput while B's inherited queue still has it: A3
    _write(pytester, "scenario_e6.pasidsim.yaml", design="E6-mmput-free")
    res = _run(pytester)
    res.assert_outcomes(failed=2)
    out = res.stdout.str()
    # run: no expectation failed, but an invariant broke that the file does not expect
    res.stdout.fnmatch_lines([
        "*scenario_e6.pasidsim.yaml:11: A step 3 (event *): A3: device 0*may still use "
        "PASID 1*",
        "*expect_final does not count violations*"])
    # check: the counterexample as `pasidsim check` prints it, headed by file:line
    res.stdout.fnmatch_lines([
        "scenario_e6.pasidsim.yaml:11: A3: device 0*may still use PASID 1*",
        "*on E6-mmput-free: A3 (always)*",
        "*A: dev_open(tid=*, dev=dsa0) = *",
        "*A: fork(tid=*) = *",
        "*A: task_exit(tid=*) = 0"])
    assert "Traceback" not in out and "def runtest" not in out


def test_a_violation_the_file_counts_is_not_a_failure_of_run(pytester):
    _write(pytester, "scenario_counted.yaml", design="E6-mmput-free",
           extra="expect_final: {violations: 3}\n")
    res = _run(pytester, "-v")
    # the file documents a breakage: run passes, and check passes as it finds one too
    _write(pytester, "scenario_nobreak.yaml", extra="expect_final: {violations: 1}\n")
    res = _run(pytester, "-v")
    res.assert_outcomes(passed=2, failed=2)
    res.stdout.fnmatch_lines(["*scenario_counted.yaml::run PASSED*",
                              "*scenario_counted.yaml::check PASSED*",
                              "*scenario_nobreak.yaml::run FAILED*",
                              "*scenario_nobreak.yaml::check FAILED*"])
    res.stdout.fnmatch_lines(["scenario_nobreak.yaml: expect_final counts 1 violation(s), but "
                              "every invariant holds in all * reachable states"])


def test_failed_expect_is_located(pytester):
    pytester.path.joinpath("scenario_expect.yaml").write_text(
        "name: expect\nactors:\n  - name: A\n    program:\n"
        "      - open: {dev: dsa0, expect: -EBUSY}\n      - exit: {}\n")
    res = _run(pytester, "-o", "pasidsim_check=false")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["scenario_expect.yaml:5: A step 1: expected -EBUSY, got *",
                              "FAIL: expect on design current: * 1 expectation(s) failed"])


def test_malformed_files_are_located_collection_errors(pytester):
    pytester.path.joinpath("scenario_yaml.yaml").write_text("name: x\nactors: [1\n")
    pytester.path.joinpath("scenario_dev.yaml").write_text(
        "name: x\nactors:\n  - name: A\n    program:\n      - open: {dev: nosuch}\n")
    pytester.path.joinpath("scenario_field.yaml").write_text("name: x\nactorz: []\n")
    res = _run(pytester)
    res.assert_outcomes(errors=3)
    out = res.stdout.str()
    assert "pasidsim scenario: scenario_yaml.yaml:3: YAML syntax error" in out
    assert ("pasidsim scenario: scenario_dev.yaml:5: actors[0].program[0].open.dev: unknown "
            "device 'nosuch'") in out
    assert "pasidsim scenario: scenario_field.yaml:2: actorz: unknown field 'actorz'" in out
    assert "Traceback" not in res.stdout.str()


def test_only_matching_files_are_collected(pytester):
    _write(pytester, "fork.yaml")  # a scenario, but not named as one: left alone
    pytester.path.joinpath("scenario_notes.txt").write_text("not yaml")
    res = _run(pytester)
    assert res.ret == 5  # nothing collected
    sub = pytester.mkdir("scen")
    _write(pytester, "scen/fork.yaml")
    pytester.makeini("[pytest]\npasidsim_scenarios = scen/*.yaml\npasidsim_check = false\n")
    res = _run(pytester, "-v")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*scen/fork.yaml::run PASSED*"])
    assert sub.is_dir()


def test_bounded_check_fails_as_inconclusive(pytester):
    _write(pytester, "scenario_bound.yaml")
    res = _run(pytester, "-o", "pasidsim_check_max_states=3")
    res.assert_outcomes(passed=1, failed=1)
    res.stdout.fnmatch_lines(["scenario_bound.yaml: not exhaustive*"])


def test_a_file_s_checker_bounds_win_over_the_ini_defaults(pytester):
    _write(pytester, "scenario_own_bound.yaml", extra="checker: {max_states: 3}\n")
    res = _run(pytester, "-o", "pasidsim_check_max_states=200000")
    res.assert_outcomes(passed=1, failed=1)
    res.stdout.fnmatch_lines(["scenario_own_bound.yaml: not exhaustive*"])


def test_bad_bound_is_a_usage_error(pytester):
    _write(pytester, "scenario_bound.yaml")
    res = _run(pytester, "-o", "pasidsim_check_max_states=many")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "ini option pasidsim_check_max_states = 'many': expected a positive number" in \
        res.stdout.str() + res.stderr.str()
