"""Fuzz tests of the scenario loader and compiler (issue #14, item 5).

Mutated built-in scenarios -- line by line, as YAML data and byte by byte -- must load, compile
and run, or be refused with one located ``ScenarioError`` (``file:line: field: message``);
``pasidsim run FILE`` exits 0, 1 or 2 and on 2 prints one line on stderr.  The budget is fixed
and the examples derandomized (CI runs the same inputs every time); ``python fuzz/run.py``
is the long run.  The regression tests at the end are the crashes the fuzzers found.
"""

from __future__ import annotations

import copy

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from pasidsim.scenario import ScenarioError, compile_scenario, load_text, run_scenario

from . import harness as h

FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck))
SEEDS = {name: (text, path) for name, text, path in h.scenario_corpus()}
WORDS = sorted(set(h._scenario_words()) - {"a\x00b"})

#: Any YAML value: the wrong type, a huge or negative number, odd text, nested collections.
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.integers(-(2 ** 80), 2 ** 80)
    | st.floats() | st.text(max_size=12) | st.sampled_from(WORDS)
    | st.sampled_from(["$q", "$h0", "$", "-EBUSY", "ok", "self", "dsa0", "[/x]"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6) | st.sampled_from(WORDS), inner, max_size=3),
    max_leaves=6)


@settings(max_examples=250, **FUZZ)
@given(rng=st.randoms(use_true_random=False))
def test_mutated_scenarios_load_or_give_one_located_error(rng):
    """The long run's mutator (line, YAML-data, byte and splice mutations of the built-ins)."""
    _kind, inp, path = h.scenario_input(rng)
    with h.time_limit(30):
        h.check_scenario(inp, path)


@settings(max_examples=120, **FUZZ)
@given(name=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_any_value_in_any_field(name, data):
    """One field of a built-in scenario replaced by any YAML value, or deleted."""
    text, path = SEEDS[name]
    tree = copy.deepcopy(h._parsed(text))
    where = data.draw(st.sampled_from([p for p, _ in h._paths(tree) if p]), label="field")
    parent = h._parent(tree, where)
    if data.draw(st.booleans(), label="delete"):
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(yaml_values, label="value")
    with h.time_limit(30):
        h.check_scenario(h._dump(tree), path)


@settings(max_examples=120, **FUZZ)
@given(name=st.sampled_from(sorted(SEEDS)), where=st.floats(0, 1),
       blob=st.binary(min_size=1, max_size=48), replace=st.booleans())
def test_random_bytes_spliced_into_a_scenario_file(name, where, blob, replace):
    """Byte level: random bytes (invalid UTF-8, NULs, control bytes) in a scenario file."""
    raw = SEEDS[name][0].encode()
    i = int(where * len(raw))
    raw = raw[:i] + blob + raw[i + (len(blob) if replace else 0):]
    with h.time_limit(30):
        h.check_scenario(raw)


@settings(max_examples=10, **FUZZ)
@given(rng=st.randoms(use_true_random=False))
def test_cli_run_exits_0_1_or_2_with_one_error_line(rng):
    _kind, inp, _path = h.scenario_input(rng)
    with h.time_limit(60):
        h.check_cli(inp)


@pytest.mark.parametrize("text", [
    "name: x\nactors: &a [*a]\n", "name: x\n" + "a: " * 2 + "[" * 500 + "\n",
    "name: x\nactors: []\nhardware: " + "9" * 5000 + "\n", "name: \x07\n", "name: x\x00\n",
    "name: '[/x]'\nactors: [{name: '[bold]', program: [{foo: {}}]}]\n",
    "name: x\nmachine: 'a\\x00b.yaml'\n",
], ids=["recursive-alias", "deep-nesting", "5000-digits", "control-char", "nul", "markup",
        "nul-in-machine-path"])
def test_cli_bad_input_classes_exit_2_with_one_line(text):
    """The bad-input classes of issue #14 through the CLI: exit 2, one line, no traceback."""
    assert h.check_cli(text) == 2


# -- regressions: crashes the fuzzers found ---------------------------------------------------

FORWARD_REF = """name: forward-reference
actors:
  - name: B
    program:
      - iommu_sva_get_pasid: {handle: $h, expect: 1}
  - name: A
    program:
      - iommu_sva_bind_device: {dev: dsa0, mm: self, as: h, expect: ok}
"""


def test_regression_reference_to_a_binding_of_a_later_actor_compiles():
    """Found by the fuzzer (an ``open`` moved below a step using its ``$name``): compiling a
    ``$name`` bound by an actor (or step) later in the file raised KeyError.  It is valid: the
    step waits for the value."""
    c = compile_scenario(load_text(FORWARD_REF))
    result = run_scenario(c)
    assert result.ok, result.failures


def test_regression_reference_to_a_later_step_of_the_same_actor_waits_for_ever():
    text = """name: backward
actors:
  - name: B
    program:
      - iommu_sva_get_pasid: {handle: $h, expect: 1}
      - iommu_sva_bind_device: {dev: dsa0, mm: self, as: h, expect: ok}
"""
    result = run_scenario(compile_scenario(load_text(text)))
    assert result.unfinished == [("B", "waiting for $h")]


def test_scenario_error_is_located_and_one_line():
    with pytest.raises(ScenarioError) as e:
        load_text("name: x\nactors:\n  - name: A\n    program:\n      - nope: {}\n", "f.yaml")
    h.check_scenario_error(e.value)
    assert str(e.value).startswith("f.yaml:5: ")
