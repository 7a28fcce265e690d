"""docs/scenario-guide.md: every ```yaml block is a scenario that loads, compiles and runs
with every expectation met; a ```yaml fragment block parses and uses only scenario fields;
the guide names every top-level field of the scenario format."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pasidsim.scenario import compile_scenario, load_text, run_scenario
from pasidsim.scenario.schema import PolicyOverrides, Scenario

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "scenario-guide.md"
_BLOCK = re.compile(r"^```yaml( fragment)?\n(.*?)^```$", re.S | re.M)


def _blocks(fragment: bool) -> list[tuple[int, str]]:
    text = GUIDE.read_text(encoding="utf-8")
    return [(text[:m.start()].count("\n") + 2, m.group(2)) for m in _BLOCK.finditer(text)
            if bool(m.group(1)) == fragment]


def test_the_guide_has_runnable_blocks_and_fragments():
    assert len(_blocks(False)) >= 8 and len(_blocks(True)) >= 2
    # every fenced block is a yaml block (or another language on purpose: none today)
    fences = re.findall(r"^```(\S*)", GUIDE.read_text(encoding="utf-8"), re.M)
    assert set(fences) <= {"yaml", ""}


@pytest.mark.parametrize("line,text", _blocks(False), ids=lambda v: str(v)[:24])
def test_yaml_block_runs(line, text):
    source = f"{GUIDE.name}:{line}"
    c = compile_scenario(load_text(text, source, path=GUIDE))
    result = run_scenario(c)
    assert result.exit_code == 0, [str(f) for f in result.failures]
    assert not result.unfinished, result.unfinished
    assert c.model.name.startswith("guide-")


@pytest.mark.parametrize("line,text", _blocks(True), ids=lambda v: str(v)[:24])
def test_fragment_parses_and_uses_scenario_fields(line, text):
    data = yaml.safe_load(text)
    assert isinstance(data, dict), f"{GUIDE.name}:{line}: a fragment is a mapping"
    fields = {f.alias or name for name, f in Scenario.model_fields.items()}
    assert set(data) <= fields, f"{GUIDE.name}:{line}: unknown fields {set(data) - fields}"
    if "policy_overrides" in data:
        PolicyOverrides.model_validate(data["policy_overrides"])


def test_the_guide_names_every_scenario_field():
    text = GUIDE.read_text(encoding="utf-8")
    missing = [name for name, f in Scenario.model_fields.items()
               if f"`{f.alias or name}`" not in text and f"{f.alias or name}:" not in text]
    assert not missing, f"docs/scenario-guide.md does not explain {missing}"
