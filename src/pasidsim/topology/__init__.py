"""Importers of real machine topology dumps → :class:`pasidsim.config.Config`.

Typical use::

    from pasidsim.topology import load_topology, to_config, render_topology
    topo = load_topology(["lspci-vvv.txt", "dmesg.txt"])
    cfg = to_config(topo)

:func:`load_topology` sniffs each file (a file may hold several formats: the PLX report has
``lspci -vvnn`` and dmesg sections), runs the matching parsers and merges the results with
:func:`~pasidsim.topology.model.merge_topologies` (snapshots win over the dmesg event log,
which only adds what they cannot see; see :mod:`pasidsim.topology.model`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .convert import driver_config, to_config
from .dmesg import decode_amd_efr, decode_smmu_features, decode_vtd_ecap, parse_dmesg
from .groups import parse_group_listing, parse_group_listings
from .iomem import IOMEM_UNIT_RE, parse_iomem
from .lspci import parse_lspci
from .model import (IommuGroupListing, IommuUnitInfo, OtherDevice, PciFunction, Topology,
                    TopologyError, decimal, merge_topologies, normalize_bdf)
from .render import assignability, render_topology, topology_summary
from .sysfs import read_sysfs

__all__ = [
    "IommuGroupListing", "IommuUnitInfo", "OtherDevice", "PciFunction", "Topology",
    "TopologyError", "assignability", "decode_amd_efr", "decode_smmu_features",
    "decode_vtd_ecap", "detect_formats", "driver_config", "load_topology", "merge_topologies",
    "normalize_bdf", "parse_dmesg", "parse_group_listing", "parse_group_listings",
    "parse_iomem", "parse_lspci", "parse_text", "read_sysfs", "render_topology", "to_config",
    "topology_summary",
]

_LSPCI_RE = re.compile(
    r"^\s+(?:Kernel driver in use:|Capabilities: [\[<]|IOMMU group: \d|PASIDCap:|"
    r"Flags: .*IOMMU group \d)", re.M)
_LSPCI_PLAIN_RE = re.compile(r"^(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7] [^:]+: ", re.M)
_LISTING_RE = re.compile(r"^\s*(?:IOMMU [Gg]roup \d+(?::\s*$| (?:[0-9a-f]{4}:)?[0-9a-f]{2}:)|"
                         r"IOMMU:\s*\S+\s*$|Group Device:)", re.M)
_DMESG_RE = re.compile(r"Adding to iommu group|Removing from iommu group|"
                       r"DMAR: dmar\d+: reg_base_addr|AMD-Vi: (?:Found IOMMU|Extended features)"
                       r"|arm-smmu-v3 \S+: ias|\] pci [0-9a-f]{4}:\S+: \[[0-9a-f]{4}:")


def detect_formats(text: str) -> list[str]:
    """Which formats *text* holds, in parse order: ``"lspci"``, ``"listing"``, ``"iomem"``,
    ``"dmesg"``.

    lspci: indented ``Kernel driver in use:``/``Capabilities:``/``IOMMU group: N`` lines (or a
    file made only of plain ``lspci`` lines); listing: ``IOMMU Group N:``, ``IOMMU group N BDF``
    or ``IOMMU: dmarN``; iomem: ``/proc/iomem`` regions of IOMMU units (``… : dmar0``,
    ``… : arm-smmu-v3.0.auto``); dmesg: group messages, IOMMU unit lines or PCI enumeration
    lines.
    """
    found = []
    listing = bool(_LISTING_RE.search(text))
    nonblank = [ln for ln in text.splitlines() if ln.strip()]
    plain = nonblank and sum(bool(_LSPCI_PLAIN_RE.match(ln)) for ln in nonblank) * 2 > len(nonblank)
    if _LSPCI_RE.search(text) or (plain and not listing):
        found.append("lspci")
    if listing:
        found.append("listing")
    if IOMEM_UNIT_RE.search(text):
        found.append("iomem")
    if _DMESG_RE.search(text):
        found.append("dmesg")
    return found


def parse_text(text: str, source: str = "<text>", *, section: int | None = None) -> Topology:
    """Sniff and parse one text; merge its parts.

    Returns: the merged :class:`Topology` of every format found in *text*.
    Raises: :class:`TopologyError` (``source:1``) when *text* is empty or holds no
    recognised format.
    """
    return merge_topologies(_parse_parts(text, source, section), source)


def _parse_parts(text: str, source: str, section: int | None) -> list[Topology]:
    if not text.strip():
        raise TopologyError(source, 1, "empty input")
    if "\x00" in text:
        raise TopologyError(source, 1, "binary data, not a text dump")
    formats = detect_formats(text)
    if not formats:
        raise TopologyError(source, 1, "no lspci, IOMMU group listing or dmesg content found")
    parts = []
    for fmt in formats:
        if fmt == "lspci":
            parts.append(parse_lspci(text, source))
        elif fmt == "listing":
            parts.append(parse_group_listing(text, source, section=section))
        elif fmt == "iomem":
            parts.append(parse_iomem(text, source))
        else:
            parts.append(parse_dmesg(text, source))
    if not any(p.iommu_type_hint for p in parts):
        parts[0].iommu_type_hint, parts[0].type_evidence = _guess_type(
            merge_topologies(parts), text, source)
    return parts


def load_topology(path_or_paths, *, strict: bool = False,
                  section: int | None = None) -> Topology:
    """Load one or more dumps (files, or a sysfs root directory) into one :class:`Topology`.

    Args:
        path_or_paths: a path or an iterable of paths.  A directory is read as a sysfs root
            (:func:`read_sysfs`); a file is sniffed (:func:`detect_formats`) and parsed.
        strict: raise :class:`TopologyError` on the first warning instead of collecting it
            (notes, valid content the importer made a choice about, are not warnings).
        section: which group listing to use when a file holds several (see
            :func:`parse_group_listing`).

    Returns: the merged Topology.  All parts of all files are merged at once, so the merge
    rule (snapshots over the dmesg log, see :mod:`pasidsim.topology.model`) does not depend
    on how the dumps are split into files.

    Raises:
        TopologyError: a file is missing, unreadable, empty or has no recognised content, or
            (strict) any warning; the message starts with ``file:line:``.
    """
    if isinstance(path_or_paths, (str, os.PathLike)):
        path_or_paths = [path_or_paths]
    parts: list[Topology] = []
    for p in map(Path, path_or_paths):
        if p.is_dir():
            parts.append(read_sysfs(p))
            continue
        try:
            raw = p.read_bytes()
        except (OSError, ValueError) as e:  # ValueError: a NUL in the path
            raise TopologyError(p.name, 0, f"cannot read: {getattr(e, 'strerror', None) or e}") from None
        parts += _parse_parts(raw.decode("utf-8", errors="replace"), p.name, section)
    if not parts:
        raise TopologyError("<none>", 0, "no input files")
    topo = merge_topologies(parts, parts[0].sources[0] if len(parts) == 1 else "merge")
    if strict and topo.warnings:
        src, line, msg = (topo.warnings[0].split(":", 2) + ["", ""])[:3]
        raise TopologyError(src, decimal(line) or 0, msg.strip())
    return topo


def _guess_type(topo: Topology, text: str, source: str) -> tuple[str | None, str | None]:
    """IOMMU family when no unit line says it, and the evidence: the host bridge's vendor,
    else the IOMMU driver's name in the text (``arm-smmu``, ``DMAR``/``intel_iommu``,
    ``AMD-Vi``/``amd_iommu``).  ``(None, None)`` when the dump does not show it."""
    host = topo.functions.get("0000:00:00.0")
    if host is not None and (host.class_name in (None, "Host bridge")
                             or host.class_code == "0600"):
        if host.vendor_id == "8086" or (host.name or "").startswith("Intel"):
            return "vtd", "Intel host bridge 00:00.0"
        if host.vendor_id == "1022" or (host.name or "").startswith("Advanced Micro"):
            return "amd-vi", "AMD host bridge 00:00.0"
    for pf in sorted(topo.functions.values(), key=lambda f: f.bdf):
        if pf.rciep and (pf.vendor_id == "8086" or (pf.name or "").startswith("Intel")):
            # integrated in the root complex: the platform is Intel's
            return "vtd", f"Intel root-complex integrated endpoint {pf.short}"
        if pf.driver == "idxd":         # DSA/IAA exist only integrated in Intel Xeons
            return "vtd", f"{pf.short} bound to idxd (Intel DSA/IAA, part of an Intel Xeon)"
    for kind, rx in (("smmuv3", r"arm-smmu|\bSMMUv?3?\b"), ("vtd", r"\bDMAR\b|intel_iommu"),
                     ("amd-vi", r"AMD-Vi|amd_iommu")):
        m = re.search(rx, text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
            return kind, f"{source}:{line}: {m[0]!r} in the text"
    return None, None
