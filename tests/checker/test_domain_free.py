"""#14: the checker reports a driver that frees an iommu_domain still attached (invariant D1),
with the shortest interleaving, and passes the same teardown in the right order."""

from __future__ import annotations

from pasidsim.check.runner import check_scenario
from pasidsim.scenario import compile_scenario, load_text

# Two kernel contexts tear one PASID attachment down: one detaches, the other frees the
# domain.  Nothing orders them, so some interleaving frees before the detach.
_SETUP = """
setup:
  - iommu_domain_alloc_paging: {dev: dsa0, as: d}
  - iommu_attach_device_pasid: {domain: $d, dev: dsa0, pasid: 5, expect: 0}
actors:
  - name: K
    kernel: true
    program:
      - iommu_detach_device_pasid: {domain: $d, dev: dsa0, pasid: 5}
"""
RACY = "name: free-while-attached" + _SETUP + """  - name: R
    kernel: true
    program:
      - iommu_domain_free: {domain: $d}
"""

# The driver's own order: detach, then free.
ORDERED = "name: free-after-detach" + _SETUP + """      - iommu_domain_free: {domain: $d}
"""


def _cell(text: str):
    return check_scenario(compile_scenario(load_text(text)), design_name="current")


def test_free_racing_the_detach_breaks_d1_with_the_shortest_trace():
    cell = _cell(RACY)
    assert cell.verdict == "Sometimes" and cell.invariant == "D1", (cell.invariant,
                                                                    cell.message)
    assert "freed while still attached at a PASID" in cell.message
    calls = [str(step) for step in cell.trace]
    assert any("iommu_domain_free" in c for c in calls)
    assert not any("iommu_detach_device_pasid" in c for c in calls), calls


def test_the_same_teardown_in_order_holds():
    cell = _cell(ORDERED)
    assert cell.verdict == "Always", (cell.invariant, cell.message)
