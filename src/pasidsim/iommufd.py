"""iommufd: device binding with DMA ownership, HW page tables, RID and PASID attach.

Objects and where they live (no table of their own):

- **ictx** (``struct iommufd_ctx``): an opaque id drawn from ``next_id``
  (:func:`iommufd_ctx_create`).  It is the DMA-owner cookie of every group whose devices are
  bound to it (``iommu_device_claim_dma_owner(dev, ictx)``), so ``group.owner`` says which
  context owns a group.
- **idev** (``struct iommufd_device``): a :class:`~pasidsim.state.File` record with
  ``drvdata = ictx``: the vfio device cdev file after ``VFIO_DEVICE_BIND_IOMMUFD``
  (:func:`pasidsim.drivers.vfio.vfio_device_bind_iommufd`), or, for in-kernel/selftest users of
  :func:`iommufd_device_bind`, a file held by the context itself (``mm = 0``, in no fd table).
- **ioas**: an opaque id (:func:`iommufd_ioas_alloc`); mappings are not modeled.
- **hwpt** (``iommufd_hwpt_paging``): a paging :class:`~pasidsim.state.Domain` (UNMANAGED)
  with ``pasid_compat`` = allocated with ``IOMMU_HWPT_ALLOC_PASID`` (:func:`iommufd_hwpt_alloc`).
- **attach** (``struct iommufd_attach`` per (group, PASID)): the ``iommufd_attach_handle``
  stored in the group's ``pasid_array`` slot (PASID 0 = the RID, through the
  ``*_group_handle`` APIs), a :class:`~pasidsim.state.Handle` of kind IOMMUFD with ``users`` =
  number of devices attached and ``drvdata`` = bitmask ``1 << dev`` of those devices
  (``attach->device_array``).  The group is attached once, by its first device; the others
  are only recorded.

Kernel sources modeled: drivers/iommu/iommufd/device.c ``iommufd_device_bind/unbind``,
``iommufd_hwpt_pasid_compat``, ``iommufd_hw_pagetable_attach/replace/detach``,
``iommufd_device_attach/replace/detach``; hw_pagetable.c ``iommufd_hwpt_alloc``;
drivers/iommu/iommu.c ``iommu_attach_group_handle``, ``iommu_replace_group_handle``,
``iommu_detach_group_handle``.  Exact errors are those of kernel-spec §4.4, §4.6, §5.1
(conformance U-01..U-04).

This module also registers, with :func:`pasidsim.step.register_op` (step imports it last, so
opcodes stay stable), the new operations of the driver plug-ins:

- kernel: ``iommufd_ctx_create``, ``iommufd_ioas_alloc``, ``iommufd_hwpt_alloc``,
  ``iommufd_hwpt_destroy``,
  ``iommufd_device_bind``, ``iommufd_device_unbind``, ``iommufd_device_attach``,
  ``iommufd_device_replace``, ``iommufd_device_detach``, ``vfio_group_get_status``,
  ``vfio_group_set_container``, ``vfio_group_unset_container``;
- process: ``vfio_device_bind_iommufd(tid, fd, ictx)``, ``amdgpu_cs_submit(tid, fd)``.
"""

from __future__ import annotations

from .domain import (dev_group, iommu_attach_device_pasid, iommu_detach_device_pasid,
                     iommu_domain_alloc_paging, iommu_domain_free, iommu_replace_device_pasid,
                     slot_erase, slot_get, slot_store)
from .errors import EBUSY, EINVAL, ENODEV, ENOENT
from .group import (_set_domain, __iommu_attach_group, iommu_detach_group,  # noqa: F401
                    iommu_device_claim_dma_owner, iommu_device_release_dma_owner)
from .ops_tables import dev_driver_ops
from .state import IOMMU_NO_PASID, DomainType, File, Handle, HandleKind, SystemState

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


def iommufd_ctx_create(s: SystemState) -> tuple[SystemState, int]:
    """``open("/dev/iommu")``: a new iommufd context.  Returns its id (> 0).
    Models: drivers/iommu/iommufd/main.c ``iommufd_fops_open``."""
    return s._replace(next_id=s.next_id + 1), s.next_id


def iommufd_ioas_alloc(s: SystemState, ictx: int) -> tuple[SystemState, int]:
    """``IOMMU_IOAS_ALLOC``: an I/O address space of context ``ictx``.  Returns its id;
    -EINVAL for a bad context.  Models ioas.c ``iommufd_ioas_alloc_ioctl``."""
    if not 0 < ictx < s.next_id:
        return s, -EINVAL
    return s._replace(next_id=s.next_id + 1), s.next_id


def iommufd_hwpt_alloc(s: SystemState, ioas: int, dev: int,
                       pasid_compat: bool = True) -> tuple[SystemState, int]:
    """``IOMMU_HWPT_ALLOC`` of a paging HW page table over ``ioas`` for ``dev``'s IOMMU.

    Args:
        pasid_compat: ``IOMMU_HWPT_ALLOC_PASID``: may be attached at PASIDs, and at the RID
            while PASIDs are attached.
    Returns: the hwpt (domain) id; -EINVAL bad ioas; -ENODEV no IOMMU.
    Models: hw_pagetable.c ``iommufd_hwpt_alloc`` → ``iommu_paging_domain_alloc_flags``.
    """
    if not 0 < ioas < s.next_id:
        return s, -EINVAL
    return iommu_domain_alloc_paging(s, dev, pasid_compat)


def iommufd_hwpt_destroy(s: SystemState, pt_id: int) -> tuple[SystemState, int]:
    """``IOMMU_DESTROY`` of a HW page table.  Returns 0; -ENOENT (not a hwpt); -EBUSY while it
    is attached anywhere or is a group's current domain.
    Models: main.c ``iommufd_destroy`` → hw_pagetable.c ``iommufd_hwpt_paging_destroy``."""
    if _hwpt(s, pt_id):
        return s, -ENOENT
    if any(g.domain == pt_id or any(d == pt_id for _p, d, _h in g.pasid_array)
           for g in s.groups):
        return s, -EBUSY
    return iommu_domain_free(s, pt_id)


def _idev(s: SystemState, idev: int) -> File | None:
    f = s.files.get(idev)
    if f is None or not f.drvdata:
        return None
    if f.mm:  # a process's file: must be a vfio device cdev
        ops = dev_driver_ops(s, f.dev)
        if ops is None or not ops.vfio_device:
            return None
    return f


def idev_bind(s: SystemState, file: int, ictx: int) -> tuple[SystemState, int]:
    """Bind an existing device file to ``ictx`` (claims DMA ownership).  Returns 0 or
    -EINVAL / -ENODEV / the claim's error."""
    dev = s.files[file].dev
    if not 0 < ictx < s.next_id:
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


def _hwpt(s: SystemState, pt_id: int) -> int:
    d = s.domains.get(pt_id)
    if d is None:
        return -ENOENT
    return 0 if d.type == DomainType.UNMANAGED else -EINVAL


def _pasid_compat(s: SystemState, g: int, hwpt: int, pasid: int) -> int:
    """``iommufd_hwpt_pasid_compat``: RID attach of a non-compat hwpt while PASIDs are
    attached; PASID attach of a non-compat hwpt; PASID attach while the RID hwpt is
    non-compat → -EINVAL."""
    compat = s.domains[hwpt].pasid_compat
    arr = s.groups[g].pasid_array
    if pasid == IOMMU_NO_PASID:
        return -EINVAL if not compat and any(p != IOMMU_NO_PASID for p, _d, _h in arr) else 0
    if not compat:
        return -EINVAL
    rid = slot_get(s, g, IOMMU_NO_PASID)
    if rid is not None and not s.domains[rid[0]].pasid_compat:
        return -EINVAL
    return 0


def _prologue(s: SystemState, idev: int, pasid: int, pt_id: int | None):
    f = _idev(s, idev)
    if f is None:
        return None, -ENOENT
    if not 0 <= pasid <= 0xFFFFFFFF:
        return None, -EINVAL
    if pasid != IOMMU_NO_PASID and s.config.max_pasids[f.dev] == 0:
        return None, -EINVAL  # [I] a device without PASID support cannot take a PASID attach
    g = dev_group(s, f.dev)
    if pt_id is not None:
        err = _hwpt(s, pt_id) or _pasid_compat(s, g, pt_id, pasid)
        if err:
            return None, err
    return (f.dev, g), 0


def iommufd_device_attach(s: SystemState, idev: int, pasid: int,
                          pt_id: int) -> tuple[SystemState, int]:
    """Attach device ``idev`` at ``pasid`` (0 = RID) to HW page table ``pt_id``.

    The first device of the group attaches the whole group (RID: ``iommu_attach_group_handle``;
    PASID: ``iommu_attach_device_pasid`` with an iommufd handle); later devices on the same
    hwpt are only recorded.
    Returns 0; -ENOENT (unknown idev or hwpt); -EINVAL (pt_id not a paging hwpt; PASID attach
    on a device without PASID support; the §5.1 PASID-compat rules; the group is attached to
    another hwpt at this PASID — use replace; core errors such as ``pasid >= max_pasids``);
    -EBUSY (this device is already attached at ``pasid``; slot taken by SVA).
    Models: device.c ``iommufd_device_attach`` → ``iommufd_hw_pagetable_attach``.
    """
    ctx, err = _prologue(s, idev, pasid, pt_id)
    if err:
        return s, err
    dev, g = ctx
    cur = slot_get(s, g, pasid)
    if cur is not None:
        h = s.handles[cur[1]] if cur[1] else None
        if h is None or h.kind != HandleKind.IOMMUFD:
            return s, -EBUSY
        if h.drvdata >> dev & 1:
            return s, -EBUSY
        if cur[0] != pt_id:
            return s, -EINVAL
        return _set_handle(s, cur[1], users=h.users + 1, drvdata=h.drvdata | 1 << dev), 0
    hid = s.next_id
    s1 = s._replace(next_id=hid + 1, handles=s.handles.set(
        hid, Handle(HandleKind.IOMMUFD, pt_id, dev, g, pasid, 1, 1 << dev)))
    if pasid == IOMMU_NO_PASID:
        s1, ret = iommu_attach_group_handle(s1, pt_id, g, hid)
    else:
        s1, ret = iommu_attach_device_pasid(s1, pt_id, dev, pasid, hid)
    if ret:
        return s, ret
    return s1, 0


def iommufd_device_replace(s: SystemState, idev: int, pasid: int,
                           pt_id: int) -> tuple[SystemState, int]:
    """Move the group's attachment at ``pasid`` (0 = RID) to ``pt_id``, for every device
    recorded there.  Returns 0 (also when already on ``pt_id``); -ENOENT; -EINVAL (nothing
    attached at ``pasid`` or not this device; PASID-compat rules; core errors).
    Models: device.c ``iommufd_device_replace`` → ``iommufd_hw_pagetable_replace``."""
    ctx, err = _prologue(s, idev, pasid, pt_id)
    if err:
        return s, err
    dev, g = ctx
    cur = slot_get(s, g, pasid)
    if cur is None or not cur[1] or s.handles[cur[1]].kind != HandleKind.IOMMUFD:
        return s, -EINVAL
    old = s.handles[cur[1]]
    if not old.drvdata >> dev & 1:
        return s, -EINVAL
    if cur[0] == pt_id:
        return s, 0
    hid = s.next_id
    s1 = s._replace(next_id=hid + 1, handles=s.handles.set(hid, old._replace(domain=pt_id)))
    if pasid == IOMMU_NO_PASID:
        s1, ret = iommu_replace_group_handle(s1, pt_id, g, hid)
    else:
        s1, ret = iommu_replace_device_pasid(s1, pt_id, dev, pasid, hid)
    if ret:
        return s, ret
    return s1, 0


def iommufd_device_detach(s: SystemState, idev: int, pasid: int) -> tuple[SystemState, int]:
    """Detach device ``idev`` at ``pasid`` (0 = RID).  The last device of the group detaches
    the group (RID back to the blocking domain; PASID blocked, slot erased).  Not attached: no
    change.  Returns 0; -ENOENT for an unknown idev.
    Models: device.c ``iommufd_device_detach`` → ``iommufd_hw_pagetable_detach``."""
    f = _idev(s, idev)
    if f is None:
        return s, -ENOENT
    dev, g = f.dev, dev_group(s, f.dev)
    cur = slot_get(s, g, pasid)
    if cur is None or not cur[1]:
        return s, 0
    h = s.handles[cur[1]]
    if h.kind != HandleKind.IOMMUFD or not h.drvdata >> dev & 1:
        return s, 0
    mask = h.drvdata & ~(1 << dev)
    if mask:
        first = (mask & -mask).bit_length() - 1
        return _set_handle(s, cur[1], users=h.users - 1, drvdata=mask, dev=first), 0
    if pasid == IOMMU_NO_PASID:
        s = iommu_detach_group_handle(s, cur[0], g)
    else:
        s, _ = iommu_detach_device_pasid(s, cur[0], dev, pasid)
    return s._replace(handles=s.handles.delete(cur[1])), 0


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
           "iommufd_device_bind", "iommufd_device_unbind", "iommufd_device_attach",
           "iommufd_device_replace", "iommufd_device_detach", "iommu_attach_group_handle",
           "iommu_replace_group_handle", "iommu_detach_group_handle", "idev_bind",
           "idev_teardown"]
