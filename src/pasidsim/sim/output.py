"""Outputs of simulator runs: CSV (and Parquet when pyarrow is importable) time series and
summaries, matplotlib plots (PNG or SVG).  Every file is written through
:func:`pasidsim.report.output.write_text_atomic` / ``write_bytes_atomic`` (a temporary file
renamed over the target)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

from ..report.output import write_bytes_atomic, write_text_atomic
from .engine import COLUMNS, SimResult, column_doc

#: metrics plotted over time (one figure each), with their titles
TIME_METRICS = ("amdgpu_pasids", "amdgpu_pending_free", "pasids", "pending_free",
                "alloc_failures", "reuse_time_mean_ms", "reuse_allocs_mean", "misattributed",
                "stale_dropped", "foreign_dma", "ih_depth", "inflight", "page_requests",
                "iopf_depth", "processes_live")
#: summary values a sweep plots against its parameter
SUMMARY_METRICS = ("misattribution_rate", "misattributed", "stale_dropped", "foreign_dma",
                   "alloc_failures", "max_amdgpu_pasids", "max_pasids", "reuse_time_min_ms",
                   "events_per_s")


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return str(v)


def series_csv(res: SimResult) -> str:
    """The time series as CSV text (header :data:`COLUMNS`; empty cell = no value)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in res.rows:
        w.writerow([_fmt(v) for v in r])
    return buf.getvalue()


def summary_csv(results: Sequence[SimResult], params: Sequence[dict] = ()) -> str:
    """One row per run: its sweep parameters (if any), then its summary values."""
    keys: list[str] = []
    pkeys: list[str] = []
    for p in params:
        pkeys += [k for k in p if k not in pkeys]
    for r in results:
        keys += [k for k in r.summary if k not in keys and k != "violations"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(pkeys + keys + ["violations"])
    for i, r in enumerate(results):
        p = params[i] if i < len(params) else {}
        viol = ";".join(f"{k}={v}" for k, v in sorted(r.summary.get("violations", {}).items()))
        w.writerow([_fmt(p.get(k, "")) for k in pkeys] +
                   [_fmt(r.summary.get(k, "")) for k in keys] + [viol])
    return buf.getvalue()


def have_parquet() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def write_series(res: SimResult, path: Path) -> list[Path]:
    """``path``.csv (and ``path``.parquet when pyarrow is importable).  Returns the files."""
    out = [path.with_suffix(".csv")]
    write_text_atomic(out[0], series_csv(res))
    if have_parquet():
        import pyarrow as pa
        import pyarrow.parquet as pq
        table = pa.table({c: [r[i] for r in res.rows] for i, c in enumerate(COLUMNS)})
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        out.append(path.with_suffix(".parquet"))
        write_bytes_atomic(out[1], buf.getvalue().to_pybytes())
    return out


def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix[1:], bbox_inches="tight", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return path


def plot_time(results: Sequence[SimResult], out_dir: Path, fmt: str = "png",
              metrics: Sequence[str] = TIME_METRICS) -> list[Path]:
    """One figure per metric over simulated time, one line per run (labelled by its
    ``label``: the design in a comparison); metrics that are zero/empty in every run are
    skipped.  Plus ``overview.<fmt>`` with every plotted metric in a grid.  Returns files."""
    plt = _figure()
    doc = column_doc()
    files = []
    shown = []
    for m in metrics:
        ys = [r.column(m) for r in results]
        if not any(any(v and not (isinstance(v, float) and math.isnan(v)) for v in y)
                   for y in ys):
            continue
        shown.append(m)
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for r, y in zip(results, ys):
            ax.plot(r.column("t_ms"), y, label=r.label, drawstyle="steps-post")
        ax.set_xlabel("simulated time (ms)")
        ax.set_ylabel(m)
        ax.set_title(doc[m], fontsize=9)
        if len(results) > 1:
            ax.legend(fontsize=8)
        files.append(_save(plt, fig, out_dir / f"{m}.{fmt}"))
    if shown:
        cols = 3
        rows = (len(shown) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(12, 2.8 * rows), squeeze=False)
        for ax, m in zip(axes.flat, shown):
            for r in results:
                ax.plot(r.column("t_ms"), r.column(m), label=r.label, drawstyle="steps-post")
            ax.set_title(m, fontsize=9)
        for ax in list(axes.flat)[len(shown):]:
            ax.axis("off")
        if len(results) > 1:
            axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        files.append(_save(plt, fig, out_dir / f"overview.{fmt}"))
    return files


def plot_sweep(results: Sequence[SimResult], params: Sequence[dict], xparam: str,
               out_dir: Path, fmt: str = "png",
               metrics: Sequence[str] = SUMMARY_METRICS) -> list[Path]:
    """Each summary metric against sweep parameter ``xparam``, one line per combination of
    the other parameters (and design).  Returns the files (``sweep-<metric>.<fmt>``)."""
    plt = _figure()
    groups: dict[str, list[tuple]] = {}
    for r, p in zip(results, params):
        key = ", ".join(f"{k}={v}" for k, v in p.items() if k != xparam)
        groups.setdefault(key, []).append((p[xparam], r))
    files = []
    for m in metrics:
        vals = [r.summary.get(m) for r in results]
        if not any(isinstance(v, (int, float)) and v for v in vals):
            continue
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        numeric = all(isinstance(p[xparam], (int, float)) and not isinstance(p[xparam], bool)
                      for p in params)
        for key, pts in groups.items():
            xs = [x for x, _ in pts]
            ys = [r.summary.get(m) if r.summary.get(m) is not None else math.nan
                  for _, r in pts]
            if numeric:
                ax.plot(xs, ys, marker="o", label=key or None)
            else:
                ax.plot([str(x) for x in xs], ys, marker="o", label=key or None)
        ax.set_xlabel(xparam)
        ax.set_ylabel(m)
        if any(groups):
            ax.legend(fontsize=8)
        files.append(_save(plt, fig, out_dir / f"sweep-{m}.{fmt}"))
    return files


__all__ = ["series_csv", "summary_csv", "write_series", "plot_time", "plot_sweep",
           "have_parquet", "TIME_METRICS", "SUMMARY_METRICS"]
