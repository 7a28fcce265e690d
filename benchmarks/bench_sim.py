"""The simulator at scale (issue #15): events per second per core and peak memory.

    python benchmarks/bench_sim.py [--workload gpu-churn] [--processes 100000]
                                   [--no-record] [--no-transitions] [--profile]

Runs the workload (default: the built-in ``gpu-churn``: 100,000 processes, ~1,000,000 model
steps) once, in this process, serially, with the online checks of a normal run (log-watching
A4/I1/I2/W/M9/B1/F3 after every step, the scoped transition invariants, every state
invariant at the end) and prints:

- steps (events), processes, simulated time;
- wall seconds and CPU seconds of the run, and **events/s per core** = events / CPU seconds
  (one core: the simulation is one Python thread; CPU time is used so that a loaded machine
  does not hide the figure; the wall-clock rate is printed too);
- peak resident memory (``VmHWM``: the high-water mark of this process, imports included)
  and the memory of the recorded step log (56 bytes a step; ``--no-record`` to leave it out);
- with ``--profile``: the run under cProfile, the functions with the most own time, and the
  share of the model's ``step`` against the simulator's own work.

The target of the issue is >= 20,000 events/s per core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pasidsim.runtime import peak_rss  # noqa: E402
from pasidsim.sim.engine import Simulation  # noqa: E402
from pasidsim.sim.workload import load_workload  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="gpu-churn")
    ap.add_argument("--processes", type=int, default=None)
    ap.add_argument("--design", default=None)
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--no-transitions", action="store_true")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    lw = load_workload(args.workload)
    if args.processes:
        lw = lw.variant(processes=args.processes)
    rss0 = peak_rss()
    sim = Simulation(lw, design=args.design, record=not args.no_record,
                     transitions=not args.no_transitions)
    c0, w0 = time.process_time(), time.perf_counter()
    if args.profile:
        import cProfile
        import pstats
        prof = cProfile.Profile()
        res = prof.runcall(sim.run)
    else:
        res = sim.run()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    s = res.summary
    print(f"workload {lw.model.name} on {sim.design}: {s['events']:,} events, "
          f"{s['processes']:,} processes, {s['sim_time_ms']:,.0f} ms simulated, "
          f"stopped: {s['stopped']}")
    print(f"  wall {wall:.1f} s, CPU {cpu:.1f} s")
    print(f"  events/s per core: {s['events'] / cpu:,.0f} (CPU time; wall-clock rate "
          f"{s['events'] / wall:,.0f})")
    log = res.log.buffer_info()[1] * res.log.itemsize if res.log is not None else 0
    print(f"  peak memory (VmHWM): {peak_rss() / 2**20:,.0f} MiB (after imports: "
          f"{rss0 / 2**20:,.0f} MiB; step log {log / 2**20:,.0f} MiB)")
    print(f"  peak PASIDs in use: amdgpu {s['max_amdgpu_pasids']:,}, global "
          f"{s['max_pasids']:,}; violations: {s['violations'] or 'none'}")
    if args.profile:
        st = pstats.Stats(prof)
        total = st.total_tt
        stats = st.stats  # type: ignore[attr-defined]
        step_cum = sum(v[3] for k, v in stats.items() if k[2] == "step" and
                       k[0].endswith("pasidsim/step.py"))
        print(f"  profile: model step {step_cum / total:.0%} of the run, the simulator "
              f"(SimPy, checks, metrics) the rest")
        st.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
