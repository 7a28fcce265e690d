"""Properties the model checker evaluates on PASID-subsystem states, besides the state and
transition invariants of :mod:`pasidsim.invariants`.

- :func:`quiescence_leaks` (defined in :mod:`pasidsim.invariants`, so that the scenario runner
  checks the end of a run with the same function): at quiescence (no actor has work left, the
  hardware is idle) nothing may be leaked: every PASID is free or held by a live owner, every
  mm without tasks is freed, every file is reachable from a live process, every page request
  was answered, every reference count is back to its floor.
- a scenario's ``expect_final``, at every quiescent terminal state
  (:meth:`pasidsim.check.pasid_model.ScenarioModel.at_quiescence`).
Reachability (``sometimes``) goals are the scenario's own, compiled with it
(:attr:`pasidsim.scenario.compile.CompiledScenario.sometimes`).
"""

from __future__ import annotations

from ..invariants import quiescence_leaks

__all__ = ["quiescence_leaks"]
