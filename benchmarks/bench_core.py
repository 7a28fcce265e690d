"""Core speed and memory figures, printed in one run.

    python benchmarks/bench_core.py [--quick]

Prints:
- PASID alloc+free pairs per second on the persistent allocator (``Ida``), with an empty and
  with a fully occupied 2^20 space (one ID freed so that the pair has something to reuse), each
  as a ratio to a plain ``dict`` insert+delete measured in the same run and the same harness
  (one Python call per pair in a loop);
- the same pairs through the full kernel path (``iommu_alloc_global_pasid`` /
  ``iommu_free_global_pasid`` on a ``SystemState``);
- SVA bind+unbind pairs per second through ``step``;
- bytes of memory per allocated PASID with 2^20 - 1 PASIDs allocated (tracemalloc).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import rate  # noqa: E402

from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit  # noqa: E402
from pasidsim.ida import Ida  # noqa: E402
from pasidsim.pasid import iommu_alloc_global_pasid, iommu_free_global_pasid  # noqa: E402
from pasidsim.policy import CURRENT  # noqa: E402
from pasidsim.state import initial_state  # noqa: E402
from pasidsim.step import Action, step  # noqa: E402

HI = (1 << 20) - 1




def full_ida() -> Ida:
    ida = Ida()
    for i in range(1, HI + 1):
        ida = ida.set(i)
    return ida


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    n = 20_000 if ap.parse_args().quick else 200_000

    d: dict[int, int] = {i: i for i in range(1, HI + 1)}
    del d[777]

    def dict_pair():
        d[777] = 1
        del d[777]

    base = rate(dict_pair, n)

    box = [Ida()]

    def ida_pair_empty():
        ida, p = box[0].alloc_lowest(1, HI)
        box[0] = ida.clear(p)

    empty = rate(ida_pair_empty, n)
    box[0] = full_ida().clear(777)
    full = rate(ida_pair_empty, n)

    print(f"Ida implementation: {Ida.__module__}.{Ida.__qualname__}")
    print(f"dict insert+delete (baseline)      {base:12,.0f} pairs/s")
    print(f"Ida alloc+free, empty 2^20 space    {empty:12,.0f} pairs/s  "
          f"ratio to dict {base / empty:5.2f}x (target <= 5x)")
    print(f"Ida alloc+free, full 2^20 space     {full:12,.0f} pairs/s  "
          f"ratio to dict {base / full:5.2f}x (target <= 5x)")

    cfg = Config.build(iommus=[IommuUnit("dmar0")],
                       devices=[DeviceConfig("dsa0", iommu="dmar0", pasid_bits=20)],
                       drivers=[DriverConfig("idxd", kind="uacce")])
    s0 = initial_state(cfg, CURRENT)
    sbox = [s0]

    def kernel_pair():
        s, p = iommu_alloc_global_pasid(sbox[0], 0)
        sbox[0], _ = iommu_free_global_pasid(s, p)

    kern_empty = rate(kernel_pair, n // 4)
    sbox[0] = s0._replace(ida=full_ida().clear(777))
    kern_full = rate(kernel_pair, n // 4)
    print(f"iommu_alloc/free_global_pasid, empty {kern_empty:11,.0f} pairs/s  "
          f"ratio to dict {base / kern_empty:5.2f}x")
    print(f"iommu_alloc/free_global_pasid, full  {kern_full:11,.0f} pairs/s  "
          f"ratio to dict {base / kern_full:5.2f}x")

    s, tid = step(s0, Action.of("process_create"))
    mm = s.tasks[tid].mm
    bind = Action.of("iommu_sva_bind_device", dev=0, mm=mm)
    sb = [s]

    def bind_pair():
        s1, h = step(sb[0], bind)
        s2, _ = step(s1, Action(OP_UNBIND, (h,)))
        sb[0] = s2

    from pasidsim.step import OP_BY_NAME
    OP_UNBIND = OP_BY_NAME["iommu_sva_unbind_device"].code  # noqa: N806
    bind_rate = rate(bind_pair, n // 20)
    print(f"SVA bind+unbind through step()      {bind_rate:12,.0f} pairs/s")

    del d, box
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ida = full_ida()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per = (after - before) / ida.allocated
    print(f"memory per allocated PASID at 2^20  {per:12.2f} bytes (target <= 200)")


if __name__ == "__main__":
    main()
