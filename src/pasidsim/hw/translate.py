"""Translation of PASID-tagged DMA by the software IOMMU.

``dma(dev, pasid, addr, access)``: the device's ATC is looked up first (ATS devices), then the
unit's IOTLB, then the tables are walked: the device's PASID-table entry for PASID DMA (absent =
blocked; QUIESCED = the mm exited: aborted without a fault record), or the group's RID domain for
untagged DMA (``pasid == IOMMU_NO_PASID``).  A walk that misses on an SVA domain of a
PRI-capable device becomes a page request (IOPF) instead of a fault.

Return values of ``dma``: the physical byte address on success; ``-EFAULT`` for a recorded
unrecoverable fault (reason in ``state.faults``: NOT_PRESENT, PERMISSION, BLOCKED); ``-EIO`` for a
transaction aborted silently (QUIESCED); ``-EAGAIN`` when a page request was sent instead.

Hardware modeled: VT-d 4.0 §3.6 (scalable-mode PASID-table walk, FPD), §7.1 (fault recording);
SMMUv3 §3.3 (CD fetch, EPD0 "quiet" CD); PCIe 6.0 §10.4 (PRI page requests).
"""

from __future__ import annotations

from enum import IntEnum, unique

from ..errors import EAGAIN, EFAULT, EIO, ESHUTDOWN
from ..state import (IOMMU_NO_PASID, PAGE_SHIFT, PAGE_SIZE, DomainType, PasidEntryMode,
                     SystemState, Work, queue_work)
from .cache import atc_fill, entry_is_current, iotlb_fill

MAX_FAULT_RECORDS = 8


@unique
class FaultReason(IntEnum):
    """Why a translation failed."""

    NOT_PRESENT = 1  # no mapping for the page
    PERMISSION = 2  # mapping lacks a requested right
    BLOCKED = 3  # RID on a blocked domain, or PASID entry not present
    QUIESCED = 4  # PASID of an exited mm: aborted, not reported


@unique
class Breach(IntEnum):
    """Isolation breaches the hardware observed (invariant I1)."""

    STALE_TRANSLATION = 1  # a cached translation disagreed with the current tables
    FOREIGN_COMPLETION = 2  # a descriptor's DMA landed in an mm other than its submitter's
    MISATTRIBUTED_FAULT = 3  # a stale GPU interrupt was handled as another VM's (H13)


def record_fault(s: SystemState, dev: int, pasid: int, vpage: int,
                 reason: FaultReason) -> SystemState:
    """Append a fault record (the last MAX_FAULT_RECORDS are kept)."""
    faults = (s.faults + ((dev, pasid, vpage, int(reason)),))[-MAX_FAULT_RECORDS:]
    return s._replace(faults=faults)


def breach(s: SystemState, kind: Breach, dev: int, pasid: int, a: int, b: int) -> SystemState:
    """Record an isolation breach."""
    return s._replace(breaches=s.breaches + ((int(kind), dev, pasid, a, b),))


def current_domain(s: SystemState, dev: int, pasid: int) -> tuple[int, int]:
    """``(domain, mode)`` that translates (dev, pasid) now: mode -1 = blocked/none."""
    if s.devs[dev].reset_depth:
        return 0, -1  # fenced for a PCI reset: RID and PASIDs on the blocked domain
    if pasid == IOMMU_NO_PASID:
        g = s.config.device_group[dev]
        dom = s.groups[g].domain
        if not dom or s.domains[dom].type == DomainType.BLOCKED:
            return 0, -1
        return dom, PasidEntryMode.TRANSLATE
    e = s.pasid_table.get((dev, pasid))
    if e is None:
        return 0, -1
    return e[0], e[1]


def translate(s: SystemState, dev: int, pasid: int, addr: int, access: int,
              origin_mm: int = 0) -> tuple[SystemState, int]:
    """Translate one DMA access (see the module docstring for return values).

    Args:
        dev: device index; pasid: PASID, or IOMMU_NO_PASID (0) for untagged DMA;
        addr: I/O virtual byte address; access: PROT_READ/PROT_WRITE bits;
        origin_mm: for a work descriptor, the mm that submitted it (0 = not checked).
    """
    vpage = addr >> 12  # PAGE_SHIFT (literals: this is the hottest line of the simulator)
    if not origin_mm:
        # Fast path: an ATC hit is used by the device without asking the IOMMU.  ATC entries
        # are removed whenever their (dev, PASID) is detached, quiesced or remapped (C1).
        hit = s.atc.get((dev, pasid, vpage))
        if hit is not None and not access & ~hit[1]:
            return s, (hit[0] << 12) | (addr & 0xFFF)
    cfg = s.config
    off = addr & (PAGE_SIZE - 1)
    g = cfg.device_group[dev]
    if g < 0:
        return s, addr  # no IOMMU: bus address == physical address
    dom, mode = current_domain(s, dev, pasid)
    if mode < 0:
        return record_fault(s, dev, pasid, vpage, FaultReason.BLOCKED), -EFAULT
    if mode == PasidEntryMode.QUIESCED:
        return s, -EIO
    d = s.domains[dom]
    if origin_mm and d.type == DomainType.SVA and d.mm != origin_mm:
        s = breach(s, Breach.FOREIGN_COMPLETION, dev, pasid, origin_mm, d.mm)
    if d.type == DomainType.IDENTITY:
        return s, addr
    unit = cfg.groups[g].iommu
    hit = s.atc.get((dev, pasid, vpage))
    if hit is None:
        hit = s.iotlb.get((unit, dom, pasid, vpage))
        if hit is not None and cfg.devices[dev].ats:
            s = atc_fill(s, dev, dom, pasid, vpage, hit[0], hit[1])
    if hit is not None and not access & ~hit[1]:
        if origin_mm and not entry_is_current(s, dom, vpage, hit[0], access):
            s = breach(s, Breach.STALE_TRANSLATION, dev, pasid, vpage, hit[0])
        return s, (hit[0] << PAGE_SHIFT) | off
    if d.type == DomainType.SVA:
        m = s.mms.get(d.mm)
        cur = m.pt.get(vpage) if m is not None else None
    elif d.type == DomainType.NESTED:  # stage 1 taken as the identity: the parent's stage 2
        cur = s.domains[d.parent].iova.get(vpage)
    else:
        cur = d.iova.get(vpage)
    if cur is None or access & ~cur[1]:
        reason = FaultReason.NOT_PRESENT if cur is None else FaultReason.PERMISSION
        faultable = d.type == DomainType.SVA or (s.ifd.get(dom) is not None
                                                 and s.ifd[dom].fault)
        if faultable and cfg.devices[dev].pri:
            # a page request (PRI): the IOMMU's page-request interrupt hands it to the
            # kernel's fault handler (deferred work: the hardware never calls the kernel)
            return queue_work(s, Work.PAGE_REQUEST, dev, pasid, addr, access, 0, 1), -EAGAIN
        return record_fault(s, dev, pasid, vpage, reason), -EFAULT
    s = iotlb_fill(s, unit, dom, pasid, vpage, cur[0], cur[1])
    s = atc_fill(s, dev, dom, pasid, vpage, cur[0], cur[1])
    return s, (cur[0] << PAGE_SHIFT) | off


def dma(s: SystemState, dev: int, pasid: int, addr: int, access: int = 1) -> tuple[SystemState, int]:
    """Device ``dev`` issues a DMA of one access at ``addr`` tagged ``pasid`` (0 = untagged).
    Returns the physical address, -EFAULT, -EIO or -EAGAIN (module docstring); -ESHUTDOWN,
    with no access made, when a driver's release has stopped the device's DMA on ``pasid``
    (``Dev.stopped``: between its drain and its unbind)."""
    if pasid in s.devs[dev].stopped:
        return s, -ESHUTDOWN
    return translate(s, dev, pasid, addr, access)


__all__ = ["FaultReason", "Breach", "translate", "dma", "record_fault", "current_domain",
           "EAGAIN"]
