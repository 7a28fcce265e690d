"""Turn a parsed :class:`~pasidsim.topology.model.Topology` into a :class:`pasidsim.config.Config`.

Rules:

* one :class:`IommuUnit` per unit the dump names; ``max_pasids`` from the decoded ECAP/EFR
  when known, else ``2**20``.  When some device has no known unit it goes behind the
  *catch-all*: the unit flagged INCLUDE_PCI_ALL, else the only unit, else a synthetic
  ``iommu0`` (also used when the dump names no unit at all);
* one :class:`DeviceConfig` per PCI function (and per non-PCI device a listing or dmesg names):
  ``pasid_bits`` = the PASID capability width (0 without the capability), ``ats``/``pri`` =
  capability present, ``group`` = the group number as a string (no known group: a singleton
  group named after the device), ``driver`` = the driver in use;
* one :class:`DriverConfig` per distinct driver (see :func:`driver_config`);
* all members of a group sit behind one unit: a member without a known unit follows the
  group's other members; a conflict moves the member to the unit of the group's first member
  (reported through *warnings*).
"""

from __future__ import annotations

from ..config import PCI_PASID_MAX_BITS, Config, DeviceConfig, DriverConfig, IommuUnit
from .model import Topology

#: IOMMU driver family per unit type, as :class:`IommuUnit.ops`.
OPS_BY_TYPE = {"vtd": "intel-iommu", "amd-vi": "amd-iommu", "smmuv3": "arm-smmu-v3"}
#: Drivers with ``struct pci_driver::driver_managed_dma = true``.
DRIVER_MANAGED_DMA = frozenset({"vfio-pci", "pci-stub", "pcieport"})
_KINDS = {"vfio-pci": "vfio-pci", "idxd": "idxd", "hisi_zip": "uacce", "hisi_sec2": "uacce",
          "hisi_hpre": "uacce", "amdgpu": "amdgpu"}
SYNTHETIC_UNIT = "iommu0"


def driver_config(name: str) -> DriverConfig:
    """The :class:`DriverConfig` for a Linux driver name.

    ``driver_managed_dma`` for vfio-pci, pci-stub and pcieport; kind ``vfio-pci``, ``idxd``,
    ``uacce`` (hisi_zip/hisi_sec2/hisi_hpre), ``amdgpu``, else ``dma-api``.
    """
    return DriverConfig(name, driver_managed_dma=name in DRIVER_MANAGED_DMA,
                        kind=_KINDS.get(name, "dma-api"))


def to_config(topology: Topology, *, default_iommu_ops: str | None = None,
              ungrouped: str = "singleton", warnings: list[str] | None = None) -> Config:
    """Build the static machine a topology describes.

    Args:
        topology: the parsed (possibly merged) topology.
        default_iommu_ops: ``ops`` of a synthetic unit; by default derived from the unit
            types / ``iommu_type_hint`` (``intel-iommu`` when nothing says otherwise).
        ungrouped: what to do with a device whose group is unknown: ``"singleton"`` (its
            own group behind the catch-all unit) or ``"no-iommu"`` (``iommu=None``, as the
            AMD IOMMU function itself, which has no group).
        warnings: if given, receives a message per group whose members had to be moved.

    Returns:
        A validated :class:`Config` (``Config.build``).

    Raises:
        ValueError: *ungrouped* is not one of the two values.
        pasidsim.errors.ModelUsageError: ``Config.build`` rejects the result (a bug here).
    """
    if ungrouped not in ("singleton", "no-iommu"):
        raise ValueError(f"ungrouped must be 'singleton' or 'no-iommu', not {ungrouped!r}")
    warn = warnings if warnings is not None else []
    devs = topology.device_ids()
    units = {name: _unit(u) for name, u in topology.units.items()}
    unit_of = {d: u for d, u in topology.unit_of.items() if u in units}
    group = {d: topology.groups.group_of(d) for d in devs}
    members: dict[int, list[str]] = {}
    for d in devs:
        if group[d] is not None:
            members.setdefault(group[d], []).append(d)
    # a group's unit: its first member with a known unit
    group_unit = {}
    for g, ms in members.items():
        known = [unit_of[m] for m in ms if m in unit_of]
        if known:
            group_unit[g] = known[0]
            moved = [m for m in ms if m in unit_of and unit_of[m] != known[0]]
            if moved:
                warn.append(f"group {g}: members {', '.join(moved)} are behind another unit "
                            f"than {known[0]}; moved to {known[0]}")
    catch_all = None
    needs = [d for d in devs if (group[d] is not None and group[d] not in group_unit)
             or (group[d] is None and d not in unit_of and ungrouped == "singleton")]
    if needs:
        flagged = [n for n, u in topology.units.items() if u.catch_all]
        if flagged:
            catch_all = flagged[0]
        elif len(units) == 1:
            catch_all = next(iter(units))
        else:
            catch_all = SYNTHETIC_UNIT if SYNTHETIC_UNIT not in units else "iommu-catchall"
            ops = _default_ops(topology, default_iommu_ops)
            units[catch_all] = IommuUnit(catch_all, ops=ops,
                                         iopf_requires_pri=ops == "intel-iommu")
    devices, drivers = [], {}
    for d in devs:
        pf = topology.functions.get(d)
        od = topology.others.get(d)
        driver = pf.driver if pf is not None else od.driver
        if driver is not None and driver not in drivers:
            drivers[driver] = driver_config(driver)
        g = group[d]
        if g is not None:
            unit, gname = group_unit.get(g, catch_all), str(g)
        elif d in unit_of:
            unit, gname = unit_of[d], None
        else:
            unit, gname = (catch_all if ungrouped == "singleton" else None), None
        bits, cap = 0, None
        if pf is not None and pf.pasid_present and pf.pasid_width is not None:
            # a capability of width 0 is one PASID (pci_max_pasids() = 1 << 0), not none
            bits, cap = min(pf.pasid_width, PCI_PASID_MAX_BITS), True
        devices.append(DeviceConfig(
            d, iommu=unit, group=gname, pasid_bits=bits, pasid_cap=cap,
            ats=bool(pf and pf.ats_present), pri=bool(pf and pf.pri_present),
            require_direct=bool(pf and pf.require_direct), driver=driver))
    used = {dc.iommu for dc in devices}
    ordered = [u for n, u in units.items() if n in topology.units or n in used]
    return Config.build(iommus=ordered, devices=devices, drivers=list(drivers.values()))


def _unit(u) -> IommuUnit:
    ops = OPS_BY_TYPE.get(u.type or "", "intel-iommu")
    maxp = u.max_pasids if u.max_pasids is not None else 1 << PCI_PASID_MAX_BITS
    # a VT-d unit of today's kernel (v6.16+) enables IOPF when an SVA domain is attached,
    # which needs ATS and PRI on the device (intel_iommu_enable_iopf)
    return IommuUnit(u.name, ops=ops, max_pasids=min(maxp, 1 << PCI_PASID_MAX_BITS),
                     sva=u.sva if u.sva is not None else True,
                     iopf_requires_pri=ops == "intel-iommu")


def _default_ops(topology: Topology, explicit: str | None) -> str:
    if explicit:
        return explicit
    types = [u.type for u in topology.units.values() if u.type]
    hint = types[0] if types else topology.iommu_type_hint
    return OPS_BY_TYPE.get(hint or "", "intel-iommu")
