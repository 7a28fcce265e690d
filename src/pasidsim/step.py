"""The one transition function: ``step(state, action) -> (state, ret)``.

``ret`` is the kernel's return value: ``0``, an id, a PASID, ``IOMMU_PASID_INVALID``, or
``-errno``.  A failed call returns the state it was given, except where the kernel itself keeps
a side effect (``Op.atomic`` false: e.g. a failed bind keeps the mm's PASID).

The operations, :class:`Action` and the opcode table live in :mod:`pasidsim.ops` (re-exported
here).  ``step`` runs the operation with the action's injected failure (:mod:`pasidsim.fault`),
then the deferred work it queued (:mod:`pasidsim.work`: ``__fput`` task work, fatal signals,
page requests), so that at ``call`` granularity every call is one step.
"""

from __future__ import annotations

from . import fault
from .ops import OP_BY_NAME, OPS, Action, Op, enabled_events
from .state import SystemState
from .work import run_work


def step(s: SystemState, a: Action) -> tuple[SystemState, int]:
    """Apply action ``a`` to state ``s``.  Returns ``(next_state, ret)``.  Deferred work the
    action queued runs before it returns.  The ``a.fail``-th fault point passed (0: none)
    fails with its errno."""
    fault.begin(a.fail)
    try:
        s2, ret = OPS[a.op].fn(s, *a.args)
        if s2.work:
            s2 = run_work(s2)
    finally:
        fault.end()
    return s2, ret


__all__ = ["step", "Action", "Op", "OPS", "OP_BY_NAME", "enabled_events"]
