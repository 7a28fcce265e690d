"""Traces with state: ITF files of runs and counterexamples, per-step diffs, named objects,
the breaking step marked in diagrams, elided setup said."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pasidsim.cli import main
from pasidsim.report.itf import run_diffs, run_itf, state_diff, to_itf
from pasidsim.report.mermaid import mermaid_text, svg_text
from pasidsim.scenario import builtin_scenarios, compile_scenario, load_scenario, run_scenario


def _run(name="h8-unbind-after-exit", design="H8-unbind-uaf"):
    c = compile_scenario(load_scenario(builtin_scenarios()[name]), design=design)
    return run_scenario(c, keep_states=True)


def _itf_values_ok(v) -> bool:
    """Every value is an ITF value: no JSON null, no float; objects are records or one of
    the #-forms."""
    if v is None or isinstance(v, float):
        return False
    if isinstance(v, list):
        return all(_itf_values_ok(x) for x in v)
    if isinstance(v, dict):
        tags = [k for k in v if k.startswith("#")]
        if tags and tags != ["#meta"]:
            assert len(v) == 1 and tags[0] in {"#set", "#map", "#tup", "#bigint",
                                                "#unserializable"}, v
        return all(_itf_values_ok(x) for x in v.values())
    return True


def test_itf_trace_has_the_full_state_at_every_step():
    res = _run()
    itf = run_itf(res)
    assert itf["#meta"]["format"] == "ITF" and itf["#meta"]["design"] == "H8-unbind-uaf"
    states = itf["states"]
    assert len(states) == len(res.events) + 1
    assert [s["#meta"]["index"] for s in states] == list(range(len(states)))
    assert all(set(s) - {"#meta"} == set(itf["vars"]) for s in states)
    assert _itf_values_ok(itf)
    # the state after A's open: A's mm has a PASID, and the device's PASID table entry
    opened = next(i for i, ev in enumerate(res.events, 1) if ev.action and
                  ev.action.name == "dev_open")
    mm = res.states[opened].sys.tasks[res.states[opened].tids[1]].mm
    mms = dict((k, v) for k, v in states[opened]["mms"]["#map"])
    assert mms[mm]["pasid"] == res.states[opened].sys.mms[mm].pasid >= 1
    assert mms[mm]["state"] == "LIVE"
    assert states[opened]["action_taken"].startswith("dev_open(")
    assert states[opened]["ret"] == res.events[opened - 1].ret
    # the violation is tied to the state it was seen in, with objects named
    (m9,) = [v for v in itf["#meta"]["violations"] if v["invariant"] == "M9"]
    assert m9["state"] == len(res.events) and "(A's mm)" in m9["message"]
    # a round trip through JSON text keeps the trace
    assert json.loads(json.dumps(itf)) == itf


def test_to_itf_forms():
    from immutables import Map
    assert to_itf(Map({2: (1, 2), 1: frozenset({3, 1})})) == \
        {"#map": [[1, {"#set": [1, 3]}], [2, [1, 2]]]}
    assert to_itf(1 << 60) == {"#bigint": str(1 << 60)}
    assert to_itf(None) == {"#unserializable": "None"}


def test_state_diff_names_what_changed():
    a = {"mms": {"#map": [[8, {"mm_users": 1, "state": "LIVE"}]]}, "ida": {"#set": [1]}}
    b = {"mms": {"#map": [[8, {"mm_users": 0, "state": "EXITED"}], [9, {"mm_users": 1}]]},
         "ida": {"#set": [2]}}
    assert state_diff(a, b) == ["mms[8].mm_users: 1 → 0", "mms[8].state: LIVE → EXITED",
                                "mms[9]: added {mm_users: 1}", "ida: +2 -1"]
    assert state_diff(a, a) == []


def test_run_diffs_follow_the_kernel_calls():
    res = _run()
    diffs = run_diffs(res)
    assert len(diffs) == len(res.events)
    exit_a = next(i for i, ev in enumerate(res.events) if ev.action and
                  ev.action.name == "task_exit")
    assert "mms[8] (A's mm).mm_users: 1 → 0" in diffs[exit_a]
    assert "mms[8] (A's mm).state: LIVE → EXITED" in diffs[exit_a]
    assert any(line.startswith("ida: -") for line in diffs[-1])  # the PASID freed at the end


def test_run_diff_and_itf_from_the_command_line(tmp_path):
    out = tmp_path / "t.itf.json"
    r = CliRunner().invoke(main, ["run", "h8-unbind-after-exit", "--design", "H8-unbind-uaf",
                                  "--diff", "--no-state", "--itf", str(out)],
                           terminal_width=200)
    assert r.exit_code == 1
    text = " ".join(r.output.split())
    assert "what each step changed" in text
    assert "mms[8] (A's mm).state: LIVE → EXITED" in text
    assert "M9: use after free of mm 8 (A's mm)" in text
    assert json.loads(out.read_text())["#meta"]["scenario"] == "h8-unbind-after-exit"


def test_diagrams_mark_the_breaking_step_with_the_invariant():
    res = _run()
    mmd = mermaid_text(res).splitlines()
    (note,) = [line for line in mmd if "VIOLATES M9" in line]
    assert "use after free of mm 8 (A's mm)" in note
    assert mmd[mmd.index(note) - 2].strip().endswith("task_exit(tid=14)")  # the breaking call
    svg = svg_text(res)
    assert 'fill="#c00" font-style="italic">VIOLATES M9' in svg
    ok = run_scenario(compile_scenario(load_scenario(builtin_scenarios()["h8-unbind-after-exit"])),
                      keep_states=True)
    assert "VIOLATES" not in mermaid_text(ok)


def test_check_saves_itf_beside_each_counterexample_and_says_what_it_elides(tmp_path):
    r = CliRunner().invoke(main, ["check", "h8-unbind-after-exit", "--design", "H8-unbind-uaf",
                                  "--out", str(tmp_path)], terminal_width=200)
    assert r.exit_code == 1
    text = " ".join(r.output.split())  # rich wraps at its own width
    assert "use after free of mm 8 (A's mm)" in text
    assert "steps 1–8: the scenario's setup" in text and "9. A: dev_open" in text
    (yaml_file,) = tmp_path.glob("*.yaml")
    itf = json.loads(yaml_file.with_suffix(".itf.json").read_text())
    assert any(v["invariant"] == "M9" for v in itf["#meta"]["violations"])
    assert len(itf["states"]) == 13  # the initial state and 12 steps
