"""Malformed scenarios: one located message (file, line, field), exit code 2, no traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pasidsim.cli import main
from pasidsim.scenario import ScenarioError, load_scenario, load_text
from pasidsim.scenario.schema import schema_path, schema_text

BAD = Path(__file__).parent / "bad"
CORPUS = sorted(BAD.glob("*.yaml"))
HEADER = re.compile(r'line (\d+); says "(.*)"')
NO_HEADER = {"empty.yaml": (1, "empty scenario file"), "non-utf8.yaml": (2, "not UTF-8 text")}


def expected(path: Path) -> tuple[int, str]:
    if path.name in NO_HEADER:
        return NO_HEADER[path.name]
    m = HEADER.search(path.read_text(encoding="utf-8").splitlines()[0])
    assert m, f"{path.name}: first line must say the expected line and message"
    return int(m.group(1)), m.group(2)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_bad_scenario_through_the_cli(path):
    line, says = expected(path)
    res = CliRunner().invoke(main, ["run", str(path)])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)
    err = res.stderr
    assert "Traceback" not in res.output
    assert f"{path}:{line}:" in err, err
    assert says in err, err
    assert len(err.strip().splitlines()) == 1, "one message"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_bad_scenario_error_object(path):
    from pasidsim.scenario import compile_scenario
    line, _ = expected(path)
    with pytest.raises(ScenarioError) as info:
        compile_scenario(load_scenario(path))
    assert info.value.source == str(path) and info.value.line == line


def test_field_path_of_a_nested_fork_program():
    text = ("name: t\nactors:\n  - name: A\n    program:\n      - fork:\n          as: B\n"
            "          program:\n            - close: {fd: 1, bogus: 2}\n")
    with pytest.raises(ScenarioError) as info:
        load_text(text, "n.yaml")
    e = info.value
    assert (e.line, e.field) == (8, "actors[0].program[0].fork.program[0].close.bogus")
    assert str(e) == ("n.yaml:8: actors[0].program[0].fork.program[0].close.bogus: "
                      "unknown field 'bogus'")


def test_forward_reference_is_allowed_and_waits():
    # B's step uses $q, bound by A later in the file: valid, the step waits for it.
    text = ("name: t\nactors:\n  - name: B\n    program:\n      - close: {fd: $q}\n"
            "  - name: A\n    program:\n      - open: {dev: dsa0, as: q}\n")
    assert load_text(text).model.actors[0].name == "B"


def test_shipped_json_schema_is_up_to_date():
    assert schema_path().is_file()
    assert schema_path().read_text(encoding="utf-8") == schema_text(), \
        "regenerate with `pasidsim schema --write`"


def test_json_schema_lists_every_operation():
    import json
    from pasidsim.step import OPS
    schema = json.loads(schema_text())
    defs = schema["$defs"]
    for op in OPS:
        assert f"step_{op.name}" in defs
        assert set(op.params) <= set(defs[f"{op.name}_args"]["properties"])
    assert {"open", "exit", "clone"} <= {k[5:] for k in defs if k.startswith("step_")}


def test_expect_accepts_the_kernels_errno_names_and_aliases():
    """Traces print -EOPNOTSUPP (95); Python's errno.errorcode names 95 ENOTSUP.  A scenario
    may write either, and an unknown name is still refused."""
    from pasidsim.scenario.schema import errno_value
    assert errno_value("EOPNOTSUPP") == errno_value("ENOTSUP") == 95
    assert errno_value("EBUSY") == 16
    assert errno_value("EWHATEVER") is None and errno_value("errorcode") is None


def _billion_laughs() -> str:
    s = 'a: &a ["lol"]\n'
    for i in range(1, 12):
        prev = "a" if i == 1 else f"b{i - 1}"
        s += f"b{i}: &b{i} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return s


@pytest.mark.parametrize("text,line,words", [
    ("name: &a [*a]\n", 1, "recursive YAML alias"),
    ("name: t\nactors:\n  - name: A\n    program:\n      - mmap_anon: {npages: " + "9" * 5000
     + "}\n", 5, "a kernel argument fits 64 bits"),
    ("name: t\n\x01\n", 2, "U+0001"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", 1, "nested too deeply"),
    (_billion_laughs(), 1, "YAML nodes"),
], ids=["recursive-alias", "5000-digit-int", "control-char", "deep-nesting", "billion-laughs"])
def test_hostile_yaml_is_a_located_error_not_a_crash(tmp_path, text, line, words):
    """Issue #14: each of these crashed with a traceback (or grew without bound)."""
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises(ScenarioError) as ei:
        load_scenario(p)
    assert ei.value.line == line, str(ei.value)
    assert words in str(ei.value)


def test_huge_files_and_actor_counts_are_refused_with_their_place(tmp_path):
    """A file over the size bound is refused unread; more actors than the runner can check
    in reasonable time is refused at the first one too many, pointing at the simulator."""
    from pasidsim.scenario import loader
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * loader.MAX_FILE_BYTES + b"\n")
    with pytest.raises(ScenarioError, match="a scenario is at most") as ei:
        load_scenario(big)
    assert ei.value.line == 0
    n = loader.MAX_ACTORS + 1
    many = tmp_path / "many.yaml"
    many.write_text("name: many\nactors:\n" + "".join(
        f"  - name: P{i}\n    program: [{{process_create: {{}}}}]\n" for i in range(n)))
    with pytest.raises(ScenarioError, match="pasidsim simulate") as ei:
        load_scenario(many)
    assert ei.value.line == 3 + 2 * loader.MAX_ACTORS  # the first actor too many
    ok = tmp_path / "ok.yaml"  # at the bound: loads and compiles in linear time
    ok.write_text("name: ok\nactors:\n" + "".join(
        f"  - name: P{i}\n    program: [{{process_create: {{}}}}]\n"
        for i in range(loader.MAX_ACTORS)))
    from pasidsim.scenario.compile import compile_scenario
    assert len(compile_scenario(load_scenario(ok)).actors) > loader.MAX_ACTORS


def test_nul_in_a_machine_path_is_a_located_error(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text('name: t\ndemonstrates: x\nmachine: "a\\0b"\nactors: []\n')
    from pasidsim.scenario.compile import compile_scenario
    with pytest.raises(ScenarioError) as ei:
        compile_scenario(load_scenario(p))
    assert "null byte" in str(ei.value) and ei.value.line == 3
