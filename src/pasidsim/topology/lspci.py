"""Parser for ``lspci`` output (plain, ``-v``, ``-vv``, ``-vvv``, with or without ``-nn``/``-D``).

Handles the pitfalls of pasted dumps: indented headers (email), tabs turned into spaces,
a missing header when the dump was ``lspci -vvv -s BDF`` cut to the capability lines, and
``Capabilities: <access denied>``.  All capability numbers are hexadecimal
(``Max PASID Width: 14`` = 20 bits), as printed by pciutils ``ls-ecaps.c``.
"""

from __future__ import annotations

import re

from .model import (IommuUnitInfo, PciFunction, Topology, _bdf_key, decimal, normalize_bdf,
                    short_bdf)

HEADER_RE = re.compile(
    r"^[ \t]*(?P<bdf>(?:[0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\.[0-7]) "
    r"(?P<cls>[^\s:][^:]*?)(?: \[(?P<code>[0-9a-fA-F]{4})\])?: (?P<desc>.*)$")
_PROGIF_RE = re.compile(r"\s*\(prog-if\b.*$")
_REV_RE = re.compile(r"\s*\(rev ([0-9a-fA-F]{2})\)\s*$")
_IDS_RE = re.compile(r"\s*\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\]\s*$")
_CMD_S_RE = re.compile(r"\blspci\b.*?\s-s\s*(\S+)")

#: Field names lspci -v prints at the first indentation level.
_FIELD_RE = re.compile(
    r"^\s+(Subsystem|Control|Status|Latency|Interrupt|IOMMU group|Region|Capabilities|"
    r"Kernel driver in use|Kernel modules|Flags|Physical Slot|NUMA node|Bus|Expansion ROM|"
    r"I/O behind bridge|Memory behind bridge|Prefetchable memory behind bridge|"
    r"Secondary status|BridgeCtl|DeviceName|PASIDCap|PASIDCtl|ATSCap|ATSCtl|PRICtl|PRISta|"
    r"Page Request Capacity)\b")

_GROUP_RE = re.compile(r"^\s*IOMMU group:\s*(\S+)\s*$")
_FLAGS_GROUP_RE = re.compile(r"^\s*Flags:.*\bIOMMU group ([0-9]{1,9})\s*$")
_CAP_RE = re.compile(r"^\s*Capabilities:\s*\[([0-9a-fA-F]+)(?: v(\d+))?\]\s*(.*)$")
_DRIVER_RE = re.compile(r"^\s*Kernel driver in use:\s*(\S+)\s*$")
_MODULES_RE = re.compile(r"^\s*Kernel modules:\s*(.+?)\s*$")
_PASIDCAP_RE = re.compile(
    r"PASIDCap:\s*Exec([+-])\s+Priv([+-]),\s*Max PASID Width:\s*([0-9a-fA-F]{2})\s*$")
_PASIDCTL_RE = re.compile(r"PASIDCtl:\s*Enable([+-])\s+Exec([+-])\s+Priv([+-])\s*$")
_ATSCAP_RE = re.compile(r"ATSCap:\s*Invalidate Queue Depth:\s*([0-9a-fA-F]{2})\s*$")
_ATSCTL_RE = re.compile(
    r"ATSCtl:\s*Enable([+-]),\s*Smallest Translation Unit:\s*([0-9a-fA-F]{2})\s*$")
_PRICTL_RE = re.compile(r"PRICtl:\s*Enable([+-])\s+Reset([+-])\s*$")
_PRISTA_RE = re.compile(r"PRISta:\s*RF([+-])\s+UPRGI([+-])\s+Stopped([+-])(?:\s+PASID([+-]))?\s*$")
_PRICAP_RE = re.compile(
    r"Page Request Capacity:\s*([0-9a-fA-F]{8}),\s*Page Request Allocation:\s*([0-9a-fA-F]{8})")
_RCIEP_RE = re.compile(r"Express (?:\(v\d\) )?Root Complex Integrated Endpoint")
_KEYED = {"PASIDCap": _PASIDCAP_RE, "PASIDCtl": _PASIDCTL_RE, "ATSCap": _ATSCAP_RE,
          "ATSCtl": _ATSCTL_RE, "PRICtl": _PRICTL_RE, "PRISta": _PRISTA_RE,
          "Page Request Capacity": _PRICAP_RE}


def parse_description(desc: str) -> dict:
    """Split the part of an lspci header after ``<class>: `` into name, ids and revision.

    Input: ``"Intel Corporation HD Graphics P630 [8086:591d] (rev 04) (prog-if 00 [VGA …])"``.
    Returns ``{"name", "vendor_id", "device_id", "rev"}`` (ids/rev None when absent).
    Never raises; a truncated ``(prog-if 00 [V`` is dropped.
    """
    desc = _PROGIF_RE.sub("", desc).rstrip()
    out: dict = {"vendor_id": None, "device_id": None, "rev": None}
    m = _REV_RE.search(desc)
    if m:
        out["rev"] = m[1].lower()
        desc = desc[:m.start()]
    m = _IDS_RE.search(desc)
    if m:
        out["vendor_id"], out["device_id"] = m[1].lower(), m[2].lower()
        desc = desc[:m.start()]
    out["name"] = desc.strip() or None
    return out


def parse_header(line: str) -> PciFunction | None:
    """Parse one lspci device line (``[DDDD:]BB:DD.F class [cccc]: name [vvvv:dddd] …``).

    Returns a :class:`PciFunction` with bdf/class/ids/name filled, or None if *line* is not a
    device line.  Also used for the device part of group-listing lines.
    """
    m = HEADER_RE.match(line.rstrip("\r\n"))
    if not m:
        return None
    bdf = normalize_bdf(m["bdf"])
    if bdf is None:
        return None
    d = parse_description(m["desc"])
    return PciFunction(bdf, class_name=m["cls"].strip(),
                       class_code=m["code"].lower() if m["code"] else None,
                       vendor_id=d["vendor_id"], device_id=d["device_id"], name=d["name"])


def parse_lspci(text: str, source: str = "<lspci>") -> Topology:
    """Parse ``lspci`` text (any verbosity) into a :class:`Topology`.

    Input: one or more device blocks (header line, then indented field lines, blocks separated
    by blank lines).  Prose around the blocks is ignored.  A block whose header is missing is
    accepted when an earlier ``lspci … -s BDF`` command line names the device.

    Returns: a Topology with ``origin="lspci"``: one :class:`PciFunction` per header, groups
    from ``IOMMU group:`` lines.  ``enumerates_pci`` is True for a multi-device dump without
    ``-s``.

    Errors: never raises on content; unusable lines (malformed PASID/ATS/PRI lines, a hex
    width out of range, capability lines without a device) become ``warnings``.
    """
    topo = Topology(origin="lspci", sources=[source], formats=["lspci"])
    cur: PciFunction | None = None
    orphan_warned = False
    pending_s: str | None = None
    used_s = False
    whole: set[str] = set()     # blocks that show the lines lspci prints before the group
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.replace("\u00a0", " ").rstrip()
        if not line.strip():
            cur, orphan_warned = None, False
            continue
        hdr = parse_header(line) if not line.lstrip().startswith(("IOMMU", "[")) else None
        if hdr is not None and not _FIELD_RE.match(line):
            if hdr.bdf in topo.functions:
                topo.warn(source, no, f"{hdr.bdf} listed twice; merging the blocks")
            cur, pending_s = topo.function(hdr.bdf, source, no), None
            for k in ("class_name", "class_code", "vendor_id", "device_id", "name"):
                setattr(cur, k, getattr(cur, k) or getattr(hdr, k))
            continue
        m = _CMD_S_RE.search(line)
        if m and not line[:1].isspace():
            pending_s, used_s = normalize_bdf(m[1]), True
            if pending_s is None:
                topo.warn(source, no, f"lspci -s {m[1]!r} is not a full BDF; the block that "
                          "follows cannot be attributed")
            cur = None
            continue
        if not line[:1].isspace():
            cur = None          # prose, section title, tree output
            continue
        if cur is None:
            if not _FIELD_RE.match(line):
                continue        # indented prose
            if pending_s is not None:
                cur = topo.function(pending_s, source, no)
                pending_s = None
            else:
                if not orphan_warned:
                    topo.warn(source, no, "lspci field lines without a device header "
                              "(truncated block?); ignored")
                    orphan_warned = True
                continue
        if line.strip().startswith(("Control:", "Flags:", "Status:")):
            whole.add(cur.bdf)          # lspci prints these before "IOMMU group:"
        _field(topo, cur, line, source, no)
        topo.drivers_reported = True        # -v output prints "Kernel driver in use" if bound
    for pf in topo.functions.values():
        if pf.iommu_group is not None:
            topo.groups.add(pf.iommu_group, pf.bdf)
    # pciutils >= 3.7 prints "IOMMU group: N" for every function that has one (-v and up):
    # when it prints one for some function, the functions without the line have no group
    topo.groups_shown = bool(topo.groups.groups)
    if topo.groups_shown:       # (a block cut before its group line stays unknown)
        topo.no_group = {b for b, pf in topo.functions.items()
                         if pf.iommu_group is None and b in whole}
    amd = sorted((pf.bdf for pf in topo.functions.values() if _is_amd_iommu(pf)),
                 key=_bdf_sort)
    for i, bdf in enumerate(amd):
        # the AMD IOMMU is a PCI function of class "IOMMU" (0806): it is the unit itself.
        # The kernel names the units ivhd0, ivhd1, ... in IVRS order, which lspci does not
        # show; with several, BDF order is pasidsim's naming, not the kernel's.
        name = f"ivhd{i}"
        pf = topo.functions[bdf]
        topo.units[name] = IommuUnitInfo(name, "amd-vi", pci_function=bdf, source=source,
                                         line=pf.line)
    if amd:
        topo.iommu_type_hint = "amd-vi"
        topo.type_evidence = f"AMD IOMMU PCI function {short_bdf(amd[0])}"
    buses = {b.split(":")[1] for b in topo.functions}
    topo.enumerates_pci = len(topo.functions) > 1 and not used_s and "00" in buses
    return topo


def _is_amd_iommu(pf: PciFunction) -> bool:
    return ((pf.class_name == "IOMMU" or pf.class_code == "0806")
            and (pf.vendor_id == "1022" or "AMD" in (pf.name or "")
                 or "Advanced Micro Devices" in (pf.name or "")))


def _bdf_sort(bdf: str) -> tuple:
    return _bdf_key(bdf)


#: ``Status: Cap- ...``: PCI_STATUS_CAP_LIST clear (lspci -vv).
_NO_CAP_LIST_RE = re.compile(r"^Status:\s+Cap-(?:\s|$)")


def _field(topo: Topology, pf: PciFunction, line: str, source: str, no: int) -> None:
    s = line.strip()
    m = _GROUP_RE.match(line)
    if m:
        if decimal(m[1]) is None:
            topo.warn(source, no, f"{pf.bdf}: IOMMU group {m[1]!r} is not a number")
        else:
            pf.iommu_group = decimal(m[1])
        return
    m = _FLAGS_GROUP_RE.match(line)
    if m:
        pf.iommu_group = int(m[1])
        return
    m = _DRIVER_RE.match(line)
    if m:
        pf.driver = m[1]
        return
    m = _MODULES_RE.match(line)
    if m:
        pf.modules = [x.strip() for x in m[1].split(",") if x.strip()]
        return
    if s.startswith("Status:") and _NO_CAP_LIST_RE.search(s):
        # the status register (readable without root) says the function has no capability
        # list: no PASID, ATS, PRI or ACS capability, as known as a decoded list
        if pf.caps_visible is None:
            pf.caps_visible = True
        return
    if s.startswith("Capabilities:"):
        pf.caps_visible = pf.caps_visible if "access denied" not in s else False
        if "access denied" in s:
            # valid output of lspci run as a user: the capabilities stay unknown (a note)
            topo.note(source, no, f"{pf.bdf}: capabilities not readable (lspci not run as "
                      "root); PASID/ATS/PRI unknown")
            return
        m = _CAP_RE.match(line)
        if not m:
            topo.warn(source, no, f"{pf.bdf}: malformed Capabilities line {s!r}")
            return
        pf.caps_visible = True
        name = m[3]
        if "Process Address Space ID" in name:
            pf.pasid_present = True
        elif "Address Translation Service" in name:
            pf.ats_present = True
        elif "Page Request Interface" in name:
            pf.pri_present = True
        elif "Access Control Services" in name:
            pf.acs_present = True
        elif _RCIEP_RE.search(name):
            pf.rciep = True
        return
    for key, rx in _KEYED.items():
        if s.startswith(key):
            m = rx.search(s)
            if not m:
                topo.warn(source, no, f"{pf.bdf}: unrecognised {key} line {s!r}")
                return
            _apply(topo, pf, key, m, source, no)
            return


def _apply(topo: Topology, pf: PciFunction, key: str, m: re.Match, source: str, no: int):
    plus = lambda i: m[i] == "+"  # noqa: E731
    pf.caps_visible = True
    if key == "PASIDCap":
        pf.pasid_present, pf.pasid_exec, pf.pasid_priv = True, plus(1), plus(2)
        width = int(m[3], 16)
        if not 1 <= width <= 20:
            topo.warn(source, no, f"{pf.bdf}: Max PASID Width 0x{m[3]} = {width} bits is "
                      "outside 1..20 (PCIe limit); width unknown")
            pf.pasid_width = None
        else:
            pf.pasid_width = width
    elif key == "PASIDCtl":
        pf.pasid_present, pf.pasid_enabled = True, plus(1)
    elif key == "ATSCap":
        pf.ats_present, pf.ats_queue_depth = True, int(m[1], 16) or 32
    elif key == "ATSCtl":
        pf.ats_present, pf.ats_enabled, pf.ats_stu = True, plus(1), int(m[2], 16)
    elif key == "PRICtl":
        pf.pri_present, pf.pri_enabled = True, plus(1)
    elif key == "PRISta":
        pf.pri_present = True
    elif key == "Page Request Capacity":
        pf.pri_present, pf.pri_capacity = True, int(m[1], 16)
