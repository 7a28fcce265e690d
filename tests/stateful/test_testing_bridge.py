"""The Hypothesis bridge (pasidsim.testing.KernelMachine): today's design passes a bounded run;
a historical design is caught and its failing example, written as a scenario, replays with
``pasidsim run`` to the same violation."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from pasidsim.cli import main
from pasidsim.scenario import load_scenario
from pasidsim.scenario.runner import run_file
from pasidsim.testing import DEFAULT_OUT, OUT_ENV, InvariantViolation, KernelMachine

# fixed examples (derandomize), no example database: the same run every time, in seconds
BOUNDED = dict(deadline=None, derandomize=True, database=None,
               suppress_health_check=list(HealthCheck))


def _run(machine, **kw):
    run_state_machine_as_test(machine, settings=settings(**{**BOUNDED, **kw}))


def test_todays_design_passes_a_bounded_run(tmp_path):
    class Today(KernelMachine):
        out_dir = str(tmp_path)

    _run(Today, max_examples=40, stateful_step_count=15)
    assert not any(tmp_path.iterdir())  # nothing failed, nothing written


class E6Machine(KernelMachine):
    """v5.18-rc1 (701fac40384f): the PASID is freed in __mmput, while a device still has it."""

    design = "E6-mmput-free"


def test_historical_design_is_caught_and_its_example_replays(tmp_path, monkeypatch):
    monkeypatch.setenv(OUT_ENV, str(tmp_path))
    # no shrinking, to stay fast: the example Hypothesis reports is written as generated
    with pytest.raises(InvariantViolation) as info:
        _run(E6Machine, max_examples=300, stateful_step_count=20,
             phases=[Phase.explicit, Phase.reuse, Phase.generate])
    err = info.value
    assert err.name == "A3" and "free for reuse" in err.detail
    path = tmp_path / "E6Machine--A3.yaml"
    assert err.path == str(path) and path.is_file()
    assert "replay did not show" not in str(err)
    text = path.read_text()
    assert text.startswith("# Counterexample found by Hypothesis (E6Machine, pasidsim.testing): "
                           "design E6-mmput-free breaks A3\n")
    model = load_scenario(path).model  # a valid scenario, as written
    assert model.design == "E6-mmput-free" and model.machine == "default"
    # `pasidsim run FILE` replays every call with its return value, to the same violation
    res = CliRunner().invoke(main, ["run", str(path), "--no-state"])
    assert res.exit_code == 1, res.output
    assert "A3:" in res.output
    result = run_file(str(path))
    assert result.violations[0].name == "A3"
    # every step ran as it did under Hypothesis: only the final violation count fails
    assert [f.where for f in result.failures] == ["expect_final"]
    assert "violations: expected 0" in result.failures[0].message


def test_failing_step_is_caught_without_hypothesis_and_written_once(tmp_path):
    # the rules are plain methods: a direct call sequence writes the file too (default name)
    class E6Direct(KernelMachine):
        design = "E6-mmput-free"
        out_dir = str(tmp_path)

    m = E6Direct()
    tid = m.process_create()
    m.dev_open(tid, data=_Fixed(dev="dsa0", mmap=False))
    child = m.fork(tid)
    assert child > tid
    with pytest.raises(InvariantViolation) as info:
        m.task_exit(tid)
    assert info.value.name == "A3"
    data = yaml.safe_load(open(info.value.path))
    steps = [next(iter(s)) for s in data["actors"][0]["program"]]
    assert steps == ["process_create", "dev_open", "fork", "task_exit"]
    assert run_file(info.value.path).violations[0].name == "A3"


def test_kernel_errors_are_accepted_and_misuse_is_skipped(tmp_path):
    class Today(KernelMachine):
        out_dir = str(tmp_path)

    m = Today()
    tid = m.process_create()
    before = m.system.state
    assert m._call("close", tid=tid, fd=12345) is None  # -EBADF: accepted, state unchanged
    assert m.system.state.fingerprint_nowarn() == before.fingerprint_nowarn()
    assert m.steps[-1] == {"close": {"tid": tid, "fd": 12345, "expect": "-EBADF"}}
    n = len(m.steps)
    assert m._call("task_exit", tid=99999) is None  # not a task: the library refuses
    assert len(m.steps) == n and m.system.state is before


def test_configuration_is_written_into_the_scenario(tmp_path):
    class NoSharing(KernelMachine):
        design = "current"
        policy_overrides = {"handle_sharing": False}
        out_dir = str(tmp_path)

    m = NoSharing()
    assert m.system.policy.handle_sharing is False
    assert m._head["policy_overrides"] == {"handle_sharing": False}


def test_default_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(OUT_ENV, raising=False)
    m = E6Machine()
    tid = m.first_process()
    m.dev_open(tid, data=_Fixed(dev="dsa0", mmap=False))
    m.fork(tid)
    with pytest.raises(InvariantViolation) as info:
        m.task_exit(tid)
    assert info.value.path == f"{DEFAULT_OUT}/E6Machine--A3.yaml" == \
        "pasidsim-hypothesis/E6Machine--A3.yaml"
    assert (tmp_path / info.value.path).is_file()


class _Fixed:
    """A stand-in for Hypothesis's ``data`` that draws fixed values, by label."""

    def __init__(self, **values):
        self.values = values

    def draw(self, strategy, label=None):
        return self.values[label]


class Replayed(KernelMachine):
    """Every example, failing or not, is written as a scenario and replayed: each call must
    return in the replay what it returned under Hypothesis."""

    def teardown(self):
        from pasidsim.scenario import compile_scenario, load_text
        from pasidsim.scenario.runner import run_scenario
        from pasidsim.testing import scenario_text
        text = scenario_text(self, "nothing", "(a passing example)")
        result = run_scenario(compile_scenario(load_text(text, "<replay>")))
        steps = [f for f in result.failures if f.where != "expect_final"]
        assert not steps, (steps, text)
        # the replay ends its actor's program there: leaks of what the example still held
        # are the only violation it may add
        assert {v.name for v in result.violations} <= {"quiescence"}, result.violations


def test_written_scenarios_replay_call_for_call():
    _run(Replayed, max_examples=25, stateful_step_count=25)


def test_a_machine_file_is_found_by_the_replay(tmp_path, monkeypatch):
    from importlib import resources
    monkeypatch.chdir(tmp_path)
    text = resources.files("pasidsim").joinpath("data/default_machine.yaml").read_text()
    (tmp_path / "m.yaml").write_text(text.replace("name: default", "name: mine"))

    class OnMyMachine(KernelMachine):
        machine = "m.yaml"  # relative to the working directory, not to out_dir
        design = "E6-mmput-free"
        out_dir = str(tmp_path / "out")

    m = OnMyMachine()
    tid = m.first_process()
    m.dev_open(tid, data=_Fixed(dev="dsa0", mmap=False))
    m.fork(tid)
    with pytest.raises(InvariantViolation) as info:
        m.task_exit(tid)
    assert yaml.safe_load(open(info.value.path))["machine"] == str(tmp_path / "m.yaml")
    assert run_file(info.value.path).violations[0].name == "A3"
