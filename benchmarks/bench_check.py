"""Model-checker figures on the PASID subsystem, printed in one run.

    python benchmarks/bench_check.py [--quick] [--parallel N]

Standard configuration: 3 processes x 2 devices (a singleton accelerator and one PASID
device of a two-device group whose sibling has a DMA-API driver), today's design, every
invariant checked in every state.  Prints distinct states, states per second and wall time,
without and with symmetry reduction (object ids and interchangeable processes,
:mod:`pasidsim.check.symmetry`), then the time to the first counterexample of every
historical design on its scenario; with ``--parallel N``, serial against N worker processes
on a larger (four-process) configuration.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pasidsim.check.history import HISTORY  # noqa: E402
from pasidsim.check.runner import check_scenario  # noqa: E402
from pasidsim.scenario import builtin_scenarios  # noqa: E402
from pasidsim.scenario.compile import compile_scenario  # noqa: E402
from pasidsim.scenario.loader import load_scenario, load_text  # noqa: E402

STANDARD = """
name: bench-3proc-2dev
design: current
machine:
  iommus: [{name: dmar0, ops: intel-iommu}]
  devices:
    - {name: acc0, iommu: dmar0, pasid_bits: 20, driver: uacce}
    - {name: ga, iommu: dmar0, group: G, pasid_bits: 20, driver: uacce}
    - {name: gb, iommu: dmar0, group: G, driver: e1000e}
  drivers:
    - {name: uacce, kind: uacce}
    - {name: e1000e, kind: dma-api}
actors:
""" + "".join(f"""  - name: P{i}
    program:
      - open: {{dev: acc0, expect: ok}}
      - open: {{dev: ga, expect: ok}}
      - exit: {{}}
""" for i in range(1, 4))


def _parallel(workers: int) -> None:
    """Serial vs ``--workers`` on the standard machine with four processes (56,023 states)."""
    from pasidsim.check.runner import _MP_CONTEXT
    four = STANDARD + """  - name: P4
    program:
      - open: {dev: acc0, expect: ok}
      - open: {dev: ga, expect: ok}
      - exit: {}
"""
    c = compile_scenario(load_text(four, "<bench-4>"))
    t0 = time.perf_counter()
    serial = check_scenario(c, max_states=None, max_seconds=None)
    swall = time.perf_counter() - t0
    t0 = time.perf_counter()
    par = check_scenario(c, max_states=None, max_seconds=None, workers=workers)
    pwall = time.perf_counter() - t0
    assert (par.verdict, par.states, par.transitions) == (serial.verdict, serial.states,
                                                         serial.transitions)
    print(f"parallel BFS, 4 processes x 2 devices ({serial.states:,} states, "
          f"{_MP_CONTEXT} workers):")
    print(f"  serial {swall:.2f} s ({serial.states / swall:,.0f} states/s); {workers} workers "
          f"{pwall:.2f} s ({par.states / pwall:,.0f} states/s, {swall / pwall:.2f}x); same "
          f"verdict, states and transitions")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="two processes instead of three")
    ap.add_argument("--parallel", type=int, metavar="N", default=0,
                    help="also time N workers against the serial search on a four-process "
                         "configuration (about 30 s)")
    args = ap.parse_args()
    quick = args.quick
    text = STANDARD if not quick else STANDARD.split("  - name: P3")[0]
    c = compile_scenario(load_text(text, "<bench>"))
    t0 = time.perf_counter()
    cell = check_scenario(c, max_states=None, max_seconds=None)
    wall = time.perf_counter() - t0
    print(f"standard configuration ({'2' if quick else '3'} processes x 2 devices x 1 "
          f"multi-device group, design current, all invariants)")
    print(f"  verdict {cell.verdict}; distinct states {cell.states:,}; transitions "
          f"{cell.transitions:,}")
    print(f"  wall {wall:.2f} s; {cell.states / wall:,.0f} states/s (target >= 20,000 on one core)")
    t0 = time.perf_counter()
    sym = check_scenario(c, max_states=None, max_seconds=None, symmetry=True)
    swall = time.perf_counter() - t0
    print(f"  symmetry reduction: verdict {sym.verdict}; distinct states {sym.states:,} "
          f"({cell.states / sym.states:.1f}x fewer; target >= 10x); transitions "
          f"{sym.transitions:,}; wall {swall:.3f} s ({wall / swall:.1f}x faster)")
    t0 = time.perf_counter()
    por = check_scenario(c, max_states=None, max_seconds=None, por=True)
    pwall = time.perf_counter() - t0
    print(f"  partial-order reduction: verdict {por.verdict}; distinct states {por.states:,} "
          f"({cell.states / por.states:.2f}x fewer); wall {pwall:.3f} s -- POR reduces only "
          f"actors of pure queries (pasidsim.check.por); this configuration has none")
    t0 = time.perf_counter()
    both = check_scenario(c, max_states=None, max_seconds=None, symmetry=True, por=True)
    bwall = time.perf_counter() - t0
    print(f"  symmetry + POR: distinct states {both.states:,}; wall {bwall:.3f} s")
    print("time to first counterexample (BFS, shortest):")
    b = builtin_scenarios()
    for h in HISTORY:
        c = compile_scenario(load_scenario(b[h.scenario]), design=h.design)
        t0 = time.perf_counter()
        cell = check_scenario(c, expected=h.breaks)
        dt = time.perf_counter() - t0
        print(f"  {h.design:24} {h.scenario:28} {cell.invariant or '-':10} "
              f"len {len(cell.refs):3}  {dt * 1000:8.1f} ms  (target < 2000 ms)")
    if args.parallel:
        _parallel(args.parallel)


if __name__ == "__main__":
    main()
