"""Failure injection: the kernel's fallible points as explored branches.

A kernel call passes zero or more *fault points*: an allocation (``kzalloc`` of a handle or of
``iommu_mm``, an IOMMU driver's ``domain_alloc_sva``, ``ida_alloc_range``, ``xa_insert`` into a
``pasid_array``) or a driver callback that may fail (``set_dev_pasid``, uacce ``get_queue``).
Normally every point succeeds.  :func:`pasidsim.step.step` runs an action whose ``fail`` field is
``k > 0`` with the *k*-th point it passes failing with that point's kernel errno
(:data:`ERRNO`); the code at the point then takes the kernel's unwind path.  So a failure is
a property of the action, and a search that explores ``fail = 1..n`` for every call explores
every failure (``n`` is what :func:`points_passed` reports after the unfailed run).

The fault plan is process-local and set only around one call by ``step`` (the model stays a
pure function of ``(state, action)``): code outside a step passes every point.

Kernel sources modeled: the error returns of drivers/iommu/iommu-sva.c
``iommu_sva_bind_device()``/``iommu_alloc_mm_data()``, drivers/iommu/iommu.c
``iommu_attach_device_pasid()`` (``xa_insert``, ``__iommu_set_group_pasid`` unwinding the
devices already set), ``__iommu_group_alloc_blocking_domain()``, drivers/misc/uacce/uacce.c
``uacce_fops_open()`` (``ops->get_queue``).
"""

from __future__ import annotations

from enum import IntEnum, unique

from .errors import EBUSY, ENOMEM, ENOSPC, errname


@unique
class FaultPoint(IntEnum):
    """A fallible point of the kernel model (names as the kernel's allocation or callback)."""

    IDA_ALLOC = 1  # ida_alloc_range() in iommu_alloc_global_pasid -> -ENOSPC/-ENOMEM
    IOMMU_MM_ALLOC = 2  # kzalloc(struct iommu_mm_data) in iommu_alloc_mm_data -> -ENOMEM
    HANDLE_ALLOC = 3  # kzalloc(struct iommu_sva) in iommu_sva_bind_device -> -ENOMEM
    DOMAIN_ALLOC_SVA = 4  # ops->domain_alloc_sva() -> ERR_PTR(-ENOMEM)
    SET_DEV_PASID = 5  # domain->ops->set_dev_pasid() for one device -> -ENOMEM
    PASID_ARRAY_INSERT = 6  # xa_insert(&group->pasid_array) -> -ENOMEM
    BLOCKING_DOMAIN_ALLOC = 7  # __iommu_group_alloc_blocking_domain() -> -ENOMEM
    DOMAIN_ALLOC_PAGING = 8  # ops->domain_alloc_paging() -> -ENOMEM
    UACCE_GET_QUEUE = 9  # uacce->ops->get_queue() -> -EBUSY (no free hardware queue)


#: The errno each point fails with (positive; the code returns ``-ERRNO[p]``).
ERRNO: dict[FaultPoint, int] = {
    FaultPoint.IDA_ALLOC: ENOSPC,
    FaultPoint.IOMMU_MM_ALLOC: ENOMEM,
    FaultPoint.HANDLE_ALLOC: ENOMEM,
    FaultPoint.DOMAIN_ALLOC_SVA: ENOMEM,
    FaultPoint.SET_DEV_PASID: ENOMEM,
    FaultPoint.PASID_ARRAY_INSERT: ENOMEM,
    FaultPoint.BLOCKING_DOMAIN_ALLOC: ENOMEM,
    FaultPoint.DOMAIN_ALLOC_PAGING: ENOMEM,
    FaultPoint.UACCE_GET_QUEUE: EBUSY,
}

# The plan of the call in progress: [ordinal of the point to fail (0 = none), points passed],
# and the points passed, in order.
_plan = [0, 0]
_trail: list[int] = []


def fault_point(point: FaultPoint) -> int:
    """Pass fault point ``point``: returns 0 (go on), or ``-errno`` when the plan of the call
    in progress fails this point (the caller then unwinds and returns that error or its
    own translation of it, as the kernel does)."""
    _plan[1] += 1
    _trail.append(point)
    if _plan[1] == _plan[0]:
        return -ERRNO[point]
    return 0


def begin(fail: int) -> None:
    """Start a call whose ``fail``-th point fails (0: none fails).  Used by ``step``."""
    _plan[0] = fail
    _plan[1] = 0
    _trail.clear()


def end() -> None:
    """End the call: later code outside a step passes every point (the trail is kept for
    :func:`points_passed` / :func:`trail`)."""
    _plan[0] = 0


def points_passed() -> int:
    """How many fault points the last call passed (the branches ``fail = 1..n`` it has)."""
    return _plan[1]


def trail() -> tuple[FaultPoint, ...]:
    """The fault points the last call passed, in order (``trail()[k-1]`` is the point that
    ``fail = k`` fails)."""
    return tuple(FaultPoint(p) for p in _trail)


def describe(point: FaultPoint) -> str:
    """``'HANDLE_ALLOC (-ENOMEM)'``."""
    return f"{point.name} (-{errname(ERRNO[point])})"
