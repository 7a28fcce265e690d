"""iommufd: device binding with DMA ownership, HW page tables, RID and PASID attach.

Objects.  Contexts and idevs have no table of their own; every other object is an
:class:`~pasidsim.state.IfdObj` in ``SystemState.ifd`` with its ``obj->users`` count:

- **ictx** (``struct iommufd_ctx``): an opaque id drawn from ``next_id``
  (:func:`iommufd_ctx_create`).  It is the DMA-owner cookie of every group whose devices are
  bound to it (``iommu_device_claim_dma_owner(dev, ictx)``), so ``group.owner`` says which
  context owns a group.  Objects of another context are not found (-ENOENT).
- **idev** (``struct iommufd_device``): a :class:`~pasidsim.state.File` record with
  ``drvdata = ictx``: the vfio device cdev file after ``VFIO_DEVICE_BIND_IOMMUFD``
  (:func:`pasidsim.drivers.vfio.vfio_device_bind_iommufd`), or, for in-kernel/selftest users of
  :func:`iommufd_device_bind`, a file held by the context itself (``mm = 0``, in no fd table).
- **IOAS** (:func:`iommufd_ioas_alloc`); its mappings are not modelled.  ``IOMMU_DESTROY``
  fails -EBUSY while a hwpt is built on it.
- **hwpt**: ``HWPT_PAGING`` (an UNMANAGED :class:`~pasidsim.state.Domain` over an IOAS, with
  ``pasid_compat`` = ``IOMMU_HWPT_ALLOC_PASID`` and maybe NEST_PARENT) or ``HWPT_NESTED`` (a
  NESTED domain over a NEST_PARENT hwpt or a vIOMMU); the object id is the domain id.  An
  *automatic* hwpt is one iommufd made for an attach by IOAS id; it goes with its last
  attachment.  A hwpt allocated with a fault id delivers its I/O page faults to that
  **fault** object (:func:`iommufd_fault_alloc`), read and answered by cookie from user
  space (:func:`iommufd_fault_fops_read`, :func:`iommufd_fault_fops_write`) and answered INVALID
  automatically on detach and destroy.
- **vIOMMU** (:func:`iommufd_viommu_alloc`), as far as nested PASID attach needs it.
- **attach** (``struct iommufd_attach`` per (group, PASID)): the ``iommufd_attach_handle``
  stored in the group's ``pasid_array`` slot (PASID 0 = the RID, through the
  ``*_group_handle`` APIs), a :class:`~pasidsim.state.Handle` of kind IOMMUFD with ``users`` =
  number of devices attached and ``drvdata`` = bitmask ``1 << dev`` of those devices
  (``attach->device_array``).  The group is attached once, by its first device; the others
  are only recorded.  Each attached (device, PASID) holds one hwpt reference.

Kernel sources modeled (v6.17): drivers/iommu/iommufd/device.c ``iommufd_device_bind/unbind``,
``iommufd_hwpt_pasid_compat``, ``iommufd_hw_pagetable_attach/detach``,
``iommufd_device_do_replace``, ``iommufd_device_change_pt``,
``iommufd_device_auto_get_domain``, ``iommufd_get_hw_info``; hw_pagetable.c
``iommufd_hwpt_alloc``, ``iommufd_hwpt_paging_alloc``, ``iommufd_hwpt_nested_alloc``;
viommu.c ``iommufd_viommu_alloc_ioctl``; eventq.c ``iommufd_fault_alloc``,
``iommufd_fault_fops_read/write``, ``iommufd_auto_response_faults``; main.c
``iommufd_destroy``; drivers/iommu/iommu.c ``iommu_attach_group_handle``,
``iommu_replace_group_handle``, ``iommu_detach_group_handle``.  Exact errors are those of
kernel-spec §4.4, §4.6, §5.1 (conformance U-01..U-04) and of the v6.17 source where §5.1 is
silent (the attach check order, automatic domains, object lookup errors).

This module also registers, with :func:`pasidsim.step.register_op` (step imports it last, so
opcodes stay stable), the new operations of the driver plug-ins:

- kernel: ``iommufd_ctx_create``, ``iommufd_ioas_alloc``, ``iommufd_hwpt_alloc``,
  ``iommufd_hwpt_destroy``, ``iommufd_destroy``, ``iommufd_viommu_alloc``,
  ``iommufd_fault_alloc``, ``iommufd_fault_fops_read``, ``iommufd_fault_fops_write``,
  ``iommufd_get_hw_info``,
  ``iommufd_device_bind``, ``iommufd_device_unbind``, ``iommufd_device_attach``,
  ``iommufd_device_replace``, ``iommufd_device_detach``, ``vfio_group_get_status``,
  ``vfio_group_set_container``, ``vfio_group_unset_container``;
- process: ``vfio_device_bind_iommufd(tid, fd, ictx)``, ``amdgpu_cs_submit(tid, fd)``.
"""

from __future__ import annotations

from .domain import (dev_group, iommu_attach_device_pasid, iommu_detach_device_pasid,
                     iommu_domain_alloc_paging, iommu_domain_free, iommu_replace_device_pasid,
                     new_domain, slot_erase, slot_get, slot_store)
from .errors import EAGAIN, EBUSY, EINVAL, ENODEV, ENOENT, EOPNOTSUPP
from .group import (_set_domain, __iommu_attach_group, iommu_detach_group,  # noqa: F401
                    iommu_device_claim_dma_owner, iommu_device_release_dma_owner)
from .iopf import IopfResponse, iopf_group_response
from .ops_tables import dev_driver_ops
from .state import (IFD_AUTO_DOMAIN, IFD_NEST_PARENT, IOMMU_NO_PASID, Domain, DomainType, File,
                    Handle, HandleKind, IfdKind, IfdObj, SystemState)

# -- group-handle API (the RID slot, pasid_array[IOMMU_NO_PASID]) -----------------------------


def _set_handle(s: SystemState, handle: int, **changes) -> SystemState:
    return s._replace(handles=s.handles.set(handle, s.handles[handle]._replace(**changes)))


def iommu_attach_group_handle(s: SystemState, domain: int, group: int,
                              handle: int) -> tuple[SystemState, int]:
    """Attach ``domain`` to the RID of every device of ``group`` and record ``handle`` at
    ``pasid_array[IOMMU_NO_PASID]``.

    Returns 0; -EINVAL (no handle; incompatible domain); -EBUSY (RID slot in use, or another
    non-core domain attached).  On failure nothing changes.
    Models: drivers/iommu/iommu.c ``iommu_attach_group_handle()``.
    """
    if not handle:
        return s, -EINVAL
    if slot_get(s, group, IOMMU_NO_PASID) is not None:
        return s, -EBUSY
    s2, ret = __iommu_attach_group(s, domain, group)
    if ret:
        return s, ret
    s2 = _set_handle(s2, handle, domain=domain, group=group, pasid=IOMMU_NO_PASID)
    return slot_store(s2, group, IOMMU_NO_PASID, domain, handle), 0


def iommu_replace_group_handle(s: SystemState, domain: int, group: int,
                               handle: int) -> tuple[SystemState, int]:
    """Switch the RID of ``group`` to ``domain`` and store ``handle`` in the RID slot; the
    handle it replaces is the caller's and is freed.  Returns 0; -EINVAL (no domain or handle,
    or the domain cannot be set); on failure the old attachment stays.
    Models: drivers/iommu/iommu.c ``iommu_replace_group_handle()``."""
    if not domain or not handle:
        return s, -EINVAL
    old = slot_get(s, group, IOMMU_NO_PASID)
    s2, ret = _set_domain(s, group, domain)
    if ret:
        return s, ret
    s2 = _set_handle(s2, handle, domain=domain, group=group, pasid=IOMMU_NO_PASID)
    if old is not None and old[1] and old[1] != handle:
        s2 = s2._replace(handles=s2.handles.delete(old[1]))
    return slot_store(s2, group, IOMMU_NO_PASID, domain, handle), 0


def iommu_detach_group_handle(s: SystemState, domain: int, group: int) -> SystemState:
    """Put ``group`` back on its core domain (blocking while user-owned) and erase the RID
    slot.  The handle stays the caller's.  Models ``iommu_detach_group_handle()``."""
    s, _ = iommu_detach_group(s, domain, group)
    return slot_erase(s, group, IOMMU_NO_PASID)


# -- objects ----------------------------------------------------------------------------------


def _obj(s: SystemState, oid: int, *kinds: int) -> IfdObj | None:
    o = s.ifd.get(oid)
    return o if o is not None and (not kinds or o.kind in kinds) else None


def _set_obj(s: SystemState, oid: int, o: IfdObj) -> SystemState:
    return s._replace(ifd=s.ifd.set(oid, o))


def _ref(s: SystemState, oid: int, delta: int) -> SystemState:
    """``refcount_add``/``refcount_dec`` of ``obj->users`` (no object: no change)."""
    o = s.ifd.get(oid)
    return s if o is None else _set_obj(s, oid, o._replace(users=o.users + delta))


def _ctx_ok(s: SystemState, ictx: int) -> bool:
    return 0 < ictx < s.next_id


def iommufd_ctx_create(s: SystemState) -> tuple[SystemState, int]:
    """``open("/dev/iommu")``: a new iommufd context.  Returns its id (> 0).
    Models: drivers/iommu/iommufd/main.c ``iommufd_fops_open``."""
    return s._replace(next_id=s.next_id + 1), s.next_id


def iommufd_ioas_alloc(s: SystemState, ictx: int) -> tuple[SystemState, int]:
    """``IOMMU_IOAS_ALLOC``: an I/O address space object of context ``ictx`` (its mappings are
    not modelled).  Returns its id; -EINVAL for a bad context.
    Models: ioas.c ``iommufd_ioas_alloc_ioctl``."""
    if not _ctx_ok(s, ictx):
        return s, -EINVAL
    oid = s.next_id
    return _set_obj(s._replace(next_id=oid + 1), oid, IfdObj(IfdKind.IOAS, ictx)), oid


def _hwpt_paging_alloc(s: SystemState, ioas: int, dev: int, pasid_compat: bool,
                       nest_parent: bool, fault_id: int, auto: bool) -> tuple[SystemState, int]:
    """``iommufd_hwpt_paging_alloc``: -EOPNOTSUPP (FAULT_ID_VALID with NEST_PARENT); -ENOENT
    (``fault_id`` not a fault object); the domain allocation's errors.  The hwpt holds its
    IOAS and its fault object."""
    if fault_id and nest_parent:
        return s, -EOPNOTSUPP
    if fault_id and _obj(s, fault_id, IfdKind.FAULT) is None:
        return s, -ENOENT
    s0 = s
    s, dom = iommu_domain_alloc_paging(s, dev, pasid_compat)
    if dom < 0:
        return s0, dom
    flags = (IFD_NEST_PARENT if nest_parent else 0) | (IFD_AUTO_DOMAIN if auto else 0)
    s = _set_obj(s, dom, IfdObj(IfdKind.HWPT_PAGING, s.ifd[ioas].ictx, parent=ioas,
                                fault=fault_id, flags=flags))
    s = _ref(_ref(s, ioas, 1), fault_id, 1)
    return s, dom


def _hwpt_nested_alloc(s: SystemState, pt_id: int, dev: int, pasid_compat: bool,
                       nest_parent: bool, fault_id: int) -> tuple[SystemState, int]:
    """``iommufd_hwpt_nested_alloc`` / ``iommufd_viommu_alloc_hwpt_nested``: a NESTED domain
    whose stage 2 is a NEST_PARENT paging hwpt (directly, or the one of vIOMMU ``pt_id``)."""
    o = s.ifd[pt_id]
    if nest_parent:  # flags & ~(FAULT_ID_VALID | ALLOC_PASID)
        return s, -EOPNOTSUPP
    parent = o.parent if o.kind == IfdKind.VIOMMU else pt_id
    p = s.ifd[parent]
    g = dev_group(s, dev)
    if g < 0:
        return s, -ENODEV
    unit = s.config.groups[g].iommu
    if o.kind == IfdKind.HWPT_PAGING and (p.flags & IFD_AUTO_DOMAIN
                                         or not p.flags & IFD_NEST_PARENT):
        return s, -EINVAL
    if s.domains[parent].iommu != unit:  # another IOMMU instance owns the parent
        return s, -EINVAL
    if fault_id and _obj(s, fault_id, IfdKind.FAULT) is None:
        return s, -ENOENT
    s, dom = new_domain(s, Domain(DomainType.NESTED, unit, pasid_compat=pasid_compat,
                                  parent=parent))
    s = _set_obj(s, dom, IfdObj(IfdKind.HWPT_NESTED, o.ictx, parent=pt_id, fault=fault_id))
    return _ref(_ref(s, pt_id, 1), fault_id, 1), dom


def iommufd_hwpt_alloc(s: SystemState, ioas: int, dev: int, pasid_compat: bool = True,
                       nest_parent: bool = False, fault_id: int = 0) -> tuple[SystemState, int]:
    """``IOMMU_HWPT_ALLOC`` for ``dev``'s IOMMU over object ``ioas`` (the ioctl's ``pt_id``).

    What ``pt_id`` names decides what is allocated: an IOAS → a paging hwpt (an UNMANAGED
    domain); a NEST_PARENT paging hwpt, or a vIOMMU → a nested hwpt (a NESTED domain: user
    stage 1 over that stage 2; the user data is taken as given).

    Args:
        pasid_compat: ``IOMMU_HWPT_ALLOC_PASID``: may be attached at PASIDs, and at the RID
            while PASIDs are attached.
        nest_parent: ``IOMMU_HWPT_ALLOC_NEST_PARENT`` (paging hwpts only).
        fault_id: with ``IOMMU_HWPT_FAULT_ID_VALID``: the fault object that receives this
            hwpt's I/O page faults (0: none).
    Returns: the hwpt id (also its domain id); -EINVAL (``pt_id`` is missing or neither an IOAS,
        a paging hwpt nor a vIOMMU; a nested parent that is an automatic domain, lacks
        NEST_PARENT or belongs to another IOMMU); -EOPNOTSUPP (NEST_PARENT with a fault id, or
        on a nested hwpt); -ENOENT (``fault_id`` is not a fault object); -ENODEV (no IOMMU);
        the domain allocation's errors.  Nothing changes on failure.
    Models: drivers/iommu/iommufd/hw_pagetable.c ``iommufd_hwpt_alloc`` →
    ``iommufd_hwpt_paging_alloc`` / ``iommufd_hwpt_nested_alloc`` /
    ``iommufd_viommu_alloc_hwpt_nested``.
    """
    o = s.ifd.get(ioas)
    if o is None:
        return s, -EINVAL  # iommufd_get_object(..., IOMMUFD_OBJ_ANY) failed: rc = -EINVAL
    if o.kind == IfdKind.IOAS:
        return _hwpt_paging_alloc(s, ioas, dev, pasid_compat, nest_parent, fault_id, False)
    if o.kind in (IfdKind.HWPT_PAGING, IfdKind.VIOMMU):
        return _hwpt_nested_alloc(s, ioas, dev, pasid_compat, nest_parent, fault_id)
    return s, -EINVAL


def iommufd_viommu_alloc(s: SystemState, dev: int, hwpt: int) -> tuple[SystemState, int]:
    """``IOMMU_VIOMMU_ALLOC``: a virtual IOMMU of ``dev``'s IOMMU over NEST_PARENT paging hwpt
    ``hwpt`` (as far as PASID attach needs it: nested hwpts allocated through it).
    Returns its id; -ENOENT (``hwpt`` is not a paging hwpt); -EINVAL (no NEST_PARENT, or
    another IOMMU instance); -ENODEV (no IOMMU).
    Models: drivers/iommu/iommufd/viommu.c ``iommufd_viommu_alloc_ioctl``."""
    p = _obj(s, hwpt, IfdKind.HWPT_PAGING)
    if p is None:
        return s, -ENOENT
    g = dev_group(s, dev)
    if g < 0:
        return s, -ENODEV
    if not p.flags & IFD_NEST_PARENT or s.domains[hwpt].iommu != s.config.groups[g].iommu:
        return s, -EINVAL
    oid = s.next_id
    s = _set_obj(s._replace(next_id=oid + 1), oid, IfdObj(IfdKind.VIOMMU, p.ictx, parent=hwpt))
    return _ref(s, hwpt, 1), oid


def iommufd_fault_alloc(s: SystemState, ictx: int) -> tuple[SystemState, int]:
    """``IOMMU_FAULT_QUEUE_ALLOC``: a fault object (and its fd) of context ``ictx`` to which
    hwpts allocated with its id deliver I/O page faults.  Returns its id; -EINVAL for a bad
    context.  The fd's own reference is not modelled (closing the fd is not an operation).
    Models: drivers/iommu/iommufd/eventq.c ``iommufd_fault_alloc``."""
    if not _ctx_ok(s, ictx):
        return s, -EINVAL
    oid = s.next_id
    return _set_obj(s._replace(next_id=oid + 1), oid, IfdObj(IfdKind.FAULT, ictx)), oid


def _auto_response(s: SystemState, hwpt: int, handle: int) -> SystemState:
    """``iommufd_auto_response_faults(hwpt, handle)``: every group of ``hwpt``'s fault object
    that came through ``handle``, read or not, is answered INVALID and dropped."""
    o = s.ifd.get(hwpt)
    f = s.ifd.get(o.fault) if o is not None and o.fault else None
    if f is None:
        return s
    keep = []
    for x in f.faults:
        if x.handle == handle:
            s = iopf_group_response(s, x.dev, x.pasid, x.grpid, IopfResponse.INVALID)
        else:
            keep.append(x)
    return _set_obj(s, o.fault, s.ifd[o.fault]._replace(faults=tuple(keep)))


def iommufd_fault_fops_read(s: SystemState, fault: int) -> tuple[SystemState, int]:
    """``read()`` of a fault fd: the oldest unread group is handed to user space (one
    ``iommu_hwpt_pgfault`` record per page request, all with one cookie).  Returns that
    cookie (> 0); -ENOENT (not a fault object); -EAGAIN (nothing to read).
    Models: eventq.c ``iommufd_fault_fops_read``."""
    f = _obj(s, fault, IfdKind.FAULT)
    if f is None:
        return s, -ENOENT
    for i, x in enumerate(f.faults):
        if not x.cookie:
            cookie = s.next_id
            faults = f.faults[:i] + (x._replace(cookie=cookie),) + f.faults[i + 1:]
            return _set_obj(s._replace(next_id=cookie + 1), fault,
                            f._replace(faults=faults)), cookie
    return s, -EAGAIN


def iommufd_fault_fops_write(s: SystemState, fault: int, cookie: int,
                          code: int = 0) -> tuple[SystemState, int]:
    """``write()`` of one ``iommu_hwpt_page_response`` to a fault fd: the page response
    ``code`` (0 SUCCESS, 1 INVALID) for the group read with ``cookie`` goes to the device.
    Returns 0; -ENOENT (not a fault object); -EINVAL (another code; no group read with that
    cookie, e.g. one already answered or auto-answered at detach).
    Models: eventq.c ``iommufd_fault_fops_write``."""
    f = _obj(s, fault, IfdKind.FAULT)
    if f is None:
        return s, -ENOENT
    if code not in (IopfResponse.SUCCESS, IopfResponse.INVALID):
        return s, -EINVAL
    for i, x in enumerate(f.faults):
        if x.cookie and x.cookie == cookie:
            s = _set_obj(s, fault, f._replace(faults=f.faults[:i] + f.faults[i + 1:]))
            return iopf_group_response(s, x.dev, x.pasid, x.grpid, IopfResponse(code)), 0
    return s, -EINVAL


def _hwpt_in_use(s: SystemState, pt_id: int) -> bool:
    """Attached by a kernel path outside iommufd's references (defensive)."""
    return any(g.domain == pt_id or any(d == pt_id for _p, d, _h in g.pasid_array)
               for g in s.groups)


def _destroy(s: SystemState, oid: int) -> SystemState:
    """``iommufd_object_remove`` + the kind's destroy: drop what the object held."""
    o = s.ifd[oid]
    s = s._replace(ifd=s.ifd.delete(oid))
    if o.kind in (IfdKind.HWPT_PAGING, IfdKind.HWPT_NESTED):
        s = _ref(_ref(s, o.parent, -1), o.fault, -1)
        s, _ = iommu_domain_free(s, oid)
    elif o.kind == IfdKind.VIOMMU:
        s = _ref(s, o.parent, -1)
    elif o.kind == IfdKind.FAULT:  # iommufd_fault_destroy: every pending group answered
        for x in o.faults:
            s = iopf_group_response(s, x.dev, x.pasid, x.grpid, IopfResponse.INVALID)
    return s


def iommufd_destroy(s: SystemState, obj_id: int) -> tuple[SystemState, int]:
    """``IOMMU_DESTROY`` of any object.  Returns 0; -ENOENT (no such object); -EBUSY while
    another object or an attachment holds it (``obj->users`` > 1: an IOAS with hwpts, an
    attached hwpt, a parent with nested hwpts or a vIOMMU, a fault object with hwpts).
    Models: drivers/iommu/iommufd/main.c ``iommufd_destroy`` → ``iommufd_object_remove``
    (``refcount_dec_if_one``)."""
    o = s.ifd.get(obj_id)
    if o is None:
        return s, -ENOENT
    if o.users > 1 or (o.kind in (IfdKind.HWPT_PAGING, IfdKind.HWPT_NESTED)
                       and _hwpt_in_use(s, obj_id)):
        return s, -EBUSY
    return _destroy(s, obj_id), 0


def iommufd_hwpt_destroy(s: SystemState, pt_id: int) -> tuple[SystemState, int]:
    """``IOMMU_DESTROY`` of a HW page table.  Returns 0; -ENOENT (not a hwpt); -EBUSY while
    it is attached anywhere or holds nested hwpts / a vIOMMU.
    Models: main.c ``iommufd_destroy`` → hw_pagetable.c ``iommufd_hwpt_paging_destroy``."""
    if _obj(s, pt_id, IfdKind.HWPT_PAGING, IfdKind.HWPT_NESTED) is None:
        return s, -ENOENT
    return iommufd_destroy(s, pt_id)


def _idev(s: SystemState, idev: int) -> File | None:
    f = s.files.get(idev)
    if f is None or not f.drvdata:
        return None
    if f.mm:  # a process's file: must be a vfio device cdev
        ops = dev_driver_ops(s, f.dev)
        if ops is None or not ops.vfio_device:
            return None
    return f


def iommufd_get_hw_info(s: SystemState, idev: int) -> tuple[SystemState, int]:
    """``IOMMU_GET_HW_INFO`` of a bound device: ``out_max_pasid_log2``, the floor of
    log2(``max_pasids``), 0 when the device cannot do PASID.  Returns it; -ENOENT for an
    unknown idev.  Models: device.c ``iommufd_get_hw_info``."""
    f = _idev(s, idev)
    if f is None:
        return s, -ENOENT
    maxp = s.config.max_pasids[f.dev]
    return s, (maxp.bit_length() - 1) if maxp else 0


def idev_bind(s: SystemState, file: int, ictx: int) -> tuple[SystemState, int]:
    """Bind an existing device file to ``ictx`` (claims DMA ownership).  Returns 0 or
    -EINVAL / -ENODEV / the claim's error."""
    dev = s.files[file].dev
    if not _ctx_ok(s, ictx):
        return s, -EINVAL
    if dev_group(s, dev) < 0:
        return s, -ENODEV
    s2, ret = iommu_device_claim_dma_owner(s, dev, ictx)
    if ret:
        return s, ret
    f = s2.files[file]
    return s2._replace(files=s2.files.set(file, f._replace(drvdata=ictx))), 0


def iommufd_device_bind(s: SystemState, ictx: int, dev: int) -> tuple[SystemState, int]:
    """Bind device ``dev`` to iommufd context ``ictx`` (in-kernel / selftest user).

    Returns the idev id; -EINVAL (bad context); -ENODEV (no IOMMU group); -EPERM (the group has
    DMA-API users or belongs to another owner); -EBUSY (non-default domain or PASIDs attached).
    Devices of one group bound to the same context share its ownership (``owner_cnt``).
    Models: device.c ``iommufd_device_bind`` → ``iommu_device_claim_dma_owner(dev, ictx)``.
    """
    fid = s.next_id
    s1 = s._replace(next_id=fid + 1, files=s.files.set(fid, File(dev=dev, mm=0)))
    s1, ret = idev_bind(s1, fid, ictx)
    if ret:
        return s, ret
    return s1, fid


def _ifd_handle(s: SystemState, cur) -> Handle | None:
    """The iommufd attach handle of a ``pasid_array`` slot (None: empty or not iommufd's)."""
    if cur is None or not cur[1]:
        return None
    h = s.handles[cur[1]]
    return h if h.kind == HandleKind.IOMMUFD else None


def _attached(s: SystemState, g: int, dev: int) -> list[int]:
    """PASIDs (0 = RID) at which ``dev`` is recorded by an iommufd attachment."""
    return [p for p, _d, h in s.groups[g].pasid_array
            if h and s.handles[h].kind == HandleKind.IOMMUFD and s.handles[h].drvdata >> dev & 1]


def iommufd_device_unbind(s: SystemState, idev: int) -> tuple[SystemState, int]:
    """Undo the bind: release ``dev``'s share of the group's DMA ownership (the last one returns
    the group to its default domain).  Returns 0; -ENOENT (not a bound idev); -EBUSY while the
    device is still attached somewhere [I: vfio always detaches first; the kernel would WARN in
    ``iommu_device_release_dma_owner`` and keep the ownership].
    Models: device.c ``iommufd_device_unbind`` → ``iommufd_device_destroy``."""
    f = _idev(s, idev)
    if f is None:
        return s, -ENOENT
    g = dev_group(s, f.dev)
    if _attached(s, g, f.dev):
        return s, -EBUSY
    s, _ = iommu_device_release_dma_owner(s, f.dev)
    if not f.mm:
        return s._replace(files=s.files.delete(idev)), 0
    return s._replace(files=s.files.set(idev, f._replace(drvdata=0))), 0


# -- attach / replace / detach ----------------------------------------------------------------


def _pasid_compat(s: SystemState, g: int, hwpt: int, pasid: int) -> int:
    """``iommufd_hwpt_pasid_compat``: RID attach of a non-compat hwpt while iommufd PASID
    attachments exist; PASID attach of a non-compat hwpt; PASID attach while the RID's iommufd
    hwpt is non-compat → -EINVAL."""
    compat = s.domains[hwpt].pasid_compat
    arr = s.groups[g].pasid_array
    if pasid == IOMMU_NO_PASID:
        return -EINVAL if not compat and any(
            p != IOMMU_NO_PASID and _ifd_handle(s, (d, h)) is not None
            for p, d, h in arr) else 0
    if not compat:
        return -EINVAL
    rid = slot_get(s, g, IOMMU_NO_PASID)
    if _ifd_handle(s, rid) is not None and not s.domains[rid[0]].pasid_compat:
        return -EINVAL
    return 0


def _hw_pagetable_attach(s: SystemState, dev: int, g: int, pasid: int,
                         pt_id: int) -> tuple[SystemState, int]:
    """``iommufd_hw_pagetable_attach``, in the kernel's order: this device already attached at
    ``pasid`` → -EBUSY; the group attached there to another hwpt → -EINVAL (use replace);
    only on the group's first attach at ``pasid``: the PASID-compat rules (-EINVAL), then the
    core attach (its errors, e.g. -EBUSY for a slot SVA holds).  Takes a hwpt reference per
    attached (device, PASID)."""
    cur = slot_get(s, g, pasid)
    h = _ifd_handle(s, cur)
    if h is not None:
        if h.drvdata >> dev & 1:
            return s, -EBUSY
        if cur[0] != pt_id:
            return s, -EINVAL
        s = _set_handle(s, cur[1], users=h.users + 1, drvdata=h.drvdata | 1 << dev)
        return _ref(s, pt_id, 1), 0
    err = _pasid_compat(s, g, pt_id, pasid)
    if err:
        return s, err
    hid = s.next_id
    s1 = s._replace(next_id=hid + 1, handles=s.handles.set(
        hid, Handle(HandleKind.IOMMUFD, pt_id, dev, g, pasid, 1, 1 << dev)))
    if pasid == IOMMU_NO_PASID:
        s1, ret = iommu_attach_group_handle(s1, pt_id, g, hid)
    else:
        s1, ret = iommu_attach_device_pasid(s1, pt_id, dev, pasid, hid)
    if ret:
        return s, ret
    return _ref(s1, pt_id, 1), 0


def _hw_pagetable_replace(s: SystemState, dev: int, g: int, pasid: int,
                          pt_id: int) -> tuple[SystemState, int]:
    """``iommufd_device_do_replace``: nothing attached at ``pasid``, or not this device →
    -EINVAL; already on ``pt_id`` → 0 (before any other check); the PASID-compat rules
    (-EINVAL); the core replace.  The hwpt references of every recorded device move."""
    cur = slot_get(s, g, pasid)
    old = _ifd_handle(s, cur)
    if old is None or not old.drvdata >> dev & 1:
        return s, -EINVAL
    if cur[0] == pt_id:
        return s, 0
    err = _pasid_compat(s, g, pt_id, pasid)
    if err:
        return s, err
    hid = s.next_id
    s1 = s._replace(next_id=hid + 1, handles=s.handles.set(hid, old._replace(domain=pt_id)))
    if pasid == IOMMU_NO_PASID:
        s1, ret = iommu_replace_group_handle(s1, pt_id, g, hid)
    else:
        s1, ret = iommu_replace_device_pasid(s1, pt_id, dev, pasid, hid)
    if ret:
        return s, ret
    # iommufd_hwpt_replace_device(): iommufd_auto_response_faults(hwpt, old_handle) with the
    # *new* hwpt, as the kernel has it: groups queued on the old hwpt's fault object stay
    s1 = _auto_response(s1, pt_id, cur[1])
    n = bin(old.drvdata).count("1")
    s1 = _ref(_ref(s1, pt_id, n), cur[0], -n)
    return _put_auto(s1, cur[0]), 0


def _put_auto(s: SystemState, pt_id: int) -> SystemState:
    """``iommufd_hw_pagetable_put``: an automatic hwpt goes with its last attachment."""
    o = s.ifd.get(pt_id)
    if o is not None and o.flags & IFD_AUTO_DOMAIN and o.users == 1 and \
            not _hwpt_in_use(s, pt_id):
        return _destroy(s, pt_id)
    return s


def _auto_get_domain(s: SystemState, dev: int, g: int, pasid: int, ioas: int,
                     attach: bool) -> tuple[SystemState, int]:
    """``iommufd_device_auto_get_domain``: try the IOAS's automatic hwpts in creation order
    (-EINVAL: incompatible, try the next; another error ends the search); if none fits,
    allocate one (flags 0: never PASID-compatible, so an IOAS attach at a PASID fails -EINVAL)
    and attach it, destroying it again if that fails."""
    do = _hw_pagetable_attach if attach else _hw_pagetable_replace
    for oid, o in sorted(s.ifd.items()):
        if o.kind != IfdKind.HWPT_PAGING or o.parent != ioas or not o.flags & IFD_AUTO_DOMAIN:
            continue
        s2, ret = do(s, dev, g, pasid, oid)
        if ret == -EINVAL:
            continue
        return (s2, 0) if ret == 0 else (s, ret)
    s1, hwpt = _hwpt_paging_alloc(s, ioas, dev, False, False, 0, True)
    if hwpt < 0:
        return s, hwpt
    s1, ret = do(s1, dev, g, pasid, hwpt)
    if ret:
        return s, ret
    return s1, 0


def _change_pt(s: SystemState, idev: int, pasid: int, pt_id: int,
               attach: bool) -> tuple[SystemState, int]:
    """``iommufd_device_change_pt``: look ``pt_id`` up among ``idev``'s context's objects
    (-ENOENT when missing); a hwpt (paging or nested) is attached / replaced, an IOAS goes
    through automatic domain selection, any other object is -EINVAL."""
    f = _idev(s, idev)
    if f is None:
        return s, -ENOENT
    if not 0 <= pasid <= 0xFFFFFFFF:
        return s, -EINVAL
    if pasid != IOMMU_NO_PASID and s.config.max_pasids[f.dev] == 0:
        return s, -EINVAL  # [I] a device without PASID support cannot take a PASID attach
    o = s.ifd.get(pt_id)
    if o is None or o.ictx != f.drvdata:
        return s, -ENOENT
    dev, g = f.dev, dev_group(s, f.dev)
    if o.kind in (IfdKind.HWPT_PAGING, IfdKind.HWPT_NESTED):
        return (_hw_pagetable_attach if attach else _hw_pagetable_replace)(s, dev, g, pasid,
                                                                            pt_id)
    if o.kind == IfdKind.IOAS:
        return _auto_get_domain(s, dev, g, pasid, pt_id, attach)
    return s, -EINVAL


def iommufd_device_attach(s: SystemState, idev: int, pasid: int,
                          pt_id: int) -> tuple[SystemState, int]:
    """Attach device ``idev`` at ``pasid`` (0 = RID) to object ``pt_id``: a HW page table
    (paging or nested), or an IOAS (iommufd picks a compatible automatic hwpt of that IOAS or
    allocates one, and frees it with its last attachment).

    The first device of the group attaches the whole group (RID: ``iommu_attach_group_handle``;
    PASID: ``iommu_attach_device_pasid`` with an iommufd handle); later devices on the same
    hwpt are only recorded.  Each attached (device, PASID) holds a hwpt reference.
    Returns 0; -ENOENT (unknown idev; ``pt_id`` not an object of the idev's context);
    -EBUSY (this device is already attached at ``pasid``, checked first; a slot SVA holds);
    -EINVAL (``pt_id`` neither a hwpt nor an IOAS; the group is attached to another hwpt at
    this PASID -- use replace; on the group's first attach only: the §5.1 PASID-compat rules;
    an IOAS at a PASID (automatic hwpts are not PASID-compatible); PASID attach on a device
    without PASID support; core errors such as ``pasid >= max_pasids``).
    Models: device.c ``iommufd_device_attach`` → ``iommufd_device_change_pt`` →
    ``iommufd_hw_pagetable_attach`` / ``iommufd_device_auto_get_domain``.
    """
    return _change_pt(s, idev, pasid, pt_id, True)


def iommufd_device_replace(s: SystemState, idev: int, pasid: int,
                           pt_id: int) -> tuple[SystemState, int]:
    """Move the group's attachment at ``pasid`` (0 = RID) to ``pt_id`` (a hwpt, or an IOAS
    through automatic domain selection), for every device recorded there; an automatic hwpt
    left without attachments is freed.  Returns 0 (also when already on ``pt_id``, before any
    compatibility check); -ENOENT (unknown idev or object); -EINVAL (nothing attached at
    ``pasid`` or not this device; not a hwpt or IOAS; PASID-compat rules; core errors).
    Models: device.c ``iommufd_device_replace`` → ``iommufd_device_do_replace``."""
    return _change_pt(s, idev, pasid, pt_id, False)


def iommufd_device_detach(s: SystemState, idev: int, pasid: int) -> tuple[SystemState, int]:
    """Detach device ``idev`` at ``pasid`` (0 = RID) and drop its hwpt reference.  The last
    device of the group detaches the group (RID back to the blocking domain; PASID blocked,
    slot erased) and its faults still queued on the hwpt's fault object are answered INVALID;
    an automatic hwpt goes with its last attachment.  Not attached: no change (vfio checks).
    Returns 0; -ENOENT for an unknown idev.
    Models: device.c ``iommufd_device_detach`` → ``iommufd_hw_pagetable_detach``."""
    f = _idev(s, idev)
    if f is None:
        return s, -ENOENT
    dev, g = f.dev, dev_group(s, f.dev)
    cur = slot_get(s, g, pasid)
    h = _ifd_handle(s, cur)
    if h is None or not h.drvdata >> dev & 1:
        return s, 0
    mask = h.drvdata & ~(1 << dev)
    s = _ref(s, cur[0], -1)
    if mask:
        first = (mask & -mask).bit_length() - 1
        return _set_handle(s, cur[1], users=h.users - 1, drvdata=mask, dev=first), 0
    if pasid == IOMMU_NO_PASID:
        s = iommu_detach_group_handle(s, cur[0], g)
    else:
        s, _ = iommu_detach_device_pasid(s, cur[0], dev, pasid)
    s = _auto_response(s, cur[0], cur[1])
    s = s._replace(handles=s.handles.delete(cur[1]))
    return _put_auto(s, cur[0]), 0


def idev_teardown(s: SystemState, idev: int) -> SystemState:
    """What vfio does when a bound device file is released: detach every PASID (highest
    first), then the RID, then unbind.  Models ``vfio_iommufd_physical_unbind``."""
    f = s.files[idev]
    g = dev_group(s, f.dev)
    for p in sorted(_attached(s, g, f.dev), reverse=True):
        s, _ = iommufd_device_detach(s, idev, p)
    s, _ = iommufd_device_unbind(s, idev)
    return s


__all__ = ["iommufd_ctx_create", "iommufd_ioas_alloc", "iommufd_hwpt_alloc", "iommufd_hwpt_destroy",
           "iommufd_destroy", "iommufd_viommu_alloc", "iommufd_fault_alloc",
           "iommufd_fault_fops_read", "iommufd_fault_fops_write", "iommufd_get_hw_info",
           "iommufd_device_bind", "iommufd_device_unbind", "iommufd_device_attach",
           "iommufd_device_replace", "iommufd_device_detach", "iommu_attach_group_handle",
           "iommu_replace_group_handle", "iommu_detach_group_handle", "idev_bind",
           "idev_teardown"]
