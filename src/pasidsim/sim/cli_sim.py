"""``pasidsim simulate``: run a workload at scale on the model's ``step``.

Exit status: 0 when every run finished (violations found are results: reported, counted,
saved as scenarios); 1 with ``--strict`` when a run saw an invariant violation; 2 on bad input
(a located one-line error on stderr, never a traceback).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from ..designs import DESIGNS
from ..scenario.loader import ScenarioError
from .output import SUMMARY_METRICS, plot_sweep, plot_time, summary_csv, write_series
from .runs import SweepError, parse_sweep, plan, run_jobs
from .workload import builtin_workloads, load_workload

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _bad(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _split(values: tuple[str, ...]) -> list[str]:
    out = []
    for v in values:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


@click.command("simulate")
@click.argument("workload", required=False, default="amdgpu-ih")
@click.option("--design", help="run on this design instead of the workload's")
@click.option("--compare", "compare", multiple=True, metavar="DESIGN,...",
              help="run these designs side by side on the same seed and workload (comma "
              "separated or repeated)")
@click.option("--sweep", "sweeps", multiple=True, metavar="PARAM=V1,V2,...",
              help="run once per value (repeat for a grid): grace, ih_latency.mean, "
              "fault_prob, allocator, amdgpu_cyclic, pasid_bits, seed, processes, "
              "arrival.mean, lifetime.mean, contexts.0.grace, ...")
@click.option("--seed", type=click.IntRange(0), help="the workload's seed instead")
@click.option("--processes", type=click.IntRange(1), help="number of processes instead")
@click.option("--max-events", type=click.IntRange(1), help="stop after this many model steps")
@click.option("--violations", type=click.Choice(["stop", "count"]),
              help="stop at the first invariant violation (saved as a scenario) or count "
              "them (default: the workload's)")
@click.option("--full-check-every", type=click.IntRange(0),
              help="evaluate every state invariant over the whole state every N steps "
              "(0: at the end only; default: the workload's)")
@click.option("--no-transitions", is_flag=True,
              help="do not check the transition invariants after every step")
@click.option("--out", "out_dir", default="pasidsim-sim", show_default=True,
              type=click.Path(file_okay=False), help="directory for CSV, plots, scenarios")
@click.option("--plot", "plot_fmt", type=click.Choice(["png", "svg", "none"]), default="png",
              show_default=True)
@click.option("--workers", type=click.IntRange(0), default=0,
              help="run comparisons and sweeps as Ray tasks on N workers (default: serially)")
@click.option("--ray", "ray_address", metavar="ADDRESS", help="a Ray cluster to use")
@click.option("--json", "as_json", is_flag=True, help="print the run summaries as JSON")
@click.option("--strict", is_flag=True, help="exit 1 when a run saw a violation")
@click.option("--minimize", is_flag=True,
              help="reduce each violation's replay scenario by delta debugging (at most 300 "
                   "runs of it: seconds for a few dozen processes, minutes for hundreds)")
@click.option("--list", "list_only", is_flag=True, help="list the built-in workloads")
@click.option("--schema", "schema_only", is_flag=True,
              help="print the JSON Schema of workload files")
def simulate_cmd(workload, design, compare, sweeps, seed, processes, max_events, violations,
                 full_check_every, no_transitions, out_dir, plot_fmt, workers, ray_address,
                 as_json, strict, minimize, list_only, schema_only) -> None:
    """Simulate WORKLOAD (a file, or a built-in name; default amdgpu-ih) at scale: a seeded
    discrete-event run (SimPy) of processes, devices and latencies on the model's one
    `step`.  Writes the metric time series (CSV; Parquet when pyarrow is installed), plots,
    a summary and, for a run stopped by a violation, a scenario `pasidsim run` replays."""
    console = Console(stderr=as_json, highlight=False)
    if schema_only:
        from .workload import workload_json_schema
        click.echo(json.dumps(workload_json_schema(), indent=2, sort_keys=True))
        return
    if list_only:
        for name, text in builtin_workloads().items():
            lw = load_workload(name)
            click.echo(f"{name:12} {lw.model.description or ''}")
        return
    try:
        lw = load_workload(workload)
        changes = {k: v for k, v in (("seed", seed), ("processes", processes)) if v is not None}
        if changes:
            lw = lw.variant(**changes)
        designs = _split(compare)
        if design:
            designs = [design] + [d for d in designs if d != design] if designs else [design]
        for d in designs:
            if d not in DESIGNS:
                _bad(f"--compare/--design: unknown design {d!r}; known: {', '.join(DESIGNS)}")
        parsed = [parse_sweep(s) for s in sweeps]
        kw = {"transitions": not no_transitions}
        for k, v in (("max_events", max_events), ("violations", violations),
                     ("full_check_every", full_check_every)):
            if v is not None:
                kw[k] = v
        jobs = plan(lw, designs, parsed, **kw)
        for j in jobs:
            j.minimize = minimize
        from .engine import Simulation
        for j in jobs:  # machine and devices are checked before anything runs
            Simulation(j.workload, design=j.design, record=False, **kw)
    except ScenarioError as e:
        _bad(str(e))
    except SweepError as e:
        _bad(str(e))
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _bad(f"--out {out_dir}: {e.strerror or e}")

    def done(i, res):
        s = res.summary
        console.print(f"  {res.label}: {s['events']:,} events, {s['processes']:,} processes, "
                      f"{s['sim_time_ms']:.1f} ms simulated, {s['events_per_s']:,.0f} events/s"
                      + (f", stopped: {s['stopped']}" if s["stopped"] != "end" else ""))

    console.print(f"simulating {lw.model.name}: {len(jobs)} run(s)"
                  + (f" on {workers} Ray workers" if workers > 1 or ray_address else ""))
    try:
        results = run_jobs(jobs, workers, ray_address, on_done=done)
    except KeyboardInterrupt:
        from .runs import shutdown_ray
        shutdown_ray()
        raise
    files = []
    res_list = [r for r, _ in results]
    for j, (res, text) in zip(jobs, results):
        slug = _slug(res.label)
        files += write_series(res, out / f"series-{slug}")
        if text is not None:
            from ..report.output import write_text_atomic
            p = out / f"violation-{slug}.yaml"
            write_text_atomic(p, text)
            files.append(p)
    from ..report.output import write_text_atomic
    write_text_atomic(out / "summary.csv", summary_csv(res_list, [j.params for j in jobs]))
    files.append(out / "summary.csv")
    if plot_fmt != "none":
        if parsed:
            files += plot_sweep(res_list, [j.params for j in jobs], parsed[0][0], out, plot_fmt)
        else:
            files += plot_time(res_list, out, plot_fmt)
    if as_json:
        click.echo(json.dumps([{"label": r.label, "params": j.params, "summary": r.summary,
                                "violation": None if r.violation is None else
                                r.violation.__dict__} for j, r in zip(jobs, res_list)],
                              indent=2, default=str))
    else:
        _print_table(console, res_list)
        for r in res_list:
            if r.violation is not None:
                v = r.violation
                console.print(f"[red]{r.label}: first violation {v.invariant}[/red] at "
                              f"t={v.t_ms:.3f} ms, step {v.event + 1}: {v.message}")
        saved = [f for f in files if f.name.startswith("violation-")]
        if saved:
            console.print(f"replayable scenarios: {', '.join(str(f) for f in saved)} "
                          "(pasidsim run FILE)")
        console.print(f"wrote {len(files)} files in {out}/")
    if strict and any(r.violation is not None for r in res_list):
        sys.exit(EXIT_FAILED)


def _slug(label: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label).strip("_")[:120] or "run"


def _print_table(console: Console, results) -> None:
    """The summaries, one column per run (narrow terminals keep every value)."""
    t = Table(title="pasidsim simulate", box=None)
    rows = ("events", "processes", "sim_time_ms", "allocations", "alloc_failures",
            "open_failures", "faults", "misattributed", "misattribution_rate", "stale_dropped",
            "foreign_dma", "page_requests", "max_amdgpu_pasids", "max_pasids", "reuses", "reuse_time_min_ms",
            "reuse_allocs_min", "events_per_s", "stopped")
    t.add_column("")
    for r in results:
        t.add_column(r.label, justify="right", overflow="fold")
    for key in rows:
        vals = []
        for r in results:
            v = r.summary.get(key)
            vals.append("-" if v is None else f"{v:.4g}" if isinstance(v, float) else
                        f"{v:,}" if isinstance(v, int) else str(v))
        t.add_row(key.replace("_", " "), *vals)
    console.print(t)


__all__ = ["simulate_cmd", "SUMMARY_METRICS"]
