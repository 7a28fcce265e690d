"""Scenarios: YAML programs of actors making kernel calls, for the runner and the checker.

Pipeline::

    loaded = load_scenario("h1-fork-exit.yaml")   # YAML → validated model (located errors)
    c = compile_scenario(loaded)                   # model → CompiledScenario (machine, policy)
    result = run_scenario(c)                       # one deterministic run → RunResult

The model checker uses ``c.initial()``, ``c.enabled(rs)``, ``c.apply(rs, ref)``,
``c.quiescent(rs)`` and ``c.done(rs)`` (see :mod:`pasidsim.scenario.compile`).  Built-in
scenarios live in ``pasidsim/scenarios/`` (:func:`builtin_scenarios`); a scenario may be named
by path or by built-in name (:func:`resolve_scenario`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .compile import (CompiledScenario, Event, RunState, StepRef, UNBOUND,  # noqa: F401
                      compile_scenario)
from .loader import LoadedScenario, ScenarioError, load_scenario, load_text  # noqa: F401
from .runner import Failure, RunResult, Violation, run_file, run_scenario  # noqa: F401
from .schema import Scenario, scenario_json_schema  # noqa: F401


def builtin_dir() -> Path:
    """The directory of the built-in scenario library."""
    return Path(str(resources.files("pasidsim").joinpath("scenarios")))


def builtin_scenarios() -> dict[str, Path]:
    """Built-in scenarios by name (file name without ``.yaml``), sorted."""
    d = builtin_dir()
    return {p.stem: p for p in sorted(d.glob("*.yaml"))} if d.is_dir() else {}


def resolve_scenario(spec: str | Path) -> Path:
    """A scenario file from a path or a built-in name (with or without ``.yaml``).

    Raises: :class:`ScenarioError` naming the built-ins when neither exists.
    """
    p = Path(spec)
    if p.is_file():
        return p
    name = p.name[:-5] if p.name.endswith(".yaml") else p.name
    found = builtin_scenarios().get(name) if p.parent == Path(".") else None
    if found is not None:
        return found
    raise ScenarioError(str(spec), 0, "", "no such file or built-in scenario (built-ins: "
                        f"{', '.join(builtin_scenarios()) or 'none'})")


__all__ = ["load_scenario", "load_text", "compile_scenario", "run_scenario", "run_file",
           "resolve_scenario", "builtin_scenarios", "builtin_dir", "ScenarioError",
           "LoadedScenario", "CompiledScenario", "RunState", "StepRef", "Event", "RunResult",
           "Failure", "Violation", "Scenario", "scenario_json_schema", "UNBOUND"]
