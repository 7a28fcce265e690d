"""Shared Virtual Addressing: binding a process address space to devices.

Today's algorithm (v6.8+ with handle sharing restored): one PASID per mm, allocated at the first
bind attempt and kept until ``__mmdrop``; one SVA domain per mm and compatible IOMMU, shared by
every device of that IOMMU the mm is bound to (``domain->users``); one handle per (group, PASID)
slot, shared by repeated binds (``handle->users``).  The SVA domain holds ``mm_count``
(``mmgrab``), never ``mm_users``.  Historical variants are :class:`~pasidsim.policy.Policy`
switches read here.

Kernel sources modeled: drivers/iommu/iommu-sva.c ``iommu_alloc_mm_data()``,
``iommu_sva_bind_device()``, ``iommu_sva_unbind_device()``, ``iommu_sva_get_pasid()``,
``iommu_sva_domain_alloc()``.
"""

from __future__ import annotations

from .domain import (dev_group, domain_compatible, iommu_attach_device_pasid,
                     iommu_attach_handle_get, iommu_detach_device_pasid, iommu_domain_free,
                     new_domain)
from .errors import (EBUSY, EEXIST, EINVAL, ENODEV, ENOENT, ENOMEM, ENOSPC, EOPNOTSUPP,
                     EOVERFLOW, ERANGE, ESRCH, ModelUsageError, Warn)
from .fault import FaultPoint, fault_point
from .hw.cache import flush_domain
from .lifecycle import CREATE, BondLc, Lifecycle, transition
from .locking import Do, KFunc, Lock, LockClass, Unlock, lock_key, set_ret
from .mm import mm_get, mmget, mmgrab, mmput
from .ops_tables import dev_driver_ops
from .pasid import ida_alloc, iommu_alloc_global_pasid, iommu_free_global_pasid
from .policy import Enqcmd, FreePoint
from .state import (IOMMU_PASID_INVALID, Domain, DomainType, Handle, HandleKind, SystemState,
                    warn)
from .x86 import update_pasid_ipi

#: the IOMMU drivers of x86 machines (E15's ``IS_ENABLED(CONFIG_X86)`` gate)
_X86_OPS = frozenset({"intel-iommu", "amd-iommu"})

#: ``iommu_sva_bind_device`` flag: a PASID of its own for this bond (seed 002 requirement 5;
#: Intel's old ``SVM_FLAG_PRIVATE_PASID``).  Needs ``Policy.private_pasid``.
SVM_FLAG_PRIVATE_PASID = 1


def iommu_alloc_mm_data(s: SystemState, mm: int, dev: int) -> tuple[SystemState, int]:
    """Give ``mm`` its PASID for ``dev`` (static helper of bind).

    Returns the PASID; -EBUSY for an LAM mm; -EOVERFLOW when the mm's existing PASID is not
    below ``max_pasids(dev)``; -ENOMEM when ``iommu_mm`` cannot be allocated (fault point
    IOMMU_MM_ALLOC); -ENOSPC when a fresh PASID cannot be allocated (the ``iommu_mm`` is freed
    again).
    Models: drivers/iommu/iommu-sva.c ``iommu_alloc_mm_data()``.
    """
    rec = mm_get(s, mm)
    if rec.lam and not rec.force_tagged_sva:  # !arch_pgtable_dma_compat(mm)
        return s, -EBUSY
    param = s.devs[dev].sva_param if s.policy.mm_exit_callback else ()
    if rec.pasid != IOMMU_PASID_INVALID:
        if param and not param[1] <= rec.pasid <= param[2]:
            return s, -ERANGE  # the RFC: an existing io_mm outside the device's range
        if rec.pasid >= s.config.max_pasids[dev]:
            return s, -EOVERFLOW
        return s, rec.pasid
    err = fault_point(FaultPoint.IOMMU_MM_ALLOC)
    if err:
        return s, err
    s0 = s
    s, pasid = iommu_alloc_global_pasid(s, dev)
    if pasid == IOMMU_PASID_INVALID:
        return s, -ENOSPC
    if param and pasid > param[2]:
        # idr_alloc(min_pasid, max_pasid + 1): with lowest-free allocation the first free
        # PASID above the device's range means none is free inside it
        return s0, -ENOSPC
    return s._replace(mms=s.mms.set(mm, rec._replace(pasid=pasid))), pasid


IOMMU_SVA_FEAT_IOPF = 1  # the RFC's only feature bit: the device can take I/O page faults


def iommu_sva_device_init(s: SystemState, dev: int, features: int = 0,
                          max_pasid: int = 0) -> tuple[SystemState, int]:
    """The 2018 io_mm RFC (E0, seed 002): a driver declares that ``dev`` will bind process
    address spaces, before any bind.  Stores ``iommu_sva_param`` (features; PASID range
    [1, max_pasid], ``max_pasid`` 0 or above the device's limit meaning the device's
    ``max_pasids - 1``); the ``mm_exit`` callback is the driver's ops table entry.

    Args: dev; features: ``IOMMU_SVA_FEAT_IOPF`` (1) or 0; max_pasid: 0 or the largest PASID.
    Returns 0; -ENODEV (no IOMMU domain, or an IOMMU driver without ``sva_device_init``);
    -EINVAL (an unknown feature bit; [I] a device without PASIDs, as the SMMU's
    ``sva_device_init``); -EEXIST (already initialised); -EOPNOTSUPP in designs without the
    RFC's API (the function does not exist there).
    Models: the RFC's drivers/iommu/iommu-sva.c ``iommu_sva_device_init()`` (kernel-spec
    §2.12, read in Kenneth-Lee/linux-kernel-warpdrive)."""
    if not s.policy.mm_exit_callback:
        return s, -EOPNOTSUPP
    g = dev_group(s, dev)
    if g < 0 or not s.config.iommus[s.config.groups[g].iommu].sva:
        return s, -ENODEV
    if features & ~IOMMU_SVA_FEAT_IOPF:
        return s, -EINVAL
    if s.devs[dev].sva_param:
        return s, -EEXIST
    top = s.config.max_pasids[dev] - 1
    if top < 1:
        return s, -EINVAL
    if 0 < max_pasid < top:
        top = max_pasid
    d = s.devs[dev]
    return s._replace(devs=s.devs[:dev] + (d._replace(sva_param=(features, 1, top)),)
                      + s.devs[dev + 1:]), 0


def iommu_sva_device_shutdown(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """E0: forget ``dev``'s ``iommu_sva_param``; later binds fail -EINVAL.  Returns 0;
    -ENODEV when it was not initialised (or no IOMMU); -EOPNOTSUPP outside the RFC's
    designs.  The RFC also unbinds the device's remaining bonds here; pasidsim's drivers
    unbind theirs before (their ``remove``), so none remain [I].
    Models the RFC's ``iommu_sva_device_shutdown()``."""
    if not s.policy.mm_exit_callback:
        return s, -EOPNOTSUPP
    if dev_group(s, dev) < 0 or not s.devs[dev].sva_param:
        return s, -ENODEV
    d = s.devs[dev]
    return s._replace(devs=s.devs[:dev] + (d._replace(sva_param=()),) + s.devs[dev + 1:]), 0


def _sva_domain_alloc(s: SystemState, dev: int, mm: int) -> tuple[SystemState, int]:
    """``iommu_sva_domain_alloc()``: -EOPNOTSUPP without ``domain_alloc_sva``; -ENOMEM when
    the IOMMU driver's ``domain_alloc_sva`` fails (fault point DOMAIN_ALLOC_SVA); else a new SVA
    domain that holds ``mmgrab(mm)``."""
    unit = s.config.device_iommu(dev)
    if not s.config.iommus[unit].sva:
        return s, -EOPNOTSUPP
    err = fault_point(FaultPoint.DOMAIN_ALLOC_SVA)
    if err:
        return s, err
    if s.mms[mm].mm_users <= 0:
        # the IOMMU driver's domain_alloc_sva registers the domain's mmu notifier:
        # mmu_notifier_register() BUG_ON(atomic_read(&mm->mm_users) <= 0) -- the kernel
        # would crash; the model records it (invariant B1) and goes on
        s = warn(s, Warn.MMU_NOTIFIER_REGISTER_BUG, mm, dev)
    s = mmgrab(s, mm)
    return new_domain(s, Domain(DomainType.SVA, unit, mm=mm, users=0))


def _set_mm(s: SystemState, mm: int, **changes) -> SystemState:
    return s._replace(mms=s.mms.set(mm, s.mms[mm]._replace(**changes)))


def _iommu_sva_bind_device(s: SystemState, dev: int, mm: int, drvdata: int = 0,
                           flags: int = 0) -> tuple[SystemState, int]:
    """Bind the address space ``mm`` to ``dev``: DMA tagged with the mm's PASID translates
    through the process page tables.

    Args:
        dev: device index.  mm: mm id; the caller holds an mm_users reference.
        drvdata: driver-private int stored on a *new* handle (per (device, PASID) data, found
            again with ``iommu_attach_handle_get``).
        flags: ``SVM_FLAG_PRIVATE_PASID`` for a PASID of this bond's own (policy flag).
    Returns:
        a handle id (> 0); the same id again for a repeated bind of the same (group, mm).
        Errors: -ENODEV (no IOMMU group), -EOPNOTSUPP (SVA disabled on x86 (E15: VT-d and
        AMD-Vi units; an SMMU implies an Arm kernel), or the IOMMU
        driver cannot allocate SVA domains), -EINVAL (E1: multi-device group; or a PASID the
        group cannot hold, from attach), -EBUSY (LAM mm; slot owned by another mm or a non-SVA
        domain), -EOVERFLOW (the mm's PASID is too large for this device), -ENOSPC (no PASID).
        Runs under ``iommu_sva_lock`` (a sleeping mutex; :mod:`pasidsim.locking`).
        Today's mm's PASID, once allocated, is kept even when a later step fails (it lives
        until ``__mmdrop``); in the designs that free it with the last bond (E0, E1, E4, H5)
        a failed bind gives a PASID it allocated back (the v5.x ``out_free_pasid`` /
        ``ioasid_put`` unwind, the RFC's ``io_mm_put``), so a failure changes nothing.
    Models: drivers/iommu/iommu-sva.c ``iommu_sva_bind_device()``.
    """
    pol = s.policy
    g = dev_group(s, dev)
    mm_get(s, mm)
    if g < 0:
        return s, -ENODEV
    if pol.sva_disabled_x86 and s.config.iommus[s.config.groups[g].iommu].ops in _X86_OPS:
        # IS_ENABLED(CONFIG_X86): an x86 kernel drives VT-d or AMD-Vi, never an SMMU
        return s, -EOPNOTSUPP
    if pol.singleton_group_required and len(s.config.groups[g].devices) != 1:
        return s, -EINVAL
    if pol.mm_exit_callback and not s.devs[dev].sva_param:
        return s, -EINVAL  # the RFC: no iommu_sva_device_init() for this device
    if flags & ~SVM_FLAG_PRIVATE_PASID:
        return s, -EINVAL
    if flags & SVM_FLAG_PRIVATE_PASID:
        return _bind_private(s, dev, mm, drvdata)
    s0 = s
    s, pasid = iommu_alloc_mm_data(s, mm, dev)
    if pasid < 0:
        return s0, pasid
    # From here on a failure keeps the mm's PASID (today: it lives until __mmdrop); the designs
    # that free it with the last bond unwind its allocation instead.
    kept = s0 if pol.pasid_free_point in (FreePoint.UNBIND, FreePoint.MM_EXIT) else s
    if pol.handle_sharing:
        s, ah = iommu_attach_handle_get(s, g, pasid, DomainType.SVA)
        if ah > 0:
            if s.domains[s.handles[ah].domain].mm != mm:
                return kept, -EBUSY
            h = s.handles[ah]
            s = s._replace(handles=s.handles.set(ah, h._replace(users=h.users + 1)))
            return _bind_done(s, mm), ah
        if ah != -ENOENT:
            return kept, ah
    err = fault_point(FaultPoint.HANDLE_ALLOC)
    if err:
        return kept, err
    s, hid = _new_handle(s, dev, g, pasid, drvdata)
    transition(Lifecycle.BOND, CREATE, BondLc.BOUND)
    if pol.shared_sva_domain:
        for dom in s.mms[mm].sva_domains:
            if not domain_compatible(s, dev, dom):
                continue
            s2, ret = iommu_attach_device_pasid(s, dom, dev, pasid, hid)
            if ret == 0:
                d = s2.domains[dom]
                s2 = s2._replace(domains=s2.domains.set(dom, d._replace(users=d.users + 1)))
                return _bind_done(s2, mm), hid
    s, dom = _attach_new_sva_domain(s, dev, mm, pasid, hid)
    if dom < 0:
        return kept, dom
    return _bind_done(s, mm), hid


def _new_handle(s: SystemState, dev: int, g: int, pasid: int,
                drvdata: int) -> tuple[SystemState, int]:
    hid = s.next_id
    return s._replace(next_id=hid + 1, handles=s.handles.set(
        hid, Handle(HandleKind.SVA, 0, dev, g, pasid, 1, drvdata))), hid


def _attach_new_sva_domain(s: SystemState, dev: int, mm: int, pasid: int,
                           hid: int) -> tuple[SystemState, int]:
    """Allocate an SVA domain for (dev's IOMMU, mm), attach it at ``pasid`` with handle
    ``hid`` and list it in ``iommu_mm->sva_domains`` (users 1).  Returns the domain id or
    -errno (the caller discards the state then)."""
    s, dom = _sva_domain_alloc(s, dev, mm)
    if dom < 0:
        return s, dom
    s, ret = iommu_attach_device_pasid(s, dom, dev, pasid, hid)
    if ret:
        return s, ret
    d = s.domains[dom]
    s = s._replace(domains=s.domains.set(dom, d._replace(users=1)))
    return _set_mm(s, mm, sva_domains=s.mms[mm].sva_domains + (dom,)), dom


def _bind_done(s: SystemState, mm: int) -> SystemState:
    """Success epilogue: the policy's mm reference; E3 IPI MSR propagation."""
    if s.policy.bind_takes_mmget:
        s = mmget(s, mm)
    if s.policy.enqcmd == Enqcmd.IPI:
        s = update_pasid_ipi(s, mm)
    return s


def _bind_private(s: SystemState, dev: int, mm: int, drvdata: int) -> tuple[SystemState, int]:
    """A bond with a PASID of its own and its own SVA domain (not the mm's PASID)."""
    if not s.policy.private_pasid:
        return s, -EINVAL
    s0 = s
    g = s.config.device_group[dev]
    s, pasid = iommu_alloc_global_pasid(s, dev)
    if pasid == IOMMU_PASID_INVALID:
        return s0, -ENOSPC
    err = fault_point(FaultPoint.HANDLE_ALLOC)
    if err:
        return s0, err
    s, hid = _new_handle(s, dev, g, pasid, drvdata)
    s, dom = _attach_new_sva_domain(s, dev, mm, pasid, hid)
    if dom < 0:
        return s0, dom
    s = _set_mm(s, mm, private_pasids=s.mms[mm].private_pasids + (pasid,))
    return _bind_done(s, mm), hid


def _iommu_sva_unbind_device(s: SystemState, handle: int) -> tuple[SystemState, int]:
    """Drop one bind.  The last unbind of a handle detaches the PASID from the group (entries
    blocked, caches invalidated, page requests drained) and frees the handle; when the SVA
    domain loses its last user it is freed, dropping its ``mm_count`` reference, which may
    free the mm and its PASID.  The caller must have stopped the device's DMA on the PASID.
    Runs under ``iommu_sva_lock``: under the mmget-in-bind design (H2) its final ``mmput()``
    may run ``__mmput`` and the IOMMU drivers' mmu-notifier ``release`` with that lock held.

    Returns 0; -ESRCH when ``handle`` is not a live SVA handle (the kernel would
    use-after-free; E0 returned -ESRCH for an unknown bond).
    Models: drivers/iommu/iommu-sva.c ``iommu_sva_unbind_device()``.
    """
    h = s.handles.get(handle)
    if h is None or h.kind != HandleKind.SVA:
        return s, -ESRCH
    mm = s.domains[h.domain].mm
    if s.policy.bind_takes_mmget and mm in s.mms:
        # H2 (5.18-rc): the bond's mm_users reference is put first, under the unbind lock,
        # while the bond and its mmu notifier are still registered (the driver's unbind drops
        # it before putting its notifier): the last one runs __mmput -> the notifier release
        s = mmput(s, mm)
        h = s.handles[handle]
    dom = s.domains[h.domain]
    if h.users > 1:
        s = s._replace(handles=s.handles.set(handle, h._replace(users=h.users - 1)))
        return _unbind_done(s, mm), 0
    s, _ = iommu_detach_device_pasid(s, h.domain, h.dev, h.pasid)
    transition(Lifecycle.BOND, BondLc.BOUND, BondLc.UNBOUND)
    s = s._replace(handles=s.handles.delete(handle))
    users = dom.users - 1
    private = h.pasid in s.mms[mm].private_pasids
    if users > 0:
        s = s._replace(domains=s.domains.set(h.domain, dom._replace(users=users)))
        return _unbind_done(s, mm), 0
    rec = s.mms[mm]
    if private:
        s, _ = iommu_free_global_pasid(s, h.pasid)
        rec = rec._replace(private_pasids=tuple(p for p in rec.private_pasids if p != h.pasid))
    if s.policy.unbind_touches_mm_after_free:
        # H8 (E16 bug): list_del(&domain->next); iommu_domain_free(), whose mmdrop may free
        # the mm; then list_empty(&iommu_mm->sva_domains) reads the iommu_mm.
        s = _set_mm(s, mm, sva_domains=tuple(d for d in rec.sva_domains if d != h.domain))
        s, _ = iommu_domain_free(s, h.domain)  # (the private list is not updated: see the
        if mm not in s.mms:                     # H8 row of expected/private-pasid-limits)
            return _unbind_done(warn(s, Warn.USE_AFTER_FREE, mm, 5), mm), 0
    else:
        s = _set_mm(s, mm, sva_domains=tuple(d for d in rec.sva_domains if d != h.domain),
                    private_pasids=rec.private_pasids)
        if s.policy.pasid_free_point in (FreePoint.UNBIND, FreePoint.MM_EXIT):
            # E4-E5: iommu_sva_free_pasid() -> ioasid_put() ran before the mm was dropped;
            # E0: the io_mm's last bond dropped its kref -> io_mm_release() -> idr_remove()
            s = maybe_free_refcounted_pasid(s, mm)
        s, _ = iommu_domain_free(s, h.domain)
    return _unbind_done(s, mm), 0


#: ``iommu_sva_lock`` (drivers/iommu/iommu-sva.c): serialises bind and unbind.
SVA_LOCK = lock_key(LockClass.IOMMU_SVA_LOCK)


def _sva_lock(s: SystemState, loc: tuple) -> int:
    return SVA_LOCK


def _bind_body(s: SystemState, loc: tuple) -> tuple[SystemState, tuple]:
    s, ret = _iommu_sva_bind_device(s, *loc[1:])
    return s, set_ret(loc, ret)


def _unbind_body(s: SystemState, loc: tuple) -> tuple[SystemState, tuple]:
    s, ret = _iommu_sva_unbind_device(s, *loc[1:])
    return s, set_ret(loc, ret)


iommu_sva_bind_device = KFunc(
    "iommu_sva_bind_device", ("dev", "mm", "drvdata", "flags"),
    (Lock(_sva_lock), Do(_bind_body), Unlock(_sva_lock)),
    _iommu_sva_bind_device.__doc__ or "", (0, 0))
iommu_sva_unbind_device = KFunc(
    "iommu_sva_unbind_device", ("handle",),
    (Lock(_sva_lock), Do(_unbind_body), Unlock(_sva_lock)),
    _iommu_sva_unbind_device.__doc__ or "")


def _unbind_done(s: SystemState, mm: int) -> SystemState:
    """Epilogue: E4–E5 PASID freed with the last bond (H2's mm reference was put first); E0
    the same (the io_mm's kref drops to 0 with its last bond: ``io_mm_put`` →
    ``io_mm_release`` → ``idr_remove``)."""
    pol = s.policy
    if pol.pasid_free_point in (FreePoint.UNBIND, FreePoint.MM_EXIT) and mm in s.mms:
        s = maybe_free_refcounted_pasid(s, mm)
    return s


def maybe_free_refcounted_pasid(s: SystemState, mm: int) -> SystemState:
    """E4–E5 / per-task refcount proposal: the PASID is freed when no bond and (under
    ``Enqcmd.TASK_REFCOUNT``) no task that activated it remains; ``mm->pasid`` is reset."""
    rec = s.mms[mm]
    if rec.pasid == IOMMU_PASID_INVALID or rec.sva_domains or rec.pasid_users:
        return s
    if s.policy.enqcmd == Enqcmd.TASK_REFCOUNT and any(
            t.mm == mm and t.pasid_activated for t in s.tasks.values()):
        return s
    s, _ = iommu_free_global_pasid(s, rec.pasid)
    if s.policy.enqcmd == Enqcmd.IPI:
        s = _set_mm(s, mm, pasid=IOMMU_PASID_INVALID)
        return update_pasid_ipi(s, mm)
    return _set_mm(s, mm, pasid=IOMMU_PASID_INVALID)


def iommu_sva_alloc_pasid(s: SystemState, mm: int, min: int,  # noqa: A002
                          max: int) -> tuple[SystemState, int]:  # noqa: A002
    """Give ``mm`` a PASID in ``[min, max]`` for a driver that manages its own PASID contexts
    (the v5.11-v6.1 helper, since folded into bind).

    Returns 0 (the PASID is ``mm->pasid``); -EINVAL (``min`` or ``max`` INVALID, ``min`` 0,
    ``max < min``); -EOVERFLOW when the mm already has a PASID outside the range; -ENOMEM when
    none is free in it (fault point IDA_ALLOC).  In the designs that free the PASID with its
    last user (E0, E1, E4, E5, H5: ``ioasid_get``/``ioasid_put``) every call takes a reference
    that :func:`iommu_sva_free_pasid` drops and the range is inclusive.  From v5.18 (E6 and
    after: the PASID lives with the mm, no reference) the existing PASID is checked against
    ``[min, max)`` although ``max`` is documented inclusive and the allocation itself is
    inclusive: a PASID equal to ``max`` can be allocated and then fails -EOVERFLOW for another
    caller with the same range (the quirk Tina Zhang pointed out; later ``> max``).
    Models: drivers/iommu/iommu-sva-lib.c ``iommu_sva_alloc_pasid()`` (v5.11-v5.17, v5.18-v6.1).
    """
    if IOMMU_PASID_INVALID in (min, max) or min == 0 or max < min:
        return s, -EINVAL
    rec = mm_get(s, mm)
    refcounted = s.policy.pasid_free_point in (FreePoint.UNBIND, FreePoint.MM_EXIT)
    if rec.pasid != IOMMU_PASID_INVALID:
        p = rec.pasid
        if not (min <= p <= max if refcounted else min <= p < max):
            return s, -EOVERFLOW
        if refcounted:
            s = _set_mm(s, mm, pasid_users=rec.pasid_users + 1)
        return s, 0
    if fault_point(FaultPoint.IDA_ALLOC):
        return s, -ENOMEM
    s2, pasid = ida_alloc(s, min, max)
    if pasid < 0:
        return s, -ENOMEM
    return _set_mm(s2, mm, pasid=pasid, pasid_users=1 if refcounted else 0), 0


def iommu_sva_free_pasid(s: SystemState, mm: int) -> tuple[SystemState, int]:
    """Drop the reference :func:`iommu_sva_alloc_pasid` took; the last one (with no bond
    left) frees the PASID and clears ``mm->pasid``.  From v5.18 (the PASID lives with the mm)
    there is nothing to drop: no change.  An mm without references: no change.  Returns 0.
    Models: drivers/iommu/iommu-sva-lib.c ``iommu_sva_free_pasid()`` (v5.11-v5.17)."""
    rec = mm_get(s, mm)
    if s.policy.pasid_free_point not in (FreePoint.UNBIND, FreePoint.MM_EXIT) or \
            not rec.pasid_users:
        return s, 0
    s = _set_mm(s, mm, pasid_users=rec.pasid_users - 1)
    return maybe_free_refcounted_pasid(s, mm), 0


def iommu_sva_get_pasid(s: SystemState, handle: int) -> tuple[SystemState, int]:
    """The PASID of a bond: the mm's PASID (or the bond's private PASID), or
    ``IOMMU_PASID_INVALID`` when the mm has none any more.
    Models: iommu-sva.c ``iommu_sva_get_pasid()`` → ``mm_get_enqcmd_pasid()``."""
    h = s.handles.get(handle)
    if h is None:
        raise ModelUsageError(f"unknown SVA handle {handle}")
    mm = s.domains[h.domain].mm
    rec = s.mms.get(mm)
    if rec is None:
        return warn(s, Warn.USE_AFTER_FREE, mm, 6), IOMMU_PASID_INVALID
    if h.pasid in rec.private_pasids:
        return s, h.pasid
    return s, rec.pasid


def iommu_sva_invalidate_kva_range(s: SystemState, start: int = 0,
                                   end: int = (1 << 64) - 1) -> tuple[SystemState, int]:
    """Before kernel page-table pages for ``[start, end)`` are freed, flush the IOMMU's cached
    paging structures of every mm that has an SVA domain (``iommu_sva_mms``; nothing when
    ``iommu_sva_present`` is false).  The model keeps no kernel page tables, so the flush drops
    every IOTLB/ATC entry of those SVA domains.  Returns the number of mms visited.
    Models: drivers/iommu/iommu-sva.c ``iommu_sva_invalidate_kva_range()`` (E16)."""
    mms = [mid for mid, m in sorted(s.mms.items()) if m.sva_domains]
    for mid in mms:
        for dom in s.mms[mid].sva_domains:
            s = flush_domain(s, dom)
    return s, len(mms)


def io_mm_exit(s: SystemState, mm: int) -> SystemState:
    """E0 (2018 io_mm RFC): at mm exit every bond's driver ``mm_exit`` callback is told to
    stop DMA (a non-zero return: ``dev_WARN`` "possible leak of PASID", and the core goes
    on), the bond is detached and dropped, and when the io_mm's last bond goes the PASID is
    removed from the IDR at once.  A later unbind of those bonds finds nothing (-ESRCH).
    Under ``Policy.mm_exit_keeps_bonds`` (König's proposal, seed 002) the drivers are only
    told: bonds and PASID stay until each driver unbinds, the entries are quiesced by the
    notifier release that follows.
    Models the RFC's ``iommu_notifier_release()`` (drivers/iommu/iommu-sva.c)."""
    rec = s.mms[mm]
    for hid, h in sorted(s.handles.items()):
        if h.kind == HandleKind.SVA and h.domain in rec.sva_domains:
            ops = dev_driver_ops(s, h.dev)
            s, ret = ops.mm_exit(s, h.dev, hid) if ops is not None else (s, 0)
            if s.policy.mm_exit_keeps_bonds:
                # König: the driver is only told; the bond and its PASID stay until its
                # explicit unbind, so a callback that cannot drain yet is no leak
                continue
            if ret:
                s = warn(s, Warn.MM_EXIT_LEAK, h.dev, h.pasid)
            h = s.handles.get(hid)
            if h is None:
                continue
            s = s._replace(handles=s.handles.set(hid, h._replace(users=1)))
            s, _ = iommu_sva_unbind_device(s, hid)
    rec = s.mms.get(mm)
    if rec is not None and rec.pasid != IOMMU_PASID_INVALID and not rec.sva_domains:
        s, _ = iommu_free_global_pasid(s, rec.pasid)
        s = _set_mm(s, mm, pasid=IOMMU_PASID_INVALID)
    return s


__all__ = ["iommu_sva_bind_device", "iommu_sva_unbind_device", "iommu_sva_get_pasid",
           "iommu_alloc_mm_data", "SVM_FLAG_PRIVATE_PASID", "EINVAL", "ENODEV"]
