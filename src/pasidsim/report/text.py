"""Terminal rendering of traces and final states with rich."""

from __future__ import annotations

from rich.table import Table

from ..errors import Warn, fmt_ret
from ..state import IOMMU_PASID_INVALID, DomainType, MmState, SystemState
from ..step import Action


def _arg_text(s: SystemState, k: str, v: int) -> str:
    cfg = s.config
    if k == "dev" and 0 <= v < len(cfg.devices):
        return cfg.devices[v].name
    if k == "drv" and 0 <= v < len(cfg.drivers):
        return cfg.drivers[v].name
    if k == "group" and 0 <= v < len(cfg.groups):
        return f"group {cfg.groups[v].name}"
    return str(v)


def action_text(s: SystemState, a: Action) -> str:
    """``iommu_sva_bind_device(dev=dsa0, mm=2)`` with device/driver/group names."""
    args = ", ".join(f"{k}={_arg_text(s, k, v)}" for k, v in a.kwargs().items())
    return f"{a.name}({args})"


def ret_text(ret: int) -> str:
    """``-EBUSY``, ``0``, ``INVALID`` for IOMMU_PASID_INVALID."""
    return "IOMMU_PASID_INVALID" if ret == IOMMU_PASID_INVALID else fmt_ret(ret)


def trace_table(s: SystemState, trace, title: str = "trace") -> Table:
    """A table of ``(action, ret[, note])`` rows."""
    t = Table(title=title, show_lines=False)
    t.add_column("#", justify="right")
    t.add_column("call")
    t.add_column("ret", justify="right")
    t.add_column("note")
    for i, row in enumerate(trace, 1):
        a, ret = row[0], row[1]
        note = row[2] if len(row) > 2 else ""
        style = "red" if isinstance(ret, int) and ret < 0 else None
        t.add_row(str(i), action_text(s, a), ret_text(ret), note, style=style)
    return t


def state_tables(s: SystemState) -> list[Table]:
    """Tables of the final state: mms and PASIDs, SVA bonds, groups, warnings."""
    out = []
    mm = Table(title="mm_struct")
    for c in ("mm", "mm_users", "mm_count", "state", "PASID", "SVA domains"):
        mm.add_column(c)
    for mid, m in sorted(s.mms.items()):
        mm.add_row(str(mid), str(m.mm_users), str(m.mm_count), MmState(m.state).name,
                   "-" if m.pasid == IOMMU_PASID_INVALID else str(m.pasid),
                   " ".join(map(str, m.sva_domains)) or "-")
    out.append(mm)
    bonds = Table(title="bonds (iommu_sva handles)")
    for c in ("handle", "device", "PASID", "domain", "users"):
        bonds.add_column(c)
    for hid, h in sorted(s.handles.items()):
        bonds.add_row(str(hid), s.config.devices[h.dev].name, str(h.pasid), str(h.domain),
                      str(h.users))
    out.append(bonds)
    groups = Table(title="iommu_group")
    for c in ("group", "devices", "owner_cnt", "owner", "domain", "pasid_array"):
        groups.add_column(c)
    for gi, g in enumerate(s.groups):
        gc = s.config.groups[gi]
        dom = s.domains.get(g.domain)
        kind = DomainType(dom.type).name if dom else "-"
        groups.add_row(gc.name, " ".join(s.config.devices[d].name for d in gc.devices),
                       str(g.owner_cnt), hex(g.owner) if g.owner else "-",
                       f"{g.domain} ({kind})",
                       " ".join(f"{p}:{d}" for p, d, _h in g.pasid_array) or "-")
    out.append(groups)
    alloc = Table(title="PASID space")
    alloc.add_column("allocated")
    alloc.add_column("pending free")
    alloc.add_column("warnings")
    ids = s.ida.ids()
    shown = " ".join(map(str, ids[:16])) + (" …" if len(ids) > 16 else "")
    alloc.add_row(shown or "-", " ".join(map(str, sorted(s.pending_free.keys()))) or "-",
                  "; ".join(Warn(c).describe(a, b) for c, a, b in s.warnings) or "-")
    out.append(alloc)
    return out
