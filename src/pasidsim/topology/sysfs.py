"""Read the topology of the running machine from sysfs.

Sources, all optional:

* ``<root>/kernel/iommu_groups/<N>/devices/<dev>``: group membership;
* ``<root>/class/iommu/<unit>/devices/<dev>``: which unit a device sits behind, with
  ``intel-iommu/{cap,ecap}`` (VT-d) or ``amd-iommu/features`` (AMD-Vi) decoded;
* ``<root>/bus/pci/devices/<bdf>/{vendor,device,class,driver,iommu_group,config}``: ids,
  bound driver and the capabilities decoded from config space (extended capabilities need
  root: an unprivileged read returns only 64 bytes).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from .dmesg import decode_amd_efr, decode_vtd_ecap
from .model import IommuUnitInfo, OtherDevice, PciFunction, Topology, decimal, normalize_bdf

PCI_EXT_CAP_ID_ACS = 0x0D
PCI_EXT_CAP_ID_ATS = 0x0F
PCI_EXT_CAP_ID_PRI = 0x13
PCI_EXT_CAP_ID_PASID = 0x1B
PCI_CAP_ID_EXP = 0x10
PCI_EXP_TYPE_RC_END = 0x9


def parse_config_space(data: bytes, pf: PciFunction) -> bool:
    """Decode PASID/ATS/PRI/ACS and the PCIe port type from raw config space into *pf*.

    Input: the bytes of ``/sys/bus/pci/devices/<bdf>/config`` (64, 256 or 4096 bytes).
    Returns True when the extended capabilities were visible (more than 256 bytes).
    Never raises: a truncated or looping capability list just stops the walk.
    """
    def u16(off):
        return struct.unpack_from("<H", data, off)[0] if off + 2 <= len(data) else 0

    def u32(off):
        return struct.unpack_from("<I", data, off)[0] if off + 4 <= len(data) else 0

    if len(data) < 64:
        return False
    if u16(6) & 0x10:                       # PCI_STATUS_CAP_LIST
        ptr, seen = data[0x34] & 0xFC, 0
        while ptr and ptr + 4 <= len(data) and seen < 48:
            if data[ptr] == PCI_CAP_ID_EXP:
                pf.rciep = (u16(ptr + 2) >> 4 & 0xF) == PCI_EXP_TYPE_RC_END
            ptr, seen = data[ptr + 1] & 0xFC, seen + 1
    if len(data) <= 0x100:
        return False
    pf.caps_visible = True
    off, seen = 0x100, 0
    while off and off + 4 <= len(data) and seen < 96:
        hdr = u32(off)
        if hdr in (0, 0xFFFFFFFF):
            break
        cid = hdr & 0xFFFF
        if cid == PCI_EXT_CAP_ID_PASID:
            cap, ctl = u16(off + 4), u16(off + 6)
            pf.pasid_present, pf.pasid_enabled = True, bool(ctl & 1)
            pf.pasid_exec, pf.pasid_priv = bool(cap & 2), bool(cap & 4)
            width = cap >> 8 & 0x1F
            pf.pasid_width = width if 1 <= width <= 20 else None
        elif cid == PCI_EXT_CAP_ID_ATS:
            cap, ctl = u16(off + 4), u16(off + 6)
            pf.ats_present, pf.ats_enabled = True, bool(ctl >> 15 & 1)
            pf.ats_queue_depth, pf.ats_stu = (cap & 0x1F) or 32, ctl & 0x1F
        elif cid == PCI_EXT_CAP_ID_PRI:
            pf.pri_present, pf.pri_enabled = True, bool(u16(off + 4) & 1)
            pf.pri_capacity = u32(off + 8)
        elif cid == PCI_EXT_CAP_ID_ACS:
            pf.acs_present = True
        off, seen = (hdr >> 20) & 0xFFC, seen + 1
    return True


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _link_name(path: Path) -> str | None:
    try:
        return os.path.basename(os.readlink(path)) if path.is_symlink() else None
    except OSError:
        return None


def _hex(text: str | None) -> int | None:
    """A 64-bit register value in hex (the first word before any ``:``); None when the file
    is empty, blank, damaged or holds more than 64 bits (unknown stays unknown)."""
    words = (text or "").split(":")[0].split()
    if not words or len(words[0]) > 66:  # "0x" and 64 digits with leading zeros at most
        return None
    try:
        value = int(words[0], 16)
    except ValueError:
        return None
    return value if 0 <= value < 1 << 64 else None


def read_sysfs(root: str | os.PathLike = "/sys") -> Topology:
    """Read groups, units and PCI functions from a live (or copied) sysfs tree.

    Args:
        root: the sysfs mount point; tests pass a fake tree.

    Returns: a :class:`Topology` with ``origin="sysfs"``.  When neither
    ``kernel/iommu_groups`` nor ``bus/pci/devices`` exists, an empty Topology with a warning.

    Errors: never raises for missing or unreadable files; they become warnings.
    """
    root = Path(root)
    src = str(root)
    topo = Topology(origin="sysfs", sources=[src], formats=["sysfs"])
    gdir, pdir = root / "kernel" / "iommu_groups", root / "bus" / "pci" / "devices"
    if not gdir.is_dir() and not pdir.is_dir():
        topo.warn(src, 0, "no kernel/iommu_groups or bus/pci/devices under this root "
                  "(not a Linux sysfs, or no IOMMU)")
        return topo
    if not gdir.is_dir():
        topo.note(src, 0, "no kernel/iommu_groups: the IOMMU is off (no groups)")
    else:
        for g in sorted(gdir.iterdir(), key=lambda p: (decimal(p.name) is None, len(p.name), p.name)):
            if decimal(g.name) is None:
                topo.warn(str(g), 0, "group directory name is not a number; ignored")
                continue
            for d in sorted((g / "devices").iterdir()) if (g / "devices").is_dir() else []:
                name = normalize_bdf(d.name) or d.name
                topo.groups.add(decimal(g.name), name)
                if normalize_bdf(d.name) is None:
                    od = topo.others.setdefault(name, OtherDevice(name, source=str(d)))
                    od.driver = _link_name(d / "driver")
    cdir = root / "class" / "iommu"
    for u in sorted(cdir.iterdir()) if cdir.is_dir() else []:
        unit = _read_unit(u)
        topo.units[unit.name] = unit
        for d in sorted((u / "devices").iterdir()) if (u / "devices").is_dir() else []:
            topo.unit_of[normalize_bdf(d.name) or d.name] = unit.name
    if topo.units:
        topo.iommu_type_hint = next(iter(topo.units.values())).type
    invisible = 0
    for d in sorted(pdir.iterdir()) if pdir.is_dir() else []:
        bdf = normalize_bdf(d.name)
        if bdf is None:
            topo.warn(str(d), 0, "not a PCI address; ignored")
            continue
        pf = topo.function(bdf, str(d))
        pf.vendor_id = (_read(d / "vendor") or "")[2:].lower() or None
        pf.device_id = (_read(d / "device") or "")[2:].lower() or None
        cls = _read(d / "class")
        pf.class_code = cls[2:6].lower() if cls and len(cls) >= 6 else None
        pf.driver = _link_name(d / "driver")
        grp = _link_name(d / "iommu_group")
        if decimal(grp) is not None:
            pf.iommu_group = decimal(grp)
            if topo.groups.group_of(bdf) is None:
                topo.groups.add(pf.iommu_group, bdf)
        try:
            data = (d / "config").read_bytes()
        except OSError:
            data = b""
        if not parse_config_space(data, pf):
            invisible += 1
            pf.caps_visible = False if data else None
    if invisible:
        topo.note(src, 0, f"{invisible} PCI function(s) without readable extended config "
                  "space (run as root to decode PASID/ATS/PRI)")
    topo.enumerates_pci = topo.drivers_reported = len(topo.functions) > 0
    # sysfs is the kernel's own view: a function without an iommu_group link has no group
    topo.groups_shown = True
    topo.no_group = {b for b in topo.functions if topo.groups.group_of(b) is None}
    if topo.units:
        topo.type_evidence = f"{src}: class/iommu/{next(iter(topo.units))}"
    return topo


def _read_unit(u: Path) -> IommuUnitInfo:
    unit = IommuUnitInfo(u.name, source=str(u))
    if (u / "intel-iommu").is_dir():
        unit.type = "vtd"
        unit.cap = _hex(_read(u / "intel-iommu" / "cap"))
        unit.ecap = _hex(_read(u / "intel-iommu" / "ecap"))
        unit.reg_base = _hex(_read(u / "intel-iommu" / "address"))
        if unit.ecap is not None:
            _decoded(unit, decode_vtd_ecap(unit.ecap))
    elif (u / "amd-iommu").is_dir():
        unit.type = "amd-vi"
        # the AMD IOMMU is a PCI function (class 0806), the parent of its sysfs device
        unit.pci_function = normalize_bdf(_link_name(u / "device") or "")
        feats = _read(u / "amd-iommu" / "features")
        unit.efr = _hex(feats)
        if feats and ":" in feats:
            unit.efr2 = _hex(feats.split(":", 1)[1])
        if unit.efr is not None:
            _decoded(unit, decode_amd_efr(unit.efr))
    elif "smmu" in u.name:
        unit.type = "smmuv3"
    return unit


def _decoded(unit: IommuUnitInfo, d: dict) -> None:
    unit.feature_names = d["names"]
    for k in ("pasid", "pasid_bits", "max_pasids", "ats", "pri", "sva"):
        setattr(unit, k, d[k])
