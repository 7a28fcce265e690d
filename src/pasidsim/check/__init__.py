"""Generic explicit-state model checking engine.

* :mod:`.model` — the :class:`Model` protocol, :class:`FunctionModel`, :class:`Invariant`,
  :class:`Goal`;
* :mod:`.search` — :func:`explore` (BFS/DFS, bounds, symmetry, partial-order reduction,
  counterexample replay) and its :class:`Result`;
* :mod:`.parallel` — :func:`explore_parallel`, a level-parallel BFS on Ray actors whose
  result is identical to the serial BFS;
* :mod:`.swarm` — :func:`~pasidsim.check.swarm.swarm`, randomized bounded depth-first
  searches for configurations beyond exhaustive reach.
"""

from .model import FP_MASK, FunctionModel, Goal, Invariant, Model, ModelView
from .parallel import explore_parallel
from .search import NondeterminismError, Result, Violation, explore, replay, run_trace

__all__ = [
    "FP_MASK", "FunctionModel", "Goal", "Invariant", "Model", "ModelView", "NondeterminismError",
    "Result", "Violation", "explore", "explore_parallel", "replay", "run_trace",
]
