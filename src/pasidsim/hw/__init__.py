"""The hardware half: a software IOMMU and devices issuing PASID-tagged DMA.

Hardware state lives in :class:`~pasidsim.state.SystemState` like the rest, and hardware events
are operations of the one :func:`~pasidsim.step.step`:

- ``dma``, ``wq_submit``, ``dma_complete``, ``wq_drain`` (:mod:`.translate`, :mod:`.wq`);
- ``iommu_report_device_fault``, ``iopf_handle``, ``iopf_queue_flush_dev``,
  ``iopf_queue_add_device``, ``iopf_queue_remove_device`` (:mod:`.iopf`);
- ``mmap_anon``, ``touch``, ``mprotect``, ``munmap_range``, ``iommu_map``, ``iommu_unmap``
  (:mod:`.mem`).

:func:`enabled_events` lists the hardware events that may happen next in a state (for the
model checker and the scenario runner).
"""

from __future__ import annotations

from ..state import SystemState


def enabled_events(s: SystemState) -> list:
    """Hardware events that may happen next, in a deterministic order: completion of each
    queued descriptor (oldest first), the IOPF worker for each device with a pending group,
    the GPU interrupt handler for each device with IH-ring entries, and the signalling of each
    unsignalled fence.  Returns :class:`~pasidsim.step.Action`s."""
    from ..step import OP_BY_NAME, Action
    out = []
    complete = OP_BY_NAME["dma_complete"].code
    for desc in sorted(s.inflight.keys()):
        out.append(Action(complete, (desc,)))
    handle = OP_BY_NAME["iopf_handle"].code
    for dev, q in sorted(s.iopf.items()):
        if q.groups:
            out.append(Action(handle, (dev,)))
    ih = OP_BY_NAME["amdgpu_ih_process"].code
    for dev in sorted({e[0] for e in s.ih_ring}):
        out.append(Action(ih, (dev,)))
    signal = OP_BY_NAME["dma_fence_signal"].code
    for fence, done in sorted(s.fences.items()):
        if not done:
            out.append(Action(signal, (fence,)))
    return out


__all__ = ["enabled_events"]
