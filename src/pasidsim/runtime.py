"""The Python process a long computation runs in: the cyclic garbage collector, the Ray
runtime, and the process's peak memory.

Shared by the model checker (:mod:`pasidsim.check`) and the simulator (:mod:`pasidsim.sim`),
which are sibling layers that do not import each other; nothing here knows the model.
"""

from __future__ import annotations

import gc
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Suspend Python's cyclic garbage collector for a search or a simulation.  Model states
    are acyclic (tuples, maps and records), so the collector frees nothing there, but a
    search or a long simulation allocates millions of containers and each of the collector's
    passes walks every live one: about 12% of the serial search on the standard
    configuration, about 40% of a parallel worker's time, and 17% of a 100,000-process
    simulation (whose live fence map and step log grow with the run).  Reference counting
    still frees every state as usual; the collector is back on (if it was) on exit."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def ray_runtime(address: str | None = None, workers: int = 2) -> Any:
    """Make sure this process is connected to a Ray runtime and return the ``ray`` module.

    ``address`` None: a local runtime, started here (once per process, with at least
    ``workers`` CPUs so that every worker actor gets one; it stays up for later searches and
    stops when the process exits) unless one is already connected; else the address of an
    existing cluster (``ray start --head`` prints it; every node needs pasidsim installed).
    """
    import logging

    import ray
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(num_cpus=max(workers, os.cpu_count() or 1), include_dashboard=False,
                     logging_level=logging.ERROR, log_to_driver=False)
    return ray


def shutdown_ray() -> None:
    """Stop this process's connection to Ray (and a local runtime it started): after Ctrl-C,
    so that no worker is left running."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def peak_rss() -> int:
    """This process's peak resident set size in bytes: ``VmHWM`` of /proc/self/status (the
    high-water mark of this address space; ``ru_maxrss`` would count the image of the
    process that forked this one, which Linux keeps across ``execve``), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


__all__ = ["no_cyclic_gc", "ray_runtime", "shutdown_ray", "peak_rss"]
