"""Swarm verification: many randomized, bounded depth-first searches instead of one
exhaustive one, for configurations beyond exhaustive reach (after SPIN's swarm mode,
Holzmann, Joshi and Groce, "Swarm verification techniques", IEEE TSE 2011).

Member ``k`` of a swarm of ``n`` is :func:`~pasidsim.check.search.explore` with
``strategy="dfs"`` and ``seed = base_seed + k``: it takes each state's successors in its own
shuffled order, so the members dive into different parts of the state space, each within the
same ``max_states`` / ``max_depth`` / ``max_seconds`` budget.  The members run as Ray tasks
when ``workers`` > 1 (:func:`~pasidsim.check.parallel.ray_runtime`), else one after another.

The swarm's result: the violation with the shortest counterexample any member found (depth
first: not necessarily a shortest one overall; ties go to the lowest member); "pass" when a
member exhausted the state space within its budget (a depth-first search with a complete
visited set is exhaustive when no bound cut it); otherwise "bounded" — no violation found,
nothing proven.  Counts are the largest member's (``states``: distinct states that member
visited, not the union).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from .search import Result, explore


def _member(factory: Callable[[], Any], seed: int, kwargs: dict) -> Result:
    return explore(factory(), strategy="dfs", seed=seed, **kwargs)


def _ray_member(blob: bytes, seed: int, kwargs: dict) -> Result:
    """A Ray task: one member (``blob``: the cloudpickled model factory)."""
    import ray.cloudpickle as cloudpickle
    return _member(cloudpickle.loads(blob), seed, kwargs)


def swarm(model_factory: Callable[[], Any], n: int, *, base_seed: int = 1,
          max_states: int | None = 20_000, max_depth: int | None = None,
          max_seconds: float | None = None, symmetry: bool = False, por: bool = False,
          workers: int = 1, address: str | None = None) -> Result:
    """Run a swarm of ``n`` >= 1 randomized depth-first searches of ``model_factory()``.

    Args:
        model_factory: zero-argument callable returning the model (called once per member;
            serialised with cloudpickle for Ray).
        n: members; seeds ``base_seed .. base_seed + n - 1``.
        max_states, max_depth, max_seconds: each member's budget.
        workers: > 1: members as Ray tasks on a local runtime or the cluster at ``address``.
        symmetry, por: as :func:`~pasidsim.check.search.explore`.

    Returns:
        A :class:`~pasidsim.check.search.Result` (module docstring); ``message`` says how
        many members found a violation or exhausted the space.

    Raises:
        ValueError: ``n`` < 1.
    """
    if n < 1:
        raise ValueError(f"swarm: n={n}: at least one search")
    start = time.perf_counter()
    kwargs = dict(max_states=max_states, max_depth=max_depth, max_seconds=max_seconds,
                  symmetry=symmetry, por=por)
    seeds = [base_seed + k for k in range(n)]
    if workers > 1:
        from .parallel import _blob, ray_runtime
        ray = ray_runtime(address, workers)
        blob = ray.put(_blob(model_factory))
        task = ray.remote(num_cpus=1)(_ray_member)
        refs = [task.remote(blob, sd, kwargs) for sd in seeds]
        try:
            results = ray.get(refs)
        except BaseException:
            for r in refs:
                ray.cancel(r, force=True)
            raise
    else:
        results = [_member(model_factory, sd, kwargs) for sd in seeds]
    found = [r for r in results if r.violation is not None]
    done = [r for r in results if r.verdict == "pass"]
    biggest = max(results, key=lambda r: r.states)
    if found:
        best = min(found, key=lambda r: r.violation.depth)
        verdict, pick = "violation", best
        message = (f"{best.message} (swarm of {n}: {len(found)} member(s) found a "
                   "violation; the shortest is kept)")
    elif done:
        verdict, pick = "pass", done[0]
        message = f"exhaustive, no violation (a member of the swarm of {n} covered every state)"
    else:
        verdict, pick = "bounded", biggest
        message = (f"swarm of {n} randomized searches found no violation: NOT exhaustive "
                   f"(each stopped at {pick.bound})")
    return Result(verdict=verdict, states=pick.states, transitions=pick.transitions,
                  max_depth_reached=max(r.max_depth_reached for r in results),
                  elapsed=time.perf_counter() - start, violation=pick.violation,
                  violations=pick.violations, sometimes_unreached=pick.sometimes_unreached,
                  sometimes_counts=pick.sometimes_counts,
                  invariant_counts=pick.invariant_counts,
                  bound=None if verdict != "bounded" else f"swarm of {n}: {pick.bound}",
                  message=message)


__all__ = ["swarm"]
