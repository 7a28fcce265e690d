"""Translation speed of the software IOMMU, printed in one run.

    python benchmarks/bench_hw.py [--quick]

Prints translations per second on ATC/IOTLB hits and on misses (table walk + cache fill), each
as a ratio to a plain dict lookup measured in the same run and harness (one Python call per
operation).  Target: a hit within 4x of the dict lookup.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import rate  # noqa: E402

from pasidsim.config import Config, DeviceConfig, IommuUnit  # noqa: E402
from pasidsim.hw.translate import translate  # noqa: E402
from pasidsim.policy import CURRENT  # noqa: E402
from pasidsim.state import PAGE_SIZE, initial_state  # noqa: E402
from pasidsim.step import Action, step  # noqa: E402




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    n = 20_000 if ap.parse_args().quick else 200_000
    pages = 512
    for ats, label in ((True, "ATC hit (ATS device)"), (False, "IOTLB hit (no ATS)")):
        cfg = Config.build(iommus=[IommuUnit("dmar0", iotlb_entries=4096)],
                           devices=[DeviceConfig("dsa0", iommu="dmar0", pasid_bits=20, ats=ats,
                                                 atc_entries=4096)])
        s = initial_state(cfg, CURRENT)
        s, tid = step(s, Action.of("process_create"))
        mm = s.tasks[tid].mm
        s, h = step(s, Action.of("iommu_sva_bind_device", dev=0, mm=mm))
        pasid = s.mms[mm].pasid
        s, addr = step(s, Action.of("mmap_anon", tid=tid, npages=pages, prot=3))
        for i in range(pages):
            s, _ = step(s, Action.of("touch", tid=tid, addr=addr + i * PAGE_SIZE, access=2))
        cold = s
        for i in range(pages):
            s, _ = translate(s, 0, pasid, addr + i * PAGE_SIZE, 1)
        warm = s
        d = {(0, pasid, addr // PAGE_SIZE + i): i for i in range(pages)}
        key = (0, pasid, addr // PAGE_SIZE + 7)
        base = rate(lambda: d.get(key), n)
        a = addr + 7 * PAGE_SIZE
        hit = rate(lambda: translate(warm, 0, pasid, a, 1), n)
        miss = rate(lambda: translate(cold, 0, pasid, a, 1), n // 4)
        print(f"dict lookup (baseline)          {base:12,.0f} /s")
        print(f"{label:30} {hit:12,.0f} /s  ratio to dict {base / hit:5.2f}x (target <= 4x)")
        print(f"miss: walk + fill ({'ATS' if ats else 'no ATS'})       {miss:12,.0f} /s  "
              f"ratio to dict {base / miss:5.2f}x")


if __name__ == "__main__":
    main()
