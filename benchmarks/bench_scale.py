"""The checker at scale (issue #12), printed in one run.

    python benchmarks/bench_scale.py [--seconds S] [--quick] [--no-ray] [--ray-large]

1. **Scaling table**: ``N`` identical processes x ``D`` single-device accelerators (each
   process opens every device, then exits; design current, every invariant), checked plain,
   with symmetry, with partial-order reduction and with both: distinct states, transitions,
   seconds, each search bounded by ``--seconds`` (default 60).  A mode whose search was cut
   by the bound is not run on the larger configurations of that ``D``.  Then the same at lock
   granularity (calls stop at their preemption points), plain and with symmetry.
2. **Largest configuration exhausted** within the bound, per mode.
3. **Bytes per visited state**: the peak of Python's traced memory (``tracemalloc``) during
   a plain search of the standard configuration (bench_check's 3 processes x 2 devices),
   divided by its distinct states.  The visited map keeps a fingerprint and a parent link per
   state; the full states live only in the frontier.
4. **Ray against serial** on the standard machine with four processes: the serial search
   and the level-parallel BFS on 2 Ray actors (``pasidsim.check.parallel``), each in a fresh
   process, in the same run: wall time of the search (and of starting the local runtime),
   the speedup, identical verdict/states/transitions, and peak resident memory: the serial
   process's against the coordinator's plus every worker's, and what the search grew each by
   (its peak less its resident memory before the search: the coordinator's with the Ray
   runtime started, a worker's idle with its model built), which takes out the fixed cost of
   Ray's processes.  Then the same on 6 identical processes x 1 device (136,673 states,
   about 2.5 minutes; not with ``--quick``) and, with ``--ray-large``, on 7 x 1 (2,212,556
   states, about 45 minutes), to show how the two ratios move with the size.
5. **Partial-order reduction's room**: on the standard configuration, how many pairs of
   steps of different processes enabled in one state commute (the same state whichever runs
   first), exactly and up to symmetry; and what the static independence relation of
   ``pasidsim.check.por`` makes of it.

Figures are from this noisy 2-core machine: compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_check import STANDARD  # noqa: E402

from pasidsim.check.runner import check_scenario  # noqa: E402
from pasidsim.scenario.compile import compile_scenario  # noqa: E402
from pasidsim.scenario.loader import load_text  # noqa: E402

MODES = (("plain", {}), ("symmetry", {"symmetry": True}), ("POR", {"por": True}),
         ("symmetry+POR", {"symmetry": True, "por": True}))
FOUR = STANDARD + """  - name: P4
    program:
      - open: {dev: acc0, expect: ok}
      - open: {dev: ga, expect: ok}
      - exit: {}
"""


def identical(n: int, d: int) -> str:
    """``n`` processes each opening ``d`` single-device accelerators, then exiting."""
    devs = "".join(f"    - {{name: acc{j}, iommu: dmar0, pasid_bits: 20, ats: true, pri: true, "
                   f"driver: uacce}}\n" for j in range(d))
    acts = "".join(f"  - name: P{i}\n    program:\n" + "".join(
        f"      - open: {{dev: acc{j}, expect: ok}}\n" for j in range(d)) + "      - exit: {}\n"
        for i in range(1, n + 1))
    return (f"name: scale-{n}x{d}\ndesign: current\nmachine:\n  iommus: [{{name: dmar0, ops: "
            f"intel-iommu}}]\n  devices:\n{devs}  drivers:\n    - {{name: uacce, kind: uacce}}\n"
            f"actors:\n{acts}")


#: the modes at lock granularity (partial-order reduction is off there)
LOCK_MODES = MODES[:2]


def scaling(seconds: float, quick: bool, granularity: str = "call") -> None:
    lock = granularity == "lock"
    configs = [(n, 1) for n in range(2, (5 if lock else 7) if quick else (7 if lock else 11))] + \
        [(n, 2) for n in range(2, (4 if lock else 5) if quick else (5 if lock else 9))]
    modes = LOCK_MODES if lock else MODES
    print(f"scaling at {granularity} granularity: N processes x D accelerators (open each, "
          f"exit), design current, every invariant; each search bounded by {seconds:.0f} s")
    print(f"  {'N x D':6} {'mode':13} {'verdict':8} {'states':>10} {'transitions':>12} "
          f"{'seconds':>8} {'states/s':>9}")
    cut: set = set()
    largest: dict[tuple, tuple] = {}
    for n, d in configs:
        c = compile_scenario(load_text(identical(n, d), f"<{n}x{d}>"))
        for mode, kw in modes:
            if (mode, d) in cut:
                continue
            t0 = time.perf_counter()
            r = check_scenario(c, max_states=None, max_seconds=seconds, granularity=granularity,
                               **kw)
            wall = time.perf_counter() - t0
            done = r.verdict == "Always"
            print(f"  {n}x{d:<4} {mode:13} {r.verdict:8} {r.states:>10,} {r.transitions:>12,} "
                  f"{wall:>8.2f} {r.states / wall:>9,.0f}")
            if done:
                largest[(mode, d)] = (d, n, wall)
            else:
                cut.add((mode, d))
    print(f"largest configuration exhausted within {seconds:.0f} s, per number of devices:")
    for mode, _ in modes:
        best = sorted(v for k, v in largest.items() if k[0] == mode)
        print(f"  {mode:13} " + "; ".join(f"{n} processes x {d} device(s) in {wall:.1f} s"
                                          for d, n, wall in best))


def bytes_per_state() -> None:
    c = compile_scenario(load_text(STANDARD, "<bench>"))
    check_scenario(c, max_states=None, max_seconds=None)  # first-call costs out of the way
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    r = check_scenario(c, max_states=None, max_seconds=None)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    print(f"memory: standard configuration, plain search: {r.states:,} states, traced peak "
          f"{peak / 1e6:.1f} MB = {peak / r.states:,.0f} bytes per visited state (frontier "
          f"states included)")


_CHILD = """
import json, sys, time
sys.path.insert(0, {src!r})
from pasidsim.check.runner import check_scenario
from pasidsim.scenario.compile import compile_scenario
from pasidsim.scenario.loader import load_text
c = compile_scenario(load_text({text!r}, "<four>"))
workers = {workers}
t_ray = 0.0
from pasidsim.check.parallel import explore_parallel
from pasidsim.check.search import explore
from pasidsim.check.pasid_model import ScenarioModel
from pasidsim.runtime import peak_rss
import functools
f = functools.partial(ScenarioModel, c)
idle = []
if workers > 1:
    from pasidsim.check.parallel import ray_runtime, _Pool
    t0 = time.perf_counter(); ray_runtime(None, workers); t_ray = time.perf_counter() - t0
    pool = _Pool(f, workers, False, False)
    idle = pool.peak_rss()  # a worker with its model built, before any state
    pool.close()
base = peak_rss()
t0 = time.perf_counter()
r = explore_parallel(f, workers) if workers > 1 else explore(f())
wall = time.perf_counter() - t0
rss = peak_rss()
print(json.dumps(dict(verdict=r.verdict, states=r.states, transitions=r.transitions,
                      wall=wall, ray=t_ray, rss=rss, workers_rss=r.worker_peak_rss, base=base,
                      idle=idle)))
"""


def _child(workers: int, text: str = FOUR) -> dict:
    """Check ``text`` serially (``workers`` 1) or on that many Ray actors in a fresh
    process of this interpreter; returns its JSON figures (verdict, states, transitions,
    wall, ray start-up seconds, peak resident memory of the process and of each worker, and
    before the search: the process's (``base``, after the Ray runtime started) and idle
    workers' with their model built (``idle``))."""
    code = _CHILD.format(src=str(ROOT / "src"), text=text, workers=workers)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ray_vs_serial(text: str = FOUR, label: str = "standard machine with 4 processes") -> None:
    serial = _child(1, text)
    par = _child(2, text)
    same = (serial["verdict"], serial["states"], serial["transitions"]) == \
        (par["verdict"], par["states"], par["transitions"])
    mem = par["rss"] + sum(par["workers_rss"])
    print(f"Ray: {label} ({serial['states']:,} states, "
          f"{serial['transitions']:,} transitions), each side a fresh process:")
    print(f"  serial {serial['wall']:.2f} s; 2 Ray actors {par['wall']:.2f} s "
          f"(speedup {serial['wall'] / par['wall']:.2f}x; starting the local runtime took "
          f"{par['ray']:.1f} s more); same verdict, states and transitions: {same}")
    print(f"  peak resident memory: serial {serial['rss'] / 1e6:.0f} MB; Ray coordinator "
          f"{par['rss'] / 1e6:.0f} MB + workers {' + '.join(f'{x / 1e6:.0f}' for x in par['workers_rss'])} MB "
          f"= {mem / 1e6:.0f} MB ({mem / serial['rss']:.2f}x; Ray's own raylet, GCS and "
          f"object store processes not counted)")
    # what the search itself holds: each process's peak minus what it held before the search
    s_grow = serial["rss"] - serial["base"]
    c_grow = par["rss"] - par["base"]
    w_grow = [w - i for w, i in zip(par["workers_rss"], par["idle"])]
    grow = c_grow + sum(w_grow)
    print(f"  grown by the search (peak minus before it; before: serial {serial['base'] / 1e6:.0f}"
          f" MB, coordinator {par['base'] / 1e6:.0f} MB, idle workers "
          f"{' + '.join(f'{x / 1e6:.0f}' for x in par['idle'])} MB): serial "
          f"{s_grow / 1e6:.0f} MB = {s_grow / serial['states']:,.0f} bytes a state; Ray "
          f"{c_grow / 1e6:.0f} + {' + '.join(f'{x / 1e6:.0f}' for x in w_grow)} MB = "
          f"{grow / 1e6:.0f} MB = {grow / serial['states']:,.0f} bytes a state "
          f"({grow / max(s_grow, 1):.2f}x)")


def por_room() -> None:
    from pasidsim.check.pasid_model import ScenarioModel
    from pasidsim.check.search import explore
    c = compile_scenario(load_text(STANDARD, "<bench>"))
    m, ms = ScenarioModel(c), ScenarioModel(c, symmetry=True)
    states: list = []
    explore(m, on_state=states.append)
    pairs = exact = up_to_sym = 0
    for s in states:
        acts = m.actions(s)
        for i, a in enumerate(acts):
            for b in acts[i + 1:]:
                if a.actor == b.actor:
                    continue
                pairs += 1
                sa, sb = m.step(s, a), m.step(s, b)
                if b not in m.actions(sa) or a not in m.actions(sb):
                    continue
                ab, ba = m.step(sa, b), m.step(sb, a)
                exact += ab == ba
                up_to_sym += ms.canonical(ab) == ms.canonical(ba)
    from pasidsim.check.model import ModelView
    pm = ScenarioModel(c, por=True)
    po = pm.partial_order
    isolated = len(ModelView(pm, por=True).isolated) if po.reason is None else 0
    print(f"partial-order reduction's room, standard configuration ({len(states):,} states): "
          f"{pairs:,} pairs of co-enabled steps of different processes; {exact:,} "
          f"({exact / pairs:.0%}) commute exactly, {up_to_sym:,} ({up_to_sym / pairs:.0%}) up to "
          f"symmetry; the static independence relation (pasidsim.check.por) makes "
          f"{isolated} actor(s) isolated: reason {po.reason!r}")
    for mode, kw in MODES[1:]:
        r = check_scenario(c, max_states=None, max_seconds=None, **kw)
        print(f"  {mode:13} states {r.states:,} transitions {r.transitions:,}")
    c4 = compile_scenario(load_text(FOUR, "<four>"))
    for mode, kw in (MODES[1], MODES[3]):
        r = check_scenario(c4, max_states=None, max_seconds=None, **kw)
        print(f"  4 processes, {mode:13} states {r.states:,} transitions {r.transitions:,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0,
                    help="bound of each search of the scaling table (default 60)")
    ap.add_argument("--quick", action="store_true", help="fewer configurations")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray comparison")
    ap.add_argument("--ray-large", action="store_true",
                    help="also compare Ray with serial on 7 processes x 1 device (2,212,556 "
                         "states; about 45 minutes and 4 GB on each side)")
    args = ap.parse_args()
    scaling(args.seconds, args.quick)
    scaling(args.seconds, args.quick, "lock")
    bytes_per_state()
    if not args.no_ray:
        ray_vs_serial()
        if not args.quick:
            ray_vs_serial(identical(6, 1), "6 processes x 1 device")
        if args.ray_large:
            ray_vs_serial(identical(7, 1), "7 processes x 1 device")
    por_room()


if __name__ == "__main__":
    main()
