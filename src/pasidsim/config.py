"""Static machine description: IOMMU units, devices, IOMMU groups and drivers.

A :class:`Config` is the part of the machine that does not change while it runs (the topology).
The running state (:mod:`pasidsim.state`) refers to its entities by index: device ``i`` is
``config.devices[i]``, group ``g`` is ``config.groups[g]``, and so on.  Names are kept here only,
never in the hashed state.

Kernel sources modeled:
- ``drivers/iommu/iommu.c: dev_iommu_get_max_pasids()`` (per-device PASID count),
- ``drivers/pci/ats.c: pci_max_pasids()`` (``1 << Max PASID Width``),
- ``drivers/iommu/iommu.c: iommu_group_alloc()/iommu_group_add_device()`` (groups).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ModelUsageError

#: PCIe limit: a PASID is at most 20 bits wide (PCIe r6.0 §6.20.2.1).
PCI_PASID_MAX_BITS = 20


@dataclass(frozen=True)
class IommuUnit:
    """One IOMMU instance (a VT-d DMAR unit, an SMMUv3, an AMD-Vi IOMMU).

    Args:
        name: display name (``"dmar0"``).
        ops: the IOMMU driver family (``"intel-iommu"``, ``"arm-smmu-v3"``, ``"amd-iommu"``);
            domains are compatible across units of the same family (the core checks
            ``domain->owner == ops``, ``drivers/iommu/iommu.c: domain_iommu_ops_compatible()``).
        max_pasids: the instance's PASID limit, a count in [0, 2**20]
            (``iommu_device::max_pasids``); 0 means the unit cannot do PASID.
        sva: the driver implements ``ops->domain_alloc_sva`` (else bind fails ``-EOPNOTSUPP``).
        pasid_ops: the driver implements ``set_dev_pasid`` for its domains and blocked domain
            (else ``iommu_attach_device_pasid`` fails ``-EOPNOTSUPP``).
        iotlb_entries: IOTLB capacity in translations (QEMU VT-d uses 1024).
        release_takes_sva_lock: the driver's mmu-notifier ``release`` takes the lock that its
            SVA unbind path holds (arm-smmu-v3 ``arm_smmu_mm_release()`` and ``sva_lock``,
            5.18-6.8), modelled as ``iommu_sva_lock``: an ``mmput()`` that runs ``__mmput``
            inside unbind (the mmget-in-bind design, seed 000) deadlocks.
        iopf_requires_pri: attaching a domain with an I/O page-fault handler (an SVA domain,
            an iommufd hwpt with a fault object) enables IOPF on the device, which fails
            ``-ENODEV`` unless it has ATS and PRI: VT-d since v6.16
            (``intel_iommu_enable_iopf()``).  The built-in machine's VT-d units set it; off by
            default so that hand-written machines (and kernel-spec §8's, which predates it) let
            a device with PASID but no PRI bind.
    """

    name: str
    ops: str = "intel-iommu"
    max_pasids: int = 1 << PCI_PASID_MAX_BITS
    sva: bool = True
    pasid_ops: bool = True
    iotlb_entries: int = 1024
    release_takes_sva_lock: bool = False
    iopf_requires_pri: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.max_pasids <= 1 << PCI_PASID_MAX_BITS:
            raise ModelUsageError(
                f"iommu {self.name!r}: max_pasids {self.max_pasids} outside [0, 2**20]")


@dataclass(frozen=True)
class DeviceConfig:
    """One device (PCI function or platform device).

    Args:
        name: display name, e.g. a BDF ``"0000:6a:01.0"``.
        iommu: name of the IOMMU unit in front of it, or ``None`` (no IOMMU: no group, every
            IOMMU call on it fails ``-ENODEV``).
        group: IOMMU group name; devices naming the same group share it.  ``None`` gives the
            device a singleton group named after it.
        pasid_bits: PCI PASID capability "Max PASID Width" in bits, in [0, 20]; 0 = no
            capability (unless ``pasid_cap``).  For a non-PCI device, the ``pasid-num-bits``
            firmware property.
        pasid_cap: the device has a PASID capability; ``None`` (default) = ``pasid_bits > 0``.
            ``pasid_cap: true`` with ``pasid_bits: 0`` is a capability of width 0:
            ``pci_max_pasids()`` returns ``1 << 0`` = 1, so ``max_pasids`` is 1 -- the device
            takes part in PASID attach (it is not skipped like a device without the
            capability) but can hold no PASID but 0, so every PASID attach to its group fails
            -EINVAL (``pasid >= max_pasids``).
        ats: Address Translation Services capable (device ATC).
        pri: Page Request Interface capable (recoverable faults, IOPF).
        pasid_features: the PASID capability's supported features, ``PCI_PASID_CAP_EXEC``
            (0x2) and ``PCI_PASID_CAP_PRIV`` (0x4); what ``pci_enable_pasid`` may enable.
        physfn: a virtual function's physical function (device name): a VF has no PASID
            capability of its own and uses its PF's (width, features, enable state).
        acs_path: ACS Request Redirect and Upstream Forwarding are enabled on every switch
            port between the device and the root (``pci_acs_path_enabled(..., RR | UF)``),
            which ``pci_enable_pasid`` requires.
        eetlp_prefix: the path supports End-End TLP prefixes, which carry the PASID.
        require_direct: firmware requires identity mappings (RMRR / IOMMU_RESV_DIRECT): the
            device can never be attached to a blocking domain.
        driver: name of the driver bound at start, or ``None``.
        atc_entries: device ATC capacity in translations.
    """

    name: str
    iommu: str | None = "iommu0"
    group: str | None = None
    pasid_bits: int = 0
    pasid_cap: bool | None = None
    pasid_features: int = 0
    physfn: str | None = None
    acs_path: bool = True
    eetlp_prefix: bool = True
    ats: bool = False
    pri: bool = False
    require_direct: bool = False
    driver: str | None = None
    atc_entries: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.pasid_bits <= PCI_PASID_MAX_BITS:
            raise ModelUsageError(
                f"device {self.name!r}: pasid_bits {self.pasid_bits} outside [0, 20]")
        if self.pasid_features & ~0x6:
            raise ModelUsageError(
                f"device {self.name!r}: pasid_features {self.pasid_features:#x}: only EXEC "
                "(0x2) and PRIV (0x4)")
        if self.pasid_cap is False and self.pasid_bits > 0:
            raise ModelUsageError(
                f"device {self.name!r}: pasid_bits {self.pasid_bits} without a PASID capability "
                "(pasid_cap: false)")

    @property
    def has_pasid_cap(self) -> bool:
        """The device has a PCI PASID capability (or ``pasid-num-bits``)."""
        return self.pasid_cap if self.pasid_cap is not None else self.pasid_bits > 0


@dataclass(frozen=True)
class DriverConfig:
    """A device driver.

    Args:
        name: driver name (``"idxd"``, ``"vfio-pci"``, ``"e1000e"``).
        driver_managed_dma: ``struct pci_driver::driver_managed_dma``: the bus does *not* call
            ``iommu_device_use_default_domain()`` at probe (vfio-pci, pci-stub, pcieport).
        kind: behaviour plug-in in :mod:`pasidsim.drivers` (``"dma-api"``, ``"uacce"``,
            ``"idxd"``, ``"amdgpu"``, ``"vfio-pci"``).
        mm_exit_drains: E0 design only (``Policy.mm_exit_callback``): whether the driver's
            ``mm_exit(dev, pasid, drvdata)`` callback waits for the device's queued work on the
            PASID before returning -- the contract of the 2018 io_mm RFC ("when the device
            driver returns from mm_exit(), it [...] has finished using the PASID", seed 002).
            ``False`` models hardware whose queues cannot be drained inside the mm release path
            (a GPU's queues, seed 002; that path must not block, Michal Hocko): the callback
            stops new submissions and returns at once, and descriptors already queued complete
            later as hardware events (``dma_complete``).  Ignored outside E0 and by drivers
            without queues.
        uacce_sva: uacce drivers only: the parent driver registers its accelerator with
            ``UACCE_DEV_SVA`` (HiSilicon's ``qm->use_sva``); without it queues are not bound to
            the opener's mm (no PASID).
        system_pasid: idxd drivers only: the probe takes a global PASID for the device's
            kernel work queues and attaches the device's current (DMA API) domain at it
            (``idxd_enable_system_pasid``); the remove detaches and frees it.  The kernel does
            this at every probe with the ``sva`` module parameter on (its default); pasidsim
            makes it opt-in so that a machine's user PASIDs keep their numbers.
    """

    name: str
    driver_managed_dma: bool = False
    kind: str = "dma-api"
    mm_exit_drains: bool = True
    uacce_sva: bool = True
    system_pasid: bool = False


@dataclass(frozen=True)
class GroupConfig:
    """An IOMMU group: devices that the IOMMU cannot isolate from each other.

    Args:
        name: group name (the sysfs number as a string, usually).
        devices: device indices, in probe order.
        iommu: index of the IOMMU unit all members sit behind.
        deferred: the default domain is not set up yet at start (``bus_iommu_probe()`` still
            finalising the group; driver probe fails ``-EPROBE_DEFER`` until
            ``iommu_group_finalize`` runs).
    """

    name: str
    devices: tuple[int, ...]
    iommu: int
    deferred: bool = False


@dataclass(frozen=True)
class Config:
    """The static machine.  Build it with :meth:`Config.build`.

    Attributes:
        iommus, devices, drivers: the entities, indexed by position.
        groups: derived from the devices' ``group`` names, in order of first appearance.
        device_group: per device index, its group index or -1 (no IOMMU).
        max_pasids: per device index, ``dev->iommu->max_pasids`` as the kernel computes it.
    """

    iommus: tuple[IommuUnit, ...]
    devices: tuple[DeviceConfig, ...]
    drivers: tuple[DriverConfig, ...]
    groups: tuple[GroupConfig, ...]
    device_group: tuple[int, ...]
    max_pasids: tuple[int, ...]
    _index: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    @staticmethod
    def build(iommus=(), devices=(), drivers=(), deferred_groups=()) -> "Config":
        """Validate and index a machine.

        Args:
            iommus: :class:`IommuUnit` values (unique names).
            devices: :class:`DeviceConfig` values (unique names; ``iommu`` must name a unit;
                all members of a group must sit behind the same unit).
            drivers: :class:`DriverConfig` values (unique names).  A device's ``driver`` must
                name one of them.
            deferred_groups: names of groups whose default domain is not ready at start.

        Raises:
            ModelUsageError: on any inconsistency, naming the entity.
        """
        iommus, devices, drivers = tuple(iommus), tuple(devices), tuple(drivers)
        unit_ix = _unique(iommus, "iommu")
        _unique(devices, "device")
        drv_ix = _unique(drivers, "driver")
        members: dict[str, list[int]] = {}
        group_unit: dict[str, int] = {}
        for i, d in enumerate(devices):
            if d.driver is not None and d.driver not in drv_ix:
                raise ModelUsageError(f"device {d.name!r}: unknown driver {d.driver!r}")
            if d.iommu is None:
                if d.group is not None:
                    raise ModelUsageError(f"device {d.name!r}: a group needs an iommu")
                continue
            if d.iommu not in unit_ix:
                raise ModelUsageError(f"device {d.name!r}: unknown iommu {d.iommu!r}")
            gname = d.group if d.group is not None else d.name
            u = unit_ix[d.iommu]
            if group_unit.setdefault(gname, u) != u:
                raise ModelUsageError(
                    f"device {d.name!r}: group {gname!r} spans two IOMMU units")
            members.setdefault(gname, []).append(i)
        for g in deferred_groups:
            if g not in members:
                raise ModelUsageError(f"deferred_groups: unknown group {g!r}")
        groups = tuple(GroupConfig(g, tuple(m), group_unit[g], g in deferred_groups)
                       for g, m in members.items())
        device_group = [-1] * len(devices)
        for gi, g in enumerate(groups):
            for di in g.devices:
                device_group[di] = gi
        names = {d.name: d for d in devices}
        for d in devices:
            if d.physfn is not None and (d.physfn not in names or names[d.physfn].physfn):
                raise ModelUsageError(f"device {d.name!r}: physfn {d.physfn!r} is not a "
                                      "physical function of this machine")
        maxp = []
        for d in devices:
            if d.iommu is None:
                maxp.append(0)
                continue
            # pci_max_pasids(): 1 << width with a capability (width 0 -> 1), -EINVAL without;
            # a VF reads its PF's capability
            cap = names[d.physfn] if d.physfn is not None else d
            dev_max = (1 << cap.pasid_bits) if cap.has_pasid_cap else 0
            maxp.append(min(dev_max, iommus[unit_ix[d.iommu]].max_pasids))
        cfg = Config(iommus, devices, drivers, groups, tuple(device_group), tuple(maxp))
        cfg._index.update(
            iommu=unit_ix, device=_unique(devices, "device"), driver=drv_ix,
            group={g.name: i for i, g in enumerate(groups)})
        return cfg

    # -- lookups ---------------------------------------------------------------------------
    def device_index(self, name_or_index: str | int) -> int:
        """Index of a device given by name or index; ``ModelUsageError`` if unknown."""
        return self._lookup("device", name_or_index, len(self.devices))

    def driver_index(self, name_or_index: str | int) -> int:
        """Index of a driver given by name or index; ``ModelUsageError`` if unknown."""
        return self._lookup("driver", name_or_index, len(self.drivers))

    def group_index(self, name_or_index: str | int) -> int:
        """Index of a group given by name or index; ``ModelUsageError`` if unknown."""
        return self._lookup("group", name_or_index, len(self.groups))

    def iommu_index(self, name_or_index: str | int) -> int:
        """Index of an IOMMU unit given by name or index; ``ModelUsageError`` if unknown."""
        return self._lookup("iommu", name_or_index, len(self.iommus))

    def device_iommu(self, dev: int) -> int:
        """Index of the IOMMU unit in front of device ``dev``, or -1."""
        g = self.device_group[dev]
        return -1 if g < 0 else self.groups[g].iommu

    def _lookup(self, kind: str, key: str | int, n: int) -> int:
        if isinstance(key, bool):
            raise ModelUsageError(f"{kind}: expected a name or index, got {key!r}")
        if isinstance(key, int):
            if 0 <= key < n:
                return key
            raise ModelUsageError(f"unknown {kind} index {key}")
        try:
            return self._index[kind][key]
        except (KeyError, TypeError):
            raise ModelUsageError(f"unknown {kind} {key!r}") from None


def _unique(items, kind: str) -> dict[str, int]:
    ix: dict[str, int] = {}
    for i, it in enumerate(items):
        if it.name in ix:
            raise ModelUsageError(f"duplicate {kind} name {it.name!r}")
        ix[it.name] = i
    return ix
