"""The timing harness shared by the benchmark scripts."""

from __future__ import annotations

import gc
import time


def rate(fn, n: int) -> float:
    """Calls of ``fn`` per second: the best of 3 runs of ``n`` calls, each a Python call, so
    that a baseline measured with the same harness carries the same call overhead."""
    best = float("inf")
    for _ in range(3):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return n / best
