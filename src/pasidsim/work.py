"""Deferred work: how the kernel calls "up" without calling up.

A lower layer never calls a higher one.  Where the kernel defers (``fput()`` queues ``__fput``
as task work; ``force_sig()`` delivers the signal on the way back to user space; the IOMMU's
page-request interrupt reports to the fault handler), the model queues a
:class:`~pasidsim.state.Work` item in :attr:`SystemState.work`, and :func:`run_work` runs the
queue through :data:`WORK_FN`, a dispatch table of the functions that do the work (filled in
by :mod:`pasidsim.ops`, which sits above every module that provides one).  At ``call``
granularity :func:`pasidsim.step.step` runs the queue before the call returns.

Kernel sources modeled: kernel/task_work.c ``task_work_add()``/``task_work_run()``
(``resume_user_mode_work``), fs/file_table.c ``fput()``, kernel/signal.c ``force_sig()``.
"""

from __future__ import annotations

from typing import Callable

from .errors import ModelInternalError
from .state import SystemState, Work

#: Work kind -> ``fn(state, *args) -> state``; filled by :func:`pasidsim.ops.build`.
WORK_FN: dict[int, Callable[..., SystemState]] = {}


def run_work(s: SystemState) -> SystemState:
    """Run queued work, oldest first, until none is left (an item may queue more).
    Raises ModelInternalError for a kind with no function in :data:`WORK_FN`."""
    while s.work:
        item = s.work[0]
        s = s._replace(work=s.work[1:])
        fn = WORK_FN.get(item[0])
        if fn is None:
            raise ModelInternalError(f"no function for deferred work {Work(item[0]).name}")
        s = fn(s, *item[1:])
    return s


#: Work that runs in interrupt context: it preempts the current thread as soon as the hardware
#: raises it, so a kernel path that waits on the hardware (a drain) sees it handled.
IRQ_WORK = frozenset({Work.PAGE_REQUEST})


def run_irq_work(s: SystemState) -> SystemState:
    """Run the queued interrupt-context items (:data:`IRQ_WORK`), oldest first, leaving the
    rest of the queue (task work) in order: what a CPU does when the device interrupts a
    kernel path that is waiting for it."""
    if not any(item[0] in IRQ_WORK for item in s.work):
        return s
    rest = tuple(item for item in s.work if item[0] not in IRQ_WORK)
    irq = tuple(item for item in s.work if item[0] in IRQ_WORK)
    s = run_work(s._replace(work=irq))
    return s._replace(work=rest + s.work)


__all__ = ["WORK_FN", "IRQ_WORK", "run_work", "run_irq_work", "Work"]
