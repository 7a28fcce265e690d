"""I/O page faults: PCIe page requests (PRI), fault queues and the IOPF worker.

A page request carries (PASID, page, access, group index, last-page flag).  Requests without the
last flag wait in the device's partial list; the last one closes its group, which is queued for
the worker.  The worker resolves each request of the group against the bound mm (alive, a VMA
with the rights, populated by ``handle_mm_fault``), stops at the first failure (sticky status),
and sends exactly one response for the group.  Before a PASID is released its pending groups are
flushed (handled while the domain is still attached), so no queued fault can reach the next
owner of the PASID.  Removing a device from the queue answers every pending group INVALID.

Kernel sources modeled: drivers/iommu/io-pgfault.c ``iommu_report_device_fault()``,
``iopf_queue_flush_dev()``, ``iopf_queue_add_device()``, ``iopf_queue_remove_device()``,
``iopf_group_response()``; drivers/iommu/iommu-sva.c ``iommu_sva_handle_iopf()``.
"""

from __future__ import annotations

from enum import IntEnum, unique
from typing import NamedTuple

from .errors import EBUSY, EINVAL, ENODEV, ENOMEM, Warn
from .mem import handle_mm_fault
from .mm import mmget_not_zero
from .state import PAGE_SHIFT, DomainType, IfdFault, PasidEntryMode, SystemState, warn

MAX_RESPONSES = 16


@unique
class IopfResponse(IntEnum):
    """``enum iommu_page_response_code``."""

    SUCCESS = 0
    INVALID = 1
    FAILURE = 2


class IopfGroup(NamedTuple):
    """A page-request group waiting for the worker: id (unique), pasid, grpid, faults
    ((vpage, access) pairs, last one last) and the domain whose handler takes it."""

    id: int
    pasid: int
    grpid: int
    faults: tuple
    domain: int


class IopfQueue(NamedTuple):
    """``iommu_fault_param`` of one device: registered, partial requests
    ((pasid, grpid, vpage, access)), pending groups, and the VT-d driver's
    ``iopf_refcount`` (domains with an ``iopf_handler`` attached to the device, on units
    with ``IommuUnit.iopf_requires_pri``); stale: groups that ``iopf_queue_remove_device``
    answered and freed while their work item was still queued for the worker."""

    registered: bool = True
    partial: tuple = ()
    groups: tuple = ()
    refcount: int = 0
    stale: tuple = ()


def _refcounted(s: SystemState, dev: int) -> bool:
    """The device's queue is registered by the VT-d driver at the first attach of a domain
    with an ``iopf_handler`` and removed at the last detach (v6.16+), not at probe."""
    u = s.config.device_iommu(dev)
    return u >= 0 and s.config.iommus[u].iopf_requires_pri


def _queue(s: SystemState, dev: int) -> IopfQueue | None:
    q = s.iopf.get(dev)
    if q is None:
        return IopfQueue() if s.config.devices[dev].pri and not _refcounted(s, dev) else None
    return q if q.registered else None


def _set_queue(s: SystemState, dev: int, q: IopfQueue) -> SystemState:
    return s._replace(iopf=s.iopf.set(dev, q))


def iopf_group_response(s: SystemState, dev: int, pasid: int, grpid: int,
                        code: IopfResponse) -> SystemState:
    """The one page response of a group (``iopf_group_response`` → the IOMMU driver's
    ``page_response``): recorded in ``SystemState.responses`` (the last few)."""
    return s._replace(responses=(s.responses + ((dev, pasid, grpid, int(code)),))[-MAX_RESPONSES:])


_respond = iopf_group_response


def iommufd_fault_of(s: SystemState, dom: int) -> int:
    """The iommufd fault object that takes ``dom``'s I/O page faults (a hwpt allocated with
    ``IOMMU_HWPT_FAULT_ID_VALID``), or 0."""
    o = s.ifd.get(dom)
    return o.fault if o is not None else 0


def _handler(s: SystemState, dev: int, pasid: int) -> tuple[int, int]:
    """``(domain, handle)`` whose ``iopf_handler`` takes page requests at ``pasid``: an SVA
    domain, or an iommufd hwpt with a fault object; ``(0, 0)`` for none."""
    g = s.config.device_group[dev]
    if g < 0:
        return 0, 0
    for p, dom, h in s.groups[g].pasid_array:
        if p == pasid:
            d = s.domains.get(dom)
            if d is not None and (d.type == DomainType.SVA or iommufd_fault_of(s, dom)):
                return dom, h
            return 0, 0
    return 0, 0


def _handler_domain(s: SystemState, dev: int, pasid: int) -> int:
    return _handler(s, dev, pasid)[0]


def iommu_report_device_fault(s: SystemState, dev: int, pasid: int, addr: int, access: int = 1,
                              grpid: int = 0, last: int = 1,
                              oom: int = 0) -> tuple[SystemState, int]:
    """The IOMMU reports a page request from ``dev``.

    Args: pasid; addr (byte address); access PROT_* bits; grpid: page-request group index;
        last: the last-page flag; oom: model an allocation failure (-ENOMEM for a partial
        request, a FAILURE response for a last one).
    Returns 0 (queued, or answered FAILURE); -EINVAL when no handler is attached at the PASID
        (a last request is answered INVALID at once) or the device has no fault queue.
    Models: drivers/iommu/io-pgfault.c ``iommu_report_device_fault()``.
    """
    q = _queue(s, dev)
    dom, handle = _handler(s, dev, pasid)
    vpage = addr >> PAGE_SHIFT
    if q is None or not dom:
        if last:
            s = _respond(s, dev, pasid, grpid, IopfResponse.INVALID)
        return s, -EINVAL
    if not last:
        if oom:
            return s, -ENOMEM
        return _set_queue(s, dev, q._replace(partial=q.partial + ((pasid, grpid, vpage, access),))), 0
    mine = tuple((p[2], p[3]) for p in q.partial if p[0] == pasid and p[1] == grpid)
    rest = tuple(p for p in q.partial if not (p[0] == pasid and p[1] == grpid))
    if oom:
        s = _set_queue(s, dev, q._replace(partial=rest))
        return _respond(s, dev, pasid, grpid, IopfResponse.FAILURE), 0
    fault = iommufd_fault_of(s, dom)
    if fault:
        # iommufd_fault_iopf_handler(): the whole group goes to the fault object's queue, for
        # user space to read and answer by cookie (pasidsim.iommufd)
        f = s.ifd[fault]
        rec = IfdFault(0, dev, pasid, grpid, len(mine) + 1, handle)
        s = s._replace(ifd=s.ifd.set(fault, f._replace(faults=f.faults + (rec,))))
        return _set_queue(s, dev, q._replace(partial=rest)), 0
    gid = s.next_id
    group = IopfGroup(gid, pasid, grpid, mine + ((vpage, access),), dom)
    s = s._replace(next_id=gid + 1)
    return _set_queue(s, dev, q._replace(partial=rest, groups=q.groups + (group,))), 0


def _handle_group(s: SystemState, dev: int, group: IopfGroup) -> SystemState:
    """``iommu_sva_handle_iopf``: sticky status over the group, one response."""
    status = IopfResponse.SUCCESS
    d = s.domains.get(group.domain)
    e = s.pasid_table.get((dev, group.pasid))
    quiesced = e is not None and e[1] == PasidEntryMode.QUIESCED
    for vpage, access in group.faults:
        if d is None or quiesced:
            status = IopfResponse.INVALID
            break
        s2, alive = mmget_not_zero(s, d.mm)
        if not alive:
            status = IopfResponse.INVALID
            break
        s2, pfn = handle_mm_fault(s, d.mm, vpage, access)  # the mmget is put at once
        if pfn < 0:
            status = IopfResponse.INVALID
            break
        s = s2
    return _respond(s, dev, group.pasid, group.grpid, status)


def iopf_handle(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """The IOPF worker takes the oldest queued work item of ``dev``: a pending group, which
    it handles and answers, or a group already freed by ``iopf_queue_remove_device``
    (WARN ``IOPF_GROUP_USE_AFTER_FREE``, invariant F3; no response is sent; returns 0).
    Returns the response code (0 SUCCESS, 1 INVALID), or -ENODEV when nothing is pending.
    Models ``iopf_handler()`` → ``iommu_sva_handle_iopf()`` on the IOPF workqueue."""
    raw = s.iopf.get(dev)
    if raw is not None and raw.stale:
        # the work item of a group iopf_queue_remove_device() already freed: the worker
        # runs iommu_sva_handle_iopf() on freed memory ("refcount_t: underflow;
        # use-after-free" in iopf_free_group, the report fixed by 17fce9d2336d's follow-up)
        g = raw.stale[0]
        s = _set_queue(s, dev, raw._replace(stale=raw.stale[1:]))
        return warn(s, Warn.IOPF_GROUP_USE_AFTER_FREE, dev, g.pasid), 0
    q = _queue(s, dev)
    if q is None or not q.groups:
        return s, -ENODEV
    group = q.groups[0]
    s = _set_queue(s, dev, q._replace(groups=q.groups[1:]))
    s = _handle_group(s, dev, group)
    return s, s.responses[-1][3]


def iopf_flush_pasid(s: SystemState, dev: int, pasid: int) -> SystemState:
    """Handle every pending group of (dev, pasid) now (the flush before a PASID is
    released), while its domain is still attached."""
    q = s.iopf.get(dev)
    if q is None or not q.registered or not any(g.pasid == pasid for g in q.groups):
        return s
    mine = [g for g in q.groups if g.pasid == pasid]
    s = _set_queue(s, dev, q._replace(groups=tuple(g for g in q.groups if g.pasid != pasid),
                                      partial=tuple(p for p in q.partial if p[0] != pasid)))
    for g in mine:
        s = _handle_group(s, dev, g)
    return s


def iopf_queue_flush_dev(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """Run the worker until ``dev`` has no pending group.  WARN and -ENODEV when the device
    has no fault queue (H18).  Models ``iopf_queue_flush_dev()``."""
    q = _queue(s, dev)
    if q is None:
        return warn(s, Warn.IOPF_FLUSH_NO_PARAM, dev), -ENODEV
    while s.iopf.get(dev) is not None and (s.iopf[dev].groups or s.iopf[dev].stale):
        s, _ = iopf_handle(s, dev)
    return s, 0


def iopf_queue_add_device(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """Register ``dev``'s fault queue.  -ENODEV without PRI; -EBUSY if registered.
    Models ``iopf_queue_add_device()``."""
    if not s.config.devices[dev].pri:
        return s, -ENODEV
    if _queue(s, dev) is not None:
        return s, -EBUSY
    old = s.iopf.get(dev)
    if old is None:
        return _set_queue(s, dev, IopfQueue()), 0
    return _set_queue(s, dev, IopfQueue(stale=old.stale, refcount=old.refcount)), 0


def iopf_queue_remove_device(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """Unregister: partial requests dropped, every pending group answered INVALID once and
    freed (since the Jan 2025 leak fix), later reports fail -EINVAL.  A freed group whose
    work item is still queued is kept in ``stale``: when the worker runs it, it uses freed
    memory (:func:`iopf_handle`).  The kernel's caller must flush first
    (``iopf_queue_flush_dev``, or the VT-d PASID tear-down's PRQ drain).  Returns 0.
    Models ``iopf_queue_remove_device()`` (drivers/iommu/io-pgfault.c)."""
    q = _queue(s, dev)
    if q is None:
        return s, 0
    for g in q.groups:
        s = _respond(s, dev, g.pasid, g.grpid, IopfResponse.INVALID)
    # the VT-d driver's iopf_refcount lives in device_domain_info, not in the queue: kept
    return _set_queue(s, dev, IopfQueue(registered=False, stale=q.stale + q.groups,
                                        refcount=q.refcount)), 0


def intel_iommu_enable_iopf(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """VT-d (v6.16+): count a domain with an ``iopf_handler`` attached to ``dev``
    (``info->iopf_refcount``, kept apart from the queue); the first registers the device's
    fault queue.  -ENODEV unless PRI was enabled at probe (ATS and PRI); -EBUSY when, at the
    first, the queue was registered by someone else (``iopf_queue_add_device``).
    Models drivers/iommu/intel/iommu.c ``intel_iommu_enable_iopf()``."""
    c = s.config.devices[dev]
    if not (c.ats and c.pri):
        return s, -ENODEV
    q = s.iopf.get(dev)
    if q is not None and q.refcount:  # counted only: the queue is not looked at again
        return _set_queue(s, dev, q._replace(refcount=q.refcount + 1)), 0
    s, err = iopf_queue_add_device(s, dev)
    if err:
        return s, err
    return _set_queue(s, dev, s.iopf[dev]._replace(refcount=1)), 0


def intel_iommu_disable_iopf(s: SystemState, dev: int) -> SystemState:
    """VT-d: drop one count; the last removes the device from its fault queue
    (:func:`iopf_queue_remove_device`: groups still pending are answered and freed).  No
    count to drop: WARN ``IOPF_DISABLE_UNBALANCED``, no change.
    Models drivers/iommu/intel/iommu.c ``intel_iommu_disable_iopf()``."""
    q = s.iopf.get(dev)
    if q is None or not q.refcount:
        # WARN_ON(!info->pri_enabled || !info->iopf_refcount): no change
        return warn(s, Warn.IOPF_DISABLE_UNBALANCED, dev, 0)
    if q.refcount > 1:
        return _set_queue(s, dev, q._replace(refcount=q.refcount - 1))
    s = _set_queue(s, dev, q._replace(refcount=0))
    s = iopf_queue_remove_device(s, dev)[0]  # a no-op when a caller removed it already
    q = s.iopf[dev]
    if not q.stale and not q.registered:
        s = s._replace(iopf=s.iopf.delete(dev))  # the fault param is freed: as before the add
    return s


__all__ = ["IopfResponse", "IopfGroup", "IopfQueue", "iommu_report_device_fault",
           "iopf_group_response", "iommufd_fault_of",
           "iopf_handle", "iopf_flush_pasid", "iopf_queue_flush_dev", "iopf_queue_add_device",
           "iopf_queue_remove_device", "intel_iommu_enable_iopf", "intel_iommu_disable_iopf",
           "EINVAL"]
