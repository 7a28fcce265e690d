"""Parsers for IOMMU group listings (the output of the usual ``/sys/kernel/iommu_groups`` loops).

Three layouts, which may be mixed with prose in one file:

* **flat** (Arch wiki loop): ``IOMMU group 2 01:00.0 VGA compatible controller [0300]: …``;
* **blocked**: ``IOMMU Group N:`` then one indented ``lspci -nns`` line per member;
* **by unit**: ``IOMMU: dmarN`` / ``  IOMMU Group: G`` / ``    Group Device: 0000:BB:DD.F - …``,
  where a group of k devices prints k² ``Group Device`` lines (de-duplicated on (group, BDF)).

Before matching, U+00A0 becomes a space and format=flowed soft wraps (a line ending in a space
continues on the next line) are joined.  A file can hold several listings (e.g. one per kernel
version); they are split into *sections* at prose between listings or at a repeated group
header, see :func:`parse_group_listings`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .lspci import parse_header
from .model import IommuUnitInfo, OtherDevice, Topology, decimal, looks_like_bdf, normalize_bdf

_UNIT_RE = re.compile(r"^\s*IOMMU:\s*(\S+)\s*$")
_DMAR_GROUP_RE = re.compile(r"^\s*IOMMU Group:\s*(\S*)\s*$")
_GROUP_DEV_RE = re.compile(r"^\s*Group Device:\s*(\S+)(?:\s+-\s+(.*?))?\s*$")
_BLOCK_RE = re.compile(r"^\s*IOMMU [Gg]roup\s+(\S+?)\s*:\s*$")
_FLAT_RE = re.compile(r"^\s*IOMMU [Gg]roup\s+([0-9]{1,9})\s+([^\s:]\S*)(?:\s+(.*?))?\s*$")
_NAME_RE = re.compile(r"^[\w.:+-]+$")
_STARTS = (_UNIT_RE, _DMAR_GROUP_RE, _GROUP_DEV_RE, _BLOCK_RE, _FLAT_RE)


def join_soft_wraps(text: str) -> list[tuple[int, str]]:
    """Undo format=flowed soft wraps and NBSP indentation.

    Returns ``(first physical line number, logical line)`` pairs.  A line ending in a space is
    joined with the next one unless the next is blank or itself starts a listing line.
    """
    out: list[tuple[int, str]] = []
    buf, start = None, 0
    for no, raw in enumerate(text.replace("\u00a0", " ").splitlines(), 1):
        if buf is not None and raw.strip() and not _starts_entry(raw):
            buf += raw
        else:
            if buf is not None:
                out.append((start, buf))
            buf, start = raw, no
        if not buf.endswith(" "):
            out.append((start, buf))
            buf = None
    if buf is not None:
        out.append((start, buf))
    return out


def _starts_entry(line: str) -> bool:
    if any(rx.match(line) for rx in _STARTS):
        return True
    return parse_header(line) is not None


@dataclass
class _Section:
    first: int
    topo: Topology
    last: int = 0
    units_seen: set = field(default_factory=set)
    headers_seen: set = field(default_factory=set)
    empty_groups: dict = field(default_factory=dict)


def parse_group_listings(text: str, source: str = "<listing>") -> list[Topology]:
    """Parse every IOMMU group listing in *text*, one :class:`Topology` per section.

    Input: flat, blocked or by-unit listings (see module doc), possibly surrounded by prose.
    Returns: a list (possibly empty) of Topologies with ``origin="listing"``, in file order.
    Errors: never raises on content; malformed headers and device addresses, a device listed
    in two groups, groups without members become warnings (on the section they occur in).
    """
    return [s.topo for s in _sections(text, source)]


def _sections(text: str, source: str) -> list[_Section]:
    sections: list[_Section] = []
    sec: _Section | None = None
    prose = False
    unit: str | None = None
    group: int | None = None
    in_block = False

    def new_section(no: int) -> _Section:
        nonlocal sec, prose, unit, group
        sec = _Section(no, Topology(origin="listing", sources=[source], formats=["listing"]))
        sections.append(sec)
        prose, unit, group = False, None, None
        return sec

    def need(no: int, repeat: bool = False) -> _Section:
        return new_section(no) if sec is None or prose or repeat else sec

    for no, line in join_soft_wraps(text):
        if not line.strip():
            in_block = False
            continue
        m = _UNIT_RE.match(line)
        if m:
            s = need(no, sec is not None and m[1] in sec.units_seen)
            unit, group, in_block = m[1], None, False
            s.units_seen.add(unit)
            s.topo.units.setdefault(unit, IommuUnitInfo(unit, type=_unit_type(unit),
                                                       source=source, line=no))
            s.last = no
            continue
        m = _DMAR_GROUP_RE.match(line)
        if m:
            s = need(no)
            group = _group_number(s.topo, m[1], source, no)
            if group is not None:
                s.empty_groups.setdefault(group, no)
            s.last, in_block = no, False
            continue
        m = _GROUP_DEV_RE.match(line)
        if m:
            s = need(no)
            if group is None:
                s.topo.warn(source, no, "Group Device line outside an IOMMU Group; ignored")
            else:
                _member(s, group, m[1], m[2], source, no, unit)
            s.last = no
            continue
        m = _BLOCK_RE.match(line)
        if m:
            s = need(no, sec is not None and m[1] in sec.headers_seen)
            s.headers_seen.add(m[1])
            group = _group_number(s.topo, m[1], source, no)
            in_block = True             # members of a malformed header are consumed, ignored
            if group is not None:
                s.empty_groups.setdefault(group, no)
            s.last = no
            continue
        m = _FLAT_RE.match(line)
        if m and (normalize_bdf(m[2]) or looks_like_bdf(m[2])):
            s = need(no)
            _member(s, int(m[1]), m[2], m[3], source, no, None)
            s.last, in_block = no, False
            continue
        if in_block and sec is not None:
            tok = line.split(None, 1)
            if group is None and line[:1].isspace():
                continue
            if normalize_bdf(tok[0]) or (looks_like_bdf(line) and line[:1].isspace()):
                _member(sec, group, tok[0], tok[1] if len(tok) > 1 else None, source, no, None)
                sec.last = no
                continue
            if len(tok) == 1 and line[:1].isspace() and _NAME_RE.match(tok[0]):
                _member(sec, group, tok[0], None, source, no, None)
                sec.last = no
                continue
        in_block = False
        if sec is not None:
            prose = True
    for s in sections:
        for g, no in s.empty_groups.items():
            if g not in s.topo.groups.groups:
                s.topo.warn(source, no, f"IOMMU group {g} has no members (truncated listing?)")
        buses = {b.split(":")[1] for b in s.topo.functions}
        s.topo.enumerates_pci = len(s.topo.groups) > 1 and "00" in buses
        s.topo.groups_shown = True
        named = [u for u in s.topo.units.values() if u.type]
        if named:
            s.topo.iommu_type_hint = named[0].type
            s.topo.type_evidence = f"{source}:{named[0].line}: unit name {named[0].name}"
    return sections


def parse_group_listing(text: str, source: str = "<listing>",
                        section: int | None = None) -> Topology:
    """Parse an IOMMU group listing; when the text holds several, pick one.

    Args:
        text: the listing (see module doc).
        source: name used in warnings.
        section: 0-based index of the listing to return; by default the one with the most
            devices (the first among equals), which skips partial excerpts quoted in prose.

    Returns: a :class:`Topology` (``origin="listing"``); empty, with a warning, if no listing
    line was found.  A warning names the sections when there is more than one.

    Raises:
        TopologyError: *section* is out of range.
    """
    from .model import TopologyError

    found = _sections(text, source)
    secs = [s.topo for s in found]
    if not secs:
        t = Topology(origin="listing", sources=[source], formats=[])
        t.warn(source, 0, "no IOMMU group listing found")
        return t
    if section is None:
        sizes = [len(s.groups.devices()) for s in secs]
        section = sizes.index(max(sizes))
    elif not 0 <= section < len(secs):
        raise TopologyError(source, 0, f"section {section} out of range: the file holds "
                            f"{len(secs)} listing(s)")
    chosen = secs[section]
    if len(secs) > 1:
        desc = "; ".join(f"#{i} lines {f.first}-{f.last}: {len(f.topo.groups)} groups/"
                         f"{len(f.topo.groups.devices())} devices" for i, f in enumerate(found))
        chosen.note(source, 0, f"{len(secs)} separate listings ({desc}); using #{section} "
                    "(most devices, first among equals); pass section= for another")
    return chosen


def _unit_type(name: str) -> str | None:
    if name.startswith("dmar"):
        return "vtd"
    if name.startswith("ivhd"):
        return "amd-vi"
    if "smmu" in name:
        return "smmuv3"
    return None


def _group_number(topo: Topology, text: str, source: str, no: int) -> int | None:
    if decimal(text) is not None:
        return decimal(text)
    topo.warn(source, no, f"IOMMU group {text!r} is not a number; its members are ignored")
    return None


def _member(sec: _Section, group: int | None, dev: str, desc: str | None, source: str,
            no: int, unit: str | None) -> None:
    topo = sec.topo
    if group is None:
        return
    bdf = normalize_bdf(dev)
    if bdf is None and (looks_like_bdf(dev) or not _NAME_RE.match(dev)):
        topo.warn(source, no, f"malformed device address {dev!r}; ignored")
        return
    name = bdf or dev
    prev = topo.groups.group_of(name)
    if prev is not None and prev != group:
        topo.warn(source, no, f"{name} listed in group {group} but already in group {prev}; "
                  "keeping group " + str(prev))
        return
    if prev is None:
        topo.groups.add(group, name)
    if unit is not None:
        old = topo.unit_of.setdefault(name, unit)
        if old != unit:
            topo.warn(source, no, f"{name} listed under {unit} and {old}; keeping {old}")
    if bdf is None:
        topo.others.setdefault(name, OtherDevice(name, source=source, line=no))
        return
    pf = topo.function(bdf, source, no)
    if desc:
        hdr = parse_header(f"{bdf.split(':', 1)[1]} {desc}")
        if hdr is not None:
            for k in ("class_name", "class_code", "vendor_id", "device_id", "name"):
                setattr(pf, k, getattr(pf, k) or getattr(hdr, k))
