"""Turn a parsed :class:`~pasidsim.topology.model.Topology` into a :class:`pasidsim.config.Config`.

Rules:

* one :class:`IommuUnit` per unit the dump names, its ``ops`` from its type (VT-d, AMD-Vi,
  SMMUv3); ``max_pasids``/``sva`` from the decoded ECAP/EFR/feature word when known, else the
  model **assumes** ``2**20`` and SVA (see :func:`assumptions`).  When some device has no
  known unit it goes behind the *catch-all*: the unit flagged INCLUDE_PCI_ALL, else the only
  unit, else an **assumed** ``iommu0`` (also used when the dump names no unit at all), whose
  ``ops`` come from the platform the dump shows, ``"unknown"`` when it shows none -- never a
  default vendor;
* one :class:`DeviceConfig` per PCI function (and per non-PCI device a listing or dmesg names):
  ``pasid_bits`` = the PASID capability width (0 without the capability), ``ats``/``pri`` =
  capability present, ``group`` = the group number as a string, ``driver`` = the driver in
  use.  A device the dump shows to have no group (lspci printing groups, but none for it) and
  an IOMMU's own PCI function (AMD ``00:00.2``, which is the unit) get ``iommu=None``; a
  device whose group the dump does not show gets an **assumed** singleton group named after
  it (``ungrouped="singleton"``) or ``iommu=None`` (``"no-iommu"``);
* one :class:`DriverConfig` per distinct driver (see :func:`driver_config`);
* all members of a group sit behind one unit: a member without a known unit follows the
  group's other members; a conflict moves the member to the unit of the group's first member
  (reported through *warnings*).
"""

from __future__ import annotations

import re

from ..config import PCI_PASID_MAX_BITS, Config, DeviceConfig, DriverConfig, IommuUnit
from .model import Topology, decimal

#: IOMMU driver family per unit type, as :class:`IommuUnit.ops`.
OPS_BY_TYPE = {"vtd": "intel-iommu", "amd-vi": "amd-iommu", "smmuv3": "arm-smmu-v3"}
#: Drivers with ``struct pci_driver::driver_managed_dma = true``.
DRIVER_MANAGED_DMA = frozenset({"vfio-pci", "pci-stub", "pcieport"})
_KINDS = {"vfio-pci": "vfio-pci", "idxd": "idxd", "hisi_zip": "uacce", "hisi_sec2": "uacce",
          "hisi_hpre": "uacce", "amdgpu": "amdgpu"}
SYNTHETIC_UNIT = "iommu0"
#: ``IommuUnit.ops`` of a unit whose IOMMU family the dump does not show.
UNKNOWN_OPS = "unknown"


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
        ungrouped: what to do with a device whose group is unknown: ``"singleton"`` (an
            assumed group of its own behind the catch-all unit) or ``"no-iommu"``
            (``iommu=None``).  Devices known to have no group never get one.
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
    status = {d: topology.group_status(d) for d in devs}
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
             or (status[d] == "unknown" and d not in unit_of and ungrouped == "singleton")]
    if needs:
        flagged = [n for n, u in topology.units.items() if u.catch_all]
        if flagged:
            catch_all = flagged[0]
        elif len(units) == 1:
            catch_all = next(iter(units))
        else:
            catch_all = SYNTHETIC_UNIT if SYNTHETIC_UNIT not in units else "iommu-catchall"
            ops = _default_ops(topology, default_iommu_ops)
            # it stands for one of the dump's units (which one is not shown): what they all
            # say, the model assumes for it too; else the model's defaults (2**20, SVA)
            sva, maxp = _common(topology, "sva"), _common(topology, "max_pasids")
            units[catch_all] = IommuUnit(
                catch_all, ops=ops, iopf_requires_pri=ops == "intel-iommu",
                sva=True if sva is None else sva,
                max_pasids=1 << PCI_PASID_MAX_BITS if maxp is None else
                min(maxp, 1 << PCI_PASID_MAX_BITS))
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
        elif status[d] in ("none", "iommu"):
            unit, gname = None, None
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
    ops = OPS_BY_TYPE.get(u.type or "", UNKNOWN_OPS)
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
    return OPS_BY_TYPE.get(hint or "", UNKNOWN_OPS)


def _common(topology: Topology, attr: str):
    """The value of *attr* every unit of the dump gives, or None (no units, one unknown, or
    they differ)."""
    vals = {getattr(u, attr) for u in topology.units.values()}
    return next(iter(vals)) if len(vals) == 1 else None


def _natural(name: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                 for p in re.split(r"([0-9]+)", name) if p)


def assumptions(topology: Topology, cfg: Config) -> dict:
    """What the machine *cfg* built from *topology* assumes beyond the dump.

    Returns ``{"units": {unit: [text, ...]}, "assumed_units": [names], "assumed_groups":
    {group name: device}, "unknown_group_devices": [devices]}``: per unit, each value the
    model uses that the dump does not give (a unit the dump does not name, its driver family,
    PASID limit, SVA support); the groups pasidsim made (one per device whose group the dump
    does not show) and those devices.
    """
    units: dict[str, list[str]] = {}
    for ui, u in enumerate(cfg.iommus):
        info = topology.units.get(u.name)
        notes = []
        if info is None:
            n = sum(len(g.devices) for g in cfg.groups if g.iommu == ui)
            notes.append(f"unit not in the dump: assumed for the {n} device(s) whose unit the "
                         "dump does not show" + (
                             f" (one of its {len(topology.units)} units, which one is not "
                             "shown)" if topology.units else ""))
            if u.ops == UNKNOWN_OPS:
                notes.append("IOMMU driver unknown: the dump shows no IOMMU vendor")
            elif topology.type_evidence:
                notes.append(f"driver {u.ops} from the dump: {topology.type_evidence}")
        elif u.ops == UNKNOWN_OPS:
            notes.append("IOMMU driver unknown: the dump does not say which this unit is")
        if info is not None and info.catch_all:
            placed = sum(1 for g in cfg.groups if g.iommu == ui for di in g.devices
                         if cfg.devices[di].name not in topology.unit_of)
            scoped = set(topology.unit_of.values())
            others = sorted((n for n, o in topology.units.items()
                             if n != u.name and not o.catch_all and n not in scoped),
                            key=_natural)
            if placed and others:
                more = "…" if len(others) > 3 else ""
                notes.append(f"{placed} device(s) the dump places behind no unit are put here "
                             f"(INCLUDE_PCI_ALL); the device scopes of {', '.join(others[:3])}"
                             f"{more} are not in the dump, so some of them may sit behind "
                             "those")
        n_units = len(topology.units)
        if info is None and _common(topology, "max_pasids") is not None:
            notes.append(f"PASID limit {u.max_pasids}: assumed, what all {n_units} units of "
                         "the dump say")
        elif info is None or info.max_pasids is None:
            notes.append(f"PASID limit not in the dump: the model assumes {u.max_pasids}")
        if info is None and _common(topology, "sva") is not None:
            notes.append(f"SVA {'yes' if u.sva else 'no'}: assumed, what all {n_units} units "
                         "of the dump say")
        elif info is None or info.sva is None:
            notes.append("SVA support not in the dump: the model assumes "
                         + ("yes" if u.sva else "no"))
        units[u.name] = notes
    made = {}
    for g in cfg.groups:
        number = decimal(g.name)
        if number is None or number not in topology.groups.groups:
            made[g.name] = cfg.devices[g.devices[0]].name
    return {"units": units,
            "assumed_units": [u.name for u in cfg.iommus if u.name not in topology.units],
            "assumed_groups": made,
            "unknown_group_devices": [d for d in topology.device_ids()
                                      if topology.group_status(d) == "unknown"]}
