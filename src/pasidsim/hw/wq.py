"""Device work queues: descriptors in flight, completion and drain.

A descriptor is tagged with a PASID when it is queued: by the driver for a dedicated work queue
(``wq_submit``), or by the CPU's ENQCMD from the submitting thread's IA32_PASID for a shared work
queue.  While queued it holds a device reference on its PASID.  Its DMA (the completion-record
write) happens when the hardware completes it (``dma_complete``), at any time until the queue is
drained: translation happens *then*, through whatever is attached at that PASID at that moment.
``wq_drain`` completes (or, with ``abort``, discards) everything queued for a PASID — what a
driver's release does before unbinding (idxd "Drain PASID", uacce stop queue).

Hardware modeled: Intel DSA architecture specification §3.x (dedicated/shared WQs, Drain PASID
command), ENQCMD (Intel SDM), HiSilicon QM queue stop.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import EINVAL, ESHUTDOWN
from ..lifecycle import CREATE, DescLc, Lifecycle, WqLc, transition
from ..pasid import pasid_get, pasid_put  # the device's references on a PASID
from ..state import IOMMU_NO_PASID, PROT_WRITE, DomainType, SystemState
from .translate import translate


class Desc(NamedTuple):
    """A queued work descriptor: dev, pasid, addr (completion-record byte address), access,
    mm (the submitter's address space, 0 = unknown/kernel), swq (via ENQCMD)."""

    dev: int
    pasid: int
    addr: int
    access: int
    mm: int
    swq: bool


def submit(s: SystemState, dev: int, pasid: int, addr: int, access: int, mm: int,
           swq: bool) -> tuple[SystemState, int]:
    """Queue a descriptor; returns its id."""
    did = s.next_id
    transition(Lifecycle.DESC, CREATE, DescLc.QUEUED)
    s = s._replace(next_id=did + 1, inflight=s.inflight.set(did, Desc(dev, pasid, addr, access, mm, swq)))
    if pasid != IOMMU_NO_PASID:
        s = pasid_get(s, pasid)
    return s, did


def wq_submit(s: SystemState, dev: int, pasid: int, addr: int = 0,
              access: int = PROT_WRITE) -> tuple[SystemState, int]:
    """Queue a descriptor on a dedicated work queue of ``dev`` for ``pasid`` (the PASID the
    driver programmed in the queue); its DMA will write ``addr``.  The submitter is taken to be
    the mm bound at (dev, pasid) now.  Returns the descriptor id, or -ESHUTDOWN when a
    driver's release has stopped the queue for ``pasid`` (``Dev.stopped``): nothing is queued."""
    if pasid in s.devs[dev].stopped:
        return s, -ESHUTDOWN
    mm = 0
    e = s.pasid_table.get((dev, pasid))
    if e is not None:
        d = s.domains.get(e[0])
        if d is not None and d.type == DomainType.SVA:
            mm = d.mm
    return submit(s, dev, pasid, addr, access, mm, False)


def _finish(s: SystemState, desc: int, perform: bool) -> tuple[SystemState, int]:
    d = s.inflight[desc]
    transition(Lifecycle.DESC, DescLc.QUEUED, DescLc.COMPLETED if perform else DescLc.ABORTED)
    s = s._replace(inflight=s.inflight.delete(desc))
    ret = 0
    if perform:
        s, ret = translate(s, d.dev, d.pasid, d.addr, d.access, origin_mm=d.mm)
    if d.pasid != IOMMU_NO_PASID:
        s = pasid_put(s, d.pasid)
    return s, ret


def dma_complete(s: SystemState, desc: int) -> tuple[SystemState, int]:
    """The device executes queued descriptor ``desc`` now: its DMA is translated through what
    is attached at its PASID at this moment.  Returns the physical address written, or the
    translation's negative result (-EFAULT, -EIO, -EAGAIN); -EINVAL for an unknown id."""
    if desc not in s.inflight:
        return s, -EINVAL
    return _finish(s, desc, True)


def wq_drain(s: SystemState, dev: int, pasid: int, abort: int = 0) -> tuple[SystemState, int]:
    """Drain every descriptor of (dev, pasid): complete each in order (or discard it with
    ``abort``).  Returns how many were drained."""
    mine = sorted(k for k, d in s.inflight.items() if d.dev == dev and d.pasid == pasid)
    transition(Lifecycle.WQ, WqLc.QUEUED if mine else WqLc.IDLE, WqLc.DRAINING)
    for k in mine:
        transition(Lifecycle.WQ, WqLc.DRAINING, WqLc.DRAINING)
        s, _ = _finish(s, k, not abort)
    transition(Lifecycle.WQ, WqLc.DRAINING, WqLc.IDLE)
    return s, len(mine)
