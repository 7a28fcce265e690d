"""Parser for kernel logs (``dmesg``, ``journalctl -k``): IOMMU groups and IOMMU units.

Recognised messages (after an optional ``<N>`` syslog level, journal prefix and ``[ time]``):

* ``<drv|bus> <dev>: Adding to iommu group N`` / ``Removing from iommu group N`` (the **last**
  assignment wins; a second boot in the same log, seen as the clock restarting, discards the
  earlier boot's assignments);
* ``pci 0000:BB:DD.F: [vvvv:dddd] type 00 class 0xcccccc …`` (enumeration: ids, class, RCiEP);
* VT-d: ``DMAR: DRHD base: 0x… flags: 0x1`` (INCLUDE_PCI_ALL), ``DMAR: dmarN: reg_base_addr …
  cap … ecap …``, ``DMAR: ACPI device "…" under DMAR at <base> as BB:DD.F``;
* AMD-Vi: ``pci 0000:00:00.2: AMD-Vi: Found IOMMU cap 0x40``, ``AMD-Vi: Extended features
  (0xEFR, 0xEFR2): PPR GT …``, ``AMD-Vi: Using global IVHD EFR:0x…, EFR2:0x…``;
* SMMUv3: ``arm-smmu-v3 arm-smmu-v3.0.auto: ias 44-bit, oas 44-bit (features 0x00181fef)``
  (the driver's feature word, decoded: SVA, PRI, ATS, STALLS, ...), firmware overrides
  ``IDR0.COHACC overridden by FW configuration (true)`` and ``IDR0.HTTU features(0x…)
  overridden by FW configuration (0x…)``, ``option mask 0x2``; any other ``arm-smmu-v3 <dev>:``
  message only shows that the unit exists.

A second boot in one log is a *note*, not a warning (``--strict`` accepts it).

A driver name in front of a BDF (``mlx5_core 000a:11:00.0: …``) is taken as the driver bound
at that point (``dev_driver_string()`` prints the bus name, e.g. ``pci``, when unbound); the
last such message about a device decides its driver.
"""

from __future__ import annotations

import re

from .model import IommuUnitInfo, OtherDevice, Topology, decimal, looks_like_bdf, normalize_bdf

_PREFIX_RE = re.compile(r"^\s*(?:<[0-9]+>)?\s*(?:[A-Z][a-z]{2}\s+[0-9]+\s+[0-9:]+\s+\S+\s+"
                        r"kernel:\s*)?(?:\[\s*([0-9]{1,12}\.[0-9]{1,9})\]\s?)?")
_ADD_RE = re.compile(r"^(?:(\S+) )?(\S+): Adding to iommu group (\S+)\s*$")
_OLD_ADD_RE = re.compile(r"^iommu: Adding device (\S+) to group ([0-9]{1,9})\s*$")
_REMOVE_RE = re.compile(r"^(?:(\S+) )?(\S+): Removing from iommu group ([0-9]{1,9})\s*$")
_ENUM_RE = re.compile(r"^pci ([0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]): "
                      r"\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\] type ([0-9a-fA-F]{2}) "
                      r"class 0x([0-9a-fA-F]{6})(.*)$")
_DEVMSG_RE = re.compile(r"^(\S+) ([0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]): ")
_DRHD_RE = re.compile(r"^DMAR: DRHD base: 0x([0-9a-fA-F]{1,16}) flags: 0x([0-9a-fA-F]{1,8})\s*$")
_DMAR_RE = re.compile(r"^DMAR: (dmar[0-9]{1,9}): reg_base_addr ([0-9a-fA-F]{1,16}) ver (\S+) "
                      r"cap ([0-9a-fA-F]{1,16}) ecap ([0-9a-fA-F]{1,16})\s*$")
_ANDD_RE = re.compile(r'^DMAR: ACPI device "[^"]*" under DMAR at ([0-9a-fA-F]+) as '
                      r"([0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s*$")
_AMD_FOUND_RE = re.compile(r"^(?:\S+ )?(\S+): AMD-Vi: Found IOMMU cap 0x([0-9a-fA-F]+)"
                           r"|^AMD-Vi: Found IOMMU at (\S+) cap 0x([0-9a-fA-F]+)")
_AMD_EFR_RE = re.compile(r"AMD-Vi: Extended features(?: \(0x([0-9a-fA-F]{1,16})"
                         r"(?:, 0x([0-9a-fA-F]{1,16}))?\))?:\s*(.*?)\s*$")
_AMD_GLOBAL_RE = re.compile(r"AMD-Vi: Using global IVHD EFR:\s*0x([0-9a-fA-F]{1,16})"
                            r"(?:,\s*EFR2:\s*0x([0-9a-fA-F]{1,16}))?")
_GROUPISH_RE = re.compile(r"\S: (?:Adding to|Removing from) iommu group")
_SMMU_RE = re.compile(r"^arm-smmu-v3 (\S+): ias ([0-9]{1,3})-bit, oas ([0-9]{1,3})-bit "
                      r"\(features 0x([0-9a-fA-F]{1,16})\)\s*$")
#: Other arm-smmu-v3 probe messages (``drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c``): the
#: firmware (IORT / DT) overriding an ID register field, the option mask (ACPI model
#: quirks); the rest (queue sizes, irqs) only show that the unit exists.  Never warned.
_SMMU_MSG_RE = re.compile(r"^arm-smmu-v3 (\S+): (.*?)\s*$")
_SMMU_COHACC_RE = re.compile(r"^IDR0\.COHACC overridden by FW configuration \((true|false)\)$")
_SMMU_HTTU_RE = re.compile(r"^IDR0\.HTTU features\(0x([0-9a-fA-F]{1,8})\) overridden by FW "
                           r"configuration \(0x([0-9a-fA-F]{1,8})\)$")
_SMMU_OPTS_RE = re.compile(r"^option mask 0x([0-9a-fA-F]{1,8})$")

#: ``dev_driver_string()`` prints these bus names for a device without a driver.
BUS_NAMES = frozenset({"pci", "platform", "acpi", "pnp", "amba", "usb", "i2c", "spi", "serio",
                       "virtio", "cpu", "hdaudio", "thunderbolt", "node", "memory", "soc"})

_VTD_ECAP_BITS = {0: "C", 1: "QI", 2: "DT", 3: "IR", 4: "EIM", 6: "PT", 7: "SC", 25: "MTS",
                  26: "NEST", 29: "PRS", 31: "SRS", 33: "NWFS", 34: "EAFS", 40: "PASID",
                  41: "DIT", 42: "PDS", 43: "SMTS", 45: "SLADS", 46: "SLTS", 47: "FLTS",
                  48: "SMPWC", 49: "RPS"}
_AMD_EFR_BITS = {0: "PREF", 1: "PPR", 2: "X2APIC", 3: "NX", 4: "GT", 6: "IA", 7: "GA",
                 8: "HE", 9: "PC", 21: "GA_vAPIC", 48: "GIOSUP", 63: "SNP"}
#: ``ARM_SMMU_FEAT_*`` bit layout of v6.x ``arm-smmu-v3.h`` (other kernels differ).
_SMMU_FEAT_BITS = {0: "2_LVL_STRTAB", 1: "2_LVL_CDTAB", 2: "TT_LE", 3: "TT_BE", 4: "PRI",
                   5: "ATS", 6: "SEV", 7: "MSI", 8: "COHERENCY", 9: "TRANS_S1",
                   10: "TRANS_S2", 11: "STALLS", 12: "HYP", 13: "STALL_FORCE", 14: "VAX",
                   15: "RANGE_INV", 16: "BTM", 17: "SVA", 18: "E2H", 19: "NESTING",
                   20: "ATTR_TYPES_OVR", 21: "HA", 22: "HD", 23: "S2FWB", 24: "BBML2"}
#: ARM_SMMU_OPT_* bits of the option mask.
_SMMU_OPT_BITS = {0: "SKIP_PREFETCH", 1: "PAGE0_REGS_ONLY", 2: "MSIPOLL", 3: "CMDQ_FORCE_SYNC",
                  4: "TEGRA241_CMDQV"}


def _bits(value: int, table: dict[int, str]) -> list[str]:
    return [name for bit, name in sorted(table.items()) if value >> bit & 1]


def decode_vtd_ecap(ecap: int) -> dict:
    """Decode a VT-d ECAP_REG value.

    Returns ``{"names", "pasid", "pasid_bits", "max_pasids", "ats", "pri", "sva"}``:
    PASID = bit 40, PSS = bits 39:35 (width PSS+1), DT (device TLB) = bit 2, PRS = bit 29.
    ``max_pasids`` follows ``intel-iommu``: ``2 << PSS`` only with PASID *and* scalable mode
    (SMTS, bit 43), else 0; ``sva`` additionally needs first-level translation (FLTS, bit 47).
    """
    pasid = bool(ecap >> 40 & 1)
    pss = ecap >> 35 & 0x1F
    smts = bool(ecap >> 43 & 1)
    maxp = (2 << pss) if pasid and smts else 0
    return {"names": _bits(ecap, _VTD_ECAP_BITS), "pasid": pasid,
            "pasid_bits": pss + 1 if pasid else 0, "max_pasids": min(maxp, 1 << 20),
            "ats": bool(ecap >> 2 & 1), "pri": bool(ecap >> 29 & 1),
            "sva": maxp > 0 and bool(ecap >> 47 & 1)}


def decode_amd_efr(efr: int) -> dict:
    """Decode an AMD-Vi extended feature register (EFR).

    Returns the same keys as :func:`decode_vtd_ecap`.  PASID needs GT (bit 4) and PPR (bit 1);
    PASmax = bits 36:32; ``max_pasids`` = ``(1 << (PASmax+1)) - 1`` as ``amd_iommu_max_pasid``.
    """
    gt, ppr = bool(efr >> 4 & 1), bool(efr >> 1 & 1)
    pasmax = efr >> 32 & 0x1F
    pasid = gt and ppr
    return {"names": _bits(efr, _AMD_EFR_BITS), "pasid": pasid,
            "pasid_bits": pasmax + 1 if pasid else 0,
            "max_pasids": min((1 << (pasmax + 1)) - 1, 1 << 20) if pasid else 0,
            "ats": True, "pri": ppr, "sva": pasid}


def decode_smmu_features(features: int) -> dict:
    """Decode the arm-smmu-v3 driver feature word (v6.x bit layout).

    Returns the same keys as :func:`decode_vtd_ecap`; the SSID width is not printed, so
    ``pasid_bits``/``max_pasids`` are None (unknown).
    """
    return {"names": _bits(features, _SMMU_FEAT_BITS), "pasid": None, "pasid_bits": None,
            "max_pasids": None, "ats": bool(features >> 5 & 1), "pri": bool(features >> 4 & 1),
            "sva": bool(features >> 17 & 1)}


def _apply_decoded(unit: IommuUnitInfo, d: dict) -> None:
    unit.feature_names = d["names"]
    for k in ("pasid", "pasid_bits", "max_pasids", "ats", "pri", "sva"):
        setattr(unit, k, d[k])


def parse_dmesg(text: str, source: str = "<dmesg>") -> Topology:
    """Parse a kernel log into a :class:`Topology` (``origin="dmesg"``).

    Input: ``dmesg`` output, with or without timestamps, syslog levels or journal prefixes;
    other lines are ignored.
    Returns: devices that were enumerated or added to a group (PCI functions by normalised
    BDF, others by name), their groups (last assignment wins), IOMMU units and the units of
    devices where a message says so.
    Errors: never raises on content; lines that mention a recognised message but do not parse
    (bad hex, a non-numeric group) become warnings.
    """
    topo = Topology(origin="dmesg", sources=[source], formats=["dmesg"])
    drhd_flags: dict[int, int] = {}
    last_time: float | None = None
    assigned = False
    drivers: dict[str, str | None] = {}
    amd_units: list[IommuUnitInfo] = []
    global_efr: tuple | None = None
    for no, raw in enumerate(text.splitlines(), 1):
        pm = _PREFIX_RE.match(raw)
        msg = raw[pm.end():].rstrip()
        if pm[1] is not None:
            t = float(pm[1])
            if last_time is not None and assigned and last_time - t > 5 and t < last_time / 2:
                topo.note(source, no, f"clock restarts ({last_time} → {t}): a second boot; "
                          "group assignments from the earlier boot are discarded")
                topo.groups.groups.clear()
                assigned = False
            last_time = t
        if msg.startswith("Linux version ") and assigned:
            topo.note(source, no, "a second boot; earlier group assignments are discarded")
            topo.groups.groups.clear()
            assigned = False
        if "Adding device" in msg and msg.startswith("iommu:"):
            msg = _OLD_ADD_RE.sub(r"\1: Adding to iommu group \2", msg)
        if "Adding to iommu group" in msg or "Removing from iommu group" in msg:
            a = _ADD_RE.match(msg)
            r = _REMOVE_RE.match(msg)
            bad = a and normalize_bdf(a[2]) is None and looks_like_bdf(a[2])
            if bad:
                topo.warn(source, no, f"malformed PCI address {a[2]!r}; ignored")
            elif a and decimal(a[3]) is not None:
                name = _device(topo, a[1], a[2], source, no)
                topo.groups.add(decimal(a[3]), name)
                assigned = topo.groups_shown = True
                if a[1] and name in topo.functions:
                    drivers[name] = None if a[1] in BUS_NAMES else a[1]
            elif r:
                name = normalize_bdf(r[2]) or r[2]
                topo.groups.remove(name)
                topo.functions.pop(name, None)
                topo.others.pop(name, None)
            elif pm[1] is not None or _GROUPISH_RE.search(msg):
                topo.warn(source, no, f"unrecognised iommu group message {msg!r}")
            continue
        m = _ENUM_RE.match(msg)
        if m and normalize_bdf(m[1]) is None:
            topo.warn(source, no, f"malformed PCI address {m[1]!r} in enumeration line")
            continue
        if m:
            pf = topo.function(normalize_bdf(m[1]), source, no)
            pf.vendor_id, pf.device_id = m[2].lower(), m[3].lower()
            pf.class_code = m[5][:4].lower()
            pf.rciep = pf.rciep or "Root Complex Integrated Endpoint" in m[6]
            continue
        m = _DEVMSG_RE.match(msg)
        if m and normalize_bdf(m[2]):         # the last message's prefix wins
            drivers[normalize_bdf(m[2])] = None if m[1] in BUS_NAMES else m[1]
        if "DMAR" in msg:
            _dmar(topo, msg, drhd_flags, source, no)
        elif "AMD-Vi" in msg:
            global_efr = _amd(topo, msg, amd_units, global_efr, source, no)
        elif msg.startswith("arm-smmu-v3 "):
            _smmu(topo, msg, source, no)
    for bdf, drv in drivers.items():
        if bdf in topo.functions:
            topo.functions[bdf].driver = drv
    if topo.units:
        first = next(iter(topo.units.values()))
        topo.iommu_type_hint = first.type
        topo.type_evidence = f"{source}:{first.line}: {first.name}"
    return topo


def _smmu(topo: Topology, msg: str, source: str, no: int) -> None:
    m = _SMMU_MSG_RE.match(msg)
    if not m:
        return
    name, text = m[1], m[2]             # the driver name says the device is an SMMUv3

    def unit() -> IommuUnitInfo:
        return topo.units.setdefault(name, IommuUnitInfo(name, "smmuv3", source=source,
                                                         line=no))
    if text.startswith("ias "):
        m = _SMMU_RE.match(msg)
        if not m:
            topo.warn(source, no, f"unrecognised arm-smmu-v3 line {msg!r}")
            return
        u = unit()
        u.ias, u.oas, u.features = decimal(m[2]), decimal(m[3]), int(m[4], 16)
        _apply_decoded(u, decode_smmu_features(u.features))
        return
    m = _SMMU_COHACC_RE.match(text)
    if m:
        unit().overrides.append(f"IDR0.COHACC={m[1]}")
        return
    m = _SMMU_HTTU_RE.match(text)
    if m:
        unit().overrides.append(f"IDR0.HTTU=0x{int(m[2], 16):x} (hardware 0x{int(m[1], 16):x})")
        return
    m = _SMMU_OPTS_RE.match(text)
    if m:
        u = unit()
        u.options = int(m[1], 16)
        u.overrides += [f"option {o}" for o in _bits(u.options, _SMMU_OPT_BITS)]
        return
    unit()                  # any other probe message (queue sizes, irqs, ...): the unit exists


def _device(topo: Topology, drv: str | None, dev: str, source: str, no: int) -> str:
    bdf = normalize_bdf(dev)
    bound = drv if drv and drv not in BUS_NAMES else None
    if bdf is not None:
        pf = topo.function(bdf, source, no)
        pf.driver = bound or pf.driver
        return bdf
    od = topo.others.setdefault(dev, OtherDevice(dev, source=source, line=no))
    od.driver = bound or od.driver
    od.bus = drv if drv in BUS_NAMES else od.bus
    return dev


def _dmar(topo: Topology, msg: str, drhd_flags: dict, source: str, no: int) -> None:
    m = _DRHD_RE.match(msg)
    if m:
        drhd_flags[int(m[1], 16)] = int(m[2], 16)
        return
    if msg.startswith("DMAR: dmar") and "reg_base_addr" in msg:
        m = _DMAR_RE.match(msg)
        if not m:
            topo.warn(source, no, f"unrecognised DMAR unit line {msg!r}")
            return
        base = int(m[2], 16)
        u = topo.units.setdefault(m[1], IommuUnitInfo(m[1], "vtd", source=source, line=no))
        u.reg_base, u.cap, u.ecap = base, int(m[4], 16), int(m[5], 16)
        if base in drhd_flags:
            u.catch_all = bool(drhd_flags[base] & 1)
        _apply_decoded(u, decode_vtd_ecap(u.ecap))
        return
    m = _ANDD_RE.match(msg)
    if m and normalize_bdf(m[2]):
        base = int(m[1], 16)
        for u in topo.units.values():
            if u.reg_base == base:
                topo.unit_of[normalize_bdf(m[2])] = u.name


def _amd(topo: Topology, msg: str, units: list, global_efr, source: str, no: int):
    m = _AMD_FOUND_RE.match(msg)
    if m:
        name = f"ivhd{len(units)}"              # the kernel's sysfs name, in probe order
        u = IommuUnitInfo(name, "amd-vi", source=source, line=no,
                          pci_function=normalize_bdf(m[1] or m[3] or ""))
        topo.units[name] = u
        units.append(u)
        if global_efr is not None:
            _set_efr(u, *global_efr)
        return global_efr
    m = _AMD_GLOBAL_RE.search(msg)
    if m:
        global_efr = (int(m[1], 16), int(m[2], 16) if m[2] else None)
        for u in units:
            _set_efr(u, *global_efr)
        return global_efr
    m = _AMD_EFR_RE.search(msg)
    if m:
        targets = units[-1:] or [topo.units.setdefault(
            "ivhd0", IommuUnitInfo("ivhd0", "amd-vi", source=source, line=no))]
        if not units:
            units.extend(targets)
        for u in targets:
            if m[1]:
                _set_efr(u, int(m[1], 16), int(m[2], 16) if m[2] else None)
            else:
                flags = m[3].split()
                u.feature_names = flags
                u.pasid = "GT" in flags and "PPR" in flags
                u.pri, u.sva = "PPR" in flags, u.pasid
        return global_efr
    if "Extended features" in msg or "Found IOMMU" in msg:
        topo.warn(source, no, f"unrecognised AMD-Vi line {msg!r}")
    return global_efr


def _set_efr(u: IommuUnitInfo, efr: int, efr2: int | None) -> None:
    u.efr, u.efr2 = efr, efr2
    _apply_decoded(u, decode_amd_efr(efr))
