"""The worked study of README "Simulating at scale": the amdgpu question of seed 002.

    python benchmarks/sim_study.py [--workers N] [--processes N] [--out docs/sim-study.png]

1. Stale-fault misattribution (A4: an IH-ring fault charged to the PASID's next VM) against
   the grace period, lowest-free (design ``amdgpu-lowest``) vs cyclic (``current``), on the
   built-in ``amdgpu-ih`` workload (IH-ring delay exponential, mean 2 ms).
2. The grace period a given fault latency needs: lowest-free, IH-ring delay mean 1, 2 and 4 ms.
3. The same question for SVA on the IOMMU's global allocator (``sva-dwq``: the 2018 io_mm
   design frees the PASID at mm exit with descriptors still queued): stale descriptors that
   complete into the next process's mm (I2) under lowest-free, cyclic and pending-free
   allocation at 16- and 20-bit PASID widths.

Prints the tables and writes one figure with the three panels.  Every run goes through the
simulator's API (``pasidsim.sim.runs``), the same as ``pasidsim simulate --sweep``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pasidsim.sim.runs import plan, run_jobs  # noqa: E402
from pasidsim.sim.workload import load_workload  # noqa: E402

GRACE = [0, 0.5, 1, 2, 4, 8, 16]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--processes", type=int, default=4000)
    ap.add_argument("--out", default=str(ROOT / "docs" / "sim-study.png"))
    args = ap.parse_args()
    gpu = load_workload("amdgpu-ih").variant(processes=args.processes)
    sva = load_workload("sva-dwq").variant(processes=args.processes)
    jobs1 = plan(gpu, ["amdgpu-lowest", "current"], [("grace", GRACE)], record=False)
    jobs2 = plan(gpu, ["amdgpu-lowest"], [("ih_latency.mean", [1, 2, 4]), ("grace", GRACE)],
                 record=False)
    jobs3 = plan(sva, [], [("allocator", ["LOWEST", "CYCLIC", "PENDING_FREE"]),
                           ("pasid_bits", [16, 20])], record=False)
    res = run_jobs(jobs1 + jobs2 + jobs3, args.workers)
    r1, r2, r3 = (res[:len(jobs1)], res[len(jobs1):len(jobs1) + len(jobs2)],
                  res[len(jobs1) + len(jobs2):])

    print("1. amdgpu (16-bit PASIDs), IH delay ~ exp(mean 2 ms): misattributed / faults")
    print(f"{'grace ms':>9} {'lowest-free':>16} {'cyclic':>16}")
    by = {(j.design, j.params['grace']): r.summary for j, (r, _) in zip(jobs1, r1)}
    for g in GRACE:
        lo, cy = by[("amdgpu-lowest", g)], by[("current", g)]
        print(f"{g:>9} {lo['misattributed']:>6}/{lo['faults']:<5} {lo['misattribution_rate']:.2%}"
              f" {cy['misattributed']:>6}/{cy['faults']:<5} {cy['misattribution_rate']:.2%}")
    print("   max PASIDs in use:", {g: by[('current', g)]['max_amdgpu_pasids'] for g in GRACE})
    print("\n2. lowest-free: misattribution rate by IH delay (rows) and grace (columns)")
    by2 = {(j.params["ih_latency.mean"], j.params["grace"]): r.summary
           for j, (r, _) in zip(jobs2, r2)}
    print(f"{'IH mean':>8} " + " ".join(f"{g:>7}" for g in GRACE))
    for lat in (1, 2, 4):
        print(f"{lat:>8} " + " ".join(f"{by2[(lat, g)]['misattribution_rate']:>7.2%}"
                                      for g in GRACE))
    print("\n3. SVA, E0 (PASID freed at mm exit, descriptors queued): stale completions "
          "into the next mm (I2)")
    for j, (r, _) in zip(jobs3, r3):
        s = r.summary
        print(f"   {j.params['allocator']:>12} {j.params['pasid_bits']}-bit: foreign DMA "
              f"{s['foreign_dma']}, PASIDs max {s['max_pasids']}, reuses {s['reuses']}, "
              f"min reuse distance {s['reuse_allocs_min']} allocations")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for d, name in (("amdgpu-lowest", "lowest-free (amdgpu-lowest)"),
                    ("current", "cyclic (current)")):
        ax.plot(GRACE, [100 * by[(d, g)]["misattribution_rate"] for g in GRACE], marker="o",
                label=name)
    ax.set_xscale("symlog", linthresh=0.5)
    ax.set_xlabel("grace period (ms)")
    ax.set_ylabel("faults charged to the next VM (%)")
    ax.set_title("amdgpu, 16-bit, IH delay exp(2 ms)", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1]
    for lat in (1, 2, 4):
        ax.plot(GRACE, [100 * by2[(lat, g)]["misattribution_rate"] for g in GRACE],
                marker="o", label=f"IH delay mean {lat} ms")
    ax.set_xscale("symlog", linthresh=0.5)
    ax.set_xlabel("grace period (ms)")
    ax.set_ylabel("faults charged to the next VM (%)")
    ax.set_title("lowest-free: grace needed per fault latency", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2]
    allocs = ["LOWEST", "CYCLIC", "PENDING_FREE"]
    for k, bits in enumerate((16, 20)):
        vals = [next(r.summary["foreign_dma"] for j, (r, _) in zip(jobs3, r3)
                     if j.params == {"allocator": a, "pasid_bits": bits}) for a in allocs]
        ax.bar([i + 0.38 * k for i in range(3)], vals, width=0.36, label=f"{bits}-bit")
    ax.set_xticks([i + 0.19 for i in range(3)], ["lowest-free", "cyclic", "pending-free"])
    ax.set_ylabel("descriptors completed into the next mm (I2)")
    ax.set_title("SVA, E0 io_mm: PASID freed at mm exit", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
