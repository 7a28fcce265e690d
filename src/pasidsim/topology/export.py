"""A topology as one hierarchy, IOMMU unit → IOMMU group → device, for the full JSON
(``pasidsim topology --json``) and the text tree (``--tree``); :mod:`.draw` draws the same
hierarchy as a picture (``--svg``).

The hierarchy is the one pasidsim simulates (:func:`~pasidsim.topology.convert.to_config`):
a group sits behind its unit.  What the dump does not show stays unknown — ``None`` in the
dict (``null`` in JSON), ``?`` in text — and what pasidsim had to assume is flagged, never
passed off as read: a unit the dump does not name is ``"synthetic": true`` (and
``"assumed": true``), a device whose group the dump does not give sits in a singleton group
with ``"in_dump": false`` / ``"assumed": true`` and ``"group_status": "unknown"`` on the device,
a unit's PASID limit or SVA support the dump does not give is ``"max_pasids": null`` /
``"sva": null`` with the model's ``"model_max_pasids"`` / ``"model_sva"`` beside it, and each
unit lists its ``"assumptions"`` in words.  A device the dump shows to have no group, and an
AMD IOMMU's own PCI function (which is the unit, ``"pci_function"``), sit behind no unit.
"""

from __future__ import annotations

import dataclasses

from rich.markup import escape
from rich.tree import Tree

from ..config import Config
from .convert import assumptions, to_config
from .model import _CAP_FIELDS, IommuUnitInfo, Topology, short_bdf
from .render import natural_key, select_groups, unknown_groups_reason, vfio_verdicts

#: Version of the ``topology`` object of ``pasidsim topology --json``.
JSON_VERSION = 1


def _fields(obj, skip=()) -> dict:
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
            if f.name not in skip and not f.name.startswith("_")}


def _plain(v):
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def hierarchy(view: Topology | Config, only: set[int] | None = None) -> dict:
    """The machine as a JSON-ready dict: ``{"version", "sources", "formats", "units":
    [...], "warnings": [...]}``, and ``"no_iommu_devices": [...]`` when some device sits
    behind no unit.

    Each unit: ``name``, ``synthetic`` (the dump names no such unit), the dump's fields of
    :class:`~pasidsim.topology.model.IommuUnitInfo` (a Topology) or the fields of
    :class:`~pasidsim.config.IommuUnit` (a Config), ``ops``, ``model_max_pasids`` and
    ``groups``.  Each group: ``name``, ``number`` (int, or None for a group pasidsim made),
    ``in_dump`` (the dump lists this group; None for a Config), ``vfio_assignable`` (True /
    False / ``"unknown"`` when the dump does not show every driver), ``vfio_reason``,
    ``devices``.  Each device: ``name``, the dump's fields of
    :class:`~pasidsim.topology.model.PciFunction` (``pci``: True; its description as
    ``device_name``; the PASID/ATS/PRI/ACS fields None when the capabilities were not decoded)
    or of ``OtherDevice`` (``pci``: False), or the fields of
    :class:`~pasidsim.config.DeviceConfig`; ``unit_in_dump`` (the unit the dump names for
    it, None when it names none) and ``model_max_pasids`` (what the model gives the device).

    Args:
        view: a parsed topology, or a Config (the built-in machine).
        only: group indices of the converted Config to keep (None: all); units left without
            groups are dropped.
    Returns: a new dict; sorting: units and groups in natural name order, devices in
        BDF order within a group.
    """
    topo = view if isinstance(view, Topology) else None
    cfg = to_config(topo) if topo is not None else view
    verdicts = vfio_verdicts(cfg, topo)
    assumed = assumptions(topo, cfg) if topo is not None else None
    units = []
    for ui, u in sorted(enumerate(cfg.iommus), key=lambda iu: natural_key(iu[1].name)):
        info = topo.units.get(u.name) if topo is not None else None
        unit: dict = {"name": u.name}
        if topo is not None:
            unit["synthetic"] = unit["assumed"] = info is None
            unit.update(_fields(info, skip=("name",)) if info is not None else
                        {f.name: None for f in dataclasses.fields(IommuUnitInfo)
                         if f.name != "name"})
            unit["assumptions"] = assumed["units"].get(u.name, [])
        else:
            unit["synthetic"] = False
            unit.update(_fields(u, skip=("name",)))
        unit["ops"] = u.ops
        unit["model_max_pasids"] = u.max_pasids
        unit["model_sva"] = u.sva
        groups = []
        for gi, g in enumerate(cfg.groups):
            if g.iommu != ui or (only is not None and gi not in only):
                continue
            made = assumed is not None and g.name in assumed["assumed_groups"]
            number = None if made or not (g.name.isdecimal() and g.name.isascii()) \
                else int(g.name)
            in_dump = None if topo is None else not made
            assignable, why = verdicts[gi]
            groups.append({
                "name": g.name, "number": number, "in_dump": in_dump,
                "assumed": bool(made),
                "vfio_assignable": assignable, "vfio_reason": why,
                "devices": [_device(cfg, topo, di) for di in g.devices]})
        groups.sort(key=lambda gd: natural_key(gd["name"]))
        unit["groups"] = groups
        if only is None or groups:
            units.append(unit)
    out = {"version": JSON_VERSION,
           "sources": list(topo.sources) if topo is not None else ["built-in default machine"],
           "formats": list(topo.formats) if topo is not None else [],
           "units": units}
    funcs = topo.unit_functions() if topo is not None else {}
    ungrouped = [_device(cfg, topo, i) for i, d in enumerate(cfg.devices)
                 if cfg.device_group[i] < 0 and only is None and d.name not in funcs]
    if ungrouped:
        out["no_iommu_devices"] = ungrouped
    out["warnings"] = list(topo.warnings) if topo is not None else []
    out["notes"] = list(topo.notes) if topo is not None else []
    return out


def _device(cfg: Config, topo: Topology | None, i: int) -> dict:
    d = cfg.devices[i]
    dev: dict = {"name": d.name}
    if topo is not None:
        pf = topo.functions.get(d.name)
        od = topo.others.get(d.name)
        src = pf if pf is not None else od
        dev["pci"] = pf is not None
        dev.update(_fields(src, skip=("bdf", "name") if pf is not None else ("name",)))
        if pf is not None:
            dev["device_name"] = pf.name        # lspci's description ("Intel Corporation …")
            if not pf.caps_visible:             # capabilities not decoded: unknown, not "no"
                dev.update({k: None for k in _CAP_FIELDS + ("rciep",)})
        dev["unit_in_dump"] = topo.unit_of.get(d.name)
        dev["group_status"] = topo.group_status(d.name)
        if dev["group_status"] == "unknown":
            dev["group_unknown_reason"] = unknown_groups_reason(topo)
    else:
        dev.update(_fields(d, skip=("name",)))
    dev["model_max_pasids"] = cfg.max_pasids[i]
    return dev


def _yn(v) -> str:
    return "?" if v is None else ("yes" if v else "no")


def device_label(dev: dict, caps: bool = True) -> str:
    """One line for a device of :func:`hierarchy`: short name, driver, (from a dump) PCI
    class and ids, and with ``caps`` PASID/ATS/PRI.

    ``00:02.0 [i915] VGA compatible controller 8086:3e9b · PASID 20 bits (off) · ATS · no
    PRI``; capabilities the dump could not read (``caps_visible`` False/None) are
    ``PASID/ATS/PRI ?``.
    """
    name = short_bdf(dev["name"])
    first = name + (f" [{dev['driver']}]" if dev.get("driver") else "")
    if dev.get("pci"):
        if dev.get("class_name"):
            first += f" {dev['class_name']}"
        if dev.get("vendor_id") and dev.get("device_id"):
            first += f" {dev['vendor_id']}:{dev['device_id']}"
    parts = [first]
    if not caps:
        return first
    if "pci" in dev:                                # from a dump
        if not dev["pci"]:
            pass                                    # a platform device: no PCI capabilities
        elif not dev.get("caps_visible"):
            parts.append("PASID/ATS/PRI ?")
        else:
            parts += _caps(dev["pasid_present"], dev.get("pasid_width"),
                           dev.get("pasid_enabled"), dev["ats_present"], dev["pri_present"])
    else:                                           # a Config device
        has = dev["pasid_bits"] > 0 or bool(dev.get("pasid_cap"))
        parts += _caps(has, dev["pasid_bits"], None, dev["ats"], dev["pri"])
    return " · ".join(p for p in parts if p)


def _caps(pasid: bool, width, enabled, ats: bool, pri: bool) -> list[str]:
    out = []
    if pasid:
        w = f"{width} bits" if width is not None else "? bits"
        on = "" if enabled is None else (" (on)" if enabled else " (off)")
        out.append(f"PASID {w}{on}")
    else:
        out.append("no PASID")
    out.append("ATS" if ats else "no ATS")
    out.append("PRI" if pri else "no PRI")
    return out


def unit_label(unit: dict) -> str:
    """One line for a unit: name, driver, PASID limit and SVA (``?`` when the dump does not
    say, with what the model assumes), ``not in the dump`` for a unit pasidsim assumed."""
    if "pasid_bits" not in unit:                    # a Config unit
        return f"{unit['name']} ({unit['ops']}; max_pasids {unit['max_pasids']})"
    parts = [unit["ops"]]
    if unit.get("assumed"):
        parts.append("not in the dump: assumed for the model")
    if unit.get("pci_function"):
        parts.append(f"PCI function {short_bdf(unit['pci_function'])}")
    model = []
    if unit.get("max_pasids") is None:
        parts.append("max_pasids ?")
        m = unit["model_max_pasids"]
        model.append("2**20" if m == 1 << 20 else str(m))
    else:
        parts.append(f"max_pasids {unit['max_pasids']}")
    if unit.get("sva") is None:
        parts.append("SVA ?")
        model.append(f"SVA {'yes' if unit['model_sva'] else 'no'}")
    else:
        parts.append(f"SVA {'yes' if unit['sva'] else 'no'}")
    label = f"{unit['name']} ({'; '.join(parts)})"
    return label + (f" [assumed {', '.join(model)}]" if model else "")


def group_label(group: dict, short: bool = False) -> str:
    """One line for a group: name, size, VFIO assignability (yes / no / yes? / ?); a group
    pasidsim assumed is ``group ?`` with why (``short``: without the why, for the picture)."""
    a = group["vfio_assignable"]
    reason = group.get("vfio_reason", "")
    vfio = ("yes?" if reason.startswith("yes if unbound") else "?") if a == "unknown" \
        else ("yes" if a else "no")
    n = len(group["devices"])
    if group.get("assumed"):
        if short:
            return f"group ? (not in the dump; VFIO {vfio})"
        why = group["devices"][0].get("group_unknown_reason", "the dump does not show it")
        return (f"group ? (not in the dump: {why}; assumed alone for the model; VFIO {vfio})")
    made = ", not in the dump" if group["in_dump"] is False else ""
    return f"group {group['name']} ({n} device{'s' if n != 1 else ''}{made}; VFIO {vfio})"


def tree(view: Topology | Config, only: set[int] | None = None) -> Tree:
    """A :class:`rich.tree.Tree`: machine → IOMMU unit → group → device (one line each, see
    :func:`unit_label`, :func:`group_label`, :func:`device_label`)."""
    h = hierarchy(view, only)
    root = Tree(escape(f"machine: {', '.join(h['sources'])}"), guide_style="dim")
    for u in h["units"]:
        un = root.add(f"[bold]{escape(unit_label(u))}[/bold]")
        for g in u["groups"]:
            gn = un.add(escape(group_label(g)))
            for d in g["devices"]:
                gn.add(escape(device_label(d)))
    if h.get("no_iommu_devices"):
        nn = root.add("[bold]no IOMMU group[/bold]")
        for d in h["no_iommu_devices"]:
            why = {"none": " (the dump shows no group for it)",
                   "unknown": f" (group unknown: {d.get('group_unknown_reason')})"}.get(
                       d.get("group_status"), "")
            nn.add(escape(device_label(d) + why))
    return root


def selection(view: Topology | Config, groups=(), devices=()) -> set[int] | None:
    """Group indices named by ``--group``/``--device`` (None when both are empty).
    ValueError naming the first unknown group or device."""
    if not groups and not devices:
        return None
    cfg = to_config(view) if isinstance(view, Topology) else view
    return select_groups(cfg, tuple(groups), tuple(devices))


__all__ = ["JSON_VERSION", "device_label", "group_label", "hierarchy", "selection", "tree",
           "unit_label"]
