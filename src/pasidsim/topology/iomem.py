"""Parser for ``/proc/iomem`` (as root): the MMIO regions of IOMMU units.

An IOMMU driver requests its register window under the unit's device name, so ``/proc/iomem``
names every unit that probed, even when nothing else in the dump does:

* ``fed90000-fed90fff : dmar0`` (VT-d, ``drivers/iommu/intel/dmar.c``);
* ``33ffe0000000-33ffe001ffff : arm-smmu-v3.0.auto`` (SMMUv3 probed from ACPI IORT; its
  nested page-0/page-1 regions repeat the name).

Only the unit and its register base are shown, not which devices sit behind it, nor its
PASID/SVA features (those stay unknown).
"""

from __future__ import annotations

import re

from .model import IommuUnitInfo, Topology

IOMEM_UNIT_RE = re.compile(
    r"^[ \t]*([0-9a-fA-F]{1,16})-([0-9a-fA-F]{1,16}) : "
    r"(dmar[0-9]{1,9}|arm-smmu-v3\.[0-9]{1,9}\.auto)[ \t]*$", re.M)


def parse_iomem(text: str, source: str = "<iomem>") -> Topology:
    """The IOMMU units named in ``/proc/iomem`` text (other lines are ignored).

    Returns: a :class:`Topology` with ``origin="iomem"``: units only (``dmarN`` → VT-d,
    ``arm-smmu-v3.N.auto`` → SMMUv3), ``reg_base`` = the start of the unit's first region.
    """
    topo = Topology(origin="iomem", sources=[source], formats=["iomem"])
    for m in IOMEM_UNIT_RE.finditer(text):
        name = m[3]
        if name in topo.units:
            continue
        kind = "vtd" if name.startswith("dmar") else "smmuv3"
        topo.units[name] = IommuUnitInfo(name, kind, reg_base=int(m[1], 16), source=source,
                                         line=text.count("\n", 0, m.start()) + 1)
    if topo.units:
        first = next(iter(topo.units.values()))
        topo.iommu_type_hint = first.type
        topo.type_evidence = f"{source}:{first.line}: iomem region {first.name}"
    return topo

