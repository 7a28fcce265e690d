"""IOMMU-group DMA ownership and RID domain attachment.

Two disjoint modes (v5.19+): counted kernel DMA-API use (``owner_cnt`` with ``owner == NULL``),
taken by the bus ``dma_configure`` hook when a driver without ``driver_managed_dma`` probes; and
one exclusive user owner identified by an opaque cookie (VFIO group, iommufd context), which
attaches the blocking domain.  Owner cookies are ints (0 = NULL).

Kernel sources modeled: drivers/iommu/iommu.c ``iommu_device_use_default_domain()``,
``iommu_device_unuse_default_domain()``, ``__iommu_take_dma_ownership()``,
``iommu_group_claim_dma_owner()``, ``iommu_device_claim_dma_owner()``,
``__iommu_release_dma_ownership()``, ``iommu_group_release_dma_owner()``,
``iommu_device_release_dma_owner()``, ``iommu_group_dma_owner_claimed()``,
``__iommu_attach_group()``, ``iommu_attach_device()``, ``iommu_detach_device()``,
``iommu_attach_group()``, ``iommu_detach_group()``, ``__iommu_group_set_domain_internal()``;
drivers/pci/pci-driver.c ``pci_dma_configure()/pci_dma_cleanup()``.
"""

from __future__ import annotations

from .domain import (block_pasid, dev_group, domain_compatible, domain_get, new_domain,
                     program_pasid, set_group)
from .errors import EBUSY, EINVAL, ENODEV, EPERM, EPROBE_DEFER, Warn
from .fault import FaultPoint, fault_point
from .hw.cache import flush_dev_atc, flush_domain
from .lifecycle import GroupOwnerLc, Lifecycle, transition
from .policy import OwnerModel
from .state import IOMMU_NO_PASID, Domain, DomainType, SystemState, warn


def _set_domain(s: SystemState, g: int, domain: int) -> tuple[SystemState, int]:
    """``__iommu_group_set_domain()``: same domain → 0; a device with ``require_direct``
    cannot be put on a blocking domain (-EINVAL, nothing changed)."""
    grp = s.groups[g]
    if grp.domain == domain:
        return s, 0
    if s.domains[domain].type == DomainType.BLOCKED:
        cfg = s.config
        if any(cfg.devices[d].require_direct for d in cfg.groups[g].devices):
            return s, -EINVAL
    if grp.domain:
        s = flush_domain(s, grp.domain)
    return set_group(s, g, domain=domain), 0


def _blocking_domain(s: SystemState, g: int, fallible: bool = True) -> tuple[SystemState, int]:
    """``__iommu_group_alloc_blocking_domain()``: allocated on first use, kept.  Returns the
    domain id, or -ENOMEM when the allocation fails (fault point BLOCKING_DOMAIN_ALLOC, unless
    ``fallible`` is false: a path whose kernel counterpart allocates nothing)."""
    grp = s.groups[g]
    if grp.blocking_domain:
        return s, grp.blocking_domain
    if fallible:
        err = fault_point(FaultPoint.BLOCKING_DOMAIN_ALLOC)
        if err:
            return s, err
    s, did = new_domain(s, Domain(DomainType.BLOCKED, s.config.groups[g].iommu))
    return set_group(s, g, blocking_domain=did), did


def iommu_device_use_default_domain(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """Count a kernel DMA-API user of ``dev``'s group (driver probe).

    Returns 0 (also when the device has no IOMMU); -EPROBE_DEFER when the group has no default
    domain yet; -EBUSY when the group already has users and is on another domain, is
    user-owned, or has PASIDs attached.
    Models: drivers/iommu/iommu.c ``iommu_device_use_default_domain()``.  Policy
    ``OwnerModel.ENUM_DEC2021`` models the Dec 2021 draft (``owner_cnt = 1``, any second user
    -EBUSY); ``PRE_E8_BUG_ON`` has no check here (VFIO's notifier BUG_ONs instead).
    """
    g = dev_group(s, dev)
    if g < 0:
        return s, 0
    grp = s.groups[g]
    model = s.policy.owner_model
    if not grp.default_domain:
        return s, -EPROBE_DEFER
    if model == OwnerModel.PRE_E8_BUG_ON:
        if grp.owner:
            s = warn(s, Warn.BUG_ON, g, dev)
        return set_group(s, g, owner_cnt=grp.owner_cnt + (0 if grp.owner else 1)), 0
    if model == OwnerModel.ENUM_DEC2021:
        if grp.owner_cnt != 0 or grp.domain != grp.default_domain:
            return s, -EBUSY
        return set_group(s, g, owner_cnt=1, owner=0), 0
    if model == OwnerModel.ENUM_V4:
        # v4 01/13 iommu_group_set_dma_owner(group, DMA_OWNER_DMA_API, NULL): -EBUSY only
        # for another owner type or cookie; no domain or PASID check
        if grp.owner_cnt and grp.owner:
            return s, -EBUSY
        if not grp.owner_cnt:
            transition(Lifecycle.GROUP_OWNER, GroupOwnerLc.DEFAULT, GroupOwnerLc.DMA_API)
        return set_group(s, g, owner_cnt=grp.owner_cnt + 1), 0
    if grp.owner_cnt and (grp.domain != grp.default_domain or grp.owner or grp.pasid_array):
        return s, -EBUSY
    if not grp.owner_cnt:
        transition(Lifecycle.GROUP_OWNER, GroupOwnerLc.DEFAULT, GroupOwnerLc.DMA_API)
    return set_group(s, g, owner_cnt=grp.owner_cnt + 1), 0


def iommu_device_unuse_default_domain(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """Drop a kernel DMA-API user.  WARN and no change when the count is 0 or PASIDs are
    still attached.  Returns 0.  Models ``iommu_device_unuse_default_domain()``."""
    g = dev_group(s, dev)
    if g < 0:
        return s, 0
    grp = s.groups[g]
    v4 = s.policy.owner_model == OwnerModel.ENUM_V4
    if not grp.owner_cnt or (grp.owner if v4 else grp.pasid_array):
        # v4: WARN_ON(!group->owner_cnt || group->dma_owner != owner), no PASID check
        return warn(s, Warn.UNUSE_DEFAULT_DOMAIN, g, grp.owner_cnt), 0
    if grp.owner_cnt == 1 and not grp.owner:
        transition(Lifecycle.GROUP_OWNER, GroupOwnerLc.DMA_API, GroupOwnerLc.DEFAULT)
    return set_group(s, g, owner_cnt=grp.owner_cnt - 1), 0


def _owned_state(grp) -> GroupOwnerLc:
    """The ownership state of a user-owned group (or of one being claimed, by the domain it
    is on): BLOCKED on its blocking domain, USER_ON_DEFAULT still on the kernel default domain
    (H11), USER_OWNED on the owner's own domain."""
    if (grp.domain and grp.domain == grp.blocking_domain) or (
            not grp.domain and grp.default_domain):  # enum v4: detached to NULL, DMA blocked
        return GroupOwnerLc.BLOCKED
    if grp.domain == grp.default_domain:
        return GroupOwnerLc.USER_ON_DEFAULT
    return GroupOwnerLc.USER_OWNED


def _v4_set_user_owner(s: SystemState, g: int, owner: int) -> tuple[SystemState, int]:
    """Enum v4 ``iommu_group_set_dma_owner(group, DMA_OWNER_PRIVATE_DOMAIN_USER, cookie)``
    (01/13, 05/13): -EBUSY when owned by DMA-API users or another cookie; else owner_cnt + 1,
    and the group's domain is detached to NULL (DMA blocked; no blocking domain in that era)
    when it is the default one -- another domain only WARNs and stays attached."""
    grp = s.groups[g]
    if grp.owner_cnt:
        if grp.owner != owner:
            return s, -EBUSY
        return set_group(s, g, owner_cnt=grp.owner_cnt + 1), 0
    s = set_group(s, g, owner=owner, owner_cnt=1)
    if grp.domain and grp.domain != grp.default_domain:
        s = warn(s, Warn.DMA_OWNER_NOT_DEFAULT, g, grp.domain)
    elif grp.domain:
        s = set_group(flush_domain(s, grp.domain), g, domain=0)
    transition(Lifecycle.GROUP_OWNER, GroupOwnerLc.DEFAULT, _owned_state(s.groups[g]))
    return s, 0


def _v4_release_user_owner(s: SystemState, g: int) -> SystemState:
    """Enum v4 ``iommu_group_release_dma_owner(group, DMA_OWNER_PRIVATE_DOMAIN_USER)``: WARN
    unless user-owned; owner_cnt - 1; the last one gives the group back to DMA-API use and
    re-attaches the default domain -- unless a domain is still attached (WARN, it stays)."""
    grp = s.groups[g]
    if not grp.owner_cnt or not grp.owner:
        return warn(s, Warn.RELEASE_DMA_OWNER, g, grp.owner_cnt)
    if grp.owner_cnt > 1:
        return set_group(s, g, owner_cnt=grp.owner_cnt - 1)
    transition(Lifecycle.GROUP_OWNER, _owned_state(grp), GroupOwnerLc.DEFAULT)
    s = set_group(s, g, owner_cnt=0, owner=0)  # (the cookie is not cleared; unused at 0)
    if grp.domain:
        return warn(s, Warn.RELEASE_DMA_OWNER, g, grp.domain)
    return set_group(s, g, domain=grp.default_domain)


def _take_dma_ownership(s: SystemState, g: int, owner: int) -> tuple[SystemState, int]:
    grp = s.groups[g]
    if (grp.domain and grp.domain != grp.default_domain) or grp.pasid_array:
        return s, -EBUSY
    if grp.recovery_cnt:
        return s, -EBUSY  # __iommu_group_set_domain_internal() refuses during a reset
    s0 = s
    if s.policy.claim_attaches_blocking:
        s, blocking = _blocking_domain(s, g)
        if blocking < 0:
            return s0, blocking
        s, ret = _set_domain(s, g, blocking)
        if ret:
            return s0, ret
    grp = s.groups[g]
    transition(Lifecycle.GROUP_OWNER, GroupOwnerLc.DEFAULT, _owned_state(grp))
    return set_group(s, g, owner=owner, owner_cnt=grp.owner_cnt + 1), 0


def iommu_group_claim_dma_owner(s: SystemState, group: int, owner: int) -> tuple[SystemState, int]:
    """Take exclusive (user) DMA ownership of a group (VFIO legacy path).

    Args:
        group: group index; owner: non-zero cookie.
    Returns: 0; -EINVAL (+WARN) for a NULL cookie; -EPERM when the group has any owner or
        DMA-API user; -EBUSY when a non-default domain or a PASID is attached; -EINVAL when
        the blocking domain cannot be attached (require_direct).
    Models: drivers/iommu/iommu.c ``iommu_group_claim_dma_owner()``.
    """
    if not owner:
        return warn(s, Warn.CLAIM_NULL_OWNER, group), -EINVAL
    if s.policy.owner_model == OwnerModel.ENUM_V4:
        return _v4_set_user_owner(s, group, owner)
    if s.groups[group].owner_cnt:
        return s, -EPERM
    return _take_dma_ownership(s, group, owner)


def iommu_device_claim_dma_owner(s: SystemState, dev: int, owner: int) -> tuple[SystemState, int]:
    """Take user DMA ownership through a device (iommufd); devices of one group claimed with
    the same cookie share the ownership (owner_cnt counts them).

    Returns: 0; -EINVAL (+WARN) NULL cookie; -ENODEV no group; -EPERM owned by another cookie
        or by DMA-API users; -EBUSY / -EINVAL as :func:`iommu_group_claim_dma_owner`.
    Models: drivers/iommu/iommu.c ``iommu_device_claim_dma_owner()``.
    """
    if not owner:
        return warn(s, Warn.CLAIM_NULL_OWNER, dev), -EINVAL
    g = dev_group(s, dev)
    if g < 0:
        return s, -ENODEV
    if s.policy.owner_model == OwnerModel.ENUM_V4:
        return _v4_set_user_owner(s, g, owner)
    grp = s.groups[g]
    if grp.owner_cnt:
        if owner != grp.owner:
            return s, -EPERM
        return set_group(s, g, owner_cnt=grp.owner_cnt + 1), 0
    return _take_dma_ownership(s, g, owner)


def _release_dma_ownership(s: SystemState, g: int) -> SystemState:
    if s.policy.owner_model == OwnerModel.ENUM_V4:
        return _v4_release_user_owner(s, g)
    grp = s.groups[g]
    if not grp.owner_cnt or not grp.owner or grp.pasid_array:
        return warn(s, Warn.RELEASE_DMA_OWNER, g, grp.owner_cnt)
    transition(Lifecycle.GROUP_OWNER, _owned_state(grp), GroupOwnerLc.DEFAULT)
    s = set_group(s, g, owner_cnt=0, owner=0)
    if grp.default_domain:  # __iommu_group_set_domain_nofail(group, default_domain)
        if grp.domain and grp.domain != grp.default_domain:
            s = flush_domain(s, grp.domain)
        s = set_group(s, g, domain=grp.default_domain)
    return s


def iommu_group_release_dma_owner(s: SystemState, group: int) -> tuple[SystemState, int]:
    """Release user ownership; the group returns to its default domain.  WARN and no change
    when not owned or PASIDs remain attached.  Returns 0.
    Models ``iommu_group_release_dma_owner()``."""
    return _release_dma_ownership(s, group), 0


def iommu_device_release_dma_owner(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """Drop one device's share of user ownership; the last one releases the group.
    Returns 0.  Models ``iommu_device_release_dma_owner()``."""
    g = dev_group(s, dev)
    if g < 0:
        return s, 0
    grp = s.groups[g]
    if grp.owner_cnt > 1 and (grp.owner or s.policy.owner_model != OwnerModel.ENUM_V4):
        return set_group(s, g, owner_cnt=grp.owner_cnt - 1), 0
    return _release_dma_ownership(s, g), 0


def iommu_group_dma_owner_claimed(s: SystemState, group: int) -> tuple[SystemState, int]:
    """1 when ``owner_cnt != 0`` (kernel DMA users or a user owner), else 0.
    Models ``iommu_group_dma_owner_claimed()``."""
    return s, int(s.groups[group].owner_cnt != 0)


# -- RID attach ------------------------------------------------------------------------------

def __iommu_attach_group(s: SystemState, domain: int, g: int) -> tuple[SystemState, int]:
    grp = s.groups[g]
    if grp.domain and grp.domain not in (grp.default_domain, grp.blocking_domain):
        return s, -EBUSY
    if grp.recovery_cnt:
        return s, -EBUSY
    first = s.config.groups[g].devices[0]
    if not domain_compatible(s, first, domain):
        return s, -EINVAL
    return _set_domain(s, g, domain)


def iommu_attach_device(s: SystemState, domain: int, dev: int) -> tuple[SystemState, int]:
    """Attach ``domain`` to the RID of a device alone in its group.

    Returns 0; -ENODEV no group; -EINVAL group has more than one device or incompatible
    domain; -EBUSY another non-core domain attached.  Under ``Policy.attach_device_owner_cnt``
    (seed 003 proposal) a multi-device group is accepted when ``owner_cnt == 1`` and no user
    owns it, else -EBUSY.  Models ``iommu_attach_device()``."""
    domain_get(s, domain)
    g = dev_group(s, dev)
    if g < 0:
        return s, -ENODEV
    if s.policy.attach_device_owner_cnt:
        # seed 003 proposal: the caller's driver must be the group's only DMA user
        grp = s.groups[g]
        if grp.owner or grp.owner_cnt != 1:
            return s, -EBUSY
    elif len(s.config.groups[g].devices) != 1:
        return s, -EINVAL
    return __iommu_attach_group(s, domain, g)


def iommu_attach_group(s: SystemState, domain: int, group: int) -> tuple[SystemState, int]:
    """Attach ``domain`` to every device of ``group`` (no ownership check: VFIO/iommufd own
    the group first).  Returns 0, -EBUSY or -EINVAL.  Models ``iommu_attach_group()``."""
    domain_get(s, domain)
    return __iommu_attach_group(s, domain, group)


def _core_domain(s: SystemState, g: int) -> int:
    grp = s.groups[g]
    return grp.blocking_domain if grp.owner else grp.default_domain


def iommu_detach_group(s: SystemState, domain: int, group: int) -> tuple[SystemState, int]:
    """Return the group to its core domain (blocking when user-owned, else default).
    Returns 0.  Models ``iommu_detach_group()``."""
    if s.policy.owner_model == OwnerModel.ENUM_V4 and s.groups[group].owner:
        # v4 05/13 __iommu_detach_group(): a user-owned group is detached to NULL
        grp = s.groups[group]
        return (set_group(flush_domain(s, grp.domain), group, domain=0) if grp.domain else s), 0
    if s.groups[group].owner and not s.groups[group].blocking_domain:
        s, _ = _blocking_domain(s, group, fallible=False)
    core = _core_domain(s, group)
    if core:
        s, _ = _set_domain(s, group, core)
    return s, 0


def iommu_detach_device(s: SystemState, domain: int, dev: int) -> tuple[SystemState, int]:
    """Detach from a singleton group; WARN and no change if ``domain`` is not the group's or
    the group is not singleton.  Returns 0.  Models ``iommu_detach_device()``."""
    g = dev_group(s, dev)
    if g < 0:
        return s, 0
    if s.groups[g].domain != domain or len(s.config.groups[g].devices) != 1:
        return warn(s, Warn.DETACH_WRONG_DOMAIN, dev, domain), 0
    return iommu_detach_group(s, domain, g)


def iommu_attach_device_shared(s: SystemState, domain: int,
                               dev: int) -> tuple[SystemState, int]:
    """Seed 003 (Dec 2021 DMA-ownership series v4 07/13, not merged): attach ``domain`` to
    the group of ``dev`` on behalf of one of several drivers that share it.  The group must be
    owned for a private domain (its drivers claimed it: ``DMA_OWNER_PRIVATE_DOMAIN[_USER]``,
    here an owner cookie); the first call attaches the group, later ones with the same domain
    only count (``attach_cnt``).
    Returns 0; -ENODEV (no group); -EPERM (the group is not owned for a private domain);
    -EBUSY (attached to another domain by a previous call; another non-core domain; a reset);
    -EINVAL (incompatible domain).  On failure nothing changes.
    Models: the series' ``iommu_attach_device_shared()`` (drivers/iommu/iommu.c)."""
    domain_get(s, domain)
    g = dev_group(s, dev)
    if g < 0:
        return s, -ENODEV
    grp = s.groups[g]
    if not grp.owner:
        return s, -EPERM
    if grp.attach_cnt:
        if grp.domain != domain:
            return s, -EBUSY
        return set_group(s, g, attach_cnt=grp.attach_cnt + 1), 0
    s2, ret = __iommu_attach_group(s, domain, g)
    if ret:
        return s, ret
    return set_group(s2, g, attach_cnt=1), 0


def iommu_detach_device_shared(s: SystemState, domain: int,
                               dev: int) -> tuple[SystemState, int]:
    """Seed 003: drop one shared attachment; the last one puts the group back on its core
    domain.  A count of 0 or another domain: WARN, no change.  Returns 0.
    Models: the series' ``iommu_detach_device_shared()``."""
    g = dev_group(s, dev)
    if g < 0:
        return s, 0
    grp = s.groups[g]
    if not grp.attach_cnt or grp.domain != domain:
        return warn(s, Warn.DETACH_WRONG_DOMAIN, dev, domain), 0
    s = set_group(s, g, attach_cnt=grp.attach_cnt - 1)
    if grp.attach_cnt == 1:
        s, _ = iommu_detach_group(s, domain, g)
    return s, 0


def iommu_group_finalize(s: SystemState, group: int) -> tuple[SystemState, int]:
    """``bus_iommu_probe()`` finishing a deferred group: allocate and attach its default DMA
    domain.  Returns 0 (already set: no change)."""
    if s.groups[group].default_domain:
        return s, 0
    s, did = new_domain(s, Domain(DomainType.DMA, s.config.groups[group].iommu))
    return set_group(s, group, default_domain=did, domain=did), 0


# -- PCI reset fencing (E17) -------------------------------------------------------------------

def _set_dev(s: SystemState, dev: int, **changes) -> SystemState:
    devs = list(s.devs)
    devs[dev] = devs[dev]._replace(**changes)
    return s._replace(devs=tuple(devs))


def pci_dev_reset_iommu_prepare(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """Fence an ATS-capable device before a PCI reset: its RID and every PASID it has attached
    are parked on the blocked domain (hardware entries removed and the device's ATC
    invalidated for the RID and every PASID, ``pasid_array`` kept) and the
    group's ``recovery_cnt`` is raised, so domain changes and PASID attaches on the group fail
    -EBUSY until the reset is done.  Nested calls only count.  Devices without ATS: no-op.
    Returns 0, or -ENOMEM when the group's blocking domain cannot be allocated (nothing
    changed).  Models: drivers/iommu/iommu.c ``pci_dev_reset_iommu_prepare()``."""
    g = dev_group(s, dev)
    if g < 0 or not s.config.devices[dev].ats:
        return s, 0
    s0 = s
    depth = s.devs[dev].reset_depth
    s = _set_dev(s, dev, reset_depth=depth + 1)
    if depth:
        return s, 0
    s, blocking = _blocking_domain(s, g)
    if blocking < 0:
        return s0, blocking
    s = flush_dev_atc(s, dev, IOMMU_NO_PASID)  # the RID on the blocking domain: ATC gone
    for p, _dom, _h in s.groups[g].pasid_array:
        if p:
            s = block_pasid(s, dev, p)
    return set_group(s, g, recovery_cnt=s.groups[g].recovery_cnt + 1), 0


def pci_dev_reset_iommu_done(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """End the fence: when the outermost reset is done, the device's PASIDs are reprogrammed
    from the retained ``pasid_array`` and ``recovery_cnt`` drops.  WARN on underflow.
    Returns 0.  Models: drivers/iommu/iommu.c ``pci_dev_reset_iommu_done()``."""
    g = dev_group(s, dev)
    if g < 0 or not s.config.devices[dev].ats:
        return s, 0
    depth = s.devs[dev].reset_depth
    if depth <= 0:
        return warn(s, Warn.RESET_UNDERFLOW, dev), 0
    s = _set_dev(s, dev, reset_depth=depth - 1)
    if depth > 1:
        return s, 0
    if s.config.max_pasids[dev] > 0:
        for p, dom, _h in s.groups[g].pasid_array:
            if p:
                s = program_pasid(s, dev, p, dom)
    return set_group(s, g, recovery_cnt=s.groups[g].recovery_cnt - 1), 0
