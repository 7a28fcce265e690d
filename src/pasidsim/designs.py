"""Named design variants: today's kernel and the historical designs of the seed threads.

Each is a :class:`~pasidsim.policy.Policy` value (switches of the one code path).
"""

from __future__ import annotations

from .errors import ModelUsageError
from .policy import CURRENT, Allocator, Enqcmd, FreePoint, OwnerModel, Policy

DESIGNS: dict[str, Policy] = {
    "current": CURRENT,
    "E0-io_mm": CURRENT.but(name="E0-io_mm", pasid_free_point=FreePoint.MM_EXIT,
                            mm_exit_callback=True, shared_sva_domain=False),
    "E4-unbind-free": CURRENT.but(name="E4-unbind-free", pasid_free_point=FreePoint.UNBIND,
                                  enqcmd=Enqcmd.IPI),
    "E6-mmput-free": CURRENT.but(name="E6-mmput-free", pasid_free_point=FreePoint.MMPUT),
    "H2-mmget-bind": CURRENT.but(name="H2-mmget-bind", pasid_free_point=FreePoint.MMPUT,
                                 bind_takes_mmget=True),
    "E12-no-handle-sharing": CURRENT.but(name="E12-no-handle-sharing", handle_sharing=False),
    "H5-task-refcount": CURRENT.but(name="H5-task-refcount", pasid_free_point=FreePoint.UNBIND,
                                    enqcmd=Enqcmd.TASK_REFCOUNT),
    "pre-E8-bug-on": CURRENT.but(name="pre-E8-bug-on", owner_model=OwnerModel.PRE_E8_BUG_ON),
    "dma-owner-enum-2021": CURRENT.but(name="dma-owner-enum-2021",
                                       owner_model=OwnerModel.ENUM_DEC2021),
    "H8-unbind-uaf": CURRENT.but(name="H8-unbind-uaf", unbind_touches_mm_after_free=True),
    "H11-claim-no-blocking": CURRENT.but(name="H11-claim-no-blocking",
                                         claim_attaches_blocking=False),
    "amdgpu-lowest": CURRENT.but(name="amdgpu-lowest", amdgpu_cyclic=False),
    "pending-free": CURRENT.but(name="pending-free", allocator=Allocator.PENDING_FREE),
    "cyclic": CURRENT.but(name="cyclic", allocator=Allocator.CYCLIC),
}


def get_policy(name: str) -> Policy:
    """The design called ``name``; ModelUsageError listing the known ones otherwise."""
    try:
        return DESIGNS[name]
    except KeyError:
        raise ModelUsageError(f"unknown design {name!r}; known: {', '.join(DESIGNS)}") from None
