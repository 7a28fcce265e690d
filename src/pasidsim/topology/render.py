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
from .convert import assumptions, to_config
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
    """Counts for JSON output and for the text header (which prints these same numbers).

    Returns a dict: ``sources``, ``formats``, ``functions`` (PCI), ``other_devices``,
    ``devices``, ``groups`` (groups the dump shows; None when it shows none: unknown),
    ``groups_unknown_reason`` (why, or None), ``multi_device_groups``, ``largest_group``
    (None when groups are unknown), ``unknown_group_devices`` (devices whose group the dump
    does not show), ``no_group_devices`` (devices the dump shows to have no group),
    ``pasid_capable``, ``pasid_enabled``, ``pasid_widths`` (BDF → bits, None if unknown),
    ``ats_capable``, ``pri_capable``, ``units`` (IOMMU units the dump names), ``warnings``
    and ``notes`` (counts), and ``model``: what the simulated machine has beyond the dump
    (``units``, ``groups``, ``assumed_units``: names, ``assumed_groups``: count).
    """
    sizes = [len(m) for m in topology.groups.groups.values()]
    pasid = topology.pasid_capable()
    shown = topology.groups_shown
    cfg = to_config(topology)
    assumed = assumptions(topology, cfg)
    status = [topology.group_status(d) for d in topology.device_ids()]
    return {
        "sources": list(topology.sources),
        "formats": list(topology.formats),
        "functions": len(topology.functions),
        "other_devices": len(topology.others),
        "devices": len(topology.functions) + len(topology.others),
        "groups": len(sizes) if shown else None,
        "groups_unknown_reason": None if shown else unknown_groups_reason(topology),
        "multi_device_groups": sum(1 for s in sizes if s > 1) if shown else None,
        "largest_group": max(sizes, default=0) if shown else None,
        "unknown_group_devices": status.count("unknown"),
        "no_group_devices": status.count("none"),
        "pasid_capable": len(pasid),
        "pasid_enabled": sum(1 for f in pasid if f.pasid_enabled),
        "pasid_widths": {f.bdf: f.pasid_width for f in pasid},
        "ats_capable": sum(1 for f in topology.functions.values() if f.ats_present),
        "pri_capable": sum(1 for f in topology.functions.values() if f.pri_present),
        "units": len(topology.units),
        "warnings": len(topology.warnings),
        "notes": len(topology.notes),
        "model": {"units": len(cfg.iommus), "groups": len(cfg.groups),
                  "assumed_units": assumed["assumed_units"],
                  "assumed_groups": len(assumed["assumed_groups"])},
    }


def unknown_groups_reason(topology: Topology) -> str:
    """Why a device's group is unknown: ``"lspci shows no groups"`` and the like."""
    if topology.groups_shown:
        return "the dump does not show its group"
    fmts = [f for f in topology.formats if f in ("lspci", "dmesg", "iomem")]
    if fmts == ["lspci"] or fmts == ["lspci", "iomem"]:
        return "lspci shows no groups"
    return "the dump shows no groups"


def summary_header(s: dict) -> str:
    """The header line of the text view, from :func:`topology_summary` (so the text and
    ``--json`` give the same counts)."""
    n, g, u = s["devices"], s["groups"], s["units"]
    parts = [f"{n} device{'s' if n != 1 else ''}"]
    if g is None:
        parts.append(f"groups unknown ({s['groups_unknown_reason']})")
    else:
        extra = []
        if s["no_group_devices"]:
            extra.append(f"{s['no_group_devices']} device(s) without a group")
        if s["unknown_group_devices"]:
            extra.append(f"{s['unknown_group_devices']} device(s) whose group is unknown")
        parts.append(f"{g} group{'s' if g != 1 else ''}"
                     + (f" ({'; '.join(extra)})" if extra else ""))
    parts.append(f"{u} IOMMU unit{'s' if u != 1 else ''} in the dump")
    head = (f"Topology from {', '.join(s['sources']) or '?'} "
            f"({', '.join(s['formats']) or 'no format'}): {', '.join(parts)}")
    m = s["model"]
    assumed = []
    if m["assumed_units"]:
        assumed.append(f"{len(m['assumed_units'])} IOMMU unit(s) ({', '.join(m['assumed_units'])})")
    if m["assumed_groups"]:
        assumed.append(f"{m['assumed_groups']} group(s), one per device whose group is unknown")
    if assumed:
        head += ("\nThe simulated machine assumes what the dump does not show: "
                 + "; ".join(assumed) + f" (model: {m['units']} unit(s), {m['groups']} "
                 "group(s))")
    return head


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


def vfio_verdicts(cfg: Config, topo: Topology | None) -> list[tuple[bool | str, str]]:
    """Per group of *cfg*: ``(True | False | "unknown", reason)`` -- whether VFIO could claim
    it now.  "no" is a fact whenever a member the dump shows is bound to a DMA-API driver
    (or has RMRRs); "yes" needs every driver shown (else ``"unknown"``) and a group the dump
    shows (a group pasidsim assumed may have members the dump does not show: ``"unknown"``).
    """
    made = assumptions(topo, cfg)["assumed_groups"] if topo is not None else {}
    why_unknown = unknown_groups_reason(topo) if topo is not None else ""
    out: list[tuple[bool | str, str]] = []
    for i, g in enumerate(cfg.groups):
        ok, why = assignability(cfg, i)
        if ok and g.name in made:
            out.append(("unknown", f"unknown: the group of {short_bdf(made[g.name])} is not in "
                        f"the dump ({why_unknown}); yes only if no other member is bound to a "
                        "DMA-API driver"))
        elif ok and topo is not None and not topo.drivers_reported:
            out.append(("unknown", _UNKNOWN))
        else:
            out.append((ok, why))
    return out


def _vfio_cell(v) -> str:
    return "?" if v == "unknown" else ("yes" if v else "no")


def render_topology(topology_or_config: Topology | Config,
                    only: set[int] | None = None) -> RenderableType:
    """A rich renderable describing the machine.

    Input: a :class:`Topology` (converted with :func:`to_config`; adds PASID *enabled* state,
    unit details, what the model assumes, warnings and notes) or a :class:`Config`; ``only``:
    group indices to show (None: all; see :func:`select_groups`) in the group, PASID-device
    and assignment views.
    Returns: a :class:`rich.console.Group`: the header (the counts of
    :func:`topology_summary`, the same as ``--json``), tables (IOMMU units, groups,
    PASID-capable devices) and one line per group that cannot be assigned to user space, with
    the reason.  What the dump does not show is ``?``, with what the model assumes beside it.
    """
    topo = topology_or_config if isinstance(topology_or_config, Topology) else None
    cfg = to_config(topo) if topo is not None else topology_or_config
    parts: list[RenderableType] = []
    made: dict[str, str] = {}
    if topo is not None:
        parts.append(Text(summary_header(topology_summary(topo)), style="bold"))
        made = assumptions(topo, cfg)["assumed_groups"]
    parts.append(_units_table(cfg, topo))
    verdicts = vfio_verdicts(cfg, topo)

    def shown(i: int) -> bool:
        return only is None or i in only
    parts.append(_groups_table(cfg, verdicts, shown, made))
    if any(d.pasid_bits for i, d in enumerate(cfg.devices) if shown(cfg.device_group[i])):
        parts.append(_pasid_table(cfg, topo, shown, made))
    else:
        parts.append(Text("PASID-capable devices: none"
                          + (" in the dump" if only is None else " in the selected groups")))
    no = sorted(((g, r) for i, (g, (ok, r)) in enumerate(zip(cfg.groups, verdicts))
                 if ok is False and shown(i)), key=lambda gr: _gkey(gr[0].name))
    yes = [g.name for i, (g, (ok, _)) in enumerate(zip(cfg.groups, verdicts))
           if ok is True and shown(i)]
    unknown = [(g, r) for i, (g, (ok, r)) in enumerate(zip(cfg.groups, verdicts))
               if ok == "unknown" and shown(i)]
    lines = Text("User-space (VFIO) assignment now:\n", style="bold")
    if yes:
        lines.append(f"  {len(yes)} group(s) yes: all members unbound or bound to "
                     "driver_managed_dma drivers\n")
    drivers_unknown = [g for g, r in unknown if r == _UNKNOWN]
    if drivers_unknown:
        lines.append(f"  {len(drivers_unknown)} group(s) {_UNKNOWN}\n")
    for g, reason in unknown:
        if reason != _UNKNOWN:
            lines.append(f"  group of {short_bdf(made.get(g.name, g.name))}: {reason}\n")
    for g, reason in no:
        label = (f"group of {short_bdf(made[g.name])} (not in the dump)" if g.name in made
                 else f"group {g.name} ({len(g.devices)} device(s))")
        lines.append(f"  {label}: {reason}\n")
    parts.append(lines)
    if topo is not None and only is None:
        outside = _outside_lines(cfg, topo)
        if outside is not None:
            parts.append(outside)
    if topo is not None and topo.warnings:
        w = Text(f"{len(topo.warnings)} warning(s):\n", style="yellow")
        for msg in topo.warnings[:20]:
            w.append(f"  {msg}\n")
        if len(topo.warnings) > 20:
            w.append(f"  … {len(topo.warnings) - 20} more\n")
        parts.append(w)
    if topo is not None and topo.notes:
        n = Text(f"{len(topo.notes)} note(s):\n")
        for msg in topo.notes[:20]:
            n.append(f"  {msg}\n")
        parts.append(n)
    return Group(*parts)


def _outside_lines(cfg: Config, topo: Topology) -> Text | None:
    """Devices with no IOMMU group, and why (the dump shows none, or it is the unit)."""
    funcs = topo.unit_functions()
    rows = []
    for i, d in enumerate(cfg.devices):
        if cfg.device_group[i] >= 0:
            continue
        status = topo.group_status(d.name)
        if status == "iommu":
            rows.append(f"  {short_bdf(d.name)}: the IOMMU unit {funcs[d.name]} itself (no "
                        "group)\n")
        elif status == "none":
            rows.append(f"  {short_bdf(d.name)}: no IOMMU group (lspci prints groups, none "
                        "for it)\n")
        else:
            rows.append(f"  {short_bdf(d.name)}: group unknown "
                        f"({unknown_groups_reason(topo)}); not placed behind an IOMMU\n")
    if not rows:
        return None
    t = Text("Devices without an IOMMU group:\n", style="bold")
    for r in rows:
        t.append(r)
    return t


def _units_table(cfg: Config, topo: Topology | None) -> Table:
    t = Table(title="IOMMU units", title_justify="left")
    for col in ("Unit", "Ops", "max_pasids", "SVA", "Groups", "Devices", "Notes"):
        t.add_column(col, no_wrap=col not in ("Notes", "Ops"))
    assumed = assumptions(topo, cfg)["units"] if topo is not None else {}
    for ui, u in sorted(enumerate(cfg.iommus), key=lambda iu: natural_key(iu[1].name)):
        gs = [g for g in cfg.groups if g.iommu == ui]
        info = topo.units.get(u.name) if topo is not None else None
        notes = []
        name, maxp, sva = u.name, str(u.max_pasids), _yn(u.sva)
        if topo is not None:
            if info is None:
                name += " (assumed)"
            if info is None or info.max_pasids is None:
                maxp = f"? (assumed {u.max_pasids})"
            if info is None or info.sva is None:
                sva = f"? (assumed {_yn(u.sva)})"
        if info is not None:
            if info.pci_function:
                notes.append(f"PCI function {short_bdf(info.pci_function)}")
            if info.catch_all:
                notes.append("catch-all (INCLUDE_PCI_ALL)")
            if info.pasid_bits:
                notes.append(f"PASID {info.pasid_bits} bits")
            if info.ias is not None:
                notes.append(f"ias {info.ias}-bit, oas {info.oas}-bit")
            if info.feature_names:
                notes.append(" ".join(info.feature_names))
            if info.overrides:
                notes.append("firmware: " + ", ".join(info.overrides))
        # the max_pasids and SVA columns say "? (assumed …)" themselves
        notes += [a for a in assumed.get(u.name, [])
                  if not a.startswith(("PASID limit not", "SVA support"))]
        t.add_row(escape(name), escape(u.ops), maxp, sva, str(len(gs)),
                  str(sum(len(g.devices) for g in gs)), escape("; ".join(notes)))
    return t


def _groups_table(cfg: Config, verdicts, shown=lambda i: True, made=None) -> Table:
    made = made or {}
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
        vfio = "yes?" if why == _UNKNOWN else _vfio_cell(ok)
        t.add_row("? (assumed)" if g.name in made else escape(g.name),
                  escape(cfg.iommus[g.iommu].name),
                  str(len(g.devices)) + ("?" if g.name in made else ""), vfio,
                  escape(", ".join(names)))
    return t


def _pasid_table(cfg: Config, topo: Topology | None, shown=lambda i: True, made=None) -> Table:
    made = made or {}
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
        eff = str(cfg.max_pasids[i])
        unit = cfg.iommus[cfg.device_iommu(i)].name if gi >= 0 else None
        info = topo.units.get(unit) if topo is not None and unit is not None else None
        if topo is not None and unit is not None and (info is None or info.max_pasids is None):
            eff = f"? (assumed {eff})"          # the unit's limit is not in the dump
        t.add_row(escape(short_bdf(d.name)), f"{d.pasid_bits} bits",
                  _yn(pf.pasid_enabled) if pf else "?", ats, pri, escape(d.driver or "-"),
                  ("?" if cfg.groups[gi].name in made else escape(cfg.groups[gi].name))
                  if gi >= 0 else "-", eff)
    return t
