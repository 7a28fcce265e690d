"""Throughput of the model-checking engine on a toy model of ~100k states.

The model: ``N`` counters, each incremented up to ``K`` in any order — ``(K+1)**N`` states
(``N=5, K=9``: 100,000), ``N`` actions per state, ``N!``-fold symmetric.

Usage::

    PYTHONPATH=src python benchmarks/bench_search_toy.py [--n 5] [--k 9] [--workers 2] [--work 0]

``--work`` makes every state cost that many extra loop iterations, to see when the
parallel BFS (which pays for pickling states between processes) starts to pay off.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from pasidsim.check import FunctionModel, Goal, Invariant, Result, explore, explore_parallel


def _step(s: tuple[int, ...], p: int) -> tuple[int, ...]:
    """Increment counter ``p``."""
    return s[:p] + (s[p] + 1,) + s[p + 1:]


def _busy(s: tuple[int, ...], work: int) -> bool:
    """An invariant that burns ``work`` loop iterations (emulates an expensive model)."""
    acc = 0
    for i in range(work):
        acc += i ^ s[i % len(s)]
    return acc >= 0


def counters(n: int, k: int, work: int = 0) -> FunctionModel:
    """``n`` counters up to ``k``; symmetric under permutation of the counters.

    ``work`` > 0 adds an invariant costing that many loop iterations per state.
    """
    extra = [Invariant.always("busy", functools.partial(_busy, work=work))] if work else []
    return FunctionModel(
        initial_states=lambda: [(0,) * n],
        actions=lambda s: [p for p in range(n) if s[p] < k],
        step=_step,
        invariants=[Invariant.always("bounded", lambda s: max(s) <= k), *extra],
        sometimes=[Goal("all full", lambda s: min(s) == k)],
        is_quiescent=lambda s: min(s) == k,
        canonical=lambda s: tuple(sorted(s)),
        name=f"counters{n}x{k}")


def _line(label: str, res: Result) -> str:
    """Format one benchmark result."""
    return (f"{label:28} {res.verdict:8} {res.states:>9,} states {res.transitions:>9,} transitions "
            f"{res.elapsed:7.2f} s {res.states_per_second:>10,.0f} states/s "
            f"{res.transitions / res.elapsed if res.elapsed else 0:>10,.0f} transitions/s")


def main(argv: Any = None) -> None:
    """Run the benchmark and print one line per configuration."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--k", type=int, default=9)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=int, default=0, help="extra per-state invariant cost (loop iterations)")
    args = ap.parse_args(argv)
    model = counters(args.n, args.k, args.work)
    print(f"model {model.name}: {(args.k + 1) ** args.n:,} states")
    print(_line("serial BFS", explore(model)))
    print(_line("serial DFS", explore(model, strategy="dfs")))
    print(_line("serial BFS + symmetry", explore(model, symmetry=True)))
    big = counters(2 * args.n, args.k, args.work)  # (k+1)**(2n) states, far fewer up to symmetry
    print(_line(f"BFS + symmetry, {2 * args.n} counters", explore(big, symmetry=True)))
    if args.workers > 1:
        factory = functools.partial(counters, args.n, args.k, args.work)
        print(_line(f"parallel BFS, {args.workers} workers", explore_parallel(factory, workers=args.workers)))


if __name__ == "__main__":
    main()
