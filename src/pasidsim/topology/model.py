"""What a topology dump says: PCI functions, IOMMU groups, IOMMU units.

These are plain, mutable dataclasses filled by the parsers (:mod:`.lspci`, :mod:`.groups`,
:mod:`.dmesg`, :mod:`.sysfs`) and combined by :func:`merge_topologies`.  Nothing here is
kernel state; :func:`pasidsim.topology.convert.to_config` turns a :class:`Topology` into the
static :class:`pasidsim.config.Config`.

Merge rule (:func:`merge_topologies`), in short: *snapshots* (lspci, group listings, sysfs)
describe the machine at capture time and win over the *event log* (dmesg), which only adds
what the snapshots cannot see:

* a device's IOMMU group comes from the first snapshot that names it; dmesg fills the group only
  for devices no snapshot groups.  Within dmesg the **last** "Adding to iommu group" wins;
* when a snapshot enumerates the PCI bus (a full ``lspci``, a group listing, sysfs), PCI
  functions seen only in dmesg are dropped (hot-removed, hidden like the P2SB), with a warning;
  non-PCI devices from dmesg (``platform idma64.0``) are kept, since lspci cannot see them;
* per-function fields (class, ids, driver, capabilities) are filled from whichever source knows
  them, capabilities only from a source that decoded them (lspci ``-vv`` or sysfs config space);
* a device a snapshot shows to have no group (``no_group``) keeps none unless dmesg adds it
  to one; units merge by name (an AMD-Vi unit named by its lspci function and by dmesg's
  ``Found IOMMU`` is one ``ivhdN``).

Unknown stays unknown: a device whose group no source shows has ``group_status`` "unknown"
(not a group of its own), a unit no source names is not made up here (the simulated
machine's assumptions are :func:`pasidsim.topology.convert.assumptions`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

#: ``[DDDD:]BB:DD.F`` (domain optional; lspci prints it with ``-D`` or a non-zero segment).
BDF_RE = re.compile(
    r"^(?:(?P<dom>[0-9a-fA-F]{4,8}):)?(?P<bus>[0-9a-fA-F]{2}):(?P<dev>[0-1][0-9a-fA-F])"
    r"\.(?P<fn>[0-7])$")

UNIT_TYPES = ("vtd", "amd-vi", "smmuv3")


class TopologyError(ValueError):
    """A dump that cannot be used at all (empty, no recognisable content, or strict mode).

    Attributes:
        source: file name (or the ``source`` given to the parser).
        line: 1-based line number, or 0 when the problem is the whole file.
    """

    def __init__(self, source: str, line: int, message: str) -> None:
        self.source, self.line, self.message = source, line, message
        super().__init__(f"{source}:{line}: {message}")


#: A group number or line number: 1-9 ASCII digits.  ``str.isdigit()`` also accepts
#: superscripts that ``int()`` refuses, and ``int()`` refuses more than 4,300 digits: a dump
#: with either is damaged, and says so with a warning instead of a traceback.
_DECIMAL_RE = re.compile(r"[0-9]{1,9}")


def decimal(text: str | None) -> int | None:
    """``text`` as an int when it is 1-9 ASCII digits, else None."""
    return int(text) if text is not None and _DECIMAL_RE.fullmatch(text) else None


def normalize_bdf(text: str) -> str | None:
    """``"00:1f.3"`` → ``"0000:00:1f.3"``; ``None`` when *text* is not a PCI address."""
    m = BDF_RE.match(text.strip())
    if not m:
        return None
    dom = (m["dom"] or "0000").lower()
    if len(dom) < 4:
        dom = dom.rjust(4, "0")
    return f"{dom}:{m['bus'].lower()}:{m['dev'].lower()}.{m['fn']}"


_BDFISH_RE = re.compile(r"^\s*(?:[0-9a-zA-Z]{1,8}:)?[0-9a-zA-Z]{1,3}:[0-9a-zA-Z]{1,3}\.\S")


def looks_like_bdf(text: str) -> bool:
    """True for anything shaped like a PCI address, valid or not (``zz:00.0``, ``00:1f.8``)."""
    return bool(_BDFISH_RE.match(text))


def short_bdf(bdf: str) -> str:
    """``"0000:00:1f.3"`` → ``"00:1f.3"`` (domain 0 only); other names unchanged."""
    return bdf[5:] if bdf.startswith("0000:") and normalize_bdf(bdf) == bdf else bdf


def is_bdf(name: str) -> bool:
    """True when *name* is a normalised PCI address."""
    return normalize_bdf(name) == name


@dataclass
class PciFunction:
    """One PCI function as a dump describes it.  ``None`` means "the dump does not say".

    PASID/ATS/PRI fields are meaningful when ``caps_visible`` is True (lspci ``-vv`` as root,
    or sysfs config space); ``pasid_width`` is in **bits** (lspci prints hex: ``14`` = 20).
    """

    bdf: str
    class_name: str | None = None
    class_code: str | None = None        # "0300" (4 hex digits, base class + subclass)
    vendor_id: str | None = None         # "8086"
    device_id: str | None = None         # "591d"
    name: str | None = None
    driver: str | None = None            # "Kernel driver in use"
    modules: list[str] = field(default_factory=list)
    caps_visible: bool | None = None     # True decoded; False "<access denied>"; None unknown
    pasid_present: bool = False
    pasid_enabled: bool = False
    pasid_width: int | None = None       # bits, 1..20
    pasid_exec: bool = False
    pasid_priv: bool = False
    ats_present: bool = False
    ats_enabled: bool = False
    ats_stu: int | None = None
    ats_queue_depth: int | None = None
    pri_present: bool = False
    pri_enabled: bool = False
    pri_capacity: int | None = None
    acs_present: bool = False
    rciep: bool = False                  # "Root Complex Integrated Endpoint"
    iommu_group: int | None = None       # as printed by lspci ("IOMMU group: N")
    require_direct: bool = False         # RMRR / IOMMU_RESV_DIRECT, when a source says so
    source: str = ""
    line: int = 0

    @property
    def short(self) -> str:
        """The BDF without a zero domain (``00:1f.3``)."""
        return short_bdf(self.bdf)


@dataclass
class OtherDevice:
    """A non-PCI device named by a listing or dmesg (``idma64.0``, ``HISI0162:01``)."""

    name: str
    driver: str | None = None
    bus: str | None = None
    source: str = ""
    line: int = 0


@dataclass
class IommuGroupListing:
    """Group number → member device ids (normalised BDFs; non-PCI names as printed).

    A device is in at most one group; :meth:`add` moves it (the "keep the last" rule).
    """

    groups: dict[int, list[str]] = field(default_factory=dict)

    def group_of(self, dev: str) -> int | None:
        """The group holding *dev*, or None."""
        for g, members in self.groups.items():
            if dev in members:
                return g
        return None

    def add(self, group: int, dev: str) -> int | None:
        """Put *dev* in *group* (moving it out of another).  Returns the previous group."""
        prev = self.group_of(dev)
        if prev == group:
            return prev
        if prev is not None:
            self.remove(dev)
        self.groups.setdefault(group, []).append(dev)
        return prev

    def remove(self, dev: str) -> int | None:
        """Take *dev* out of its group (dropping the group when empty).  Returns the group."""
        g = self.group_of(dev)
        if g is not None:
            self.groups[g].remove(dev)
            if not self.groups[g]:
                del self.groups[g]
        return g

    def devices(self) -> list[str]:
        """All members, group by group."""
        return [d for members in self.groups.values() for d in members]

    def __len__(self) -> int:
        return len(self.groups)


@dataclass
class IommuUnitInfo:
    """One IOMMU instance named by a dump (``dmar3``, ``ivhd0``, ``arm-smmu-v3.0.auto``).

    ``pasid_bits`` is what the hardware register says (VT-d ``PSS+1``, AMD ``PASmax+1``);
    ``max_pasids`` is what the kernel would put in ``iommu_device::max_pasids`` (VT-d: 0 unless
    PASID *and* scalable mode, ``intel-iommu pasid_supported()``), None when unknown.
    """

    name: str
    type: str | None = None              # "vtd" | "amd-vi" | "smmuv3"
    reg_base: int | None = None
    catch_all: bool | None = None        # VT-d DRHD flag INCLUDE_PCI_ALL
    cap: int | None = None               # VT-d CAP_REG
    ecap: int | None = None              # VT-d ECAP_REG
    efr: int | None = None               # AMD-Vi extended feature register (and EFR2)
    efr2: int | None = None
    features: int | None = None          # SMMUv3 driver feature word (kernel-version specific)
    feature_names: list[str] = field(default_factory=list)
    ias: int | None = None               # SMMUv3 input/output address sizes (bits)
    oas: int | None = None
    options: int | None = None           # SMMUv3 "option mask" (ARM_SMMU_OPT_*)
    overrides: list[str] = field(default_factory=list)   # "IDR0.COHACC=true" (firmware wins)
    pci_function: str | None = None      # AMD-Vi: the IOMMU's own PCI function (00:00.2)
    pasid: bool | None = None
    pasid_bits: int | None = None
    max_pasids: int | None = None
    ats: bool | None = None
    pri: bool | None = None
    sva: bool | None = None
    source: str = ""
    line: int = 0


@dataclass
class Topology:
    """Everything the inputs say about one machine.

    Attributes:
        functions: normalised BDF → :class:`PciFunction`.
        others: non-PCI device name → :class:`OtherDevice`.
        groups: the IOMMU group membership.
        units: unit name → :class:`IommuUnitInfo`.
        unit_of: device → unit name, where a source says which unit a device sits behind.
        origin: "lspci", "listing", "sysfs", "dmesg" or "merged".
        enumerates_pci: the source lists every PCI function (a full lspci, a group listing).
        drivers_reported: a source shows the bound driver of every device it lists (lspci
            ``-v``, sysfs), so a device without ``driver`` is unbound; dmesg alone is partial.
        iommu_type_hint: "vtd"/"amd-vi"/"smmuv3" guessed from the text when no unit says so.
        type_evidence: what in the dump the hint comes from (``"Intel host bridge 00:00.0"``).
        groups_shown: some source reports IOMMU groups (lspci ``IOMMU group:`` lines, a group
            listing, dmesg group messages, sysfs); when False every group is unknown.
        no_group: devices a snapshot shows to have **no** IOMMU group (lspci printing groups
            for other functions but not for these: the kernel gave them none).
        sources: names of the inputs.
        formats: formats recognised, e.g. ``["lspci", "dmesg"]``.
        warnings: ``"source:line: message"`` for every line that could not be used, or
            sources that contradict each other (``--strict`` rejects these).
        notes: ``"source:line: message"`` for valid content the importer made a choice about
            (a second boot in one log, one listing of several, dmesg-only devices dropped);
            not warnings: ``--strict`` accepts them.
    """

    functions: dict[str, PciFunction] = field(default_factory=dict)
    others: dict[str, OtherDevice] = field(default_factory=dict)
    groups: IommuGroupListing = field(default_factory=IommuGroupListing)
    units: dict[str, IommuUnitInfo] = field(default_factory=dict)
    unit_of: dict[str, str] = field(default_factory=dict)
    origin: str = "merged"
    enumerates_pci: bool = False
    drivers_reported: bool = False
    iommu_type_hint: str | None = None
    type_evidence: str | None = None
    groups_shown: bool = False
    no_group: set[str] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # -- helpers used by the parsers -----------------------------------------------------
    def warn(self, source: str, line: int, message: str) -> None:
        """Record ``"source:line: message"``."""
        self.warnings.append(f"{source}:{line}: {message}")

    def note(self, source: str, line: int, message: str) -> None:
        """Record ``"source:line: message"`` as a note (valid content, not a warning)."""
        self.notes.append(f"{source}:{line}: {message}")

    def unit_functions(self) -> dict[str, str]:
        """PCI function → unit name, for units that are PCI functions (AMD-Vi)."""
        return {u.pci_function: n for n, u in self.units.items() if u.pci_function}

    def group_status(self, dev: str) -> str:
        """``"in_dump"`` (the dump gives its group), ``"none"`` (the dump shows it has no
        group), ``"iommu"`` (it is an IOMMU unit's own PCI function) or ``"unknown"``."""
        if dev in self.unit_functions():
            return "iommu"
        if self.groups.group_of(dev) is not None:
            return "in_dump"
        return "none" if dev in self.no_group else "unknown"

    def function(self, bdf: str, source: str = "", line: int = 0) -> PciFunction:
        """The function at *bdf* (normalised), created empty if new."""
        pf = self.functions.get(bdf)
        if pf is None:
            pf = self.functions[bdf] = PciFunction(bdf, source=source, line=line)
        return pf

    def device_ids(self) -> list[str]:
        """PCI functions (in BDF order) then non-PCI devices (in order seen)."""
        return sorted(self.functions, key=_bdf_key) + list(self.others)

    def group_of(self, dev: str) -> int | None:
        """IOMMU group number of *dev*, or None."""
        return self.groups.group_of(dev)

    def pasid_capable(self) -> list[PciFunction]:
        """Functions with a PASID capability, in BDF order."""
        return [self.functions[b] for b in sorted(self.functions, key=_bdf_key)
                if self.functions[b].pasid_present]


def _bdf_key(bdf: str) -> tuple:
    m = BDF_RE.match(bdf)
    if not m:
        return (1, bdf)
    return (0, int(m["dom"] or "0", 16), int(m["bus"], 16), int(m["dev"], 16), int(m["fn"]))


_CAP_FIELDS = ("pasid_present", "pasid_enabled", "pasid_width", "pasid_exec", "pasid_priv",
               "ats_present", "ats_enabled", "ats_stu", "ats_queue_depth", "pri_present",
               "pri_enabled", "pri_capacity", "acs_present")


def _fill(dst, src, skip=()) -> list[str]:
    """Copy fields of *src* into *dst* where *dst* has no value; return conflicting names."""
    conflicts = []
    for f in fields(dst):
        if f.name in skip or f.name in ("source", "line"):
            continue
        a, b = getattr(dst, f.name), getattr(src, f.name)
        if b is None or (isinstance(b, (list, str)) and not b):
            continue
        if a is None or (isinstance(a, (list, str)) and not a) or (a is False and b is True):
            setattr(dst, f.name, list(b) if isinstance(b, list) else b)
        elif a != b and not isinstance(a, bool):
            conflicts.append(f.name)
    return conflicts


def _merge_function(dst: PciFunction, src: PciFunction) -> list[str]:
    conflicts = _fill(dst, src, skip=_CAP_FIELDS + ("caps_visible",))
    if src.caps_visible and not dst.caps_visible:
        for name in _CAP_FIELDS:
            setattr(dst, name, getattr(src, name))
        dst.caps_visible = True
    elif dst.caps_visible is None and src.caps_visible is False:
        dst.caps_visible = False
    return [c for c in conflicts if c in ("driver", "vendor_id", "device_id")]


def merge_topologies(parts, source: str = "merged") -> Topology:
    """Combine parsed topologies into one, following the module's merge rule.

    Args:
        parts: :class:`Topology` values (from parsers); order matters only between sources of
            the same kind (first snapshot wins; last dmesg wins).
        source: name used in merge warnings.

    Returns:
        A new :class:`Topology` (``origin="merged"``); the inputs are not modified.
    """
    parts = list(parts)
    snaps = [p for p in parts if p.origin != "dmesg"]
    logs = [p for p in parts if p.origin == "dmesg"]
    out = Topology(origin="merged")
    enumerated = any(p.enumerates_pci for p in snaps)
    out.enumerates_pci = enumerated
    from_log: set[str] = set()
    dropped: list[str] = []
    for p in snaps + logs:
        is_log = p.origin == "dmesg"
        out.sources += [s for s in p.sources if s not in out.sources]
        out.formats += [f for f in p.formats if f not in out.formats]
        out.warnings += p.warnings
        out.notes += p.notes
        if p.iommu_type_hint and not out.iommu_type_hint:
            out.iommu_type_hint, out.type_evidence = p.iommu_type_hint, p.type_evidence
        out.groups_shown = out.groups_shown or p.groups_shown
        out.drivers_reported = out.drivers_reported or p.drivers_reported
        for bdf, pf in p.functions.items():
            if is_log and enumerated and bdf not in out.functions:
                dropped.append(bdf)
                continue
            if bdf not in out.functions:
                out.functions[bdf] = PciFunction(bdf, source=pf.source, line=pf.line)
            for c in _merge_function(out.functions[bdf], pf):
                if not is_log:
                    out.warn(pf.source, pf.line, f"{bdf}: {c} {getattr(pf, c)!r} conflicts "
                             f"with {getattr(out.functions[bdf], c)!r} from an earlier "
                             "source; keeping the earlier value")
        for name, od in p.others.items():
            if name not in out.others:
                out.others[name] = OtherDevice(name, source=od.source, line=od.line)
            _fill(out.others[name], od)
        for name, u in p.units.items():
            if name not in out.units:
                out.units[name] = IommuUnitInfo(name, source=u.source, line=u.line)
            _fill(out.units[name], u)
        for dev, unit in p.unit_of.items():
            if dev in dropped:
                continue
            prev = out.unit_of.setdefault(dev, unit)
            if prev != unit:
                out.warn(source, 0, f"{dev}: behind {unit} in {p.sources} but {prev} "
                         "earlier; keeping the earlier")
        for g, members in p.groups.groups.items():
            for dev in members:
                if dev in dropped:
                    continue
                cur = out.groups.group_of(dev)
                if cur is None or (is_log and dev in from_log):
                    out.groups.add(g, dev)
                    if is_log:
                        from_log.add(dev)
                elif cur != g and not is_log:
                    out.warn(source, 0, f"{dev}: group {g} in {', '.join(p.sources)} "
                             f"conflicts with group {cur} from an earlier snapshot; "
                             "keeping the earlier")
    for p in snaps:
        out.no_group |= {d for d in p.no_group if out.groups.group_of(d) is None}
    if dropped:
        out.note(source, 0, f"{len(dropped)} PCI function(s) seen only in dmesg, not in the "
                 f"lspci/listing snapshot (hot-removed or hidden): {', '.join(dropped)}; "
                 "dropped")
    for bdf, pf in out.functions.items():
        g = out.groups.group_of(bdf)
        if g is not None and pf.iommu_group is None:
            pf.iommu_group = g
    return out
