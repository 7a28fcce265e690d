"""Human (rich) and JSON views of a topology: units, groups, PASID devices, VFIO assignability.

A group "can be assigned to user space now" when VFIO could claim DMA ownership of it as the
machine stands: ``iommu_group_claim_dma_owner()`` fails ``-EPERM`` while any member is bound
to a driver that uses the DMA API (``owner_cnt > 0``: every driver without
``driver_managed_dma``), and attaching the blocking domain fails ``-EINVAL`` for a member with
``require_direct`` (RMRR / ``IOMMU_RESV_DIRECT``).
"""

from __future__ import annotations

import re

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..config import Config
from .convert import to_config
from .model import Topology, decimal, short_bdf

_MAX_MEMBERS = 8
_UNKNOWN = ("yes if unbound: the dump does not show the bound driver of every device (a "
            "DMA-API driver bound to any member makes the VFIO claim fail -EPERM)")


def assignability(cfg: Config, group: int | str) -> tuple[bool, str]:
    """Whether group *group* (index or name) of *cfg* can be claimed by VFIO now, and why.

    Returns ``(True, "yes: …")`` or ``(False, "no: …")``; the reason names the first
    offending member, e.g. ``"no: member 00:1f.3 bound to snd_hda_intel (DMA-API user,
    owner_cnt>0 → VFIO claim gives -EPERM)"``.
    Raises: :class:`pasidsim.errors.ModelUsageError` for an unknown group.
    """
    g = cfg.groups[cfg.group_index(group)]
    drivers = {d.name: d for d in cfg.drivers}
    direct = [cfg.devices[i] for i in g.devices if cfg.devices[i].require_direct]
    if direct:
        return False, (f"no: require_direct (member {short_bdf(direct[0].name)} has "
                       "IOMMU_RESV_DIRECT regions: the blocking domain is refused, -EINVAL)")
    users = [cfg.devices[i] for i in g.devices if cfg.devices[i].driver is not None
             and not drivers[cfg.devices[i].driver].driver_managed_dma]
    if users:
        d = users[0]
        more = f"; {len(users) - 1} more DMA-API member(s)" if len(users) > 1 else ""
        return False, (f"no: member {short_bdf(d.name)} bound to {d.driver} (DMA-API user, "
                       f"owner_cnt>0 → VFIO claim gives -EPERM{more})")
    return True, "yes: all members unbound or bound to driver_managed_dma drivers"


def topology_summary(topology: Topology) -> dict:
    """Counts for JSON output.

    Returns a dict: ``sources``, ``formats``, ``functions`` (PCI), ``other_devices``,
    ``devices``, ``groups``, ``multi_device_groups``, ``largest_group``, ``pasid_capable``,
    ``pasid_enabled``, ``pasid_widths`` (BDF → bits, None if unknown), ``ats_capable``,
    ``pri_capable``, ``units``, ``warnings`` (count).
    """
    sizes = [len(m) for m in topology.groups.groups.values()]
    pasid = topology.pasid_capable()
    return {
        "sources": list(topology.sources),
        "formats": list(topology.formats),
        "functions": len(topology.functions),
        "other_devices": len(topology.others),
        "devices": len(topology.functions) + len(topology.others),
        "groups": len(sizes),
        "multi_device_groups": sum(1 for s in sizes if s > 1),
        "largest_group": max(sizes, default=0),
        "pasid_capable": len(pasid),
        "pasid_enabled": sum(1 for f in pasid if f.pasid_enabled),
        "pasid_widths": {f.bdf: f.pasid_width for f in pasid},
        "ats_capable": sum(1 for f in topology.functions.values() if f.ats_present),
        "pri_capable": sum(1 for f in topology.functions.values() if f.pri_present),
        "units": len(topology.units),
        "warnings": len(topology.warnings),
    }


def _gkey(name: str) -> tuple:
    return (0, decimal(name), "") if decimal(name) is not None else (1, 0, name)


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: dmar2 before dmar10."""
    return tuple((0, int(part), "") if part.isdecimal() and part.isascii() else (1, 0, part)
                 for part in re.split(r"(\d+)", name) if part)


def _yn(v) -> str:
    return "?" if v is None else ("yes" if v else "no")


def select_groups(cfg: Config, groups: tuple[str, ...] = (),
                  devices: tuple[str, ...] = ()) -> set[int]:
    """Indices of the groups named in ``groups`` and of those holding a device of
    ``devices`` (a device by its name or short BDF, ``6a:01.0``).  ValueError naming the
    first unknown group or device."""
    out = set()
    names = {g.name: i for i, g in enumerate(cfg.groups)}
    for name in groups:
        if name not in names:
            raise ValueError(f"--group {name!r}: no such IOMMU group")
        out.add(names[name])
    for name in devices:
        hits = [i for i, d in enumerate(cfg.devices) if name in (d.name, short_bdf(d.name))]
        if not hits:
            raise ValueError(f"--device {name!r}: no such device")
        for i in hits:
            if cfg.device_group[i] >= 0:
                out.add(cfg.device_group[i])
    return out


def render_topology(topology_or_config: Topology | Config,
                    only: set[int] | None = None) -> RenderableType:
    """A rich renderable describing the machine.

    Input: a :class:`Topology` (converted with :func:`to_config`; adds PASID *enabled* state,
    unit details and warnings) or a :class:`Config`; ``only``: group indices to show (None:
    all; see :func:`select_groups`) in the group, PASID-device and assignment views.
    Returns: a :class:`rich.console.Group` of tables (IOMMU units, groups, PASID-capable
    devices) and one line per group that cannot be assigned to user space, with the reason.
    """
    topo = topology_or_config if isinstance(topology_or_config, Topology) else None
    cfg = to_config(topo) if topo is not None else topology_or_config
    parts: list[RenderableType] = []
    if topo is not None:
        parts.append(Text(f"Topology from {', '.join(topo.sources) or '?'} "
                          f"({', '.join(topo.formats) or 'no format'}): "
                          f"{len(cfg.devices)} devices, {len(cfg.groups)} groups, "
                          f"{len(cfg.iommus)} IOMMU units", style="bold"))
    parts.append(_units_table(cfg, topo))
    verdicts = [assignability(cfg, i) for i in range(len(cfg.groups))]
    if topo is not None and not topo.drivers_reported:
        verdicts = [(ok, r) if not ok else (ok, _UNKNOWN) for ok, r in verdicts]
    def shown(i: int) -> bool:
        return only is None or i in only
    parts.append(_groups_table(cfg, verdicts, shown))
    if any(d.pasid_bits for i, d in enumerate(cfg.devices) if shown(cfg.device_group[i])):
        parts.append(_pasid_table(cfg, topo, shown))
    else:
        parts.append(Text("PASID-capable devices: none"
                          + (" in the dump" if only is None else " in the selected groups")))
    no = sorted(((g, r) for i, (g, (ok, r)) in enumerate(zip(cfg.groups, verdicts))
                 if not ok and shown(i)), key=lambda gr: _gkey(gr[0].name))
    yes = [g.name for i, (g, (ok, _)) in enumerate(zip(cfg.groups, verdicts))
           if ok and shown(i)]
    lines = Text("User-space (VFIO) assignment now:\n", style="bold")
    if yes and verdicts and any(r == _UNKNOWN for _, r in verdicts):
        lines.append(f"  {len(yes)} group(s) {_UNKNOWN}\n")
    elif yes:
        lines.append(f"  {len(yes)} group(s) yes: all members unbound or bound to "
                     "driver_managed_dma drivers\n")
    for g, reason in no:
        lines.append(f"  group {g.name} ({len(g.devices)} device(s)): {reason}\n")
    parts.append(lines)
    if topo is not None and topo.warnings:
        w = Text(f"{len(topo.warnings)} warning(s):\n", style="yellow")
        for msg in topo.warnings[:20]:
            w.append(f"  {msg}\n")
        if len(topo.warnings) > 20:
            w.append(f"  … {len(topo.warnings) - 20} more\n")
        parts.append(w)
    return Group(*parts)


def _units_table(cfg: Config, topo: Topology | None) -> Table:
    t = Table(title="IOMMU units", title_justify="left")
    for col in ("Unit", "Ops", "max_pasids", "SVA", "Groups", "Devices", "Notes"):
        t.add_column(col, no_wrap=col != "Notes")
    for ui, u in sorted(enumerate(cfg.iommus), key=lambda iu: natural_key(iu[1].name)):
        gs = [g for g in cfg.groups if g.iommu == ui]
        info = topo.units.get(u.name) if topo is not None else None
        notes = []
        if info is None and topo is not None:
            notes.append("synthetic (dump names no unit for these devices)")
        elif info is not None:
            if info.catch_all:
                notes.append("catch-all (INCLUDE_PCI_ALL)")
            if info.pasid_bits:
                notes.append(f"PASID {info.pasid_bits} bits")
            if info.feature_names:
                notes.append(" ".join(info.feature_names))
            if info.max_pasids is None:
                notes.append("PASID limit not in the dump (2**20 assumed)")
        t.add_row(escape(u.name), escape(u.ops), str(u.max_pasids), _yn(u.sva), str(len(gs)),
                  str(sum(len(g.devices) for g in gs)), escape("; ".join(notes)))
    return t


def _groups_table(cfg: Config, verdicts, shown=lambda i: True) -> Table:
    t = Table(title="IOMMU groups", title_justify="left")
    for col in ("Group", "Unit", "Size", "VFIO", "Members"):
        t.add_column(col, no_wrap=col != "Members", overflow="fold")
    rows = [gv for i, gv in enumerate(zip(cfg.groups, verdicts)) if shown(i)]
    for g, (ok, why) in sorted(rows, key=lambda gv: _gkey(gv[0].name)):
        names = []
        for i in g.devices[:_MAX_MEMBERS]:
            d = cfg.devices[i]
            names.append(short_bdf(d.name) + (f" [{d.driver}]" if d.driver else ""))
        if len(g.devices) > _MAX_MEMBERS:
            names.append(f"… +{len(g.devices) - _MAX_MEMBERS}")
        t.add_row(escape(g.name), escape(cfg.iommus[g.iommu].name), str(len(g.devices)),
                  ("yes?" if why == _UNKNOWN else "yes") if ok else "no",
                  escape(", ".join(names)))
    return t


def _pasid_table(cfg: Config, topo: Topology | None, shown=lambda i: True) -> Table:
    t = Table(title="PASID-capable devices", title_justify="left")
    for col in ("Device", "Width", "Enabled", "ATS", "PRI", "Driver", "Group",
                "Effective max PASIDs"):
        t.add_column(col, no_wrap=True)
    for i, d in enumerate(cfg.devices):
        if d.pasid_bits == 0 or not shown(cfg.device_group[i]):
            continue
        pf = topo.functions.get(d.name) if topo is not None else None
        gi = cfg.device_group[i]
        ats = _yn(d.ats) + (f" ({'on' if pf.ats_enabled else 'off'})" if pf and d.ats else "")
        pri = _yn(d.pri) + (f" ({'on' if pf.pri_enabled else 'off'})" if pf and d.pri else "")
        t.add_row(escape(short_bdf(d.name)), f"{d.pasid_bits} bits",
                  _yn(pf.pasid_enabled) if pf else "?", ats, pri, escape(d.driver or "-"),
                  escape(cfg.groups[gi].name) if gi >= 0 else "-", str(cfg.max_pasids[i]))
    return t
