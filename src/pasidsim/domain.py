"""``iommu_domain`` objects and PASID attachment of groups.

A group's ``pasid_array`` maps a PASID to what is attached there (a bare domain or a handle);
attaching programs the PASID-table entry of every PASID-capable device of the group, detaching
puts every one of them back on the blocked domain (entry non-present).  Devices without PASID
support (max_pasids 0) are never programmed.

Kernel sources modeled: drivers/iommu/iommu.c ``iommu_attach_device_pasid()``,
``iommu_detach_device_pasid()``, ``iommu_replace_device_pasid()``, ``iommu_attach_handle_get()``,
``__iommu_set_group_pasid()``, ``iommu_domain_alloc_paging()``, ``iommu_domain_free()``,
``domain_iommu_ops_compatible()``.
"""

from __future__ import annotations

from .errors import EBUSY, EINVAL, ENODEV, ENOENT, EOPNOTSUPP, ModelUsageError, Warn
from .fault import FaultPoint, fault_point
from .hw.cache import flush_domain, flush_pasid
from .iopf import intel_iommu_disable_iopf, intel_iommu_enable_iopf, iopf_flush_pasid
from .mm import mmdrop
from .pasid import pasid_get, pasid_put
from .state import (IOMMU_NO_PASID, Domain, DomainType, HandleKind, PasidEntryMode,
                    SystemState, warn)


def dev_group(s: SystemState, dev: int) -> int:
    """Group index of device ``dev`` (``dev->iommu_group``), -1 when none."""
    return s.config.device_group[dev]


def domain_get(s: SystemState, domain: int) -> Domain:
    """The record of ``domain``; ModelUsageError if it does not exist."""
    rec = s.domains.get(domain)
    if rec is None:
        raise ModelUsageError(f"unknown or freed iommu_domain {domain}")
    return rec


def set_group(s: SystemState, g: int, **changes) -> SystemState:
    """Replace fields of group ``g``."""
    groups = list(s.groups)
    groups[g] = groups[g]._replace(**changes)
    return s._replace(groups=tuple(groups))


def domain_compatible(s: SystemState, dev: int, domain: int) -> bool:
    """``domain_iommu_ops_compatible()``: the domain was allocated by the same IOMMU driver
    (ops family) as the one in front of ``dev``."""
    cfg = s.config
    unit = cfg.device_iommu(dev)
    if unit < 0:
        return False
    return cfg.iommus[s.domains[domain].iommu].ops == cfg.iommus[unit].ops


def new_domain(s: SystemState, rec: Domain) -> tuple[SystemState, int]:
    """Insert a domain record under a fresh id."""
    did = s.next_id
    return s._replace(next_id=did + 1, domains=s.domains.set(did, rec)), did


def iommu_domain_alloc_paging(s: SystemState, dev: int,
                              pasid_compat: bool = True) -> tuple[SystemState, int]:
    """Allocate an UNMANAGED paging domain for ``dev``'s IOMMU.

    Args:
        dev: device index.
        pasid_compat: allocated with ``IOMMU_HWPT_ALLOC_PASID`` (may be attached to PASIDs).
    Returns: the domain id, -ENODEV when the device has no IOMMU, -ENOMEM when the IOMMU
        driver's ``domain_alloc_paging`` fails (fault point DOMAIN_ALLOC_PAGING).
    Models: drivers/iommu/iommu.c ``iommu_paging_domain_alloc_flags()``.
    """
    g = dev_group(s, dev)
    if g < 0:
        return s, -ENODEV
    err = fault_point(FaultPoint.DOMAIN_ALLOC_PAGING)
    if err:
        return s, err
    return new_domain(s, Domain(DomainType.UNMANAGED, s.config.groups[g].iommu,
                                pasid_compat=pasid_compat))


#: Where a freed domain was still in use: the second argument of
#: ``Warn.DOMAIN_USE_AFTER_FREE`` (invariant D1).
DOMAIN_IN_USE_SITES = {1: "the default domain of a group", 2: "the blocking domain of a group",
                       3: "the current domain of a group", 4: "attached at a PASID of a group",
                       5: "programmed in a PASID-table entry",
                       6: "on its mm's list of SVA domains (a bond still uses it)",
                       7: "the domain of an attach handle (a bond or an iommufd attachment)"}


def _domain_in_use(s: SystemState, domain: int) -> int:
    """Where ``domain`` is still in use (a key of :data:`DOMAIN_IN_USE_SITES`, 0 when
    nowhere): a group's default, blocking or current domain, a ``pasid_array`` slot, a
    programmed PASID entry, an mm's SVA domain list, an attach handle."""
    for g in s.groups:
        if domain == g.default_domain:
            return 1
        if domain == g.blocking_domain:
            return 2
        if domain == g.domain:
            return 3
        if any(dom == domain for _p, dom, _h in g.pasid_array):
            return 4
    if any(e[0] == domain for e in s.pasid_table.values()):
        return 5
    rec = s.domains[domain]
    if rec.type == DomainType.SVA:
        m = s.mms.get(rec.mm)
        if m is not None and domain in m.sva_domains:
            return 6
    if any(h.domain == domain for h in s.handles.values()):
        return 7
    return 0


def iommu_domain_free(s: SystemState, domain: int) -> tuple[SystemState, int]:
    """Free a domain; an SVA domain drops the mm_count reference it took (``mmdrop``), which
    may run ``__mmdrop`` and free the mm's PASID.  Returns 0.

    The kernel does not check that the domain is unused: freeing one that a group or a PASID
    entry still points at is a use after free waiting for the next DMA or detach.  The model
    records it as ``Warn.DOMAIN_USE_AFTER_FREE(domain, site)`` (site: a key of
    :data:`DOMAIN_IN_USE_SITES`; invariant D1) and keeps the record, since the IOMMU still
    walks it; nothing else changes.  ModelUsageError for an unknown or already freed domain.
    Models: drivers/iommu/iommu.c ``iommu_domain_free()`` (+ ``mmdrop`` for SVA)."""
    rec = domain_get(s, domain)
    site = _domain_in_use(s, domain)
    if site:
        return warn(s, Warn.DOMAIN_USE_AFTER_FREE, domain, site), 0
    s = flush_domain(s, domain)
    s = s._replace(domains=s.domains.delete(domain))
    if rec.type == DomainType.SVA:
        s = mmdrop(s, rec.mm)
    return s, 0


# -- pasid_array helpers -------------------------------------------------------------------------

def slot_get(s: SystemState, g: int, pasid: int) -> tuple[int, int] | None:
    """``(domain, handle)`` attached at ``pasid`` of group ``g``, or None."""
    for p, dom, h in s.groups[g].pasid_array:
        if p == pasid:
            return dom, h
    return None


def slot_store(s: SystemState, g: int, pasid: int, domain: int, handle: int) -> SystemState:
    """Store (or overwrite) the entry at ``pasid``."""
    arr = [e for e in s.groups[g].pasid_array if e[0] != pasid]
    arr.append((pasid, domain, handle))
    arr.sort()
    return set_group(s, g, pasid_array=tuple(arr))


def slot_erase(s: SystemState, g: int, pasid: int) -> SystemState:
    """``xa_erase(&group->pasid_array, pasid)``."""
    return set_group(s, g, pasid_array=tuple(
        e for e in s.groups[g].pasid_array if e[0] != pasid))


def pasid_devices(s: SystemState, g: int) -> list[int]:
    """Members of group ``g`` that support PASID (max_pasids > 0) and are not fenced for a
    PCI reset (a fenced device is reprogrammed when the reset is done)."""
    cfg = s.config
    return [d for d in cfg.groups[g].devices
            if cfg.max_pasids[d] > 0 and not s.devs[d].reset_depth]


def program_pasid(s: SystemState, dev: int, pasid: int, domain: int) -> SystemState:
    """Hardware: write the PASID-table entry of (dev, pasid) to translate through
    ``domain`` (``set_dev_pasid``).  The device holds a reference on the PASID while it is
    programmed."""
    key = (dev, pasid)
    old = s.pasid_table.get(key)
    if old is None:
        s = pasid_get(s, pasid)
    elif old[0] != domain:
        s = flush_pasid(s, dev, pasid)  # replace: the old domain's translations go
    return s._replace(pasid_table=s.pasid_table.set(key, (domain, int(PasidEntryMode.TRANSLATE))))


def block_pasid(s: SystemState, dev: int, pasid: int) -> SystemState:
    """Hardware: make the (dev, pasid) entry non-present (the blocked domain's
    ``set_dev_pasid``): IOTLB/ATC invalidated and the page-request queue drained for it, so
    the device's reference on the PASID is dropped; then, on VT-d, I/O page faults are
    disabled for the old domain (:func:`iopf_for_domain_remove`).  Policy
    ``iopf_remove_before_teardown`` disables them first (v6.16's order, 17fce9d2336d): the
    device can leave its fault queue before the drain, with groups still queued.
    Models drivers/iommu/intel/iommu.c ``blocking_domain_set_dev_pasid()``
    (``intel_pasid_tear_down_entry()`` then ``iopf_for_domain_remove()``, f0b9d31c6edd)."""
    key = (dev, pasid)
    if key not in s.pasid_table:
        return s
    old = s.pasid_table[key][0]
    early = s.policy.iopf_remove_before_teardown
    if early:
        s = iopf_for_domain_remove(s, old, dev)
    s = s._replace(pasid_table=s.pasid_table.delete(key))
    s = flush_pasid(s, dev, pasid)
    s = iopf_flush_pasid(s, dev, pasid)  # queued page requests handled before release (F2)
    if not early:
        s = iopf_for_domain_remove(s, old, dev)
    return pasid_put(s, pasid)


# -- attach / detach / replace ----------------------------------------------------------------

def _handle_check(s: SystemState, handle: int) -> None:
    """A handle passed to attach/replace is the caller's fresh one, not stored anywhere."""
    if not handle:
        return
    if handle not in s.handles:
        raise ModelUsageError(f"unknown attach handle {handle}")
    if s.handles[handle].kind == HandleKind.SVA and s.handles[handle].domain:
        raise ModelUsageError(f"attach handle {handle} is an SVA bond's (struct iommu_sva, "
                              "iommu_sva_bind_device): only the SVA core attaches it")
    for grp in s.groups:
        for _p, _d, h in grp.pasid_array:
            if h == handle:
                raise ModelUsageError(f"attach handle {handle} is already stored in a slot")


def _pasid_attach_checks(s: SystemState, domain: int, dev: int, pasid: int) -> int:
    g = dev_group(s, dev)
    if g < 0:
        return -ENODEV
    unit = s.config.iommus[s.config.groups[g].iommu]
    if not unit.pasid_ops:
        return -EOPNOTSUPP
    if not domain_compatible(s, dev, domain) or pasid == IOMMU_NO_PASID:
        return -EINVAL
    return 0


def iommu_attach_device_pasid(s: SystemState, domain: int, dev: int, pasid: int,
                              handle: int = 0) -> tuple[SystemState, int]:
    """Attach ``domain`` at ``pasid`` of ``dev``'s whole group.

    Args:
        domain: domain id; dev: device index; pasid: 1 <= pasid < 2**20;
        handle: handle id to store in the slot (0 = store the bare domain).
    Returns: 0; -ENODEV (no group); -EOPNOTSUPP (driver lacks set_dev_pasid);
        -EINVAL (incompatible domain, ``pasid == IOMMU_NO_PASID``, or ``pasid >= max_pasids``
        of some PASID-capable group member); -EBUSY (slot occupied); -ENOMEM when the slot
        cannot be stored (fault point PASID_ARRAY_INSERT) or a member's ``set_dev_pasid``
        fails (fault point SET_DEV_PASID, once per member); -ENODEV from VT-d's
        ``set_dev_pasid`` for a domain with an I/O page-fault handler on a member without
        ATS and PRI (:func:`iopf_for_domain_set`).  On failure nothing changes (the
        members already set are put back on the blocked domain, the slot is released).
    Models: drivers/iommu/iommu.c ``iommu_attach_device_pasid()``, ``__iommu_set_group_pasid()``
    (its unwind of the devices already set).
    """
    domain_get(s, domain)
    _handle_check(s, handle)
    err = _pasid_attach_checks(s, domain, dev, pasid)
    if err:
        return s, err
    g = s.config.device_group[dev]
    cfg = s.config
    if s.groups[g].recovery_cnt:
        return s, -EBUSY  # a member is fenced for a PCI reset
    for d in cfg.groups[g].devices:
        if cfg.max_pasids[d] > 0 and pasid >= cfg.max_pasids[d]:
            return s, -EINVAL
    if slot_get(s, g, pasid) is not None:
        return s, -EBUSY
    err = fault_point(FaultPoint.PASID_ARRAY_INSERT)
    if err:
        return s, err
    for d in pasid_devices(s, g):
        err = fault_point(FaultPoint.SET_DEV_PASID)
        if not err:
            s, err = iopf_for_domain_set(s, domain, d)
        if err:
            return _unwind_set_group_pasid(s, g, pasid, d), err
        s = program_pasid(s, d, pasid, domain)
    if handle:
        s = s._replace(handles=s.handles.set(handle, s.handles[handle]._replace(
            domain=domain, group=g, pasid=pasid)))
    return slot_store(s, g, pasid, domain, handle), 0


def _iopf_handler(s: SystemState, domain: int) -> bool:
    """The domain has an ``iopf_handler``: an SVA domain, or an iommufd hwpt allocated with
    a fault object."""
    d = s.domains.get(domain)
    if d is None:
        return False
    if d.type == DomainType.SVA:
        return True
    o = s.ifd.get(domain)
    return o is not None and bool(o.fault)


def _vtd_iopf(s: SystemState, dev: int) -> bool:
    u = s.config.device_iommu(dev)
    return u >= 0 and s.config.iommus[u].iopf_requires_pri


def iopf_for_domain_set(s: SystemState, domain: int, dev: int) -> tuple[SystemState, int]:
    """The VT-d driver's ``set_dev_pasid`` enables I/O page faults for a domain with an
    ``iopf_handler`` (an SVA domain, an iommufd hwpt with a fault object) on units with
    ``IommuUnit.iopf_requires_pri``: :func:`~pasidsim.iopf.intel_iommu_enable_iopf` counts
    it, registering the device's fault queue at the first, and fails -ENODEV unless PRI was
    enabled at probe (ATS and PRI), so such a domain cannot be attached to a device with
    PASID but no PRI.  arm-smmu-v3 (no PCIe PRI path: a device that cannot stall runs
    without IOPF) and AMD (SVA ``set_dev_pasid`` never checks PRI) accept it, with the
    device's queue registered at probe.  Returns (state, 0 or -ENODEV or -EBUSY).
    Models: drivers/iommu/intel/iommu.h ``iopf_for_domain_set()`` /
    ``iopf_for_domain_replace()``, intel/iommu.c ``intel_iommu_enable_iopf()`` (v6.16+)."""
    if not _vtd_iopf(s, dev) or not _iopf_handler(s, domain):
        return s, 0
    return intel_iommu_enable_iopf(s, dev)


def iopf_for_domain_remove(s: SystemState, domain: int, dev: int) -> SystemState:
    """VT-d: the detach of a domain with an ``iopf_handler`` drops its count; the last
    removes the device from its fault queue.  Models drivers/iommu/intel/iommu.h
    ``iopf_for_domain_remove()`` → ``intel_iommu_disable_iopf()``."""
    if not _vtd_iopf(s, dev) or not _iopf_handler(s, domain):
        return s
    return intel_iommu_disable_iopf(s, dev)


def _unwind_set_group_pasid(s: SystemState, g: int, pasid: int,
                            failed: int) -> SystemState:
    """``__iommu_set_group_pasid()``'s error path: every member set before ``failed`` is put
    back on the blocked domain for ``pasid`` (``iommu_remove_dev_pasid``).  A complete unwind
    gives back the state before the attach (``s0``): the failure-atomicity property checks
    exactly that."""
    for d in pasid_devices(s, g):
        if d == failed:
            break
        s = block_pasid(s, d, pasid)
    return s


def iommu_detach_device_pasid(s: SystemState, domain: int, dev: int,
                              pasid: int) -> tuple[SystemState, int]:
    """Put every PASID-capable member of ``dev``'s group on the blocked domain for ``pasid``
    and erase the slot.  No check that ``domain`` is the one attached (as the kernel).
    Returns 0.  Models: drivers/iommu/iommu.c ``iommu_detach_device_pasid()``."""
    g = dev_group(s, dev)
    if g < 0:
        return s, 0
    for d in pasid_devices(s, g):
        s = block_pasid(s, d, pasid)
    return slot_erase(s, g, pasid), 0


def iommu_replace_device_pasid(s: SystemState, domain: int, dev: int, pasid: int,
                               handle: int) -> tuple[SystemState, int]:
    """Replace what is attached at ``pasid`` with ``domain`` (iommufd).

    Returns 0; -ENODEV, -EOPNOTSUPP, -EINVAL (incompatible, IOMMU_NO_PASID, ``handle == 0``,
    slot empty: "not a replace", or the same handle stored again, which also WARNs); a
    device's ``set_dev_pasid`` error (fault point SET_DEV_PASID, once per member: the devices
    already switched are reverted to the old domain, ``err_revert``).  On failure the old
    attachment stays.
    Models: drivers/iommu/iommu.c ``iommu_replace_device_pasid()`` →
    ``__iommu_set_group_pasid()``.
    """
    domain_get(s, domain)
    err = _pasid_attach_checks(s, domain, dev, pasid)
    if err:
        return s, err
    if not handle:
        return s, -EINVAL
    g = s.config.device_group[dev]
    cfg = s.config
    if s.groups[g].recovery_cnt:
        return s, -EBUSY
    for d in cfg.groups[g].devices:
        if cfg.max_pasids[d] > 0 and pasid >= cfg.max_pasids[d]:
            return s, -EINVAL
    cur = slot_get(s, g, pasid)
    if cur is None:
        return s, -EINVAL
    if cur[1] == handle:
        return warn(s, Warn.REPLACE_SAME_HANDLE, handle), -EINVAL
    _handle_check(s, handle)
    if cur[0] != domain:
        s0 = s
        for d in pasid_devices(s, g):
            # __iommu_set_group_pasid(domain, group, pasid, old): a device's set_dev_pasid
            # fails -> err_revert: the devices already switched go back to the old domain
            err = fault_point(FaultPoint.SET_DEV_PASID)
            if not err:
                s, err = iopf_for_domain_set(s, domain, d)
            if err:
                return s0, err
            old = s.pasid_table[(d, pasid)][0] if (d, pasid) in s.pasid_table else 0
            s = program_pasid(s, d, pasid, domain)
            if old:
                s = iopf_for_domain_remove(s, old, d)  # iopf_for_domain_replace()
    s = s._replace(handles=s.handles.set(handle, s.handles[handle]._replace(
        domain=domain, group=g, pasid=pasid)))
    if cur[1] and cur[1] != handle:
        s = s._replace(handles=s.handles.delete(cur[1]))  # the replaced handle is the caller's
    return slot_store(s, g, pasid, domain, handle), 0


def iommu_attach_handle_get(s: SystemState, group: int, pasid: int,
                            type: int = -1) -> tuple[SystemState, int]:  # noqa: A002
    """The handle attached at ``pasid`` of ``group``.

    Args:
        group: group index; pasid: PASID (0 = the RID slot);
        type: a :class:`DomainType` the handle's domain must have, or -1 for any.
    Returns: the handle id; -ENOENT when the slot is empty or holds a bare domain;
        -EBUSY when the attached domain has another type.
    Models: drivers/iommu/iommu.c ``iommu_attach_handle_get()``.
    """
    cur = slot_get(s, group, pasid)
    if cur is None or cur[1] == 0:
        return s, -ENOENT
    if type >= 0 and s.domains[cur[0]].type != type:
        return s, -EBUSY
    return s, cur[1]
